package node

import "sync"

// hub wakes outcome streams when new blocks are applied.
type hub struct {
	mu   sync.Mutex
	last uint64
	ch   chan struct{}
}

func newHub() *hub { return &hub{ch: make(chan struct{})} }

// publish notes that index was applied and wakes every waiter.
func (h *hub) publish(index uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = index
	close(h.ch)
	h.ch = make(chan struct{})
}

// wait returns a channel closed at the next publish. Take it before reading
// state, so a block applied in between is never missed.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}
