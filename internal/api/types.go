package api

import (
	"encoding/hex"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/p2p"
	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

// The JSON the API speaks. These types are the contract with clients
// (and what `p2pshare COMMAND --json` prints): fields are only ever
// added, never renamed or removed. Sizes are bytes, rates bytes per
// second, times RFC 3339, durations milliseconds.

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// ID is GET /api/v1/id: who this node is and how it can be reached.
type ID struct {
	PeerID       string   `json:"peer_id"`
	Version      string   `json:"version"`
	Reachability string   `json:"reachability"` // public, private, unknown
	RelayService string   `json:"relay_service"`
	Reservations int      `json:"relay_reservations"`
	PublicAddrs  []string `json:"public_addrs"`
	Addrs        []string `json:"addrs"`
	ShareDir     string   `json:"share_dir"`
	DownloadDir  string   `json:"download_dir"`
}

// LocalFile is a file of the share folder (GET /api/v1/files).
type LocalFile struct {
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Modified  time.Time `json:"modified"`
	Published bool      `json:"published"`
	CID       string    `json:"cid,omitempty"`
	// Changed: published, but the file on disk changed since; publish again.
	Changed bool `json:"changed"`
	// Folder: a folder, published as one collection; Files counts its files.
	Folder bool `json:"folder,omitempty"`
	Files  int  `json:"files,omitempty"`
}

// Entry is a file this node publishes (GET /api/v1/published, events).
type Entry struct {
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	CID         string    `json:"cid"`
	SHA256      string    `json:"sha256"` // "" for a folder
	PublishedAt time.Time `json:"published_at"`
	// Folder: a published folder (a collection of Files files).
	Folder bool `json:"folder,omitempty"`
	Files  int  `json:"files,omitempty"`
	// ToPeers and ToGroups: who may see and fetch one of our files; both
	// empty: everyone.
	ToPeers  []string `json:"to_peers,omitempty"`
	ToGroups []string `json:"to_groups,omitempty"`
	// Aliases: the other names the same content is published under.
	Aliases []string `json:"aliases,omitempty"`
}

// PublishResult is one published name (POST /api/v1/publish).
type PublishResult struct {
	Entry
	// Already: the same content was already published; nothing changed
	// but, if Retargeted, who may see and fetch it (ToPeers, ToGroups).
	Already    bool `json:"already"`
	Retargeted bool `json:"retargeted,omitempty"`
}

// Published is the answer of POST /api/v1/publish and of POST
// /api/v1/unpublish: what was done. With some names failed, the status is
// an error and Error joins the reasons; Files still lists what was done.
type Published struct {
	Files []PublishResult `json:"files"`
	Error string          `json:"error,omitempty"`
}

// Remote is a file other peers publish (GET /api/v1/available, search).
type Remote struct {
	Name      string     `json:"name"`
	Size      int64      `json:"size"`
	CID       string     `json:"cid"`
	SHA256    string     `json:"sha256"` // "" for a folder
	Providers []Provider `json:"providers"`
	// Folder: a published folder (a collection of Files files).
	Folder bool `json:"folder,omitempty"`
	Files  int  `json:"files,omitempty"`
	// Aliases: the other names the same content is published under.
	Aliases []string `json:"aliases,omitempty"`
}

// Provider is one peer publishing a Remote.
type Provider struct {
	PeerID string `json:"peer_id"`
	Online bool   `json:"online"`
	Name   string `json:"name"` // the name this provider gave the file
}

// Peer is a row of the peer table (GET /api/v1/peers, events).
type Peer struct {
	PeerID    string     `json:"peer_id"`
	Online    bool       `json:"online"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  *time.Time `json:"last_seen"` // null: never reached
	RTTMillis float64    `json:"rtt_ms"`    // of the last ping; 0: none yet
	Source    string     `json:"source"`    // how it was found: mdns, dht, bootstrap, manual, inbound, outbound
	Link      string     `json:"link"`      // tcp, quic, relay, or "" when not connected
	Addrs     []string   `json:"addrs"`     // as the peer gave them: not safe to print raw on a terminal
	LastError string     `json:"last_error,omitempty"`
	// Nick is the name this node gave the peer ("" if none); Says the name
	// the peer gives itself, its claim only (a valid name or "").
	Nick    string   `json:"nick,omitempty"`
	Says    string   `json:"says,omitempty"`
	Blocked bool     `json:"blocked,omitempty"`
	Groups  []string `json:"groups,omitempty"` // the groups it is in here
}

// Group is one of this node's groups of peers (GET /api/v1/groups).
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"` // peer IDs, sorted
}

// Transfer is a download the transfer service knows: running, or paused
// with its partial data on disk (GET /api/v1/transfers).
type Transfer struct {
	CID       string   `json:"cid"`
	Name      string   `json:"name"`
	Size      int64    `json:"size"` // 0 until the manifest has arrived
	Done      int64    `json:"done"`
	Rate      float64  `json:"rate"`
	Providers []string `json:"providers"`
	State     string   `json:"state"` // running, paused, "waiting for providers", queued
	Job       string   `json:"job,omitempty"`
}

// Job is a background download started by POST /api/v1/get
// (GET /api/v1/gets, /api/v1/gets/{id}, "transfer" events).
type Job struct {
	ID     string `json:"id"`
	CID    string `json:"cid"`
	Name   string `json:"name"`
	Target string `json:"target"` // what was asked for
	// State: queued, running, waiting (no provider reachable now), done,
	// failed, paused (the node stopped: get it again to resume),
	// canceled.
	State     string    `json:"state"`
	Size      int64     `json:"size"` // 0 until known
	Done      int64     `json:"done"`
	Rate      float64   `json:"rate"`
	Providers int       `json:"providers"` // downloading now
	Created   time.Time `json:"created"`
	// Set when done.
	Path       string   `json:"path,omitempty"`
	SHA256     string   `json:"sha256,omitempty"`
	DurationMS float64  `json:"duration_ms,omitempty"`
	Resumed    int      `json:"resumed_chunks,omitempty"`
	BadPeers   []string `json:"bad_peers,omitempty"` // dropped for sending data that failed verification
	// Set when failed, paused or canceled.
	Error string `json:"error,omitempty"`
}

// Finished reports whether the job will change no more.
func (j Job) Finished() bool {
	switch j.State {
	case JobDone, JobFailed, JobPaused, JobCanceled:
		return true
	}
	return false
}

// Job states.
const (
	JobQueued   = "queued"
	JobRunning  = "running"
	JobWaiting  = "waiting"
	JobDone     = "done"
	JobFailed   = "failed"
	JobPaused   = "paused"
	JobCanceled = "canceled"
)

// Ticket is GET /api/v1/share: a ticket for a published file.
type Ticket struct {
	Ticket string `json:"ticket"`
	Name   string `json:"name"`
	CID    string `json:"cid"`
	// Note: set when the ticket only works on this LAN for now.
	Note string `json:"note,omitempty"`
}

// Connected is POST /api/v1/connect.
type Connected struct {
	PeerID string `json:"peer_id"`
}

// Canceled is POST /api/v1/cancel.
type Canceled struct {
	CID string `json:"cid"`
	Job string `json:"job,omitempty"`
}

// Request bodies.
type (
	// PublishRequest: names of files in the share folder.
	PublishRequest struct {
		Names []string `json:"names"`
		// To, if given, is who may see and fetch the files, each word
		// read as the prompt's publish --to reads it: a name this node
		// gave a peer, one of its groups, the unique prefix of a known
		// peer's ID, or a whole peer ID; a word that is none of these is
		// refused (400). Public makes them everyone's again. Neither: a
		// published file keeps its audience, a new one is public.
		To     []string `json:"to,omitempty"`
		Public bool     `json:"public,omitempty"`
	}
	// UnpublishRequest: names or CIDs, or all.
	UnpublishRequest struct {
		Names []string `json:"names"`
		All   bool     `json:"all"`
	}
	// GetRequest: what to get (a name, CID, CID prefix or ticket), where
	// to save it (an absolute path to a new file, or a folder; default
	// the download folder), and optionally only from some peers.
	GetRequest struct {
		Target string   `json:"target"`
		Output string   `json:"output,omitempty"`
		From   []string `json:"from,omitempty"`
	}
	// CancelRequest: a CID (or unique prefix) or a job ID.
	CancelRequest struct {
		Target string `json:"target"`
	}
	// ConnectRequest: a multiaddr ending in /p2p/PEERID.
	ConnectRequest struct {
		Addr string `json:"addr"`
	}
)

// Conversions from the services' types.

func hexSum(b [32]byte) string { return hex.EncodeToString(b[:]) }

// The listings, as the API answers them and as the prompt's --json
// prints them (one code for both, so they cannot drift apart).

// Entries is GET /api/v1/published: what this node publishes.
func Entries(list []share.Entry) []Entry {
	out := make([]Entry, 0, len(list))
	for _, e := range list {
		out = append(out, entryOf(e))
	}
	return out
}

// Remotes is GET /api/v1/available (and search): what others publish.
func Remotes(list []share.Remote) []Remote {
	out := make([]Remote, 0, len(list))
	for _, r := range list {
		out = append(out, remoteOf(r))
	}
	return out
}

// Peers is GET /api/v1/peers: n's peer table, with the names, groups and
// blocks of b (nil: none).
func Peers(n *p2p.Node, b *people.Book) []Peer {
	out := []Peer{}
	for _, p := range n.Peers().List() {
		out = append(out, peerOf(n, b, p))
	}
	return out
}

// Groups is GET /api/v1/groups: b's groups, by name (b nil: none).
func Groups(b *people.Book) []Group {
	out := []Group{}
	if b == nil {
		return out
	}
	for _, g := range b.Groups() {
		out = append(out, Group{Name: g.Name, Members: peerStrings(g.Members)})
	}
	return out
}

func entryOf(e share.Entry) Entry {
	out := Entry{Name: e.Name, Size: e.Size, CID: e.CID.String(), SHA256: hexSum(e.SHA256), PublishedAt: e.Published.UTC(),
		Folder: e.Collection, Files: e.Files, ToGroups: e.Audience.Groups, Aliases: e.Aliases}
	if e.Collection {
		out.SHA256 = ""
	}
	for _, p := range e.Audience.Peers {
		out.ToPeers = append(out.ToPeers, p.String())
	}
	return out
}

func remoteOf(r share.Remote) Remote {
	out := Remote{Name: r.Name, Size: r.Size, CID: r.CID.String(), SHA256: hexSum(r.SHA256), Providers: []Provider{},
		Folder: r.Collection, Files: r.Files, Aliases: r.Aliases}
	if r.Collection {
		out.SHA256 = ""
	}
	for _, p := range r.Providers {
		out.Providers = append(out.Providers, Provider{PeerID: p.ID.String(), Online: p.Online, Name: p.Name})
	}
	return out
}

func (s *Server) peerOf(p p2p.PeerInfo) Peer { return peerOf(s.cfg.Node, s.cfg.People, p) }

func peerOf(n *p2p.Node, b *people.Book, p p2p.PeerInfo) Peer {
	out := Peer{
		PeerID: p.ID.String(), Online: p.Online, FirstSeen: p.FirstSeen.UTC(),
		RTTMillis: float64(p.RTT) / float64(time.Millisecond), Source: string(p.Source),
		Addrs: addrStrings(p.Addrs), LastError: p.LastError,
	}
	if !p.LastSeen.IsZero() {
		t := p.LastSeen.UTC()
		out.LastSeen = &t
	}
	if ci, ok := n.Conns(p.ID); ok {
		out.Link = ci.Transport
	}
	out.Says = people.SaidNameIn(n.Host().Peerstore(), p.ID)
	if b != nil {
		out.Nick, _ = b.Name(p.ID)
		out.Blocked = b.Blocked(p.ID)
		out.Groups = b.GroupsOf(p.ID)
	}
	return out
}

func transferOf(t transfer.Info) Transfer {
	return Transfer{CID: t.CID.String(), Name: t.Name, Size: t.Total, Done: t.Done, Rate: t.Rate, Providers: peerStrings(t.Providers), State: t.State}
}

func addrStrings(as []multiaddr.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func peerStrings(ids []peer.ID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}
