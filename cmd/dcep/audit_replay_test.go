package main

import (
	"bytes"
	"testing"

	"github.com/dcep/dcep/client"
)

// TestReplayExitStatus: a replay that re-validated nothing is not a pass
// (exit 5, its own code); a corrupt archive segment is an audit failure
// (exit 4); other node errors keep their usual treatment.
func TestReplayExitStatus(t *testing.T) {
	a := &app{}
	for _, c := range []struct {
		code string
		exit int
	}{
		{codeNothingReplayed, exitInconclusive},
		{codeHistoryUnavailable, exitInconclusive},
		{codeArchiveCorrupt, exitAudit},
		{client.CodeOverloaded, exitNetwork},
	} {
		err := replayError(&client.APIError{Code: c.code, Message: "m", Node: "http://n"})
		if ce := a.classify(runError{err}); ce.Code != c.code || ce.Exit != c.exit {
			t.Errorf("%s: exit %d code %s, want %d", c.code, ce.Exit, ce.Code, c.exit)
		}
	}
}

// TestReplayOutputNamesRange: the answer says which indexes were
// re-executed and where each part came from.
func TestReplayOutputNamesRange(t *testing.T) {
	var b bytes.Buffer
	writeReplay(&b, replayJSON{
		Node: "regulator-1", Reproduced: true, ToIndex: 120, FirstBlockIndex: 1, LastBlockIndex: 120, Blocks: 118, Transactions: 117,
		ArchiveSegments: 9, ArchiveFirstIndex: 1, ArchiveLastIndex: 100, FetchedSegments: 4, LogFirstIndex: 101, LogLastIndex: 120,
		ReplayedStateHash: "00112233445566778899",
	}, "regulator", "")
	want := "replay by regulator-1 (regulator) from genesis to index 120: 118 blocks, 117 transactions in 0s\n" +
		"re-executed every block of indexes 1..120 (the first at 1, the last at 120): 1..100 from 9 segments of the archive (4 segments fetched from other members first), 101..120 from the Raft log\n" +
		"every committed outcome reproduced; state hash 0011223344556677… at index 120 matches\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
