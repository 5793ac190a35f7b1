package node

import (
	"sync"

	"github.com/hashicorp/raft"
)

// leaderWatch tells waiters when this node's view of the leader changes
// (Raft's LeaderObservation), so a forward in flight to a leader that is
// gone is cancelled and re-sent to the new one as soon as this node knows
// it, instead of waiting out the submit timeout (issue 16, defect 6).
type leaderWatch struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	obs     *raft.Observer
	ch      chan raft.Observation
}

func newLeaderWatch() *leaderWatch {
	return &leaderWatch{changed: make(chan struct{})}
}

// start registers the observer on r and follows it until stop closes.
func (w *leaderWatch) start(r *raft.Raft, stop <-chan struct{}, done func()) {
	w.ch = make(chan raft.Observation, 16)
	w.obs = raft.NewObserver(w.ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(w.obs)
	go func() {
		defer done()
		defer r.DeregisterObserver(w.obs)
		for {
			select {
			case <-stop:
				return
			case <-w.ch:
				w.mu.Lock()
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			}
		}
	}()
}

// next is closed at the next leader change after the call.
func (w *leaderWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}
