package api

import (
	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/internal/transfer"
)

// Background queues a download exactly as POST /api/v1/get does (the same
// queue, --max-concurrent-gets at a time), for the prompt's `get --bg`:
// it returns the job at once, and a channel that delivers the job's final
// state when it has ended, then closes.
func (s *Server) Background(target string, c cid.Cid, opt transfer.GetOptions) (Job, <-chan Job, error) {
	j, err := s.jobs.submit(target, c, opt)
	if err != nil {
		return Job{}, nil, err
	}
	s.jobs.mu.Lock()
	done := s.jobs.byID[j.ID].done
	s.jobs.mu.Unlock()
	out := make(chan Job, 1)
	go func() {
		defer close(out)
		<-done // closed when the job ends, is canceled, or the node stops
		if st, ok := s.jobs.get(j.ID); ok {
			out <- st
		}
	}()
	return j, out, nil
}
