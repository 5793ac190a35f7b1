package p2p

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	msmux "github.com/multiformats/go-multistream"
)

// Duplicate identity (DESIGN.md, "One process per identity"). Every host
// draws a random session nonce when it starts and answers it on
// SessionProtocol. When a connection comes up, each end asks the other end
// for its nonce over that very connection, and no protocol stream on it is
// served until that is settled. Two live connections of one peer ID with
// different nonces are two processes holding the same key: the one already
// admitted stays, the newcomer is closed and the host raises an alarm. An
// admitted connection that no longer answers (a process that died without
// its TCP connection closing) is closed instead and the newcomer, a
// restart, is admitted. A simultaneous dial, or several connections of one
// process, carry the same nonce and are admitted.

// sessionBytes is the size of a session nonce.
const sessionBytes = 16

// sessionTimeout bounds asking one connection for its nonce: the check of
// a new connection, and the liveness probe of the one already admitted.
const sessionTimeout = 3 * time.Second

// alarmLogEvery is how often a duplicate identity is logged again while it
// goes on (every refusal is counted).
const alarmLogEvery = time.Minute

type session [sessionBytes]byte

// connCheck is what the host has settled about one connection.
type connCheck struct {
	done    chan struct{} // closed once decided
	ok      bool          // the connection may carry protocol streams
	err     error         // why not
	session session
}

// DuplicateAlarm describes connections refused because another live
// process already holds a member's identity.
type DuplicateAlarm struct {
	Peer peer.ID
	// Name is the member's name.
	Name string
	// Refused counts the refused connections.
	Refused uint64
	// FirstAt and LastAt are when the first and the latest were refused.
	FirstAt, LastAt time.Time
	// KeptAddr is the remote address of the connection that was kept,
	// RefusedAddr that of the latest refused one.
	KeptAddr, RefusedAddr string
}

type sessions struct {
	self session

	mu     sync.Mutex
	conns  map[network.Conn]*connCheck
	perMu  map[peer.ID]*sync.Mutex
	alarms map[peer.ID]*DuplicateAlarm
	logged map[peer.ID]time.Time
}

func newSessions() (*sessions, error) {
	s := &sessions{
		conns: map[network.Conn]*connCheck{}, perMu: map[peer.ID]*sync.Mutex{},
		alarms: map[peer.ID]*DuplicateAlarm{}, logged: map[peer.ID]time.Time{},
	}
	if _, err := rand.Read(s.self[:]); err != nil {
		return nil, fmt.Errorf("p2p: session nonce: %w", err)
	}
	return s, nil
}

