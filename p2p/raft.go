package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/gostream"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// RaftProtocol is the libp2p protocol carrying hashicorp/raft's
// NetworkTransport traffic.
const RaftProtocol protocol.ID = "/dcep/raft/1.0.0"

// StreamLayer is a raft.StreamLayer over libp2p streams: every raft
// connection is one stream on RaftProtocol. Raft server addresses are peer
// ID strings (peer.ID.String()). Pass it to raft.NewNetworkTransport; the
// transport's Close closes it.
//
// Inbound streams are vetted concurrently before raft sees them: the
// connection's process must be settled (session.go) and the peer's role
// must be one that may open RaftProtocol (Rules: voters only), so a slow
// or refused stream never holds up raft's accept loop.
//
// Close makes every raft stream fail at once: it cancels dials in
// progress, refuses new ones and resets the streams it handed out, both
// ways, so that no raft goroutine waits out an RPC's timeout (10 s) to a
// peer while this node stops (defect 4: Raft's Shutdown waits for those
// goroutines).
type StreamLayer struct {
	h        *Host
	ln       net.Listener
	accepted chan net.Conn
	closed   chan struct{}
	// ctx bounds every dial; cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[*raftConn]struct{} // streams handed to raft, until closed

	closeOnce sync.Once
	loopDone  chan struct{}
}

// raftConn is a raft stream the layer tracks so that Close can reset it.
type raftConn struct {
	net.Conn
	s    *StreamLayer
	once sync.Once
}

func (c *raftConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// reset aborts the stream (both directions, at once).
func (c *raftConn) reset() {
	if r, ok := c.Conn.(interface{ Reset() error }); ok {
		_ = r.Reset()
		return
	}
	_ = c.Conn.Close()
}

// track registers c, or resets it if the layer is already closed.
func (s *StreamLayer) track(c net.Conn) (*raftConn, error) {
	rc := &raftConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		rc.reset()
		return nil, fmt.Errorf("p2p: raft stream layer closed: %w", net.ErrClosed)
	}
	s.conns[rc] = struct{}{}
	return rc, nil
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// RaftStreamLayer starts accepting raft streams. Only one stream layer can
// be open per host, since it owns RaftProtocol; close it before opening
// another.
func (h *Host) RaftStreamLayer() (*StreamLayer, error) {
	h.raftMu.Lock()
	defer h.raftMu.Unlock()
	if h.raftLayer != nil {
		return nil, ErrStreamLayerInUse
	}
	ln, err := gostream.Listen(h.host, RaftProtocol)
	if err != nil {
		return nil, fmt.Errorf("p2p: listen on %s: %w", RaftProtocol, err)
	}
	sl := &StreamLayer{h: h, ln: ln, accepted: make(chan net.Conn), closed: make(chan struct{}), loopDone: make(chan struct{}), conns: map[*raftConn]struct{}{}}
	sl.ctx, sl.cancel = context.WithCancel(h.ctx)
	h.raftLayer = sl
	go sl.acceptLoop()
	return sl, nil
}

func (s *StreamLayer) acceptLoop() {
	defer close(s.loopDone)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			// gostream only fails Accept once closed.
			return
		}
		go s.vet(c)
	}
}

// vet hands c to Accept if its peer may open raft streams, else resets it.
func (s *StreamLayer) vet(c net.Conn) {
	if err := s.admit(c); err != nil {
		if r, ok := c.(interface{ Reset() error }); ok {
			_ = r.Reset()
		} else {
			_ = c.Close()
		}
		return
	}
	select {
	case s.accepted <- c:
	case <-s.closed:
		_ = c.Close()
	}
}

func (s *StreamLayer) admit(c net.Conn) error {
	// The gater should make a non-member stream impossible; checking
	// again keeps a race with SetMembers from reaching raft.
	p, err := peer.Decode(c.RemoteAddr().String())
	if err != nil || !s.h.gater.admit(p, "raft-stream") {
		return ErrNotMember
	}
	sc, ok := c.(interface{ Conn() network.Conn })
	if !ok {
		return errors.New("p2p: raft stream without a libp2p connection")
	}
	if err := s.h.connAdmitted(s.h.ctx, sc.Conn()); err != nil {
		return err
	}
	return s.h.checkRole(p, RaftProtocol, sc.Conn())
}

// Accept waits for the next raft stream from a member that may open one.
// After Close it returns an error wrapping net.ErrClosed.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.accepted:
		return s.track(c)
	case <-s.closed:
		// net.ErrClosed is what listener users (raft) test for.
		return nil, fmt.Errorf("p2p: raft accept: %w", net.ErrClosed)
	}
}

// Close stops accepting raft streams, cancels dials in progress and resets
// every raft stream this layer handed out: a raft RPC in flight fails at
// once. Close is idempotent.
func (s *StreamLayer) Close() error {
	s.closeOnce.Do(func() {
		// Held across ln.Close so a new stream layer cannot register its
		// handler just before this one removes the protocol handler.
		s.h.raftMu.Lock()
		defer s.h.raftMu.Unlock()
		close(s.closed)
		s.cancel()
		_ = s.ln.Close()
		<-s.loopDone
		if s.h.raftLayer == s {
			s.h.raftLayer = nil
		}
		s.mu.Lock()
		conns := s.conns
		s.conns = nil
		s.mu.Unlock()
		for c := range conns {
			c.reset()
		}
	})
	return nil
}

// Addr returns this host's peer ID as a net.Addr (network "libp2p"); its
// String is the raft server address of this node.
func (s *StreamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial opens a raft stream to the member whose peer ID string is address.
// timeout bounds connecting and protocol negotiation; raft sets its own I/O
// deadlines on the returned conn.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	p, err := peer.Decode(string(address))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidRaftAddress, address, err)
	}
	select {
	case <-s.closed:
		return nil, fmt.Errorf("p2p: raft dial %s: stream layer closed: %w", p, net.ErrClosed)
	default:
	}
	ctx := s.ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// libp2p backs off dialling an address that failed (5 s, growing):
	// a member that restarts would be unreachable for Raft that long
	// after it listens again. Raft retries with its own backoff, and the
	// address is a member's, so libp2p's is dropped.
	if sw, ok := s.h.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
	c, err := gostream.Dial(ctx, s.h.host, p, RaftProtocol)
	if err != nil {
		if errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			return nil, fmt.Errorf("p2p: raft dial %s: %w: %w", p, ErrNotMember, err)
		}
		return nil, fmt.Errorf("p2p: raft dial %s: %w", p, err)
	}
	// Raft's messages must not reach a second process holding p's key.
	if sc, ok := c.(interface{ Conn() network.Conn }); ok {
		if err := s.h.connAdmitted(ctx, sc.Conn()); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("p2p: raft dial %s: %w", p, err)
		}
	}
	return s.track(c)
}
