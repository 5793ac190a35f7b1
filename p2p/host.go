// Package p2p is dcep's node-to-node transport: a go-libp2p host (TCP,
// Noise, Yamux) keyed by the node's Ed25519 identity, a connection gater that
// admits only members of the network, a hashicorp/raft StreamLayer, and a
// size-limited request/response helper. See DESIGN.md for the invariants.
package p2p

import (
	"context"
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// DefaultHandlerTimeout bounds a request handler (reading the request,
// running the handler, writing the reply) when Config.HandlerTimeout is zero.
const DefaultHandlerTimeout = 30 * time.Second

// Config configures a Host.
type Config struct {
	// PrivateKey is the node's identity; its public key determines the
	// node's peer ID. Required.
	PrivateKey ed25519.PrivateKey
	// Signer, when set instead of PrivateKey, is an Ed25519 identity whose
	// private half stays in a hardware token (pkcs11key.Signer).
	Signer stdcrypto.Signer
	// ListenAddrs are TCP multiaddrs such as "/ip4/0.0.0.0/tcp/7101".
	// Empty means the host only dials out (e.g. a regulator behind NAT).
	ListenAddrs []string
	// Members is the initial allowlist. Until it or SetMembers names a peer,
	// no peer can connect: the default is deny.
	Members []Member
	// HandlerTimeout bounds each inbound request; zero means
	// DefaultHandlerTimeout.
	HandlerTimeout time.Duration
	// Logger receives refusal and protocol-error logs; nil means
	// slog.Default().
	Logger *slog.Logger
	// Rules is the table of which roles may open which protocol; nil means
	// Rules (the package's table). Tests pass their own.
	Rules []Rule
}

// Host is a libp2p host restricted to the network's members.
type Host struct {
	host           host.Host
	gater          *gater
	log            *slog.Logger
	handlerTimeout time.Duration
	rules          ruleSet
	sess           *sessions
	// roleRefused counts streams refused by Rules, per protocol (fixed keys:
	// the rows of rules).
	roleRefused map[protocol.ID]*atomic.Uint64
	dupRefused  atomic.Uint64
	// logEvery rate-limits refusal logs a member could otherwise flood.
	logEvery *logLimiter

	// ctx is cancelled by Close so that in-flight handlers and dials stop.
	ctx    context.Context
	cancel context.CancelFunc

	// membersMu serialises SetMembers so that the peerstore updates and
	// connection sweeps of two concurrent calls cannot interleave.
	membersMu sync.Mutex

	raftMu    sync.Mutex
	raftLayer *StreamLayer

	closeOnce sync.Once
	closeErr  error
}

// New starts a host listening on cfg.ListenAddrs.
func New(cfg Config) (*Host, error) {
	sk, err := hostKey(cfg)
	if err != nil {
		return nil, err
	}
	self, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "p2p", "self", self.String())
	timeout := cfg.HandlerTimeout
	if timeout <= 0 {
		timeout = DefaultHandlerTimeout
	}

	set, err := newMemberSet(cfg.Members)
	if err != nil {
		return nil, err
	}
	table := cfg.Rules
	if table == nil {
		table = Rules
	}
	rules, err := newRuleSet(table)
	if err != nil {
		return nil, err
	}
	sess, err := newSessions()
	if err != nil {
		return nil, err
	}
	rm, err := newResourceManager()
	if err != nil {
		return nil, err
	}
	g := &gater{self: self, log: logger}
	g.members.Store(set)

	listen := libp2p.NoListenAddrs
	if len(cfg.ListenAddrs) > 0 {
		addrs, err := parseAddrs(cfg.ListenAddrs)
		if err != nil {
			return nil, err
		}
		listen = libp2p.ListenAddrs(addrs...)
	}

	lh, err := libp2p.New(
		libp2p.Identity(sk),
		listen,
		// Only TCP: every member has a stable, reachable address, so QUIC,
		// WebRTC, relays, hole punching and port mapping would only widen the
		// attack surface. Noise is the one security protocol so both ends
		// always agree without a negotiation fallback.
		// No SO_REUSEPORT: with it a second node binds a port another
		// already listens on and both half work; without it the second
		// is refused at start (port in use).
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(g),
		// Explicit limits (resources.go): every request buffer is counted
		// in its stream's scope, so what members can make us hold is bounded.
		libp2p.ResourceManager(rm),
		// Membership already bounds the peer count; trimming would only ever
		// cut raft connections.
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		// Members' addresses come from configuration; letting peers tell us
		// what our address is would be an unneeded input from the network.
		libp2p.DisableIdentifyAddressDiscovery(),
		// libp2p would otherwise register its collectors on the global
		// Prometheus registry, which the node owns.
		libp2p.DisableMetrics(),
	)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("p2p: start libp2p host: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		host:           lh,
		gater:          g,
		log:            logger,
		handlerTimeout: timeout,
		rules:          rules,
		sess:           sess,
		roleRefused:    map[protocol.ID]*atomic.Uint64{},
		logEvery:       newLogLimiter(10 * time.Second),
		ctx:            ctx,
		cancel:         cancel,
	}
	for p := range rules {
		h.roleRefused[p] = new(atomic.Uint64)
	}
	h.updatePeerstore(nil, set)
	lh.SetStreamHandler(SessionProtocol, h.serveSession)
	lh.Network().Notify(&network.NotifyBundle{ConnectedF: h.onConnected, DisconnectedF: h.onDisconnected})
	return h, nil
}

// ID returns the host's peer ID, which is also its raft server address.
func (h *Host) ID() peer.ID { return h.host.ID() }

// Addrs returns the addresses the host listens on.
func (h *Host) Addrs() []ma.Multiaddr { return h.host.Addrs() }

// IsConnected reports whether a live connection to p exists.
func (h *Host) IsConnected(p peer.ID) bool {
	return h.host.Network().Connectedness(p) == network.Connected
}

// Close stops the host and closes all its connections. Close the raft
// transport using the StreamLayer before the host so raft shuts down cleanly.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.cancel()
		if err := h.host.Close(); err != nil {
			h.closeErr = fmt.Errorf("p2p: close host: %w", err)
		}
	})
	return h.closeErr
}

// PeerIDFromPublicKey returns the libp2p peer ID of an Ed25519 public key.
func PeerIDFromPublicKey(pub ed25519.PublicKey) (peer.ID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalidKey, len(pub), ed25519.PublicKeySize)
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return id, nil
}

// hostKey is the libp2p identity: Config.Signer if set, else PrivateKey.
func hostKey(cfg Config) (crypto.PrivKey, error) {
	if cfg.Signer != nil {
		return signerPrivKey(cfg.Signer)
	}
	return libp2pPrivKey(cfg.PrivateKey)
}

func libp2pPrivKey(priv ed25519.PrivateKey) (crypto.PrivKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrInvalidKey, len(priv), ed25519.PrivateKeySize)
	}
	// A key whose stored public half does not match its seed would give the
	// node a peer ID that other members do not expect.
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	if subtle.ConstantTimeCompare(derived, priv) != 1 {
		return nil, fmt.Errorf("%w: public half does not match seed", ErrInvalidKey)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return sk, nil
}

func parseAddrs(ss []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidAddr, s, err)
		}
		out = append(out, a)
	}
	return out, nil
}
