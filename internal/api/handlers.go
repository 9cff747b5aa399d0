package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/internal/people"
	"github.com/p2pshare/p2pshare/internal/share"
	"github.com/p2pshare/p2pshare/internal/shortid"
	"github.com/p2pshare/p2pshare/internal/target"
	"github.com/p2pshare/p2pshare/internal/ticket"
	"github.com/p2pshare/p2pshare/internal/transfer"
)

func (s *Server) handleID(w http.ResponseWriter, r *http.Request) {
	n := s.cfg.Node
	reach := "unknown"
	switch n.Reachability() {
	case network.ReachabilityPublic:
		reach = "public"
	case network.ReachabilityPrivate:
		reach = "private"
	}
	writeJSON(w, http.StatusOK, ID{
		PeerID: n.ID().String(), Version: s.cfg.Version, Reachability: reach,
		RelayService: string(n.RelayServiceMode()), Reservations: n.Reservations(),
		PublicAddrs: addrStrings(n.PublicAddrs()), Addrs: addrStrings(n.Addrs()),
		ShareDir: s.cfg.Share.ShareDir(), DownloadDir: s.cfg.DownloadDir,
	})
}

func (s *Server) handleFiles(w http.ResponseWriter, r *http.Request) {
	files, err := s.cfg.Share.Files()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]LocalFile, 0, len(files))
	for _, f := range files {
		lf := LocalFile{Name: f.Name, Size: f.Size, Modified: f.ModTime.UTC(), Published: f.Published, Changed: f.Changed,
			Folder: f.Folder, Files: f.Files}
		if f.Published {
			lf.CID = f.CID.String()
		}
		out = append(out, lf)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Names) == 0 {
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New(`"names" is empty: give the names of files in the share folder`)))
		return
	}
	var opt share.PublishOptions
	switch {
	case req.Public && len(req.To) > 0:
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New(`give "to" or "public", not both`)))
		return
	case req.Public:
		opt.Audience = &share.Audience{}
	case len(req.To) > 0:
		var ws []share.Who
		known := s.knownPeers()
		for _, word := range req.To {
			who, err := s.resolveWho(word, known)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			ws = append(ws, who)
		}
		aud := share.AudienceOf(ws...)
		opt.Audience = &aud
	}
	res, err := s.cfg.Share.PublishWith(r.Context(), opt, req.Names...)
	out := Published{Files: []PublishResult{}}
	for _, p := range res {
		out.Files = append(out.Files, PublishResult{Entry: entryOf(p.Entry), Already: p.Already, Retargeted: p.Retargeted})
	}
	if len(res) > 0 {
		s.publishedChanged()
	}
	s.answerWith(w, r, out, err)
}

// answerWith answers what was done, with the error's status if some of
// it failed.
func (s *Server) answerWith(w http.ResponseWriter, r *http.Request, out Published, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = withStatus(http.StatusNotFound, err)
	}
	out.Error = err.Error()
	status := statusOf(err)
	if status >= 500 {
		s.log.Warn("API request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, out)
}

func (s *Server) handlePublished(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Entries(s.cfg.Share.Published()))
}

func (s *Server) handleUnpublish(w http.ResponseWriter, r *http.Request) {
	var req UnpublishRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	var gone []share.Entry
	var err error
	switch {
	case req.All && len(req.Names) > 0:
		err = withStatus(http.StatusBadRequest, errors.New(`give "names" or "all", not both`))
	case req.All:
		gone, err = s.cfg.Share.UnpublishAll(r.Context())
	case len(req.Names) == 0:
		err = withStatus(http.StatusBadRequest, errors.New(`give "names" (names or CIDs of published files) or "all": true`))
	default:
		var args []string
		if args, err = s.publishedArgs(req.Names); err == nil {
			gone, err = s.cfg.Share.Unpublish(r.Context(), args...)
		}
	}
	out := Published{Files: []PublishResult{}}
	for _, e := range gone {
		out.Files = append(out.Files, PublishResult{Entry: entryOf(e)})
	}
	if len(gone) > 0 {
		s.publishedChanged()
	}
	s.answerWith(w, r, out, err)
}

