package p2p

import (
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Memory a peer can make a host hold (DESIGN.md, "Memory"). libp2p's
// resource manager counts yamux's receive windows and, through readFrame,
// every request and reply buffer, in the stream's scope and in each scope
// above it (protocol per peer, peer, protocol, system), and refuses what
// would pass a limit.
const (
	// streamMemoryBytes bounds one stream: above the largest request any
	// handler takes (8 MiB) and the largest reply any caller takes (an
	// archive segment, 16.3 MiB), with room for yamux's window.
	streamMemoryBytes = 32 << 20
	// protocolPeerMemoryBytes bounds what one peer can make us hold on one
	// protocol at once: eight maximum-size forward requests.
	protocolPeerMemoryBytes = 64 << 20
)

// newResourceManager is libp2p's default resource manager (auto-scaled to
// the machine: system memory ⅛ of RAM, 128 MiB to 1 GiB, connection and
// stream counts by peer and protocol) with the memory bounds above fixed,
// so they do not depend on how much RAM a node has.
func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.StreamBaseLimit.Memory = streamMemoryBytes
	limits.ProtocolPeerBaseLimit.Memory = protocolPeerMemoryBytes
	limits.ProtocolPeerLimitIncrease.Memory = 0
	mgr, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return mgr, nil
}

// logLimiter lets a log line through at most once per interval per key, so
// a misbehaving member cannot flood the log with refusals (each one is
// still counted).
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

// maxLogKeys bounds the limiter's table; keys are (peer, protocol) pairs of
// members, so it only fills if the membership is huge.
const maxLogKeys = 4096

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, last: map[string]time.Time{}}
}

func (l *logLimiter) allow(key string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last[key]) < l.every {
		return false
	}
	if len(l.last) >= maxLogKeys {
		clear(l.last)
	}
	l.last[key] = now
	return true
}
