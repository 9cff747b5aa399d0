// Package people is what a node's user says about other peers: names
// for them (petnames, local to this node), groups of them, which are
// blocked. It keeps all of it in the node's datastore, resolves the words
// a user types (a name, a full peer ID or a unique prefix of one) to
// peers, and gives the libp2p host a connection gater that refuses
// blocked peers both ways.
//
// Names and group names share one namespace: `publish --to alice,friends`
// must read each word as exactly one thing, so a group cannot be created
// under a peer's name nor a peer named like a group. Names are compared
// case-insensitively ("Alice" and "alice" are one name) and win over ID
// prefixes: they start with a letter, so they rarely look like one.
//
// A name a peer announces about itself (SaidName) is a different thing:
// anyone can claim any name, so it is only ever shown, marked as the
// peer's own claim, and never resolves a command.
package people

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/shortid"
)

// MaxNameLen is the longest name or group name, in characters.
const MaxNameLen = 32

// Reserved words cannot be names or groups: an audience list may one day
// use them for everyone.
var Reserved = []string{"all", "everyone", "public"}

// Errors callers can test for with errors.Is.
var (
	ErrBadName  = errors.New("bad name")
	ErrTaken    = errors.New("name taken")
	ErrNotFound = errors.New("not found")
	ErrSelf     = errors.New("that is this node")
	ErrNotPeer  = errors.New("a group, not a peer")
)

// Key prefixes inside the Book's (already namespaced) datastore.
const (
	nickPrefix  = "/nick"
	groupPrefix = "/group"
	blockPrefix = "/block"
)

// Group is a named set of peers.
type Group struct {
	Name    string
	Members []peer.ID // sorted
}

// Target is what a word resolves to when it may name a peer or a group
// (an audience): exactly one of Peer and Group is set.
type Target struct {
	Peer  peer.ID
	Group string
}

// Hooks are what the node does when the Book changes in ways that reach
// beyond it; each runs after the change is stored, outside the Book's
// lock, and may call the Book.
type Hooks struct {
	// Blocked: close the peer's connections, hide its files.
	Blocked func(peer.ID)
	// Forgotten: remove the peer from the peer table and its catalog.
	Forgotten func(peer.ID)
	// Changed: anything changed (a name, a group, a block).
	Changed func()
}

// Book is one node's names, groups and blocks. It is safe for concurrent
// use.
type Book struct {
	ds   datastore.Datastore
	self peer.ID

	mu      sync.Mutex
	nicks   map[peer.ID]string
	byNick  map[string]peer.ID // folded name -> peer
	groups  map[string]*Group  // folded name -> group
	blocked map[peer.ID]bool
	hooks   Hooks
}

// Open loads the Book kept in ds, which the caller has namespaced for it.
// self is this node's ID: it cannot be blocked, named or grouped ("" if
// not known yet; SetSelf sets it later).
func Open(ctx context.Context, ds datastore.Datastore, self peer.ID) (*Book, error) {
	b := &Book{
		ds:      ds,
		self:    self,
		nicks:   map[peer.ID]string{},
		byNick:  map[string]peer.ID{},
		groups:  map[string]*Group{},
		blocked: map[peer.ID]bool{},
	}
	res, err := ds.Query(ctx, query.Query{})
	if err != nil {
		return nil, fmt.Errorf("load names and groups: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("load names and groups: %w", r.Error)
		}
		// A broken record is skipped: one bad row must not cost the
		// user every other name. It is left in the store for inspection.
		_ = b.loadRecord(datastore.NewKey(r.Key), r.Value)
	}
	return b, nil
}

