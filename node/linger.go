package node

import (
	"time"

	"github.com/dcep/dcep/p2p"
)

// removedLingerMs is how long a peer that a committed membership change
// removed stays on this node's libp2p allowlist. Raft removes the server
// from its configuration right after the ledger commits the removal and
// sends it one last best-effort AppendEntries; that batch is what carries
// the commit index of the ChangeMembership to the removed node, which then
// applies it, logs REMOVED and stops. Closing the connection at once (the
// allowlist follows the ledger within its 250 ms poll) could cut that batch
// off under load, and the removed node then waited forever for a leader
// that no longer talked to it (TestMemberRemoveAndAdd, CI of 4 Dec). Raft
// itself no longer replicates to, or counts votes of, a removed server, and
// the lingering peer has p2p.RoleDeparted, which may open no protocol, so
// the linger gives it nothing but the chance to learn.
const removedLingerMs = 10_000

// lingerSet holds the peers removed from the allowlist within the last
// removedLingerMs. Owned by followMembership's goroutine; not safe for
// concurrent use.
type lingerSet struct {
	prev    []p2p.Member
	removed map[string]lingering // by string(PublicKey)
}

type lingering struct {
	member p2p.Member
	until  time.Time
}

// update records the members that left since the last call (now is the
// time they left) and returns the allowlist: current plus lingering.
func (l *lingerSet) update(current []p2p.Member, now time.Time) []p2p.Member {
	if l.removed == nil {
		l.removed = map[string]lingering{}
	}
	in := make(map[string]bool, len(current))
	for _, m := range current {
		in[string(m.PublicKey)] = true
		delete(l.removed, string(m.PublicKey)) // re-added
	}
	for _, m := range l.prev {
		if !in[string(m.PublicKey)] {
			m.Role = p2p.RoleDeparted // connected, but it may open nothing
			l.removed[string(m.PublicKey)] = lingering{member: m, until: now.Add(removedLingerMs * time.Millisecond)}
		}
	}
	l.prev = current
	return l.allowlist(now)
}

// expire drops the lingering peers whose time is up and reports whether
// any was dropped (the allowlist must then be set again).
func (l *lingerSet) expire(now time.Time) bool {
	dropped := false
	for k, e := range l.removed {
		if !now.Before(e.until) {
			delete(l.removed, k)
			dropped = true
		}
	}
	return dropped
}

func (l *lingerSet) allowlist(now time.Time) []p2p.Member {
	out := append([]p2p.Member(nil), l.prev...)
	for _, e := range l.removed {
		if now.Before(e.until) {
			out = append(out, e.member)
		}
	}
	return out
}
