package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// newOutsider starts a plain libp2p host speaking the same stack (TCP,
// Noise, Yamux) but with no gater and a key nobody lists.
func newOutsider(t *testing.T) host.Host {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(sk),
		libp2p.ListenAddrStrings(loopback),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// acceptAll drains a raft stream layer, counting what it accepts, until the
// layer is closed at cleanup.
func acceptAll(t *testing.T, sl *StreamLayer) *atomic.Int64 {
	t.Helper()
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = sl.Close()
		<-done
	})
	return &accepted
}

func TestNonMemberCannotConnect(t *testing.T) {
	nodes := newCluster(t, 2)
	member := nodes[0]
	var handled atomic.Int64
	member.h.Handle(echoProto, maxReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		handled.Add(1)
		return req, nil
	})
	sl, err := member.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptAll(t, sl)

	outsider := newOutsider(t)
	outsider.Peerstore().AddAddrs(member.h.ID(), member.h.Addrs(), peerstore.PermanentAddrTTL)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	t.Run("outsider cannot open streams", func(t *testing.T) {
		before := member.h.Refusals()
		for _, proto := range []protocol.ID{RaftProtocol, echoProto} {
			s, err := outsider.NewStream(ctx, member.h.ID(), proto)
			if err == nil {
				// Negotiation may be lazy; the stream must still be dead.
				_, werr := s.Write([]byte{1, 'x'})
				_, rerr := s.Read(make([]byte, 1))
				_ = s.Reset()
				if werr == nil && rerr == nil {
					t.Fatalf("outsider opened a working %s stream", proto)
				}
			}
		}
		// At least one: the second attempt may reuse the outsider's first
		// connection before it notices the member closed it.
		if got := member.h.Refusals(); got < before+1 {
			t.Fatalf("Refusals() = %d, want at least %d", got, before+1)
		}
		if handled.Load() != 0 || accepted.Load() != 0 {
			t.Fatalf("outsider reached a handler: handled=%d raft accepted=%d", handled.Load(), accepted.Load())
		}
		if c := member.h.host.Network().Connectedness(outsider.ID()); c == network.Connected {
			t.Fatalf("member still connected to outsider (%v)", c)
		}
		eventually(t, 5*time.Second, func() bool {
			return outsider.Network().Connectedness(member.h.ID()) != network.Connected
		}, "outsider to see its connection dropped")
		if logs := member.logs.String(); !containsAll(logs, "refused non-member peer", "stage=secured", "direction=Inbound", outsider.ID().String()) {
			t.Fatalf("refusal not logged as expected; log:\n%s", logs)
		}
	})

	t.Run("member cannot dial outsider", func(t *testing.T) {
		// Even with the outsider's address known, no dial may leave.
		member.h.host.Peerstore().AddAddrs(outsider.ID(), outsider.Addrs(), peerstore.PermanentAddrTTL)
		before := member.h.Refusals()

		_, err := member.h.Request(ctx, outsider.ID(), echoProto, []byte("x"), maxReq)
		if !errors.Is(err, ErrNotMember) || !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Fatalf("Request error = %v, want ErrNotMember wrapping ErrGaterDisallowedConnection", err)
		}
		_, err = sl.Dial(raft.ServerAddress(outsider.ID().String()), 2*time.Second)
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("raft Dial error = %v, want ErrNotMember", err)
		}
		err = member.h.host.Connect(ctx, peer.AddrInfo{ID: outsider.ID()})
		if !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Fatalf("Connect error = %v, want ErrGaterDisallowedConnection", err)
		}
		if got := member.h.Refusals(); got < before+3 {
			t.Fatalf("Refusals() = %d, want at least %d", got, before+3)
		}
		// The outsider's own (refused) dials may still be winding down, but
		// nothing may have arrived from the member.
		for _, c := range outsider.Network().Conns() {
			if c.Stat().Direction == network.DirInbound {
				t.Fatalf("outsider accepted a connection from %s; the member's dial should never have left", c.RemotePeer())
			}
		}
		if logs := member.logs.String(); !containsAll(logs, "stage=dial", outsider.ID().String()) {
			t.Fatalf("dial refusal not logged; log:\n%s", logs)
		}
	})

	t.Run("members still talk", func(t *testing.T) {
		resp, err := nodes[1].h.Request(ctx, member.h.ID(), echoProto, []byte("ok"), maxReq)
		if err != nil || string(resp) != "ok" {
			t.Fatalf("member request: %q, %v", resp, err)
		}
	})
}