func (b *Book) loadRecord(k datastore.Key, v []byte) error {
	ns := k.List()
	if len(ns) != 2 {
		return fmt.Errorf("bad key %s", k)
	}
	switch "/" + ns[0] {
	case nickPrefix:
		id, err := peer.Decode(ns[1])
		if err != nil {
			return err
		}
		nick := string(v)
		if ValidName(nick) != nil || b.taken(nick) {
			return fmt.Errorf("bad or duplicate name %q", nick)
		}
		b.nicks[id] = nick
		b.byNick[fold(nick)] = id
	case groupPrefix:
		var rec groupRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		if ValidName(rec.Name) != nil || b.taken(rec.Name) {
			return fmt.Errorf("bad or duplicate group %q", rec.Name)
		}
		g := &Group{Name: rec.Name}
		for _, s := range rec.Members {
			if id, err := peer.Decode(s); err == nil {
				g.Members = append(g.Members, id)
			}
		}
		slices.Sort(g.Members)
		g.Members = slices.Compact(g.Members)
		b.groups[fold(rec.Name)] = g
	case blockPrefix:
		id, err := peer.Decode(ns[1])
		if err != nil {
			return err
		}
		b.blocked[id] = true
	default:
		return fmt.Errorf("unknown key %s", k)
	}
	return nil
}

type groupRecord struct {
	Name    string   `json:"name"`
	Members []string `json:"members,omitempty"`
}

// SetSelf tells the Book this node's ID (when Open could not).
func (b *Book) SetSelf(self peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.self = self
}

// SetHooks installs what runs on blocks, forgets and changes.
func (b *Book) SetHooks(h Hooks) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hooks = h
}

func (b *Book) changed() {
	b.mu.Lock()
	f := b.hooks.Changed
	b.mu.Unlock()
	if f != nil {
		f()
	}
}

// ValidName checks a name or group name: 1 to MaxNameLen characters, a
// letter first, then letters, digits, '-', '_' or '.'; not a Reserved
// word. So a name is one word at the prompt, never holds the comma that
// separates an audience list, and never starts like a peer ID ("12D3",
// "16Uiu2") or is mistaken for a number.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	}
	if n := utf8.RuneCountInString(s); n > MaxNameLen {
		return fmt.Errorf("%w: %q is %d characters, at most %d", ErrBadName, s, n, MaxNameLen)
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r):
		case i == 0:
			return fmt.Errorf("%w: %q must start with a letter", ErrBadName, s)
		case unicode.IsDigit(r) || r == '-' || r == '_' || r == '.':
		default:
			return fmt.Errorf("%w: %q: %q not allowed (letters, digits, - _ . only)", ErrBadName, s, r)
		}
	}
	if slices.Contains(Reserved, fold(s)) {
		return fmt.Errorf("%w: %q is reserved", ErrBadName, s)
	}
	return nil
}

// fold is the form names are compared in.
func fold(s string) string { return strings.ToLower(s) }

// taken reports whether s is already a name or a group (caller holds mu).
func (b *Book) taken(s string) bool {
	f := fold(s)
	_, nick := b.byNick[f]
	_, group := b.groups[f]
	return nick || group
}

func nickKey(id peer.ID) datastore.Key  { return datastore.NewKey(nickPrefix + "/" + id.String()) }
func blockKey(id peer.ID) datastore.Key { return datastore.NewKey(blockPrefix + "/" + id.String()) }
func groupKey(name string) datastore.Key {
	return datastore.NewKey(groupPrefix + "/" + fold(name))
}

// checkPeer refuses the empty ID and this node's own.
func (b *Book) checkPeer(id peer.ID) error {
	if id == "" {
		return errors.New("no peer given")
	}
	if id == b.self {
		return fmt.Errorf("%s: %w", id, ErrSelf)
	}
	return nil
}

// SetName names id nick on this node, replacing a name it had. The name
// must be valid and free: not another peer's name nor a group's.
func (b *Book) SetName(id peer.ID, nick string) error {
	if err := ValidName(nick); err != nil {
		return err
	}
	b.mu.Lock()
	if err := b.checkPeer(id); err != nil {
		b.mu.Unlock()
		return err
	}
	f := fold(nick)
	if other, ok := b.byNick[f]; ok && other != id {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q already names %s", ErrTaken, nick, other)
	}
	if g, ok := b.groups[f]; ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q is a group", ErrTaken, g.Name)
	}
	if err := b.ds.Put(context.Background(), nickKey(id), []byte(nick)); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("save name %q: %w", nick, err)
	}
	if old, ok := b.nicks[id]; ok {
		delete(b.byNick, fold(old))
	}
	b.nicks[id] = nick
	b.byNick[f] = id
	b.mu.Unlock()
	b.changed()
	return nil
}

