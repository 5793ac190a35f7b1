package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Scheduled work is what the ledger does by itself when ledger time reaches
// a moment: an offline purse expiring (SPEC §4), red packets granted or
// reclaimed at the end of a campaign (SPEC §5). Nobody submits a transaction
// per item; the work runs at the start of the first block whose ledger time
// is at or after the due time.
//
// Key: "q:" | due ms (8 bytes, big-endian) | job kind (1 byte) | id → payload.
// Due jobs run in key order (time, kind, id), so every node runs the same
// jobs in the same order. Each block spends at most ScheduledWorkPerBlock
// units; a job that is not finished keeps its key (with the payload it
// returns) and continues in the next block, so no block's size depends on
// how much work is due.

// JobKind names a kind of scheduled work. Each is registered once, by the
// file that owns the records it works on. Taken: 40 offline purse expiry
// (offline.go); 41 paying a bank's offline claims (offline_claims.go);
// 'G'..'R' (71..82) red-packet campaigns (campaign.go: 'G' grants, 'R'
// reclaim); 250 tests only (export_test.go).
type JobKind byte

// JobRunner does up to budget units of a job's work (a unit is about one
// record written, e.g. one output moved) and reports the units used and
// whether the job is finished. If it is not, next is the job's payload for
// the next block (nil keeps the current one). It must be deterministic and
// follow the same check-then-write discipline as transactions.
type JobRunner func(a *applier, id, payload []byte, budget int) (used int, done bool, next []byte)

// ScheduledWorkPerBlock bounds scheduled work per block.
const ScheduledWorkPerBlock = 5000

// maxDueJobsPerBlock bounds how many due jobs one block looks at.
const maxDueJobsPerBlock = 1000

var jobRunners [256]JobRunner

// registerJob is called from init functions; a kind registered twice is a
// programming error.
func registerJob(kind JobKind, run JobRunner) {
	if jobRunners[kind] != nil {
		panic(fmt.Sprintf("state: job kind %d registered twice", kind))
	}
	jobRunners[kind] = run
}

func keySchedule(dueMs int64, kind JobKind, id []byte) []byte {
	k := binary.BigEndian.AppendUint64(cat(prefixSchedule, nil), uint64(dueMs))
	return append(append(k, byte(kind)), id...)
}

// schedule adds (or replaces) a job.
func (a *applier) schedule(kind JobKind, dueMs int64, id, payload []byte) {
	if jobRunners[kind] == nil {
		a.fail("schedule: job kind %d has no runner", kind)
		return
	}
	a.setRaw(keySchedule(max(dueMs, 0), kind, id), payload)
}

type dueJob struct {
	key, payload []byte
}

// runScheduled runs due jobs within the block's budget.
func (a *applier) runScheduled() {
	jobs := a.dueJobs()
	budget := ScheduledWorkPerBlock
	for _, j := range jobs {
		if budget <= 0 || a.err != nil {
			return
		}
		rest := j.key[len(prefixSchedule)+8:]
		kind, id := JobKind(rest[0]), rest[1:]
		run := jobRunners[kind]
		if run == nil {
			a.fail("scheduled job kind %d has no runner", kind)
			return
		}
		used, done, next := run(a, id, j.payload, budget)
		budget -= max(used, 1)
		switch {
		case done:
			a.del(j.key)
		case next != nil:
			a.setRaw(j.key, next)
		}
	}
}

// dueJobs collects the jobs due at the block's ledger time before any runs,
// so running them (which may schedule or delete jobs) never disturbs the
// iteration.
func (a *applier) dueJobs() []dueJob {
	if a.err != nil {
		return nil
	}
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: prefixSchedule, UpperBound: keySchedule(a.timeMs+1, 0, nil)})
	if err != nil {
		a.err = fmt.Errorf("scan schedule: %w", err)
		return nil
	}
	defer it.Close()
	var jobs []dueJob
	for it.First(); it.Valid() && len(jobs) < maxDueJobsPerBlock; it.Next() {
		if len(it.Key()) < len(prefixSchedule)+9 {
			a.fail("schedule key %x too short", it.Key())
			return nil
		}
		jobs = append(jobs, dueJob{key: append([]byte(nil), it.Key()...), payload: append([]byte(nil), it.Value()...)})
	}
	if err := it.Error(); err != nil {
		a.err = fmt.Errorf("scan schedule: %w", err)
	}
	return jobs
}

// NextDueMs returns the due time of the earliest scheduled job, and false if
// none is scheduled. The leader uses it to propose an empty block when work
// is due and no transactions arrive, so ledger time moves on and the work
// runs without anyone acting.
func (s *Store) NextDueMs() (int64, bool) {
	var due int64
	found := false
	_ = s.read(func(r pebbleReader) error {
		return scan(r, prefixSchedule, prefixEnd(prefixSchedule), func(k, _ []byte) bool {
			if len(k) >= len(prefixSchedule)+8 {
				due, found = int64(binary.BigEndian.Uint64(k[len(prefixSchedule):])), true
			}
			return false
		})
	})
	return due, found
}
