package state

import "github.com/VictoriaMetrics/fastcache"

// recordCache holds serialized committed records (wallets, unspent
// outputs) between Apply calls, so the applier need not read busy records
// from Pebble again and again. It always equals committed state: it is
// written only after a commit succeeded (update), cleared by Restore, and
// a miss just reads Pebble. Only the applying goroutine writes it.
//
// The entries live in fastcache's off-heap chunks, not in Go maps: a few
// hundred thousand map entries per node made every GC cycle scan them,
// and on a loaded node each cycle's marking was a latency spike
// (docs/PERFORMANCE.md). When full, fastcache overwrites its oldest
// entries; keys are compared on lookup, so a hash collision is a miss.
type recordCache struct {
	c *fastcache.Cache
}

// Cache sizes. fastcache allocates its chunks as they fill, so a small
// ledger uses little of them.
const (
	walletCacheBytes = 32 << 20 // ≈ 150k wallets
	outputCacheBytes = 64 << 20 // ≈ 400k outputs
)

func newRecordCache(maxBytes int) recordCache {
	return recordCache{c: fastcache.New(maxBytes)}
}

func (r recordCache) get(k []byte) ([]byte, bool) { return r.c.HasGet(nil, k) }

// update applies what one committed Apply call wrote: a value to keep, or
// nil for a record that is gone (a spent output).
func (r recordCache) update(vs map[string][]byte) {
	for k, v := range vs {
		if v == nil {
			r.c.Del([]byte(k))
		} else {
			r.c.Set([]byte(k), v)
		}
	}
}

func (r recordCache) clear() { r.c.Reset() }
