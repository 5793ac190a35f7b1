package node

import (
	"net"
	"sync"

	"connectrpc.com/connect"
)

// streamCaps bounds the long-lived outcome streams: at most max on the
// node and at most perIP from one client address, so one address cannot
// take every slot (docs/operations.md, "Limits").
type streamCaps struct {
	max, perIP int
	mu         sync.Mutex
	total      int
	byIP       map[string]int
}

func newStreamCaps(max, perIP int) *streamCaps {
	return &streamCaps{max: max, perIP: perIP, byIP: map[string]int{}}
}

// acquire takes a slot for a stream from the client at remote (host:port,
// or a bare host) and returns its release, or the error to answer with.
// The per-address table holds only addresses with a stream open, so it is
// bounded by max.
func (c *streamCaps) acquire(remote string) (func(), *connect.Error) {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		ip = remote
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total >= c.max {
		return nil, apiError(CodeOverloaded, "too many outcome streams on this node (max %d)", c.max)
	}
	if c.byIP[ip] >= c.perIP {
		return nil, apiError(CodeRateLimited, "client %s already has %d outcome streams open (max %d per address)", ip, c.byIP[ip], c.perIP)
	}
	c.total++
	c.byIP[ip]++
	var once sync.Once
	return func() { once.Do(func() { c.release(ip) }) }, nil
}

func (c *streamCaps) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byIP[ip]--; c.byIP[ip] <= 0 {
		delete(c.byIP, ip)
	}
}
