package state

import "github.com/cockroachdb/pebble/v2"

// SetRaw writes a record straight into the committed state, bypassing
// Apply: for tests that corrupt an index on purpose.
func SetRaw(s *Store, key string, value []byte) error {
	return s.db.Set([]byte(key), value, pebble.Sync)
}