// Name returns the name this node gave id.
func (b *Book) Name(id peer.ID) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.nicks[id]
	return n, ok
}

// Names returns every name, by peer.
func (b *Book) Names() map[peer.ID]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[peer.ID]string, len(b.nicks))
	for id, n := range b.nicks {
		out[id] = n
	}
	return out
}

// Unname removes the name nick and returns the peer it named.
func (b *Book) Unname(nick string) (peer.ID, error) {
	b.mu.Lock()
	id, ok := b.byNick[fold(nick)]
	if !ok {
		b.mu.Unlock()
		return "", fmt.Errorf("%w: no peer is named %q", ErrNotFound, nick)
	}
	if err := b.ds.Delete(context.Background(), nickKey(id)); err != nil {
		b.mu.Unlock()
		return "", fmt.Errorf("remove name %q: %w", nick, err)
	}
	delete(b.byNick, fold(nick))
	delete(b.nicks, id)
	b.mu.Unlock()
	b.changed()
	return id, nil
}

// IDs returns every peer the Book says something about (named, in a
// group, blocked), sorted: peers a user can name by prefix even when the
// peer table no longer has them.
func (b *Book) IDs() []peer.ID {
	b.mu.Lock()
	var out []peer.ID
	for id := range b.nicks {
		out = append(out, id)
	}
	for id := range b.blocked {
		out = append(out, id)
	}
	for _, g := range b.groups {
		out = append(out, g.Members...)
	}
	b.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// Resolve reads a word a user typed as a peer: a name given on this node,
// else the unique prefix of a peer in known or in the Book (a full ID is
// its own prefix), else a full peer ID. A group's name is an error saying
// so; a prefix several peers start with is a *shortid.AmbiguousError.
func (b *Book) Resolve(word string, known []peer.ID) (peer.ID, error) {
	t, err := b.ResolveTarget(word, known)
	if err != nil {
		return "", err
	}
	if t.Group != "" {
		return "", fmt.Errorf("%q is %w", t.Group, ErrNotPeer)
	}
	return t.Peer, nil
}

// ResolveTarget reads a word as a peer (as Resolve does) or a group.
func (b *Book) ResolveTarget(word string, known []peer.ID) (Target, error) {
	b.mu.Lock()
	f := fold(word)
	if id, ok := b.byNick[f]; ok {
		b.mu.Unlock()
		return Target{Peer: id}, nil
	}
	if g, ok := b.groups[f]; ok {
		b.mu.Unlock()
		return Target{Group: g.Name}, nil
	}
	b.mu.Unlock()
	id, err := ResolveID(word, append(slices.Clip(known), b.IDs()...))
	if err != nil {
		if shortid.IsAmbiguous(err) || word == "" {
			return Target{}, err
		}
		return Target{}, fmt.Errorf("%w: no peer or group is named %q, and no known peer ID starts with it", ErrNotFound, word)
	}
	return Target{Peer: id}, nil
}

// minFullPeerID is the length of the shortest peer ID in text (an RSA
// key's "Qm..." hash): peer.Decode accepts some shorter strings, such as
// a 12-character prefix, as IDs of their own.
const minFullPeerID = 46

// ResolveID reads s as the unique prefix of one of known (a whole ID is
// its own prefix), or else as a full peer ID. It knows no names: Resolve
// does.
func ResolveID(s string, known []peer.ID) (peer.ID, error) {
	strs := make([]string, len(known))
	for i, id := range known {
		strs[i] = id.String()
	}
	full, err := shortid.Match("peer", s, strs)
	if err == nil {
		return peer.Decode(full)
	}
	if len(s) >= minFullPeerID && !shortid.IsAmbiguous(err) {
		if id, derr := peer.Decode(s); derr == nil {
			return id, nil
		}
	}
	return "", err
}
