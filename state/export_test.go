package state

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// KV is one stored record, for tests that compare whole states.
type KV struct{ Key, Value string }

// DumpState returns every record of the committed state in key order.
func DumpState(s *Store) ([]KV, error) {
	var out []KV
	err := s.readSnapshot(func(r pebbleReader) error {
		return scan(r, nil, nil, func(k, v []byte) bool {
			out = append(out, KV{string(k), string(v)})
			return true
		})
	})
	return out, err
}

// KeyTx is the key of a transaction's recorded outcome.
// CheckOldValues turns on (or off) the check of every old value a write
// names against the batch (apply.go).
func CheckOldValues(on bool) { checkOldValues = on }

func KeyTx(id []byte) string { return string(keyTx(id)) }

// KeyMessage is the key of a recorded rejection's message, as a string.
func KeyMessage(id []byte) string { return string(keyMessage(id)) }

// Bookkeeping reports whether key is one that every applied block writes
// whatever its transactions do: meta, the state hash index and the block's
// outcome record.
func Bookkeeping(key string) bool {
	return key == string(keyMeta) || strings.HasPrefix(key, string(prefixHashIndex)) || strings.HasPrefix(key, string(prefixBlock))
}

// testJob is a scheduled job kind used only by tests: its payload is the
// number of units left; each unit writes one "zz:" record.
const testJob JobKind = 250

func init() {
	registerJob(testJob, func(a *applier, id, payload []byte, budget int) (int, bool, []byte) {
		left := int(binary.BigEndian.Uint32(payload))
		n := min(left, budget)
		for i := range n {
			a.setRaw([]byte(fmt.Sprintf("zz:%s:%06d", id, left-i)), nil)
		}
		left -= n
		return n, left == 0, binary.BigEndian.AppendUint32(nil, uint32(left))
	})
}

// ScheduleTestJob schedules a test job of units units due at dueMs, written
// straight into the committed state (as a transaction kind would).
func ScheduleTestJob(s *Store, dueMs int64, id string, units uint32) error {
	return s.db.Set(keySchedule(dueMs, testJob, []byte(id)), binary.BigEndian.AppendUint32(nil, units), pebble.Sync)
}

// ContentHash is the content hash of kvs (unhashed keys left out), as
// meta's content_hash holds it.
func ContentHash(kvs []KV) []byte {
	recs := make([]record, len(kvs))
	for i, kv := range kvs {
		recs[i] = record{[]byte(kv.Key), []byte(kv.Value)}
	}
	h := contentOf(recs)
	return h.bytes()
}

// ChainStateHash is the state hash after a block (apply.go).
func ChainStateHash(prev []byte, index uint64, timeMs int64, digest, content []byte) []byte {
	h, ok := ltFromBytes(content)
	if !ok {
		panic("content hash of the wrong size")
	}
	return chainStateHash(prev, index, timeMs, digest, &h)
}

// KeyHashIndex is the key of the state hash recorded for index.
func KeyHashIndex(index uint64) string { return string(keyHashIndex(index)) }

// SigStats is how many signatures the store verified and in how many
// verify calls (batches).
func SigStats(s *Store) (sigs, batches uint64) {
	return s.sigStats.sigs.Load(), s.sigStats.batches.Load()
}
