package chaos

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"
)

// FaultRecord is what happened to one fault, with times since the
// campaign began.
type FaultRecord struct {
	Seq     int      `json:"seq"`
	Kind    Kind     `json:"kind"`
	Targets []string `json:"targets,omitempty"`
	Detail  string   `json:"detail,omitempty"`
	Skipped string   `json:"skipped,omitempty"`
	// InjectFailed is why the injection failed: the fault was not played.
	InjectFailed string        `json:"inject_failed,omitempty"`
	At           time.Duration `json:"injected_at_ns"`
	Healed       time.Duration `json:"healed_at_ns"`
	Ready        time.Duration `json:"ready_at_ns"`
	// Recovered: every node was ready again within the recovery timeout.
	Recovered bool `json:"recovered"`
	// Outcome says how the target took it (corruption and disk faults).
	Outcome string `json:"outcome,omitempty"`
	// Findings are defects seen (a panic instead of an error, ...).
	Findings []string `json:"findings,omitempty"`
	// FirstCommit is from injection to the first transaction decided in a
	// later log entry than any decided before it (-1: none before the run
	// ended); ReadyAfter from heal to every node ready.
	FirstCommit time.Duration `json:"first_commit_ns"`
	ReadyAfter  time.Duration `json:"ready_after_ns"`
}

// mark sets the fault's time to now: the moment it takes effect, after its
// targets were chosen.
func (c *Campaign) mark(rec *FaultRecord) { rec.At = time.Duration(c.now()) }

// errSkip marks a fault that cannot be played here; its message says why.
type errSkip struct{ why string }

func (e errSkip) Error() string { return e.why }

// heal undoes a fault.
type heal func() error

// inject injects f and returns how to heal it.
func (c *Campaign) inject(f Fault, rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	switch f.Kind {
	case KillNode:
		return c.kill(rec, []string{pick(rng, c.nodes)})
	case KillLeader:
		return c.kill(rec, []string{c.leaderOr(rng)})
	case KillMajority:
		vs := shuffled(rng, c.voters)
		if rng.IntN(2) == 0 { // half the time the leader goes with them
			l := c.leaderOr(rng)
			vs = append([]string{l}, without(vs, l)...)
		}
		return c.kill(rec, vs[:len(c.voters)/2+1])
	case KillAll:
		return c.kill(rec, slices.Clone(c.nodes))
	case PauseNode, PauseLeader:
		t := pick(rng, c.nodes)
		if f.Kind == PauseLeader {
			t = c.leaderOr(rng)
		}
		return c.pause(rec, t)
	case IsolateNode, IsolateLeader:
		t := pick(rng, c.nodes)
		if f.Kind == IsolateLeader {
			t = c.leaderOr(rng)
		}
		rec.Targets = []string{t}
		return c.partition(rec, [][]string{{t}, without(c.nodes, t)}, nil)
	case SplitMajority:
		vs := shuffled(rng, c.voters)
		// Clones: appending the regulator to a must not overwrite b[0].
		a, b := slices.Clone(vs[:len(vs)/2+1]), slices.Clone(vs[len(vs)/2+1:])
		if rng.IntN(2) == 0 {
			a = append(a, c.regulator)
		} else {
			b = append(b, c.regulator)
		}
		rec.Targets = b
		return c.partition(rec, [][]string{a, b}, nil)
	case OneWay:
		return c.oneWay(rec, rng)
	case Bridge:
		all := shuffled(rng, c.nodes)
		bridge := pick(rng, c.voters)
		rest := without(all, bridge)
		a, b := slices.Clone(rest[:len(rest)/2]), slices.Clone(rest[len(rest)/2:])
		rec.Targets = []string{bridge}
		rec.Detail = fmt.Sprintf("bridge %s between %v and %v", bridge, a, b)
		return c.partition(rec, [][]string{a, b}, nil)
	case NetemLatency, NetemLoss, NetemReorder:
		return c.netem(f.Kind, rec, rng)
	case ClockSkew:
		return c.clockSkew(rec, rng)
	case DiskFull:
		return c.diskFull(rec, rng)
	case CorruptPebble, CorruptRaft, CorruptSnap:
		return c.corrupt(f.Kind, rec, rng)
	}
	return nil, fmt.Errorf("fault kind %q not implemented", f.Kind)
}

