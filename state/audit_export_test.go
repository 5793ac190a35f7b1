package state

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/dcep/dcep/state/statepb"
)

// SetRaw writes a record straight into the committed state, bypassing
// Apply: for tests that corrupt an index on purpose. The content hash then
// no longer matches, which is the first thing AuditSupply reports.
func SetRaw(s *Store, key string, value []byte) error {
	return s.db.Set([]byte(key), value, pebble.Sync)
}

// SetRawForged is SetRaw as a forger who also recomputes the meta's content
// and state hashes and the s: record of the applied index would do it: for
// tests of the audit's checks behind the content hash.
func SetRawForged(s *Store, key string, value []byte) error {
	if err := SetRaw(s, key, value); err != nil {
		return err
	}
	got, err := scanContent(s.db)
	if err != nil {
		return err
	}
	var m statepb.Meta
	if _, err := getProto(s.db, keyMeta, &m); err != nil {
		return err
	}
	m.ContentHash = got.bytes()
	m.StateHash = chainStateHash(m.GetPrevStateHash(), m.GetAppliedIndex(), m.GetLedgerTimeMs(), m.GetBlockDigest(), &got)
	b := s.db.NewBatch()
	defer b.Close()
	if err := setProto(b, keyMeta, &m); err != nil {
		return err
	}
	if err := b.Set(keyHashIndex(m.GetAppliedIndex()), m.GetStateHash(), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
