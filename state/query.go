package state

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Queries read committed state. Each is consistent with itself (one Pebble
// snapshot or one key) and may run concurrently with Apply.

// MaxPageSize bounds one page of any listing.
const MaxPageSize = 1000

// Wallet returns a wallet, or ErrNotFound.
func (s *Store) Wallet(id string) (*statepb.WalletRecord, error) {
	var w statepb.WalletRecord
	err := s.getOne(keyWallet(id), &w)
	return readableWallet(&w), err
}

// Tx returns a recorded transaction with its outcome (message included),
// or ErrNotFound.
func (s *Store) Tx(id []byte) (*statepb.TxRecord, error) {
	var r statepb.TxRecord
	err := s.read(func(db pebbleReader) error {
		found, err := getProto(db, keyTx(id), &r)
		if err == nil && !found {
			return ErrNotFound
		}
		if err == nil {
			err = fillMessage(db, r.GetResult())
		}
		return err
	})
	return &r, err
}

// fillMessage sets a recorded rejection's message from the unhashed table
// (keyMessage); an OK outcome has none.
func fillMessage(r getter, res *statepb.TxResult) error {
	if res == nil || res.GetCode() == statepb.Code_CODE_OK || res.GetMessage() != "" {
		return nil
	}
	v, c, err := r.Get(keyMessage(res.GetTxId()))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get message: %w", err)
	}
	res.Message = string(v)
	return c.Close()
}

// Supply returns the supply totals.
func (s *Store) Supply() (*statepb.Supply, error) {
	var sp statepb.Supply
	return &sp, s.getOne(keySupply, &sp)
}

// StateHashAt returns the state hash recorded after applying log index i,
// or ErrNotFound if no block was applied at i.
func (s *Store) StateHashAt(i uint64) ([]byte, error) {
	var out []byte
	err := s.read(func(r pebbleReader) error {
		v, c, err := r.Get(keyHashIndex(i))
		if err != nil {
			return err
		}
		out = append([]byte(nil), v...)
		return c.Close()
	})
	return out, err
}

func (s *Store) getOne(key []byte, m proto.Message) error {
	return s.read(func(r pebbleReader) error {
		found, err := getProto(r, key, m)
		if err == nil && !found {
			return ErrNotFound
		}
		return err
	})
}

