package state

import (
	"cmp"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// BankOffline is one bank's offline money (SPEC §6, "offline money
// outstanding per bank"), from the purse, incident and debt records of the
// bank's wallets (offline.go).
type BankOffline struct {
	BankID string
	// Purses by status.
	OpenPurses, ClosedPurses, ExpiredPurses, UnbackedPurses uint64
	// EscrowFen is the offline money outstanding: what the bank's wallets'
	// purses still hold (open purses, and closed ones holding back for
	// receipted payments not yet deposited).
	EscrowFen uint64
	// LoadedFen, SettledFen, ReturnedFen: loaded into purses, paid out to
	// payees, and returned to wallets, over all purses.
	LoadedFen, SettledFen, ReturnedFen uint64
	// Incidents: double spends by the bank's wallets; GuaranteeFen: what its
	// guarantee reserve paid for them; DebtFen: what its wallets still owe
	// it; UnpaidFen: what payees could not be paid.
	Incidents    uint64
	GuaranteeFen uint64
	DebtFen      uint64
	UnpaidFen    uint64
}

// OfflineByBank returns every bank's offline figures, in bank-id order, from
// one snapshot. It reads every purse: run it on demand.
func (s *Store) OfflineByBank() ([]BankOffline, error) {
	var out []BankOffline
	var fail error
	err := s.readSnapshot(func(r pebbleReader) error {
		at := map[string]int{}
		err := scan(r, prefixBank, prefixEnd(prefixBank), func(k, v []byte) bool {
			var b statepb.BankRecord
			if fail = proto.Unmarshal(v, &b); fail != nil {
				return false
			}
			at[b.GetBank().GetId()] = len(out)
			out = append(out, BankOffline{BankID: b.GetBank().GetId()})
			return true
		})
		if err = cmp.Or(err, fail); err != nil {
			return err
		}
		bank := func(id string) *BankOffline {
			if i, ok := at[id]; ok {
				return &out[i]
			}
			fail = invariant("offline record of unknown bank %q", id)
			return nil
		}
		err = scan(r, keyOff('p'), prefixEnd(keyOff('p')), func(k, v []byte) bool {
			var p statepb.PurseRecord
			if err := proto.Unmarshal(v, &p); err != nil {
				fail = invariant("purse %q: %v", k, err)
				return false
			}
			b := bank(p.GetBankId())
			if b == nil {
				return false
			}
			switch p.GetStatus() {
			case statepb.PurseStatus_PURSE_STATUS_OPEN:
				b.OpenPurses++
			case statepb.PurseStatus_PURSE_STATUS_CLOSED:
				b.ClosedPurses++
			case statepb.PurseStatus_PURSE_STATUS_EXPIRED:
				b.ExpiredPurses++
			case statepb.PurseStatus_PURSE_STATUS_UNBACKED:
				b.UnbackedPurses++
			}
			b.EscrowFen = satAdd(b.EscrowFen, p.GetEscrowFen())
			if p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_UNBACKED {
				b.LoadedFen = satAdd(b.LoadedFen, p.GetAmountFen())
			}
			b.SettledFen = satAdd(b.SettledFen, p.GetSettledFen())
			b.ReturnedFen = satAdd(b.ReturnedFen, p.GetReturnedFen())
			return true
		})
		if err = cmp.Or(err, fail); err != nil {
			return err
		}
		err = scan(r, keyOff('i'), prefixEnd(keyOff('i')), func(k, v []byte) bool {
			var inc statepb.Incident
			if err := proto.Unmarshal(v, &inc); err != nil {
				fail = invariant("incident %q: %v", k, err)
				return false
			}
			b := bank(inc.GetBankId())
			if b == nil {
				return false
			}
			b.Incidents++
			b.GuaranteeFen = satAdd(b.GuaranteeFen, inc.GetFromGuaranteeFen())
			return true
		})
		if err = cmp.Or(err, fail); err != nil {
			return err
		}
		err = scan(r, keyOff('b'), prefixEnd(keyOff('b')), func(k, v []byte) bool {
			var d statepb.OfflineDebt
			if err := proto.Unmarshal(v, &d); err != nil {
				fail = invariant("offline debt %q: %v", k, err)
				return false
			}
			b := bank(d.GetBankId())
			if b == nil {
				return false
			}
			b.DebtFen = satAdd(b.DebtFen, d.GetDebtFen())
			b.UnpaidFen = satAdd(b.UnpaidFen, d.GetUnpaidFen())
			return true
		})
		return cmp.Or(err, fail)
	})
	return out, err
}
