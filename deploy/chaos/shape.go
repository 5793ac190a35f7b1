package chaos

import (
	"fmt"
	"strings"
)

// Shape is a degradation of one node's traffic; the zero Shape restores
// it.
type Shape struct {
	DelayMs, JitterMs int // added latency and its spread
	LossPct           int // packets dropped at random, each way
	ReorderPct        int // packets held back so later ones overtake them
}

// Shape applies s to node i's eth0 with tc netem where the kernel has it.
// Without sch_netem (this project's CI kernel is built without it) it is
// emulated with what the kernel has, and the description says so:
//   - loss: nftables drops each packet with probability LossPct (numgen
//     random), in and out;
//   - delay and jitter: a tbf rate limit, so packets queue (the delay grows
//     with the node's traffic and varies with it: jitter) up to a bound,
//     then drop;
//   - reordering: an htb with a fast class and a slow one, and nftables
//     sending ReorderPct of packets, at random, to the slow one: later
//     packets in the fast class overtake them.
func (f *netnsFabric) Shape(i int, s Shape) (string, error) {
	ns := nsName(i)
	_ = runIn(ns, "tc", "qdisc", "del", "dev", "eth0", "root") // none yet is fine
	_ = nftIn(ns, fmt.Sprintf("table inet %s-shape\ndelete table inet %s-shape\n", Prefix, Prefix))
	if s == (Shape{}) {
		return "restored", nil
	}
	if f.netem {
		var spec []string
		if s.DelayMs > 0 || s.ReorderPct > 0 {
			spec = append(spec, "delay", fmt.Sprintf("%dms", max(s.DelayMs, 1)))
			if s.JitterMs > 0 {
				spec = append(spec, fmt.Sprintf("%dms", s.JitterMs), "distribution", "normal")
			}
		}
		if s.LossPct > 0 {
			spec = append(spec, "loss", fmt.Sprintf("%d%%", s.LossPct))
		}
		if s.ReorderPct > 0 {
			spec = append(spec, "reorder", fmt.Sprintf("%d%%", s.ReorderPct), "50%")
		}
		return "netem " + strings.Join(spec, " "), runIn(ns, "tc", append([]string{"qdisc", "replace", "dev", "eth0", "root", "netem"}, spec...)...)
	}
	var desc []string
	var rules []string
	switch {
	case s.ReorderPct > 0:
		for _, c := range [][]string{
			{"qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10", "r2q", "1000"},
			{"class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit"},
			{"class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "1mbit", "ceil", "1mbit"},
			{"qdisc", "add", "dev", "eth0", "parent", "1:20", "handle", "20:", "pfifo", "limit", "64"},
		} {
			if err := runIn(ns, "tc", c...); err != nil {
				return "", err
			}
		}
		rules = append(rules, fmt.Sprintf(" chain out {\n  type filter hook output priority 0; policy accept;\n  oifname \"eth0\" meta priority set numgen random mod 100 map { 0-%d : 1:20, %d-99 : 1:10 }\n }",
			s.ReorderPct-1, s.ReorderPct))
		desc = append(desc, fmt.Sprintf("reorder %d%% (htb slow class 1mbit; no netem)", s.ReorderPct))
	case s.DelayMs > 0:
		rate := max(128, 64_000/max(s.DelayMs, 1)) // kbit: lower rate, longer queues
		if err := runIn(ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", fmt.Sprintf("%dkbit", rate),
			"burst", "16kb", "latency", fmt.Sprintf("%dms", s.DelayMs+s.JitterMs*4)); err != nil {
			return "", err
		}
		desc = append(desc, fmt.Sprintf("tbf rate %dkbit, queueing up to %dms (delay and jitter with load; no netem)", rate, s.DelayMs+s.JitterMs*4))
	}
	if s.LossPct > 0 {
		rules = append(rules,
			fmt.Sprintf(" chain lossin {\n  type filter hook input priority 0; policy accept;\n  iifname \"eth0\" numgen random mod 100 < %d drop\n }", s.LossPct),
			fmt.Sprintf(" chain lossout {\n  type filter hook output priority 0; policy accept;\n  oifname \"eth0\" numgen random mod 100 < %d drop\n }", s.LossPct))
		desc = append(desc, fmt.Sprintf("loss %d%% each way (nftables numgen; no netem)", s.LossPct))
	}
	if len(rules) > 0 {
		if err := nftIn(ns, fmt.Sprintf("table inet %s-shape {\n%s\n}\n", Prefix, strings.Join(rules, "\n"))); err != nil {
			return "", err
		}
	}
	return strings.Join(desc, ", "), nil
}

// Shape is not possible on loopback: it would degrade every node at once.
func (f *loopbackFabric) Shape(int, Shape) (string, error) { return "", ErrUnsupported }