func TestRemovedMemberIsDisconnected(t *testing.T) {
	nodes := newCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		n.h.Handle(echoProto, maxReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
			return req, nil
		})
	}
	sl, err := a.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, sl)
	bsl, err := b.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	acceptAll(t, bsl)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	if _, err := b.h.Request(ctx, a.h.ID(), echoProto, []byte("hi"), maxReq); err != nil {
		t.Fatalf("request before removal: %v", err)
	}
	// A long-lived raft stream from b to a, as NetworkTransport pools them.
	raftConn, err := bsl.Dial(raft.ServerAddress(a.h.ID().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("raft dial before removal: %v", err)
	}
	defer raftConn.Close()
	if _, err := raftConn.Write([]byte("ping")); err != nil {
		t.Fatalf("raft write before removal: %v", err)
	}
	if a.h.host.Network().Connectedness(b.h.ID()) != network.Connected {
		t.Fatal("a and b are not connected before removal")
	}

	// a drops b; c stays.
	if err := a.h.SetMembers([]Member{a.member(t), c.member(t)}); err != nil {
		t.Fatal(err)
	}
	if a.h.IsMember(b.h.ID()) || !a.h.IsMember(c.h.ID()) {
		t.Fatal("IsMember does not reflect the new allowlist")
	}
	if a.h.host.Network().Connectedness(b.h.ID()) == network.Connected {
		t.Fatal("SetMembers returned with the connection to the removed member still open")
	}
	eventually(t, 5*time.Second, func() bool {
		return b.h.host.Network().Connectedness(a.h.ID()) != network.Connected
	}, "b to see its connection to a closed")

	// The pooled raft stream is dead.
	assertDead(t, raftConn)

	before := a.h.Refusals()
	if _, err := b.h.Request(ctx, a.h.ID(), echoProto, []byte("hi"), maxReq); err == nil {
		t.Fatal("removed member's request succeeded")
	}
	// b still knows a speaks raft, so libp2p may hand out a lazily negotiated
	// stream before noticing a closed the connection; it must be dead.
	if c, err := bsl.Dial(raft.ServerAddress(a.h.ID().String()), 2*time.Second); err == nil {
		assertDead(t, c)
	}
	if _, err := a.h.Request(ctx, b.h.ID(), echoProto, []byte("hi"), maxReq); !errors.Is(err, ErrNotMember) {
		t.Fatalf("request to removed member: %v, want ErrNotMember", err)
	}
	if got := a.h.Refusals(); got < before+2 {
		t.Fatalf("Refusals() = %d, want at least %d", got, before+2)
	}

	// c is unaffected.
	if _, err := c.h.Request(ctx, a.h.ID(), echoProto, []byte("hi"), maxReq); err != nil {
		t.Fatalf("remaining member's request: %v", err)
	}

	// Re-adding b restores service.
	if err := a.h.SetMembers([]Member{a.member(t), b.member(t), c.member(t)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		_, err := b.h.Request(ctx, a.h.ID(), echoProto, []byte("back"), maxReq)
		return err == nil
	}, "re-added member to be served again")
}

