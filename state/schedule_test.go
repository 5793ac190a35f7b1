package state_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statetest"
)

// TestScheduledWork: a job runs at the first block at or after its due
// time, within the per-block budget, continues in later blocks until done,
// and runs identically on two stores.
func TestScheduledWork(t *testing.T) {
	n := statetest.NewNet(t, "sched")
	const units = 2*state.ScheduledWorkPerBlock + 1234
	var stores []*state.Store
	for range 2 {
		s := n.Open(t)
		due := s.Meta().GetLedgerTimeMs() + 5_000
		if err := state.ScheduleTestJob(s, due, "job1", units); err != nil {
			t.Fatal(err)
		}
		if got, ok := s.NextDueMs(); !ok || got != due {
			t.Fatalf("NextDueMs = %d, %v; want %d", got, ok, due)
		}
		stores = append(stores, s)
	}
	count := func(s *state.Store) int {
		kvs, err := state.DumpState(s)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, kv := range kvs {
			if strings.HasPrefix(kv.Key, "zz:") {
				c++
			}
		}
		return c
	}
	for _, s := range stores {
		c := statetest.NewChain(s)
		// Blocks one second apart: nothing runs before the due time.
		for i := 0; i < 4; i++ {
			c.Apply(t)
			if got := count(s); got != 0 {
				t.Fatalf("block %d (before due): %d units done", i, got)
			}
		}
		want := []int{state.ScheduledWorkPerBlock, 2 * state.ScheduledWorkPerBlock, units, units}
		for i, w := range want {
			c.Apply(t)
			if got := count(s); got != w {
				t.Fatalf("block %d after due: %d units done, want %d", i, got, w)
			}
		}
		if _, ok := s.NextDueMs(); ok {
			t.Fatal("finished job still scheduled")
		}
	}
	if !bytes.Equal(stores[0].Meta().GetStateHash(), stores[1].Meta().GetStateHash()) {
		t.Fatal("stores diverged running the same scheduled work")
	}
}
