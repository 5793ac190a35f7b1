package p2p

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// Member is a node allowed to connect: a voter, a read-only regulator, or
// any other node of the network.
type Member struct {
	// Name is a human-readable label used in logs.
	Name string
	// PublicKey is the member's Ed25519 identity key; it determines the
	// member's peer ID.
	PublicKey ed25519.PublicKey
	// Addrs are the member's TCP multiaddrs, e.g. "/ip4/10.0.0.7/tcp/7101".
	// A /p2p/ suffix is allowed if it names this member. May be empty for
	// members that only dial in.
	Addrs []string
	// Role decides which protocols the member may open (Rules). Required:
	// exactly one of RoleVoter, RoleRegulator and RoleDeparted.
	Role Role
}

// memberSet is immutable once built so the gater can read it without locks.
type memberSet struct {
	list []Member
	byID map[peer.ID]memberEntry
}

type memberEntry struct {
	name  string
	role  Role
	addrs []ma.Multiaddr
}

func newMemberSet(members []Member) (*memberSet, error) {
	s := &memberSet{
		list: make([]Member, 0, len(members)),
		byID: make(map[peer.ID]memberEntry, len(members)),
	}
	for _, m := range members {
		id, err := PeerIDFromPublicKey(m.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("p2p: member %q: %w", m.Name, err)
		}
		if !m.Role.valid() {
			return nil, fmt.Errorf("%w: member %q has role %v", ErrInvalidRole, m.Name, m.Role)
		}
		if prev, dup := s.byID[id]; dup {
			return nil, fmt.Errorf("%w: %q and %q have peer ID %s", ErrDuplicateMember, prev.name, m.Name, id)
		}
		addrs, err := memberAddrs(id, m.Addrs)
		if err != nil {
			return nil, fmt.Errorf("p2p: member %q: %w", m.Name, err)
		}
		s.byID[id] = memberEntry{name: m.Name, role: m.Role, addrs: addrs}
		s.list = append(s.list, Member{
			Name:      m.Name,
			PublicKey: slices.Clone(m.PublicKey),
			Addrs:     slices.Clone(m.Addrs),
			Role:      m.Role,
		})
	}
	return s, nil
}

// memberAddrs parses a member's addresses, accepting a /p2p/ suffix only if
// it names the member itself, since the key, not the address, is the
// identity.
func memberAddrs(id peer.ID, ss []string) ([]ma.Multiaddr, error) {
	addrs, err := parseAddrs(ss)
	if err != nil {
		return nil, err
	}
	for i, a := range addrs {
		transport, named := peer.SplitAddr(a)
		if named == "" {
			continue
		}
		if named != id || len(transport) == 0 {
			return nil, fmt.Errorf("%w %q: names peer %s, member key is %s", ErrInvalidAddr, a, named, id)
		}
		addrs[i] = transport
	}
	return addrs, nil
}

func (s *memberSet) has(id peer.ID) bool {
	_, ok := s.byID[id]
	return ok
}

// role is a member's role, 0 for anyone else.
func (s *memberSet) role(id peer.ID) Role { return s.byID[id].role }

// SetMembers atomically replaces the allowlist. The new members' addresses
// are stored permanently in the peerstore so that dialing by peer ID works,
// and existing connections to peers that are no longer members are closed.
// On error the allowlist is unchanged.
func (h *Host) SetMembers(members []Member) error {
	set, err := newMemberSet(members)
	if err != nil {
		return err
	}
	h.membersMu.Lock()
	defer h.membersMu.Unlock()
	old := h.gater.members.Swap(set)
	// Connections that finish their handshake after this sweep are caught by
	// onConnected, which reads the new set.
	for _, p := range h.host.Network().Peers() {
		if h.gater.allowed(p) {
			continue
		}
		h.log.Info("closing connection to removed member", "peer", p.String(), "name", old.byID[p].name)
		if err := h.host.Network().ClosePeer(p); err != nil {
			h.log.Warn("close connection to removed member", "peer", p.String(), "err", err)
		}
	}
	// After the sweep so the permanent addresses are cleared last; identify
	// may still re-add a removed peer's address with a short TTL as its
	// connection winds down, which is harmless because the gater refuses
	// any dial to it.
	h.updatePeerstore(old, set)
	return nil
}

// Members returns a copy of the current allowlist.
func (h *Host) Members() []Member {
	set := h.gater.members.Load()
	out := make([]Member, len(set.list))
	for i, m := range set.list {
		out[i] = Member{Name: m.Name, PublicKey: slices.Clone(m.PublicKey), Addrs: slices.Clone(m.Addrs), Role: m.Role}
	}
	return out
}

