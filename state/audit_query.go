package state

import (
	"bytes"
	"cmp"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Queries of the regulator indexes (audit.go). Each reads one consistent
// snapshot and may run concurrently with Apply.

// BeijingDay is the number of Beijing-time (UTC+8) days since 1970-01-01 at
// ledger time ms: the day the per-bank activity index uses.
func BeijingDay(ms int64) int64 { return beijingDay(ms) }

// BeijingDayStartMs is the ledger time at which a Beijing day begins.
func BeijingDayStartMs(day int64) int64 { return day*msPerDay - 8*3600*1000 }

// LargeQuery selects large payments.
type LargeQuery struct {
	// FromMs and ToMs bound ledger time: FromMs ≤ time < ToMs (ToMs 0: no
	// upper bound).
	FromMs, ToMs int64
	// Bank, if set, keeps payments in which the bank is the payer's or a
	// payee's.
	Bank string
	// NewestFirst lists from ToMs backwards.
	NewestFirst bool
	// PageToken continues where the previous page ended (its next token).
	PageToken []byte
	// Limit bounds the page (≤ MaxPageSize; 0: MaxPageSize).
	Limit int
}

// maxLargeScan bounds how many index entries one filtered page reads; a
// page may then be short, with a next token to go on from.
const maxLargeScan = 100_000

// LargePayments lists payments at or above the reporting threshold in
// ledger-time order (or newest first), and the token of the next page (nil
// when there is none). The token is the index key of the last entry read.
func (s *Store) LargePayments(q LargeQuery) ([]*statepb.LargePayment, []byte, error) {
	limit := pageSize(q.Limit)
	lower := keyLarge(q.FromMs, 0, nil)
	upper := prefixEnd(prefixLarge)
	if q.ToMs > 0 {
		upper = keyLarge(q.ToMs, 0, nil)
	}
	if len(q.PageToken) > 0 {
		tok := cat(prefixLarge, q.PageToken)
		if q.NewestFirst {
			upper = minKey(upper, tok) // strictly before the token
		} else if bytes.Compare(tok, lower) >= 0 {
			lower = append(tok, 0) // strictly after the token
		}
	}
	if bytes.Compare(lower, upper) >= 0 {
		return nil, nil, nil
	}
	var out []*statepb.LargePayment
	var next, last []byte
	var derr error
	scanned := 0
	visit := func(k, v []byte) bool {
		if len(out) == limit || scanned == maxLargeScan {
			next = last // more remain: go on after the last entry read
			return false
		}
		scanned++
		last = append(last[:0:0], k[len(prefixLarge):]...)
		var p statepb.LargePayment
		if err := proto.Unmarshal(v, &p); err != nil {
			derr = invariant("large payment %q: %v", k, err)
			return false
		}
		if q.Bank == "" || involves(&p, q.Bank) {
			out = append(out, &p)
		}
		return true
	}
	err := s.readSnapshot(func(r pebbleReader) error {
		if q.NewestFirst {
			return scanReverse(r, lower, upper, visit)
		}
		return scan(r, lower, upper, visit)
	})
	return out, next, cmp.Or(err, derr)
}

func minKey(a, b []byte) []byte {
	if bytes.Compare(a, b) <= 0 {
		return a
	}
	return b
}

// scanReverse calls fn for each key in [lower, upper), last first, until it
// returns false.
func scanReverse(r pebbleReader, lower, upper []byte, fn func(k, v []byte) bool) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.Last(); it.Valid(); it.Prev() {
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

func involves(p *statepb.LargePayment, bank string) bool {
	if p.GetPayerBank() == bank {
		return true
	}
	for _, l := range p.GetPayees() {
		if l.GetBankId() == bank {
			return true
		}
	}
	return false
}

// BankDays returns per-bank activity for Beijing days from fromDay to toDay
// inclusive, day by day and in bank-id order within a day, for one bank if
// bank is set. At most MaxPageSize records.
func (s *Store) BankDays(fromDay, toDay int64, bank string) ([]*statepb.BankDay, error) {
	if toDay < fromDay {
		return nil, nil
	}
	var out []*statepb.BankDay
	err := s.scanRange(keyDay(fromDay, ""), keyDay(toDay+1, ""), func() proto.Message { return &statepb.BankDay{} }, func(m proto.Message) bool {
		d := m.(*statepb.BankDay)
		if bank == "" || d.GetBankId() == bank {
			out = append(out, readableBankDay(d))
		}
		return len(out) < MaxPageSize
	})
	return out, err
}

// Frozen is a frozen-index entry and what the wallet holds.
type Frozen struct {
	Record     *statepb.FrozenWallet
	BalanceFen uint64
}

// FrozenWallets lists frozen wallets in id order after the id after, at
// most limit, of one bank if bank is set, with their balances (one
// snapshot).
func (s *Store) FrozenWallets(after, bank string, limit int) ([]Frozen, error) {
	limit = pageSize(limit)
	lower := keyFrozen("")
	if after != "" {
		lower = append(keyFrozen(after), 0)
	}
	var out []Frozen
	var fail error
	err := s.readSnapshot(func(r pebbleReader) error {
		return scan(r, lower, prefixEnd(prefixFrozen), func(k, v []byte) bool {
			f := &statepb.FrozenWallet{}
			if err := proto.Unmarshal(v, f); err != nil {
				fail = invariant("frozen index %q: %v", k, err)
				return false
			}
			if bank != "" && f.GetBankId() != bank {
				return true
			}
			var w statepb.WalletRecord
			if _, err := getProto(r, keyWallet(f.GetWalletId()), &w); err != nil {
				fail = err
				return false
			}
			out = append(out, Frozen{Record: readableFrozen(f), BalanceFen: w.GetBalanceFen()})
			return len(out) < limit
		})
	})
	return out, cmp.Or(err, fail)
}

// BlockAt returns the recorded outcomes of the block applied at log index
// i as hashed, without messages (they may differ between releases; a
// replay compares what the rules decided), or ErrNotFound.
func (s *Store) BlockAt(i uint64) (*statepb.BlockRecord, error) {
	var b statepb.BlockRecord
	return &b, s.getOne(keyBlock(i), &b)
}

// checkIndexes is AuditSupply's check of the regulator indexes against the
// state: every frozen-index entry names a frozen wallet and every frozen
// wallet has one.
func (a *Audit) checkIndexes(r pebbleReader) error {
	var n uint64
	var fail error
	err := scan(r, prefixFrozen, prefixEnd(prefixFrozen), func(k, v []byte) bool {
		var f statepb.FrozenWallet
		if err := proto.Unmarshal(v, &f); err != nil {
			fail = invariant("frozen index %q: %v", k, err)
			return false
		}
		var w statepb.WalletRecord
		found, err := getProto(r, keyWallet(f.GetWalletId()), &w)
		switch {
		case err != nil:
			fail = err
		case !found:
			fail = invariant("frozen index names wallet %q, which does not exist", f.GetWalletId())
		case w.GetStatus() != statepb.WalletStatus_WALLET_STATUS_FROZEN:
			fail = invariant("frozen index names wallet %q, whose status is %s", f.GetWalletId(), w.GetStatus())
		}
		n++
		return fail == nil
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if n != a.FrozenWallets {
		return invariant("%d wallets are frozen but the frozen index lists %d", a.FrozenWallets, n)
	}
	return nil
}