// serveSession answers a peer's question: which process is this?
func (h *Host) serveSession(s network.Stream) {
	if !h.gater.admit(s.Conn().RemotePeer(), "stream", slog.String("protocol", string(SessionProtocol))) {
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(sessionTimeout))
	if _, err := s.Write(h.sess.self[:]); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// askSession asks the process at the other end of c for its nonce, over c
// itself (a stream opened by peer ID could take another connection).
func (h *Host) askSession(ctx context.Context, c network.Conn) (session, error) {
	var out session
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	s, err := c.NewStream(ctx)
	if err != nil {
		return out, fmt.Errorf("open session stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := s.SetProtocol(SessionProtocol); err != nil {
		_ = s.Reset()
		return out, fmt.Errorf("session stream: %w", err)
	}
	if err := msmux.SelectProtoOrFail(SessionProtocol, s); err != nil {
		_ = s.Reset()
		return out, fmt.Errorf("negotiate %s: %w", SessionProtocol, err)
	}
	if _, err := io.ReadFull(s, out[:]); err != nil {
		_ = s.Reset()
		return out, fmt.Errorf("read session nonce: %w", err)
	}
	_ = s.Close()
	return out, nil
}

// track registers a member's new connection, unless it is already: fresh
// reports whether the caller must settle it (checkConn).
func (s *sessions) track(c network.Conn) (chk *connCheck, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if chk = s.conns[c]; chk != nil {
		return chk, false
	}
	chk = &connCheck{done: make(chan struct{})}
	s.conns[c] = chk
	return chk, true
}

func (s *sessions) untrack(c network.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *sessions) finish(chk *connCheck, ok bool, sess session, err error) {
	s.mu.Lock()
	chk.ok, chk.session, chk.err = ok, sess, err
	s.mu.Unlock()
	close(chk.done)
}

// peerLock serialises the decisions about one peer's connections, so two
// newcomers from different processes can never both be admitted.
func (s *sessions) peerLock(p peer.ID) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.perMu[p]
	if m == nil {
		m = &sync.Mutex{}
		s.perMu[p] = m
	}
	return m
}

// rivals are p's admitted, open connections whose process is not sess.
func (s *sessions) rivals(p peer.ID, sess session) []rival {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rival
	for c, chk := range s.conns {
		if c.RemotePeer() != p || c.IsClosed() {
			continue
		}
		select {
		case <-chk.done:
		default:
			continue // undecided: it waits for our decision, then sees us
		}
		if chk.ok && chk.session != sess {
			out = append(out, rival{c, chk.session})
		}
	}
	return out
}

type rival struct {
	c       network.Conn
	session session
}

// checkConn settles a member's new connection: it asks for its nonce, then
// compares it with the peer's other admitted connections.
func (h *Host) checkConn(c network.Conn, chk *connCheck) {
	p := c.RemotePeer()
	sess, err := h.askSession(h.ctx, c)
	if err != nil {
		h.log.Warn("closing connection: the peer did not say which process it is", "peer", p.String(), "remote_addr", c.RemoteMultiaddr().String(), "err", err)
		h.sess.finish(chk, false, sess, fmt.Errorf("%w: session check: %w", ErrNotMember, err))
		_ = c.Close()
		return
	}
	mu := h.sess.peerLock(p)
	mu.Lock()
	defer mu.Unlock()
	for _, r := range h.sess.rivals(p, sess) {
		got, err := h.askSession(h.ctx, r.c)
		if err == nil && got == r.session {
			// Alarm first: whoever sees the refusal can find it raised.
			h.raiseDuplicate(p, r.c, c)
			h.sess.finish(chk, false, sess, ErrDuplicateIdentity)
			_ = c.Close()
			return
		}
		// The admitted connection's process is gone: this is a restart.
		h.log.Info("peer restarted: closing its stale connection", "peer", p.String(), "stale_addr", r.c.RemoteMultiaddr().String(), "new_addr", c.RemoteMultiaddr().String(), "probe_err", err)
		_ = r.c.Close()
	}
	h.sess.finish(chk, true, sess, nil)
}

func (h *Host) raiseDuplicate(p peer.ID, kept, refused network.Conn) {
	now := time.Now()
	name := h.gater.members.Load().byID[p].name
	h.sess.mu.Lock()
	a := h.sess.alarms[p]
	if a == nil {
		a = &DuplicateAlarm{Peer: p, Name: name, FirstAt: now}
		h.sess.alarms[p] = a
	}
	a.Refused++
	a.LastAt, a.KeptAddr, a.RefusedAddr = now, kept.RemoteMultiaddr().String(), refused.RemoteMultiaddr().String()
	count := a.Refused
	logNow := now.Sub(h.sess.logged[p]) >= alarmLogEvery
	if logNow {
		h.sess.logged[p] = now
	}
	h.sess.mu.Unlock()
	if logNow {
		h.log.Error("DUPLICATE IDENTITY: a second live process holds a member's key; refused its connection",
			"peer", p.String(), "name", name, "kept_addr", kept.RemoteMultiaddr().String(),
			"refused_addr", refused.RemoteMultiaddr().String(), "refused_total", count)
	}
	h.dupRefused.Add(1)
}

// DuplicateAlarms lists the members for which a connection was refused
// because another live process already held their identity, in peer ID
// order.
func (h *Host) DuplicateAlarms() []DuplicateAlarm {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	out := make([]DuplicateAlarm, 0, len(h.sess.alarms))
	for _, a := range h.sess.alarms {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b DuplicateAlarm) int {
		switch {
		case a.Peer < b.Peer:
			return -1
		case a.Peer > b.Peer:
			return 1
		}
		return 0
	})
	return out
}

// DuplicateRefusals counts connections refused as duplicate identities.
func (h *Host) DuplicateRefusals() uint64 { return h.dupRefused.Load() }

// connAdmitted waits until c's process is settled (or ctx ends) and
// reports whether streams on it may be served or used.
func (h *Host) connAdmitted(ctx context.Context, c network.Conn) error {
	if c.IsClosed() {
		return fmt.Errorf("%w: connection closed", ErrNotMember)
	}
	// Normally tracked by onConnected; a connection that came up before the
	// host registered its notifee (at start) is settled now.
	chk, fresh := h.sess.track(c)
	if fresh {
		if !h.gater.admit(c.RemotePeer(), "connected", slog.String("remote_addr", c.RemoteMultiaddr().String())) {
			h.sess.finish(chk, false, session{}, ErrNotMember)
			h.sess.untrack(c)
			_ = c.Close()
			return ErrNotMember
		}
		go h.checkConn(c, chk)
	}
	// The check itself is bounded (a nonce, then perhaps a probe); this
	// bounds a caller without a deadline too.
	ctx, cancel := context.WithTimeout(ctx, 3*sessionTimeout)
	defer cancel()
	select {
	case <-chk.done:
	case <-ctx.Done():
		return fmt.Errorf("p2p: waiting for the connection's session check: %w", ctx.Err())
	case <-h.ctx.Done():
		return fmt.Errorf("p2p: host closed: %w", net.ErrClosed)
	}
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	if !chk.ok {
		return chk.err
	}
	return nil
}