// IsMember reports whether p may connect: it is in the allowlist or is this
// host itself.
func (h *Host) IsMember(p peer.ID) bool { return h.gater.allowed(p) }

// Refusals returns how many connections, dials and streams were refused
// because the peer was not a member. One connection attempt can be counted
// more than once if it is refused at several stages.
func (h *Host) Refusals() uint64 { return h.gater.refused.Load() }

func (h *Host) updatePeerstore(old, cur *memberSet) {
	ps := h.host.Peerstore()
	self := h.host.ID()
	if old != nil {
		for id, prev := range old.byID {
			if id == self {
				continue
			}
			now, still := cur.byID[id]
			if !still {
				ps.ClearAddrs(id)
				ps.RemovePeer(id)
				continue
			}
			var stale []ma.Multiaddr
			for _, a := range prev.addrs {
				if !slices.ContainsFunc(now.addrs, a.Equal) {
					stale = append(stale, a)
				}
			}
			if len(stale) > 0 {
				// A zero TTL deletes, so a member that moved is not dialed at its
				// old address forever.
				ps.SetAddrs(id, stale, 0)
			}
		}
	}
	for id, e := range cur.byID {
		if id == self || len(e.addrs) == 0 {
			continue
		}
		ps.AddAddrs(id, e.addrs, peerstore.PermanentAddrTTL)
	}
}

// onConnected closes the race between an InterceptSecured check against the
// old allowlist and the sweep in SetMembers: a connection added to the swarm
// after the sweep is checked here against the new allowlist.
//
// A member's connection is then checked for a duplicate identity
// (session.go) before any protocol stream on it is served. This runs
// before the swarm accepts streams on c, so every stream finds c tracked.
func (h *Host) onConnected(_ network.Network, c network.Conn) {
	if !h.gater.admit(c.RemotePeer(), "connected", slog.String("remote_addr", c.RemoteMultiaddr().String())) {
		// Closing synchronously would block the swarm's notification delivery.
		go c.Close()
		return
	}
	if chk, fresh := h.sess.track(c); fresh {
		go h.checkConn(c, chk)
	}
}

func (h *Host) onDisconnected(_ network.Network, c network.Conn) { h.sess.untrack(c) }

// gater enforces the allowlist at every stage libp2p offers once the peer ID
// is known.
type gater struct {
	self    peer.ID
	members atomic.Pointer[memberSet]
	refused atomic.Uint64
	log     *slog.Logger
}

var _ connmgr.ConnectionGater = (*gater)(nil)

func (g *gater) allowed(p peer.ID) bool {
	return p == g.self || g.members.Load().has(p)
}

// admit reports whether p is allowed, counting and logging a refusal.
func (g *gater) admit(p peer.ID, stage string, attrs ...slog.Attr) bool {
	if g.allowed(p) {
		return true
	}
	g.refused.Add(1)
	args := make([]any, 0, len(attrs)+2)
	args = append(args, slog.String("peer", p.String()), slog.String("stage", stage))
	for _, a := range attrs {
		args = append(args, a)
	}
	g.log.Warn("refused non-member peer", args...)
	return false
}

// InterceptPeerDial refuses to dial a non-member before any address is tried.
func (g *gater) InterceptPeerDial(p peer.ID) bool {
	return g.admit(p, "dial")
}

// InterceptAddrDial repeats the peer check so the decision does not depend on
// libp2p always calling InterceptPeerDial first.
func (g *gater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.admit(p, "dial-addr", slog.String("remote_addr", a.String()))
}

// InterceptAccept admits every raw inbound connection: the peer ID is only
// known after the Noise handshake, where InterceptSecured decides. The
// resource manager bounds how many unauthenticated connections can be open.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured is the authoritative check: after the Noise handshake the
// remote peer ID is proven by its key, for both inbound and outbound
// connections.
func (g *gater) InterceptSecured(dir network.Direction, p peer.ID, cm network.ConnMultiaddrs) bool {
	return g.admit(p, "secured",
		slog.String("direction", dir.String()),
		slog.String("remote_addr", cm.RemoteMultiaddr().String()))
}

// InterceptUpgraded re-checks because the allowlist may have changed while
// the muxer was being negotiated.
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	ok := g.admit(c.RemotePeer(), "upgraded", slog.String("remote_addr", c.RemoteMultiaddr().String()))
	return ok, 0
}