func pick(rng *mrand.Rand, names []string) string { return names[rng.IntN(len(names))] }

func shuffled(rng *mrand.Rand, names []string) []string {
	s := slices.Clone(names)
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func without(names []string, drop ...string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// leaderOr is the current leader, or a random voter if none is known.
func (c *Campaign) leaderOr(rng *mrand.Rand) string {
	if l := c.leader(5 * time.Second); l != "" {
		return l
	}
	return pick(rng, c.voters)
}

// kill SIGKILLs every target at once; heal starts them again.
func (c *Campaign) kill(rec *FaultRecord, targets []string) (heal, error) {
	rec.Targets = targets
	c.mark(rec)
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.net.Kill(t)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func() error {
		var errs []error
		for _, t := range targets {
			if !c.net.Running(t) {
				errs = append(errs, c.net.Start(t))
			}
		}
		return errors.Join(errs...)
	}, nil
}

func (c *Campaign) pause(rec *FaultRecord, t string) (heal, error) {
	rec.Targets = []string{t}
	c.mark(rec)
	if err := c.net.Pause(t); err != nil {
		return nil, err
	}
	return func() error { return c.net.Resume(t) }, nil
}

// partition blocks every pair of nodes in different groups (both ways)
// plus the extra one-way pairs.
func (c *Campaign) partition(rec *FaultRecord, groups [][]string, extra [][2]int) (heal, error) {
	var pairs [][2]int
	for gi, g := range groups {
		for hi, h := range groups {
			if gi == hi {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					pairs = append(pairs, [2]int{c.index(a), c.index(b)})
				}
			}
		}
	}
	pairs = append(pairs, extra...)
	if rec.Detail == "" {
		rec.Detail = fmt.Sprintf("groups %v", groups)
	}
	if err := c.fabric.Block(pairs); err != nil {
		if errors.Is(err, ErrUnsupported) {
			return nil, errSkip{"partitions need nftables in namespaces, or nft on loopback"}
		}
		return nil, err
	}
	c.mark(rec) // in effect once every node's rules are loaded
	return func() error { return c.fabric.Block(nil) }, nil
}

// oneWay: the target (the leader half the time) either hears no peer or
// reaches no peer, while the other direction works.
func (c *Campaign) oneWay(rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	t := pick(rng, c.nodes)
	if rng.IntN(2) == 0 {
		t = c.leaderOr(rng)
	}
	rec.Targets = []string{t}
	var pairs [][2]int
	inbound := rng.IntN(2) == 0
	for _, o := range without(c.nodes, t) {
		if inbound {
			pairs = append(pairs, [2]int{c.index(o), c.index(t)})
		} else {
			pairs = append(pairs, [2]int{c.index(t), c.index(o)})
		}
	}
	rec.Detail = fmt.Sprintf("%s hears no peer (its packets go out)", t)
	if !inbound {
		rec.Detail = fmt.Sprintf("%s reaches no peer (it hears them)", t)
	}
	return c.partition(rec, nil, pairs)
}

// netem degrades 1–3 nodes' traffic (or every node's, one time in four).
func (c *Campaign) netem(k Kind, rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	targets := shuffled(rng, c.nodes)[:1+rng.IntN(3)]
	if rng.IntN(4) == 0 {
		targets = slices.Clone(c.nodes)
	}
	var s Shape
	switch k {
	case NetemLatency:
		s = Shape{DelayMs: 40 + rng.IntN(160), JitterMs: 10 + rng.IntN(60)}
	case NetemLoss:
		s = Shape{LossPct: 2 + rng.IntN(14)}
	case NetemReorder:
		s = Shape{DelayMs: 20 + rng.IntN(40), ReorderPct: 10 + rng.IntN(30)}
	}
	rec.Targets = targets
	for _, t := range targets {
		desc, err := c.fabric.Shape(c.index(t), s)
		if err != nil {
			if errors.Is(err, ErrUnsupported) {
				return nil, errSkip{"traffic shaping needs a namespace per node"}
			}
			return nil, err
		}
		rec.Detail = desc
	}
	c.mark(rec)
	return func() error {
		var errs []error
		for _, t := range targets {
			_, err := c.fabric.Shape(c.index(t), Shape{})
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}, nil
}
