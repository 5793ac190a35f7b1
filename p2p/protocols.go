package p2p

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
)

// Role is what a member is on the network, as far as the node-to-node
// protocols are concerned. A Member has exactly one role; a Rule names a
// set of them (the bits or-ed together).
type Role uint8

const (
	// RoleVoter is a bank or the central bank: a Raft voter, which may lead,
	// replicate the log and forward transactions.
	RoleVoter Role = 1 << iota
	// RoleRegulator is a read-only node (a Raft non-voter): it receives the
	// log but never sends anything that changes Raft's term or log, and
	// never proposes.
	RoleRegulator
	// RoleDeparted is a peer a committed membership change removed, kept on
	// the allowlist for a few seconds (node's removedLingerMs) so that the
	// leader's last AppendEntries, which tells it of its removal, reaches
	// it on a connection this host opened or keeps. No Rule names it: it
	// may open no protocol.
	RoleDeparted

	// AnyMember is every role: what the connection gater already enforces.
	AnyMember = RoleVoter | RoleRegulator
)

// String names a role or set of roles ("voter", "voter|regulator").
func (r Role) String() string {
	var parts []string
	if r&RoleVoter != 0 {
		parts = append(parts, "voter")
	}
	if r&RoleRegulator != 0 {
		parts = append(parts, "regulator")
	}
	if r&RoleDeparted != 0 {
		parts = append(parts, "departed")
	}
	if rest := r &^ (AnyMember | RoleDeparted); rest != 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("role(%#x)", uint8(rest)))
	}
	return strings.Join(parts, "|")
}

// valid reports whether r is exactly one known role (a member's role).
func (r Role) valid() bool { return r == RoleVoter || r == RoleRegulator || r == RoleDeparted }

// Protocol IDs of every node-to-node protocol. RaftProtocol is in raft.go.
const (
	// SessionProtocol answers with the host's session nonce: how a node tells
	// two processes holding the same key apart (session.go).
	SessionProtocol protocol.ID = "/dcep/session/1"
	// ForwardProtocol carries transactions a voter received to the leader.
	ForwardProtocol protocol.ID = "/dcep/forward/1"
	// ReadIndexProtocol asks the leader for a linearizable read index.
	ReadIndexProtocol protocol.ID = "/dcep/readindex/1"
	// StatusProtocol asks a node for its status and clock reading.
	StatusProtocol protocol.ID = "/dcep/status/1"
	// StateHashProtocol asks for the state hash at a log index.
	StateHashProtocol protocol.ID = "/dcep/statehash/1"
	// ArchiveProtocol fetches a segment of the archive of committed entries
	// (consensus/DESIGN.md, "Archive").
	ArchiveProtocol protocol.ID = "/dcep/archive/1"
	// identifyProtocol and identifyPushProtocol are libp2p's own, run on
	// every connection (listen addresses, supported protocols).
	identifyProtocol     protocol.ID = identify.ID
	identifyPushProtocol protocol.ID = identify.IDPush
)

// Rule says which roles may open a stream of one protocol. Removed members
// and non-members may open nothing: the connection gater refuses them
// before any protocol is negotiated.
type Rule struct {
	Protocol protocol.ID
	// OpenedBy is the set of roles that may open a stream of Protocol.
	OpenedBy Role
	// Why is the reason, for the table in DESIGN.md and for refusals.
	Why string
}

// Rules is the one table of who may open which node-to-node protocol. It
// is the whole surface: Handle refuses to serve a protocol without a row,
// and TestRulesMatchDesign checks that p2p/DESIGN.md shows the same table.
// A new protocol gets a row here first.
var Rules = []Rule{
	{RaftProtocol, RoleVoter, "AppendEntries, InstallSnapshot and TimeoutNow come from the leader, RequestVote and pre-vote from candidates: only voters lead or stand; a regulator answers on the leader's stream and never opens one"},
	{ForwardProtocol, RoleVoter, "proposes transactions: only voters take writes (a regulator refuses them with READ_ONLY_NODE)"},
	{ReadIndexProtocol, AnyMember, "a linearizable read on any node asks the leader; changes nothing"},
	{StatusProtocol, AnyMember, "every node polls every peer once a second (network view, readiness, clock readings); changes nothing"},
	{StateHashProtocol, AnyMember, "state-hash comparison (tamper evidence), regulators above all; changes nothing"},
	{ArchiveProtocol, AnyMember, "fetches committed history (archive segments), regulators above all; changes nothing"},
	{SessionProtocol, AnyMember, "tells two processes with the same key apart (duplicate identity); changes nothing"},
	{identifyProtocol, AnyMember, "libp2p identify on every connection; changes nothing"},
	{identifyPushProtocol, AnyMember, "libp2p identify push; changes nothing"},
}

// ruleSet is an immutable lookup of a table of rules.
type ruleSet map[protocol.ID]Rule

func newRuleSet(rules []Rule) (ruleSet, error) {
	rs := make(ruleSet, len(rules))
	for _, r := range rules {
		if _, dup := rs[r.Protocol]; dup {
			return nil, fmt.Errorf("%w: %s has two rows", ErrInvalidRules, r.Protocol)
		}
		if r.OpenedBy&^AnyMember != 0 {
			return nil, fmt.Errorf("%w: %s: unknown role bits %#x", ErrInvalidRules, r.Protocol, uint8(r.OpenedBy&^AnyMember))
		}
		rs[r.Protocol] = r
	}
	for _, required := range []protocol.ID{RaftProtocol, SessionProtocol, identifyProtocol, identifyPushProtocol} {
		if _, ok := rs[required]; !ok {
			return nil, fmt.Errorf("%w: no row for %s, which every host serves", ErrInvalidRules, required)
		}
	}
	return rs, nil
}

// allows reports whether a member of role may open proto. A protocol
// without a row is open to nobody.
func (rs ruleSet) allows(proto protocol.ID, role Role) bool {
	r, ok := rs[proto]
	return ok && role.valid() && r.OpenedBy&role != 0
}

// checkRole refuses a stream of proto from a member whose role its row
// does not name, counting and (rate-limited) logging the refusal.
func (h *Host) checkRole(from peer.ID, proto protocol.ID, c network.Conn) error {
	role := h.gater.members.Load().role(from)
	if h.rules.allows(proto, role) {
		return nil
	}
	if n := h.roleRefused[proto]; n != nil {
		n.Add(1)
	}
	name := h.gater.members.Load().byID[from].name
	if h.logEvery.allow(string(from) + " " + string(proto)) {
		h.log.Warn("refused stream: the member's role may not open this protocol", "peer", from.String(), "name", name,
			"role", role.String(), "protocol", string(proto), "opened_by", h.rules[proto].OpenedBy.String(),
			"remote_addr", c.RemoteMultiaddr().String())
	}
	return fmt.Errorf("%w: %s is a %v; %s is opened by %v only", ErrForbidden, name, role, proto, h.rules[proto].OpenedBy)
}

// RoleRefusals counts streams refused because the member's role may not
// open the protocol, per protocol (every row of the host's Rules, zeros
// included).
func (h *Host) RoleRefusals() map[protocol.ID]uint64 {
	out := make(map[protocol.ID]uint64, len(h.roleRefused))
	for p, n := range h.roleRefused {
		out[p] = n.Load()
	}
	return out
}
