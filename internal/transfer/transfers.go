package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/internal/manifest"
)

// Transfer states in Info.State.
const (
	StateRunning = "running"
	StatePaused  = "paused"
	StateWaiting = "waiting for providers"
)

// Info describes a running or paused download.
type Info struct {
	CID         cid.Cid
	Name        string
	Total, Done int64
	Rate        float64
	Providers   []peer.ID
	State       string
	// Files and FilesDone count the files of a collection (0 for a file).
	Files, FilesDone int
}

// Transfers lists running downloads and paused ones (partial downloads on
// disk that no Get is running). A paused folder download is one row, its
// large files' partial downloads counted in it; so is a running one (its
// large files' Gets are not listed on their own).
func (s *Service) Transfers() []Info {
	var out []Info
	running := make(map[string]bool)
	s.mu.Lock()
	gets := make([]*getter, 0, len(s.gets))
	for k, g := range s.gets {
		running[k] = true
		if !g.opt.fileOnly {
			gets = append(gets, g)
		}
	}
	s.mu.Unlock()
	for _, g := range gets {
		out = append(out, g.info())
	}
	base := filepath.Join(s.cfg.DownloadDir, partialDirName)
	ents, _ := os.ReadDir(base)
	var files []cid.Cid
	members := make(map[string]bool) // large files of paused folder downloads
	for _, e := range ents {
		c, err := cid.Decode(e.Name())
		if err != nil || !e.IsDir() || running[c.KeyString()] {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if !isCollection(dir) {
			files = append(files, c)
			continue
		}
		if in, ok := s.pausedCollection(dir, c, members); ok {
			out = append(out, in)
		}
	}
	for _, c := range files {
		if members[c.KeyString()] {
			continue
		}
		st, m, err := readState(partialDir(s.cfg.DownloadDir, c), c)
		if err != nil {
			continue
		}
		out = append(out, Info{CID: c, Name: SanitizeName(st.name, c), Total: m.Size, Done: verifiedBytes(st, m), State: StatePaused})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CID.String() < out[j].CID.String() })
	return out
}

// verifiedBytes is what the verified chunks of a partial download hold.
func verifiedBytes(st *stateFile, m *manifest.Manifest) int64 {
	var done int64
	for i, d := range st.done {
		if d {
			done += int64(m.ChunkLen(i))
		}
	}
	return done
}

func (g *getter) info() Info {
	sc := g.getSched()
	g.mu.Lock()
	in := Info{CID: g.c, Name: g.name, Rate: g.rate, State: g.swarm.state()}
	if g.part != nil {
		in.Total = g.part.m.Size
	}
	cg := g.coll
	g.mu.Unlock()
	if cg != nil {
		p := cg.snapshot()
		in.Total, in.Done, in.Files, in.FilesDone = p.Total, p.Done, p.Files, p.FilesDone
		in.Providers = cg.providers()
		return in
	}
	in.Providers = g.swarm.fetching()
	if sc != nil {
		_, in.Done = sc.progress()
	}
	return in
}

// Cancel stops the running download of c (its Get returns ErrCanceled) and
// removes its partial data; for a paused download it removes the partial
// data. ErrNotFound if there is neither.
//
// While it removes a paused download's data, c is reserved: a Get of c
// started meanwhile fails with ErrInProgress instead of opening files that
// are being deleted.
func (s *Service) Cancel(c cid.Cid) error {
	key := c.KeyString()
	s.mu.Lock()
	g := s.gets[key]
	s.canceling[key]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.canceling[key]--; s.canceling[key] == 0 {
			delete(s.canceling, key)
		}
		s.mu.Unlock()
	}()
	dir := partialDir(s.cfg.DownloadDir, c)
	if g != nil {
		g.cancel(ErrCanceled)
		<-g.done
		// A Get whose context had already ended (paused just before)
		// kept its partial data: remove it too.
		if err := removeCollectionState(dir); err != nil {
			return fmt.Errorf("transfer: cancel %s: %w", c, err)
		}
		return nil
	}
	if s.beforeCancelRemove != nil {
		s.beforeCancelRemove(c)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, c)
	}
	// A paused folder download: its large files' partial downloads go
	// with it (a running one's Gets removed theirs when cancelled).
	s.removeMemberPartials(dir, c)
	if err := removeCollectionState(dir); err != nil {
		return fmt.Errorf("transfer: cancel %s: %w", c, err)
	}
	return nil
}

// Retry makes every download that waits for providers ask the Finder again
// now instead of at its next backoff step. The node calls it when a peer
// comes online, so a returning provider is used at once.
func (s *Service) Retry() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.gets {
		if g.swarm.state() != StateWaiting {
			continue // it has providers; a returning one joins through the Finder
		}
		g.swarm.searchNow()
	}
}
