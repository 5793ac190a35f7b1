package consensus

import (
	"testing"
	"time"
)

// TestVotersMedianClock: the ledger clock is the lower median of the
// voters' clocks, each peer's reading carried forward on the monotonic
// clock; one clock, this node's included, moves nothing while a majority
// agree, stale readings and non-voters do not count, and without a quorum
// of readings there is no median.
func TestVotersMedianClock(t *testing.T) {
	const now = int64(1_800_000_000_000)
	year := (365 * 24 * time.Hour).Milliseconds()
	mono := time.Now()
	for _, tc := range []struct {
		name     string
		selfMs   int64            // this node's own clock
		readings map[string]int64 // peer → its clock now
		ages     map[string]time.Duration
		voters   []string
		wantOK   bool
		wantMs   int64
	}{
		{"all agree", now, map[string]int64{"b": now + 3, "c": now - 2}, nil, []string{"a", "b", "c"}, true, now},
		{"self a year ahead", now + year, map[string]int64{"b": now, "c": now + 1}, nil, []string{"a", "b", "c"}, true, now + 1},
		{"self an hour behind", now - 3_600_000, map[string]int64{"b": now, "c": now + 1}, nil, []string{"a", "b", "c"}, true, now},
		{"one peer a year ahead", now, map[string]int64{"b": now + year, "c": now + 5}, nil, []string{"a", "b", "c"}, true, now + 5},
		{"two of five off", now, map[string]int64{"b": now + year, "c": now - year, "d": now + 1, "e": now + 2}, nil, []string{"a", "b", "c", "d", "e"}, true, now + 1},
		{"even count leans late", now + year, map[string]int64{"b": now}, nil, []string{"a", "b", "c"}, true, now},
		{"readings carried forward", now, map[string]int64{"b": now, "c": now}, map[string]time.Duration{"b": 3 * time.Second, "c": 3 * time.Second}, []string{"a", "b", "c"}, true, now},
		{"stale readings dropped", now + year, map[string]int64{"b": now, "c": now}, map[string]time.Duration{"b": maxReadingAge + time.Second, "c": maxReadingAge + time.Second}, []string{"a", "b", "c"}, false, 0},
		{"no quorum", now, map[string]int64{}, nil, []string{"a", "b", "c"}, false, 0},
		{"non-voters do not count", now + year, map[string]int64{"reg": now, "b": now}, nil, []string{"a", "b", "c"}, true, now},
		{"single voter", now + 7, nil, nil, []string{"a"}, true, now + 7},
		{"not a voter itself", now + year, map[string]int64{"b": now, "c": now + 2}, nil, []string{"b", "c", "d"}, true, now},
		{"no configuration", now, nil, nil, nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newNetClock(time.Now)
			for p, ms := range tc.readings {
				age := tc.ages[p]
				// What the peer said age ago, when it arrived.
				c.readings[p] = clockReading{clockMs: ms - age.Milliseconds(), mono: mono.Add(-age)}
			}
			got := c.median(tc.voters, "a", tc.selfMs, mono)
			if got.OK != tc.wantOK || (tc.wantOK && got.Ms != tc.wantMs) {
				t.Fatalf("median = %+v, want ok=%v ms=%d (off by %d)", got, tc.wantOK, tc.wantMs, got.Ms-tc.wantMs)
			}
			if got.Voters != len(tc.voters) || got.Quorum != len(tc.voters)/2+1 {
				t.Fatalf("median = %+v for %d voters", got, len(tc.voters))
			}
		})
	}
}