// publishedArgs replaces each argument that is neither a published name
// nor a CID but the unique prefix of a published CID by that CID.
func (s *Server) publishedArgs(args []string) ([]string, error) {
	var names, cids []string
	for _, e := range s.cfg.Share.Published() {
		names = append(names, e.Name)
		cids = append(cids, e.CID.String())
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if contains(names, a) {
			continue
		}
		if _, err := cid.Decode(a); err == nil {
			continue
		}
		full, err := matchPrefix("published CID", a, cids)
		switch {
		case err == nil:
			out[i] = full
		case isAmbiguous(err):
			return nil, err
		}
		// No match: Unpublish says it is not published.
	}
	return out, nil
}

func (s *Server) handleAvailable(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Remotes(s.cfg.Share.Available()))
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New("give the text to search for: ?q=TEXT")))
		return
	}
	writeJSON(w, http.StatusOK, Remotes(s.cfg.Share.Search(q)))
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	var req GetRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	req.Target = strings.TrimSpace(req.Target)
	if req.Target == "" {
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New(`"target" is empty: give a name, CID or ticket`)))
		return
	}
	var opt transfer.GetOptions
	for _, f := range req.From {
		id, err := s.resolvePeer(f)
		if err != nil {
			s.fail(w, r, fmt.Errorf("from: %w", err))
			return
		}
		opt.From = append(opt.From, id)
	}
	c, err := s.resolveGet(req.Target, &opt)
	if err == nil {
		opt.Output, err = outputPath(req.Output, c, opt.Name)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	j, err := s.jobs.submit(req.Target, c, opt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

// resolveGet finds what a get's target names (see internal/target, which
// the prompt uses too); a ticket that cannot be read is the client's
// mistake (400).
func (s *Server) resolveGet(arg string, opt *transfer.GetOptions) (cid.Cid, error) {
	c, err := target.Get(s.cfg.Share, arg, s.knownCIDs(), opt)
	var te *target.TicketError
	if errors.As(err, &te) || shortid.IsAmbiguous(err) {
		return cid.Undef, withStatus(http.StatusBadRequest, err)
	}
	return c, err
}

// outputPath checks get's output: empty is the download folder; an
// existing folder means "into it, under the file's name"; anything else
// is a new file in an existing folder. The path must be absolute: the
// node's working folder is not the client's.
func outputPath(o string, c cid.Cid, name string) (string, error) {
	if o == "" {
		return "", nil
	}
	if !filepath.IsAbs(o) {
		return "", withStatus(http.StatusBadRequest, fmt.Errorf("output %q: give an absolute path", o))
	}
	if fi, err := os.Stat(o); err == nil && fi.IsDir() {
		o = filepath.Join(o, transfer.SanitizeName(name, c))
	}
	if _, err := os.Lstat(o); err == nil {
		return "", withStatus(http.StatusConflict, fmt.Errorf("%s already exists: get never overwrites a file (choose another path, or a folder)", o))
	}
	dir := filepath.Dir(o)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", withStatus(http.StatusBadRequest, fmt.Errorf("cannot save to %s: folder %s does not exist", o, dir))
	case err != nil:
		return "", withStatus(http.StatusBadRequest, fmt.Errorf("cannot save to %s: %w", o, err))
	case !fi.IsDir():
		return "", withStatus(http.StatusBadRequest, fmt.Errorf("cannot save to %s: %s is not a folder", o, dir))
	}
	return o, nil
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.jobs.list())
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobs.get(r.PathValue("id"))
	if !ok {
		s.fail(w, r, withStatus(http.StatusNotFound, fmt.Errorf("no job %q (GET /api/v1/gets lists them)", r.PathValue("id"))))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// handleTransfers lists what the transfer service knows (running and
// paused downloads, the prompt's too) and the queued jobs.
func (s *Server) handleTransfers(w http.ResponseWriter, r *http.Request) {
	out := []Transfer{}
	jobOf := map[string]string{}
	for _, j := range s.jobs.active() {
		if j.State == JobQueued {
			out = append(out, Transfer{CID: j.CID, Name: j.Name, Size: j.Size, State: JobQueued, Providers: []string{}, Job: j.ID})
			continue
		}
		jobOf[j.CID] = j.ID
	}
	for _, t := range s.cfg.Transfer.Transfers() {
		tt := transferOf(t)
		tt.Job = jobOf[tt.CID]
		out = append(out, tt)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	var req CancelRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Target == "" {
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New(`"target" is empty: give a CID (or its start) or a job ID`)))
		return
	}
	out, err := s.cancelDownload(req.Target)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// cancelDownload stops a download given by job ID or CID (or a unique prefix of
// the CID of a transfer), and removes its partial data.
func (s *Server) cancelDownload(target string) (Canceled, error) {
	var c cid.Cid
	if j, ok := s.jobs.get(target); ok {
		if j.Finished() {
			return Canceled{}, withStatus(http.StatusConflict, fmt.Errorf("job %s has already ended (%s)", j.ID, j.State))
		}
		c, _ = cid.Decode(j.CID)
	} else {
		var cids []string
		for _, j := range s.jobs.active() {
			cids = append(cids, j.CID)
		}
		for _, t := range s.cfg.Transfer.Transfers() {
			cids = append(cids, t.CID.String())
		}
		if ticket.Looks(target) { // a ticket names its CID wherever a CID is taken
			t, err := ticket.Decode(target)
			if err != nil {
				return Canceled{}, withStatus(http.StatusBadRequest, err)
			}
			target = t.CID.String()
		}
		full, err := matchPrefix("transfer CID", target, cids)
		if err != nil {
			if !isAmbiguous(err) {
				err = withStatus(http.StatusNotFound, fmt.Errorf("%w (GET /api/v1/transfers lists the downloads)", err))
			}
			return Canceled{}, err
		}
		c, _ = cid.Decode(full)
	}
	out := Canceled{CID: c.String()}
	if j, ok := s.jobs.cancelQueued(c); ok {
		out.Job = j.ID
		// A queued job may resume partial data from an earlier run:
		// remove it as cancel promises.
		if err := s.cfg.Transfer.Cancel(c); err != nil && !errors.Is(err, transfer.ErrNotFound) {
			return out, err
		}
		return out, nil
	}
	// A running job is stopped through its context (its Get may not
	// have started, or may be ending: transfer.Cancel would not find
	// it); then the partial data goes.
	out.Job = s.jobs.cancelRunning(c)
	err := s.cfg.Transfer.Cancel(c)
	if out.Job != "" && errors.Is(err, transfer.ErrNotFound) {
		err = nil // it had nothing on disk yet
	}
	return out, err
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	s.writePeers(w)
}

func (s *Server) handleRefreshPeers(w http.ResponseWriter, r *http.Request) {
	s.cfg.Node.RefreshPeers(r.Context())
	s.writePeers(w)
}

func (s *Server) writePeers(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, Peers(s.cfg.Node, s.cfg.People))
}

func (s *Server) handleGroups(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Groups(s.cfg.People))
}

