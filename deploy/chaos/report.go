package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is a campaign's outcome.
type Report struct {
	Seed    int64         `json:"seed"`
	Fabric  string        `json:"fabric"`
	Planned int           `json:"faults_planned"`
	Command string        `json:"replay_command"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Dir     string        `json:"run_dir,omitempty"`
	Nodes   int           `json:"nodes"`
	Clients int           `json:"clients"`

	Submitted   int64          `json:"submitted"`
	Resubmits   int64          `json:"resubmits"`
	Acked       int            `json:"acknowledged"`
	ByCode      map[string]int `json:"acknowledged_by_code"`
	Unknown     int            `json:"unknown"`
	NotSent     int            `json:"not_sent"`
	APICodes    map[string]int `json:"unknown_or_not_sent_by_last_api_code"`
	LocalErrors int            `json:"local_errors"`
	Reads       int            `json:"linearizable_reads"`
	// Unknown outcomes resolved after healing: the ledger recorded the
	// transaction once (committed) or never (none).
	UnknownCommitted int `json:"unknown_resolved_committed"`
	UnknownNone      int `json:"unknown_resolved_none"`

	FaultsByKind map[Kind]int    `json:"faults_by_kind"`
	Skipped      map[Kind]string `json:"skipped_kinds,omitempty"`
	// NotInjected are kinds whose injection failed (a tool missing, a rule
	// refused): a harness failure, not a fault played; the CI campaign
	// fails on it (it once passed with every partition kind unplayed
	// because nft was not installed).
	NotInjected map[Kind]string `json:"not_injected_kinds,omitempty"`
	Records     []*FaultRecord  `json:"faults"`
	Recovery    []Recovery      `json:"recovery"`

	Lost            int      `json:"lost"`
	Duplicated      int      `json:"duplicated"`
	InvariantBreaks []string `json:"invariant_breaks"`
	Unrecovered     []string `json:"unrecovered,omitempty"`
	Linearizable    string   `json:"linearizability"`
	CheckedOps      int      `json:"porcupine_operations"`
	SupplyAudited   int      `json:"supply_audited_nodes"`
	Replayed        []string `json:"replayed,omitempty"`
	// Findings are defects that are not violations of the ledger's
	// guarantees (a crash where an error was due, a slow recovery).
	Findings []string `json:"findings,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Recovery is one fault kind's figures.
type Recovery struct {
	Kind           Kind          `json:"kind"`
	N              int           `json:"n"`
	FirstCommitP50 time.Duration `json:"first_commit_p50_ns"`
	FirstCommitP99 time.Duration `json:"first_commit_p99_ns"`
	ReadyP50       time.Duration `json:"ready_p50_ns"`
	ReadyP99       time.Duration `json:"ready_p99_ns"`
}

// Failed reports a violation: anything lost or duplicated, an invariant
// broken, a history not linearizable, or a network that did not recover.
func (r *Report) Failed() bool {
	return r.Lost > 0 || r.Duplicated > 0 || len(r.InvariantBreaks) > 0 || r.Linearizable == "NOT linearizable" || len(r.Unrecovered) > 0
}

const maxBreaks = 200

func (r *Report) breakf(format string, args ...any) {
	if len(r.InvariantBreaks) == maxBreaks {
		r.InvariantBreaks = append(r.InvariantBreaks, "... (more not listed)")
	}
	if len(r.InvariantBreaks) < maxBreaks {
		r.InvariantBreaks = append(r.InvariantBreaks, fmt.Sprintf(format, args...))
	}
}

func (c *Campaign) newReport() *Report {
	return &Report{
		Seed: c.cfg.Seed, Fabric: c.fabric.Mode(), Planned: c.cfg.Faults, Nodes: len(c.nodes),
		Clients: c.cfg.Cells * c.cfg.WorkersPerCell, Command: c.replayCommand(),
		ByCode: map[string]int{}, APICodes: map[string]int{}, FaultsByKind: map[Kind]int{}, Skipped: map[Kind]string{}, NotInjected: map[Kind]string{},
		Linearizable: "not checked",
	}
}

// replayCommand is the command that plays the same campaign again.
func (c *Campaign) replayCommand() string {
	s := fmt.Sprintf("go run ./deploy/chaos/cmd -seed %d -faults %d", c.cfg.Seed, c.cfg.Faults)
	if len(c.cfg.Kinds) != len(Kinds) {
		s += " -kinds " + joinKinds(c.cfg.Kinds)
	}
	if c.cfg.Fabric != "auto" {
		s += " -fabric " + c.cfg.Fabric
	}
	if c.cfg.Cells != 6 || c.cfg.WorkersPerCell != 2 || c.cfg.PaceMs != 150 {
		s += fmt.Sprintf(" -cells %d -workers %d -pace-ms %d", c.cfg.Cells, c.cfg.WorkersPerCell, c.cfg.PaceMs)
	}
	if c.cfg.Duration > 0 {
		s += " -duration " + c.cfg.Duration.String()
	}
	return s
}

// finish counts the history and the faults.
func (r *Report) finish(c *Campaign, ops []*op) *Report {
	r.Submitted, r.Resubmits = c.wl.submitted.Load(), c.wl.resubmits.Load()
	for _, o := range ops {
		switch {
		case o.kind == opRead:
			r.Reads++
		case o.status == statusAcked:
			r.Acked++
			r.ByCode[o.result.GetCode().Short()]++
		case o.status == statusUnknown:
			r.Unknown++
			r.APICodes[o.apiCode]++
		case o.status == statusNotSent:
			r.NotSent++
			r.APICodes[o.apiCode]++
		case o.status == statusLocalError:
			r.LocalErrors++
			r.Findings = append(r.Findings, "harness built a transaction the SDK refused: "+o.apiCode)
		}
	}
	firstCommits(c.records, ops)
	byKind := map[Kind][]*FaultRecord{}
	for _, f := range c.records {
		if f.Skipped != "" {
			r.Skipped[f.Kind] = f.Skipped
			continue
		}
		if f.InjectFailed != "" {
			r.NotInjected[f.Kind] = f.InjectFailed
			r.Findings = append(r.Findings, f.Findings...)
			continue
		}
		r.FaultsByKind[f.Kind]++
		byKind[f.Kind] = append(byKind[f.Kind], f)
		if !f.Recovered {
			r.Unrecovered = append(r.Unrecovered, fmt.Sprintf("fault #%d %s: not every node ready %v after heal", f.Seq, f.Kind, c.cfg.RecoverTimeout))
		}
		r.Findings = append(r.Findings, f.Findings...)
	}
	for _, k := range Kinds {
		fs := byKind[k]
		if len(fs) == 0 {
			continue
		}
		var fc, rd []time.Duration
		for _, f := range fs {
			if f.FirstCommit >= 0 {
				fc = append(fc, f.FirstCommit)
			}
			rd = append(rd, f.ReadyAfter)
		}
		r.Recovery = append(r.Recovery, Recovery{Kind: k, N: len(fs),
			FirstCommitP50: quantile(fc, 0.50), FirstCommitP99: quantile(fc, 0.99),
			ReadyP50: quantile(rd, 0.50), ReadyP99: quantile(rd, 0.99)})
	}
	r.Records = c.records
	r.Notes = append(r.Notes, c.notes...)
	r.Elapsed = time.Since(c.began)
	return r
}

// quantile by nearest rank (-1 for no samples).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

func secs(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== chaos campaign: seed %d, fabric %s, %d nodes, %d clients, %v\n", r.Seed, r.Fabric, r.Nodes, r.Clients, r.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "submissions %d (resubmissions of the same bytes %d), acknowledged %d, unknown %d (resolved: %d committed, %d none), not sent %d, linearizable reads %d\n",
		r.Submitted, r.Resubmits, r.Acked, r.Unknown, r.UnknownCommitted, r.UnknownNone, r.NotSent, r.Reads)
	fmt.Fprintf(w, "acknowledged by code: %s\n", counts(r.ByCode))
	if len(r.APICodes) > 0 {
		fmt.Fprintf(w, "unknown / not sent by last API answer: %s\n", counts(r.APICodes))
	}
	total := 0
	fk := map[string]int{}
	for k, n := range r.FaultsByKind {
		fk[string(k)] = n
		total += n
	}
	fmt.Fprintf(w, "faults injected %d: %s\n", total, counts(fk))
	for k, why := range r.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", k, why)
	}
	for k, why := range r.NotInjected {
		fmt.Fprintf(w, "  NOT INJECTED %s: %s\n", k, why)
	}
	fmt.Fprintf(w, "%-15s %4s %12s %12s %12s %12s\n", "recovery", "n", "commit p50", "commit p99", "ready p50", "ready p99")
	for _, rc := range r.Recovery {
		fmt.Fprintf(w, "%-15s %4d %12s %12s %12s %12s\n", rc.Kind, rc.N, secs(rc.FirstCommitP50), secs(rc.FirstCommitP99), secs(rc.ReadyP50), secs(rc.ReadyP99))
	}
	for _, f := range r.Records {
		if f.Outcome != "" {
			fmt.Fprintf(w, "  #%d %s %v: %s\n", f.Seq, f.Kind, f.Targets, f.Outcome)
		}
	}
	fmt.Fprintf(w, "lost %d, duplicated %d, invariant breaks %d, %s (%d operations checked), supply audited on %d nodes, replayed on %d\n",
		r.Lost, r.Duplicated, len(r.InvariantBreaks), r.Linearizable, r.CheckedOps, r.SupplyAudited, len(r.Replayed))
	for _, b := range r.InvariantBreaks {
		fmt.Fprintf(w, "  BREAK: %s\n", b)
	}
	for _, u := range r.Unrecovered {
		fmt.Fprintf(w, "  UNRECOVERED: %s\n", u)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  finding: %s\n", f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if r.Failed() {
		fmt.Fprintf(w, "FAILED (seed %d). Replay: %s\n", r.Seed, r.Command)
		if r.Dir != "" {
			fmt.Fprintf(w, "run directory kept: %s (logs/, report.json)\n", r.Dir)
		}
	} else {
		fmt.Fprintf(w, "PASSED\n")
		if r.Dir != "" && len(r.Findings) > 0 {
			fmt.Fprintf(w, "run directory kept for the findings: %s\n", r.Dir)
		}
	}
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// saveReport writes report.json into the run directory.
func (c *Campaign) saveReport(r *Report) {
	if err := r.WriteJSON(filepath.Join(c.dir, "report.json")); err != nil {
		c.logf("write report: %v", err)
	}
}
