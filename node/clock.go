package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/nodepb"
)

// nodeClock is this node's clock: base (time.Now if nil) shifted by
// offsetMs (debug.clock_offset_ms, for fault campaigns).
func nodeClock(base func() time.Time, offsetMs int64) func() time.Time {
	if base == nil {
		base = time.Now
	}
	if offsetMs == 0 {
		return base
	}
	d := time.Duration(offsetMs) * time.Millisecond
	return func() time.Time { return base().Add(d) }
}

// clockCheck is what the clock check last found: this node's clock and
// ledger time against the voters' median clock, the clock ledger time is
// stamped from (consensus/clock.go). Once a second, after the status polls
// that bring the readings.
type clockCheck struct {
	mu sync.Mutex
	// known: a quorum of voters' readings were fresh, so there is a median.
	known bool
	// offsetMs is this node's clock minus the median; leadMs is ledger time
	// minus the median (negative on an idle network, where ledger time
	// only moves with entries).
	offsetMs, leadMs int64
	// warning is set while either is beyond consensus.ClockBound.
	warning string
	// since is when the current warning started; loggedAt when it was last
	// logged (again every minute while it lasts).
	since, loggedAt time.Time
}

// clockLogEvery is how often an ongoing clock warning is logged again.
const clockLogEvery = time.Minute

// checkClock compares this node's clock and ledger time with the voters'
// median and says so, in the log (rate-limited), the metrics, /readyz and
// status, when either is beyond the bound.
func (n *Node) checkClock() {
	nt := n.cons.NetworkTime()
	own := n.now().UnixMilli()
	ledger := n.store.Meta().GetLedgerTimeMs()
	bound := consensus.ClockBound.Milliseconds()
	warning := ""
	offset, lead := own-nt.Ms, ledger-nt.Ms
	switch {
	case !nt.OK:
	case offset > bound || offset < -bound:
		warning = fmt.Sprintf("this node's clock is %s %s the voters' median clock (bound %v): fix its time source (NTP)",
			time.Duration(abs64(offset))*time.Millisecond, aheadBehind(offset), consensus.ClockBound)
	case lead > bound:
		warning = fmt.Sprintf("ledger time is %s ahead of the voters' median clock (bound %v): an earlier stamp came from a clock that was ahead; ledger time stands still until the clocks catch up",
			time.Duration(lead)*time.Millisecond, consensus.ClockBound)
	}
	now := time.Now()
	c := &n.clock
	c.mu.Lock()
	was := c.warning
	c.known, c.offsetMs, c.leadMs, c.warning = nt.OK, offset, lead, warning
	logNow := warning != "" && (was == "" || now.Sub(c.loggedAt) >= clockLogEvery)
	switch {
	case warning != "" && was == "":
		c.since = now
	case warning == "":
		c.since = time.Time{}
	}
	if logNow {
		c.loggedAt = now
	}
	since := c.since
	c.mu.Unlock()
	switch {
	case logNow:
		n.log.Warn("CLOCK: "+warning, "clock_offset_ms", offset, "ledger_lead_ms", lead, "voter_readings", nt.Readings, "voters", nt.Voters, "since", since.UTC().Format(time.RFC3339))
	case warning == "" && was != "":
		n.log.Info("clock back within the bound of the voters' median clock", "clock_offset_ms", offset, "ledger_lead_ms", lead)
	}
}

// clockState is a copy of what the clock check last found.
func (n *Node) clockState() (known bool, offsetMs, leadMs int64, warning string) {
	c := &n.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known, c.offsetMs, c.leadMs, c.warning
}

// fillHealth adds the clock check and duplicate-identity alarms to this
// node's status.
func (n *Node) fillHealth(out *nodepb.NodeStatus) {
	out.ClockKnown, out.ClockOffsetMs, _, out.ClockWarning = n.clockState()
	cutoff := time.Now().Add(-time.Hour)
	for _, a := range n.host.DuplicateAlarms() {
		if a.LastAt.Before(cutoff) {
			continue
		}
		out.DuplicateIdentities = append(out.DuplicateIdentities, &nodepb.DuplicateIdentity{
			Name: a.Name, PeerId: a.Peer.String(), Refused: a.Refused, FirstMs: a.FirstAt.UnixMilli(), LastMs: a.LastAt.UnixMilli(),
			KeptAddr: a.KeptAddr, RefusedAddr: a.RefusedAddr,
		})
	}
}

func aheadBehind(ms int64) string {
	if ms > 0 {
		return "ahead of"
	}
	return "behind"
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// clockReason adds the clock check to a /readyz answer. A clock beyond the
// bound does not make the node unready: ledger time does not follow any
// one clock, so the node serves as well as any, and taking it out of a
// load balancer would only cost availability. It is a reason to fix the
// clock, given with the answer either way.
func (n *Node) clockReason(body map[string]any) {
	known, offset, _, warning := n.clockState()
	if known {
		body["clock_offset_ms"] = offset
	}
	if warning != "" {
		body["clock_reason"] = warning
	}
}