func TestSetMembersValidation(t *testing.T) {
	n := newNode(t, "a")
	good := n.member(t)
	other := newKey(t).Public().(ed25519.PublicKey)
	if err := n.h.SetMembers([]Member{good, {Name: "x", PublicKey: other, Role: RoleRegulator}}); err != nil {
		t.Fatal(err)
	}
	otherID, err := PeerIDFromPublicKey(other)
	if err != nil {
		t.Fatal(err)
	}
	// A /p2p/ suffix naming the member itself is accepted.
	own := Member{Name: "x", PublicKey: other, Role: RoleVoter, Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/" + otherID.String()}}
	if err := n.h.SetMembers([]Member{good, own}); err != nil {
		t.Fatalf("SetMembers with own /p2p/ suffix: %v", err)
	}

	for name, tc := range map[string]struct {
		members []Member
		want    error
	}{
		"short key":     {[]Member{{Name: "bad", PublicKey: other[:31], Role: RoleVoter}}, ErrInvalidKey},
		"duplicate key": {[]Member{good, {Name: "dup", PublicKey: good.PublicKey, Role: RoleVoter}}, ErrDuplicateMember},
		"no role":       {[]Member{good, {Name: "norole", PublicKey: other}}, ErrInvalidRole},
		"two roles":     {[]Member{good, {Name: "both", PublicKey: other, Role: AnyMember}}, ErrInvalidRole},
		"bad address":   {[]Member{{Name: "bad", PublicKey: other, Role: RoleVoter, Addrs: []string{"not-a-multiaddr"}}}, ErrInvalidAddr},
		"foreign /p2p/": {[]Member{{Name: "bad", PublicKey: other, Role: RoleVoter, Addrs: []string{good.Addrs[0] + "/p2p/" + n.h.ID().String()}}}, ErrInvalidAddr},
	} {
		t.Run(name, func(t *testing.T) {
			if err := n.h.SetMembers(tc.members); !errors.Is(err, tc.want) {
				t.Fatalf("SetMembers error = %v, want %v", err, tc.want)
			}
			// A failed update leaves the previous allowlist in force.
			if !n.h.IsMember(otherID) || len(n.h.Members()) != 2 {
				t.Fatalf("allowlist changed by a failed SetMembers: %v", n.h.Members())
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	key := newKey(t)
	corrupt := append(ed25519.PrivateKey(nil), key...)
	corrupt[63] ^= 1 // public half no longer matches the seed

	for name, tc := range map[string]struct {
		cfg  Config
		want error
	}{
		"missing key":   {Config{ListenAddrs: []string{loopback}}, ErrInvalidKey},
		"corrupt key":   {Config{PrivateKey: corrupt, ListenAddrs: []string{loopback}}, ErrInvalidKey},
		"bad listen":    {Config{PrivateKey: key, ListenAddrs: []string{"127.0.0.1:7101"}}, ErrInvalidAddr},
		"quic listen":   {Config{PrivateKey: key, ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, nil},
		"bad member":    {Config{PrivateKey: key, Members: []Member{{Name: "m", PublicKey: []byte{1}, Role: RoleVoter}}}, ErrInvalidKey},
		"dup in config": {Config{PrivateKey: key, Members: []Member{{Name: "m", PublicKey: key.Public().(ed25519.PublicKey), Role: RoleVoter}, {Name: "n", PublicKey: key.Public().(ed25519.PublicKey), Role: RoleVoter}}}, ErrDuplicateMember},
		"bad rules":     {Config{PrivateKey: key, Rules: []Rule{{Protocol: "/x/1", OpenedBy: AnyMember}}}, ErrInvalidRules},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := New(tc.cfg)
			if err == nil {
				_ = h.Close()
				t.Fatal("New succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("New error = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("peer ID matches key", func(t *testing.T) {
		h, err := New(Config{PrivateKey: key})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		want, err := PeerIDFromPublicKey(key.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		if h.ID() != want {
			t.Fatalf("ID() = %s, want %s", h.ID(), want)
		}
		if len(h.Addrs()) != 0 {
			t.Fatalf("host without ListenAddrs listens on %v", h.Addrs())
		}
	})
}

func TestStreamLayerLifecycle(t *testing.T) {
	n := newNode(t, "a")
	sl, err := n.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.h.RaftStreamLayer(); !errors.Is(err, ErrStreamLayerInUse) {
		t.Fatalf("second RaftStreamLayer error = %v, want ErrStreamLayerInUse", err)
	}
	if got, want := sl.Addr().String(), n.h.ID().String(); got != want {
		t.Fatalf("Addr() = %q, want the peer ID %q", got, want)
	}
	if _, err := sl.Dial("not-a-peer-id", time.Second); !errors.Is(err, ErrInvalidRaftAddress) {
		t.Fatalf("Dial(bad address) error = %v, want ErrInvalidRaftAddress", err)
	}

	accepted := make(chan error, 1)
	go func() {
		_, err := sl.Accept()
		accepted <- err
	}()
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close error = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if err := sl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	sl2, err := n.h.RaftStreamLayer()
	if err != nil {
		t.Fatalf("RaftStreamLayer after Close: %v", err)
	}
	_ = sl2.Close()
}

// assertDead checks that c fails with a reset or closed error, not a
// timeout, when used.
func assertDead(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("ping"))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on stream to removed member: %v, want a reset/closed error", err)
	}
}