// connectTimeout bounds connect.
const connectTimeout = 30 * time.Second

func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ma, err := multiaddr.NewMultiaddr(req.Addr)
	if err != nil {
		s.fail(w, r, withStatus(http.StatusBadRequest, fmt.Errorf("bad multiaddr %q (want one ending in /p2p/PEERID): %w", req.Addr, err)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), connectTimeout)
	defer cancel()
	id, err := s.cfg.Node.Connect(ctx, ma)
	if err != nil {
		s.log.Warn("connect failed", "addr", ma, "err", err)
		s.fail(w, r, withStatus(http.StatusBadGateway, fmt.Errorf("could not connect to %s: %w", ma, err)))
		return
	}
	writeJSON(w, http.StatusOK, Connected{PeerID: id.String()})
}

func (s *Server) handleShare(w http.ResponseWriter, r *http.Request) {
	arg := strings.TrimSpace(r.URL.Query().Get("file"))
	if arg == "" {
		s.fail(w, r, withStatus(http.StatusBadRequest, errors.New("give the published file: ?file=NAME|CID")))
		return
	}
	var t ticket.Ticket
	var found []string
	for _, e := range s.cfg.Share.Published() {
		id := e.CID.String()
		if e.Name == arg || id == arg || (len(arg) >= 4 && strings.HasPrefix(id, arg)) {
			t = ticket.Ticket{CID: e.CID, Name: e.Name, Size: uint64(e.Size), SHA256: e.SHA256[:]}
			found = append(found, e.Name)
		}
	}
	switch {
	case len(found) == 0:
		s.fail(w, r, withStatus(http.StatusNotFound, fmt.Errorf("%q is not published by this node (publish it first)", arg)))
		return
	case len(found) > 1:
		s.fail(w, r, withStatus(http.StatusBadRequest, fmt.Errorf("%q matches %d published files (%s): give the whole name or CID", arg, len(found), strings.Join(found, ", "))))
		return
	}
	n := s.cfg.Node
	t.Publisher = n.ID()
	t.Addrs = n.ShareableAddrs()
	text, err := t.Encode()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := Ticket{Ticket: text, Name: t.Name, CID: t.CID.String()}
	if len(n.RelayAddrs()) == 0 && len(n.PublicAddrs()) == 0 {
		out.Note = "no relayed or public address yet: the ticket works on this LAN; beyond it, wait for a relay reservation (see id)"
	}
	writeJSON(w, http.StatusOK, out)
}

