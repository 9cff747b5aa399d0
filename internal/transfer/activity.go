package transfer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// activity records when file bytes last moved to or from each peer on fetch
// streams (a chunk received, or a chunk sent). It tells a peer that is
// merely busy (its keepalive pings queue behind a saturated link) from one
// that is gone.
type activity struct {
	last sync.Map // peer.ID -> *atomic.Int64, unix nanoseconds
}

func (a *activity) touch(p peer.ID) {
	v, ok := a.last.Load(p)
	if !ok {
		v, _ = a.last.LoadOrStore(p, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(time.Now().UnixNano())
}

func (a *activity) since(p peer.ID) (time.Duration, bool) {
	v, ok := a.last.Load(p)
	if !ok {
		return 0, false
	}
	return time.Since(time.Unix(0, v.(*atomic.Int64).Load())), true
}

// ActiveWithin reports whether file bytes moved to or from p in the last d.
func (s *Service) ActiveWithin(p peer.ID, d time.Duration) bool {
	ago, ok := s.act.since(p)
	return ok && ago <= d
}