// pebbleReader is what *pebble.DB and *pebble.Snapshot share.
type pebbleReader interface {
	getter
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// read runs fn against the open database, mapping Pebble's not-found.
func (s *Store) read(fn func(pebbleReader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	err := fn(s.db)
	if err == pebble.ErrNotFound {
		return ErrNotFound
	}
	return err
}

// readSnapshot runs fn against a snapshot, for multi-key reads.
func (s *Store) readSnapshot(fn func(pebbleReader) error) error {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return ErrClosed
	}
	snap := s.db.NewSnapshot()
	s.mu.RUnlock()
	defer snap.Close()
	return fn(snap)
}

// Unspent is one unspent output of a wallet.
type Unspent struct {
	Outpoint  *statepb.Outpoint
	AmountFen uint64
	// CampaignID: a red packet of that campaign (SPEC §5), spendable only
	// under its conditions.
	CampaignID string
}

// Unspents lists a wallet's unspent outputs in key order, starting after
// the outpoint after (nil: from the start), at most limit (≤ MaxPageSize).
func (s *Store) Unspents(walletID string, after *statepb.Outpoint, limit int) ([]Unspent, error) {
	limit = pageSize(limit)
	prefix := keyUnspentPrefix(walletID)
	lower := prefix
	if after != nil {
		lower = append(keyUnspent(walletID, after), 0)
	}
	var out []Unspent
	var derr error
	err := s.readSnapshot(func(r pebbleReader) error {
		return scan(r, lower, prefixEnd(prefix), func(k, v []byte) bool {
			rest := k[len(prefix):]
			var o *statepb.OutputRecord
			if o, derr = outputRecord(k, v); derr != nil || len(rest) != statepb.TxIDBytes+4 {
				derr = cmp.Or(derr, invariant("output key %q", k))
				return false
			}
			out = append(out, Unspent{
				Outpoint:  &statepb.Outpoint{TxId: append([]byte(nil), rest[:statepb.TxIDBytes]...), Index: binary.BigEndian.Uint32(rest[statepb.TxIDBytes:])},
				AmountFen: o.GetAmountFen(), CampaignID: o.GetCampaignId(),
			})
			return len(out) < limit
		})
	})
	return out, cmp.Or(err, derr)
}

// History returns a wallet's history newest first, starting below sequence
// before (0: from the newest), at most limit entries, and the sequence to
// pass for the next page (0 when there is none).
func (s *Store) History(walletID string, before uint64, limit int) ([]*statepb.HistoryEntry, uint64, error) {
	limit = pageSize(limit)
	prefix := keyHistoryPrefix(walletID)
	upper := prefixEnd(prefix)
	if before > 0 {
		upper = keyHistory(walletID, before)
	}
	var out []*statepb.HistoryEntry
	var next uint64
	err := s.readSnapshot(func(r pebbleReader) error {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		for it.Last(); it.Valid(); it.Prev() {
			seq := binary.BigEndian.Uint64(it.Key()[len(prefix):])
			if len(out) == limit {
				next = seq + 1
				break
			}
			var e statepb.HistoryEntry
			if err := proto.Unmarshal(it.Value(), &e); err != nil {
				return fmt.Errorf("%w: history %q/%d: %v", ErrInvariant, walletID, seq, err)
			}
			out = append(out, readableHistory(&e))
		}
		return it.Error()
	})
	return out, next, err
}

// Wallets lists wallets in id order after the id after, at most limit.
func (s *Store) Wallets(after string, limit int) ([]*statepb.WalletRecord, error) {
	limit = pageSize(limit)
	lower := keyWallet("")
	if after != "" {
		lower = append(keyWallet(after), 0)
	}
	var out []*statepb.WalletRecord
	var derr error
	err := s.readSnapshot(func(r pebbleReader) error {
		return scan(r, lower, prefixEnd(prefixWallet), func(_, v []byte) bool {
			var w statepb.WalletRecord
			if derr = proto.Unmarshal(v, &w); derr != nil {
				return false
			}
			out = append(out, readableWallet(&w))
			return len(out) < limit
		})
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// Banks returns the operating banks with their issued and returned totals.
func (s *Store) Banks() ([]*statepb.BankRecord, error) {
	var out []*statepb.BankRecord
	err := s.scanAll(prefixBank, func() proto.Message { return &statepb.BankRecord{} }, func(m proto.Message) {
		out = append(out, m.(*statepb.BankRecord))
	})
	return out, err
}

// Members returns the current network membership in name order.
func (s *Store) Members() ([]*statepb.Node, error) {
	var out []*statepb.Node
	err := s.scanAll(prefixMember, func() proto.Message { return &statepb.Node{} }, func(m proto.Message) {
		out = append(out, m.(*statepb.Node))
	})
	return out, err
}

// scanAll decodes every record of a small table.
func (s *Store) scanAll(prefix []byte, mk func() proto.Message, fn func(proto.Message)) error {
	return s.scanRange(prefix, prefixEnd(prefix), mk, func(m proto.Message) bool { fn(m); return true })
}

// scanRange decodes records in [lower, upper) until fn returns false.
func (s *Store) scanRange(lower, upper []byte, mk func() proto.Message, fn func(proto.Message) bool) error {
	var derr error
	err := s.readSnapshot(func(r pebbleReader) error {
		return scan(r, lower, upper, func(k, v []byte) bool {
			m := mk()
			if derr = proto.Unmarshal(v, m); derr != nil {
				derr = fmt.Errorf("%w: decode %q: %v", ErrInvariant, k, derr)
				return false
			}
			return fn(m)
		})
	})
	if err == nil {
		err = derr
	}
	return err
}

// scan calls fn for each key in [lower, upper) until it returns false.
func scan(r pebbleReader, lower, upper []byte, fn func(k, v []byte) bool) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

func pageSize(limit int) int {
	if limit <= 0 || limit > MaxPageSize {
		return MaxPageSize
	}
	return limit
}

// Blocks returns the recorded outcomes of applied blocks from log index
// from on, in order, at most limit, messages included. Indexes that
// carried no block (Raft configuration entries) are absent.
func (s *Store) Blocks(from uint64, limit int) ([]*statepb.BlockRecord, error) {
	limit = pageSize(limit)
	var out []*statepb.BlockRecord
	err := s.read(func(r pebbleReader) error {
		var fail error
		err := scan(r, keyBlock(from), prefixEnd(prefixBlock), func(_, v []byte) bool {
			b := &statepb.BlockRecord{}
			if fail = proto.Unmarshal(v, b); fail != nil {
				fail = fmt.Errorf("%w: decode block: %v", ErrInvariant, fail)
				return false
			}
			for _, res := range b.GetResults() {
				if fail = fillMessage(r, res); fail != nil {
					return false
				}
			}
			out = append(out, b)
			return len(out) < limit
		})
		return cmp.Or(fail, err)
	})
	return out, err
}

// Footprint counts the records the state hash covers and their bytes (keys
// and values), from one consistent snapshot: a full scan. The bound on
// state growth (state/DESIGN.md, "Bounded growth") is stated in it.
func (s *Store) Footprint() (records, bytes uint64, err error) {
	err = s.readSnapshot(func(r pebbleReader) error {
		return scan(r, nil, nil, func(k, v []byte) bool {
			if hashed(k) {
				records++
				bytes += uint64(len(k) + len(v))
			}
			return true
		})
	})
	return records, bytes, err
}

// DiskBytes is what Pebble's files of the state take on disk now.
func (s *Store) DiskBytes() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, ErrClosed
	}
	return s.db.Metrics().DiskSpaceUsage(), nil
}
