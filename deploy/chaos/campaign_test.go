package chaos

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// knownOpen are fault kinds that break an invariant through a defect that
// is reported and not yet fixed (docs/RELIABILITY.md, "Defects"): the CI
// campaign leaves them out so that it stays a gate for everything else.
// Remove an entry with the fix; soaks (go run ./deploy/chaos/cmd) play them.
var knownOpen = map[Kind]string{}

// TestCampaignShort is the CI campaign (.ci/run): the 7 + 1 network, a
// fixed seed, every fault kind once, the whole check. It takes minutes and
// root, so it runs only when DCEP_CHAOS is set; `go test ./...` skips it.
// DCEP_CHAOS_SEED picks another seed, DCEP_CHAOS_KINDS a comma-separated
// subset of the fault kinds. Any violation fails it, with the seed and the
// command that replays it.
func TestCampaignShort(t *testing.T) {
	if os.Getenv("DCEP_CHAOS") == "" {
		t.Skip("the fault campaign runs only with DCEP_CHAOS=1 (.ci/run sets it): go run ./deploy/chaos/cmd")
	}
	seed := int64(1)
	if s := os.Getenv("DCEP_CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("DCEP_CHAOS_SEED: %v", err)
		}
	}
	kinds, err := ParseKinds(os.Getenv("DCEP_CHAOS_KINDS"))
	if err != nil {
		t.Fatalf("DCEP_CHAOS_KINDS: %v", err)
	}
	if os.Getenv("DCEP_CHAOS_KINDS") == "" {
		kinds = slices.DeleteFunc(kinds, func(k Kind) bool { return knownOpen[k] != "" })
		for k, why := range knownOpen {
			t.Logf("left out of the CI campaign while open: %s (%s); DCEP_CHAOS_KINDS=all plays it", k, why)
		}
	}
	rep, err := Run(Config{Seed: seed, Kinds: kinds, Replay: true, Log: os.Stderr})
	if rep != nil {
		var b strings.Builder
		rep.Print(&b)
		t.Log(b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("seed %d: the campaign found violations (above). Replay: %s", seed, rep.Command)
	}
	for _, k := range kinds {
		if why, failed := rep.NotInjected[k]; failed && rep.FaultsByKind[k] == 0 {
			t.Errorf("fault kind %s could not be injected: %s", k, why)
		} else if rep.FaultsByKind[k] == 0 && rep.Skipped[k] == "" {
			t.Errorf("fault kind %s was neither injected nor skipped with a reason", k)
		}
		if why, skipped := rep.Skipped[k]; skipped && rep.Fabric == "netns" && k != ClockSkew {
			t.Errorf("fault kind %s skipped on the namespace fabric: %s", k, why)
		}
	}
	if rep.ByCode["OK"] == 0 || rep.Reads == 0 || rep.CheckedOps == 0 || rep.SupplyAudited != rep.Nodes || len(rep.Replayed) != rep.Nodes {
		t.Errorf("the campaign checked too little: %d OK, %d reads, %d operations, supply on %d and replay on %d of %d nodes",
			rep.ByCode["OK"], rep.Reads, rep.CheckedOps, rep.SupplyAudited, len(rep.Replayed), rep.Nodes)
	}
}
