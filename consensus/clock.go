package consensus

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Ledger time comes from the voters' clocks, not the leader's (DESIGN.md,
// "Ledger time"). The node feeds every voter's clock reading from its
// once-a-second status polls (ObserveClock); the leader stamps each entry
// with the median of the voters' clocks now (its own reading, and each
// peer's last reading carried forward on this node's monotonic clock), so
// one skewed clock, the leader's included, moves nothing while a majority
// of the voters' clocks agree.
const (
	// ClockBound is the documented bound: ledger time stays within it of
	// the honest voters' clocks, and a node whose clock is further than it
	// from the voters' median says so. It covers the error of a reading
	// (half its round trip, at most maxReadingRTT/2) and honest clocks'
	// disagreement (NTP keeps them within milliseconds), with room to spare.
	ClockBound = 2 * time.Second
	// maxReadingRTT: a reading whose request took longer is not used, so a
	// reading is off by at most half of this.
	maxReadingRTT = 500 * time.Millisecond
	// maxReadingAge: an older reading (a peer that stopped answering) no
	// longer counts.
	maxReadingAge = 10 * time.Second
	// stepTolerance: when this node's own clock moved this much more or less
	// than its monotonic clock since the last stamp, it was stepped (NTP, an
	// operator, a test), and the leader asks the voters for fresh readings
	// before stamping, in case theirs moved too (stampTime).
	stepTolerance = 100 * time.Millisecond
	// refreshTimeout bounds those fresh readings, and refreshEvery spaces
	// them.
	refreshTimeout = 500 * time.Millisecond
	refreshEvery   = time.Second
)

// clockReading is one voter's clock as this node last heard it.
type clockReading struct {
	// clockMs is the voter's clock when its answer arrived (what it said
	// plus half the round trip).
	clockMs int64
	// mono is this node's monotonic clock when the answer arrived.
	mono time.Time
}

// netClock keeps the voters' readings and computes their median.
type netClock struct {
	own func() time.Time // this node's clock (Config.Now)

	mu       sync.Mutex
	readings map[string]clockReading
	// anchorWallMs and anchorMono are this node's two clocks at the last
	// stamp, to notice a step of its own clock between stamps.
	anchorWallMs int64
	anchorMono   time.Time
	lastRefresh  time.Time
}

func newNetClock(own func() time.Time) *netClock {
	return &netClock{own: own, readings: map[string]clockReading{}}
}

// NetTime is the voters' median clock as this node estimates it.
type NetTime struct {
	// Ms is the median (Unix ms) when OK.
	Ms int64
	// OK: readings from at least a quorum of the voters (this node's own
	// included if it is one) are fresh. Without them there is no median a
	// majority stands behind.
	OK bool
	// Readings is how many voters' clocks went into Ms, of Voters in Raft's
	// configuration; Quorum is how many are needed.
	Readings, Voters, Quorum int
}

// ObserveClock records a voter's clock reading: clockMs is the Unix ms the
// peer id (its Raft server id, the member name) reported in its status
// answer, rtt the round trip of that request. Readings over slow round
// trips are dropped. Safe for concurrent use; cheap.
func (n *Node) ObserveClock(id string, clockMs int64, rtt time.Duration) {
	if rtt < 0 || rtt > maxReadingRTT || id == n.cfg.ID {
		return
	}
	n.clock.mu.Lock()
	n.clock.readings[id] = clockReading{clockMs: clockMs + rtt.Milliseconds()/2, mono: time.Now()}
	n.clock.mu.Unlock()
}

// NetworkTime is the voters' median clock now, as this node estimates it
// from its own clock and the readings it holds. Any node can ask (the
// clock check compares its own clock with it); the leader stamps from it.
func (n *Node) NetworkTime() NetTime {
	return n.clock.median(n.voters(), n.cfg.ID, n.clock.own().UnixMilli(), time.Now())
}

// stampTime is NetworkTime for stamping. The leader first asks the voters
// for fresh readings (Config.SampleClocks) when it has too few (a leader
// just elected, a node just started), or when its own clock was stepped
// since the last stamp, so that a step every clock took (a test's shared
// clock, a leap) shows at once rather than after the next poll. One node's
// step needs no refresh to be harmless: the others' readings are carried
// on the monotonic clock, which no step moves. Refreshes for want of
// readings are at most one per refreshEvery, so a leader that cannot get
// readings keeps proposing.
func (n *Node) stampTime() NetTime {
	c := n.clock
	wall, mono := c.own().UnixMilli(), time.Now()
	voters := n.voters()
	nt := c.median(voters, n.cfg.ID, wall, mono)
	c.mu.Lock()
	stepped := !c.anchorMono.IsZero() && absDuration(time.Duration(wall-c.anchorWallMs)*time.Millisecond-mono.Sub(c.anchorMono)) > stepTolerance
	// A step is one event, answered once (the refresh re-anchors); too few
	// readings may last, so that refresh is spaced.
	refresh := n.cfg.SampleClocks != nil && (stepped || (!nt.OK && (c.lastRefresh.IsZero() || mono.Sub(c.lastRefresh) > refreshEvery)))
	c.anchorWallMs, c.anchorMono = wall, mono
	if refresh {
		c.lastRefresh = mono
	}
	c.mu.Unlock()
	if !refresh {
		return nt
	}
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	n.cfg.SampleClocks(ctx)
	cancel()
	wall, mono = c.own().UnixMilli(), time.Now()
	c.mu.Lock()
	c.anchorWallMs, c.anchorMono = wall, mono
	c.mu.Unlock()
	return c.median(voters, n.cfg.ID, wall, mono)
}

// voters are the voters of Raft's latest configuration.
func (n *Node) voters() []string {
	var out []string
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	return out
}

// median is the lower median of the voters' clocks at (wallMs, mono): this
// node's own reading if it is a voter, and each other voter's last fresh
// reading carried forward by the monotonic time since it arrived. The
// lower median of an even count leans late: a late ledger clock delays an
// expiry, an early one would make it happen for good.
func (c *netClock) median(voters []string, self string, wallMs int64, mono time.Time) NetTime {
	nt := NetTime{Voters: len(voters), Quorum: len(voters)/2 + 1}
	xs := make([]int64, 0, len(voters))
	c.mu.Lock()
	for _, v := range voters {
		if v == self {
			xs = append(xs, wallMs)
			continue
		}
		r, ok := c.readings[v]
		if !ok {
			continue
		}
		age := mono.Sub(r.mono)
		if age < 0 || age > maxReadingAge {
			continue
		}
		xs = append(xs, r.clockMs+age.Milliseconds())
	}
	c.mu.Unlock()
	nt.Readings = len(xs)
	if len(voters) == 0 || len(xs) < nt.Quorum {
		return nt
	}
	slices.Sort(xs)
	nt.Ms, nt.OK = xs[(len(xs)-1)/2], true
	return nt
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