// knownCIDs is every CID this node can name: what others publish, what
// it publishes, and its downloads.
func (s *Server) knownCIDs() []string {
	var out []string
	for _, e := range s.cfg.Share.Available() {
		out = append(out, e.CID.String())
	}
	for _, e := range s.cfg.Share.Published() {
		out = append(out, e.CID.String())
	}
	for _, t := range s.cfg.Transfer.Transfers() {
		out = append(out, t.CID.String())
	}
	return out
}

// knownPeers are the peers a request may name by a unique prefix of
// their ID (besides those of the people book): the peer table and the
// providers of what others publish.
func (s *Server) knownPeers() []peer.ID {
	var known []peer.ID
	for _, p := range s.cfg.Node.Peers().List() {
		known = append(known, p.ID)
	}
	for _, e := range s.cfg.Share.Available() {
		for _, p := range e.Providers {
			known = append(known, p.ID)
		}
	}
	return known
}

// resolvePeer reads arg as a name given on this node, the unique prefix
// of a known peer (the peer table, the providers of what others publish,
// the peers named, grouped or blocked), or else a full peer ID.
func (s *Server) resolvePeer(arg string) (peer.ID, error) {
	known := s.knownPeers()
	var id peer.ID
	var err error
	if s.cfg.People != nil {
		id, err = s.cfg.People.Resolve(arg, known)
	} else {
		id, err = people.ResolveID(arg, known)
	}
	switch {
	case err == nil:
		return id, nil
	case isAmbiguous(err) || errors.Is(err, shortid.ErrEmpty) || errors.Is(err, people.ErrNotPeer):
		return "", withStatus(http.StatusBadRequest, err)
	}
	return "", withStatus(http.StatusNotFound, err)
}

// resolveWho reads one word of a publish request's "to" as the prompt's
// publish --to does: a name given on this node, one of its groups, the
// unique prefix of a known peer (knownPeers, the book's), or else a whole
// peer ID. peer.Decode alone would take some short strings (a 12-letter
// prefix, say) for IDs of their own, and any other word for a group: a
// typo would then restrict the files to no one. A word that names no one
// is the client's mistake (400), as is an ambiguous prefix.
func (s *Server) resolveWho(word string, known []peer.ID) (share.Who, error) {
	var who share.Who
	var err error
	if s.cfg.People != nil {
		var t people.Target
		t, err = s.cfg.People.ResolveTarget(word, known)
		who = share.Who{Peer: t.Peer, Group: t.Group}
	} else {
		// No people book: no names, no groups.
		who.Peer, err = people.ResolveID(word, known)
	}
	if err != nil {
		return share.Who{}, withStatus(http.StatusBadRequest, fmt.Errorf(`"to": %q: %w`, word, err))
	}
	return who, nil
}
