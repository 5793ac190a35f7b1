package state

import (
	"strings"
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
func KeyTx(id []byte) string { return string(keyTx(id)) }

// Bookkeeping reports whether key is one that every applied block writes
// whatever its transactions do: meta, the state hash index and the block's
// outcome record.
func Bookkeeping(key string) bool {
	return key == string(keyMeta) || strings.HasPrefix(key, string(prefixHashIndex)) || strings.HasPrefix(key, string(prefixBlock))
}
