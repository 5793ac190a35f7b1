package state

import (
	"cmp"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// BankOffline is one bank's offline money and liability (SPEC §4, §6:
// "offline money outstanding per bank"; docs/offline.md, "Who pays"), from
// the purse, settlement, incident, debt and claim records of the payments
// it certified.
type BankOffline struct {
	BankID string
	// Purses by status.
	OpenPurses, ClosedPurses, ExpiredPurses, UnbackedPurses uint64
	// EscrowFen is the offline money outstanding: what the bank's wallets'
	// purses still hold (open purses, and closed ones holding back for
	// receipted payments not yet deposited).
	EscrowFen uint64
	// LoadedFen and ReturnedFen: loaded into purses and returned to
	// wallets, over all purses.
	LoadedFen, ReturnedFen uint64

	// Cover: the bank's exposure (its purses until their deadline), what
	// its guarantee wallet holds, and what the genesis cover ratio needs of
	// it for that exposure.
	ExposureFen, GuaranteeHeldFen, CoverNeededFen uint64

	// Payments settled under the bank's certificates: how many, what their
	// payees were owed (ClaimedFen) and where it came from. Always
	// ClaimedFen = PaidFen + UnpaidFen, and PaidFen = FromEscrowFen +
	// FromPayerFen + FromGuaranteeFen + FromReserveFen + PaidLaterFen.
	Payments                                      uint64
	ClaimedFen, PaidFen                           uint64
	FromEscrowFen, FromPayerFen, FromGuaranteeFen uint64
	FromReserveFen, PaidLaterFen, UnpaidFen       uint64
	ClaimsOpen                                    uint64
	// Incidents are the double spends by the bank's wallets; Incident the
	// same figures summed over them alone.
	Incidents uint64
	Incident  IncidentSums
	// Debts of the bank's wallets for offline payments: outstanding,
	// repaid, and how many wallets owe.
	DebtFen, RepaidFen, Debtors uint64
}

// IncidentSums add up incidents' figures.
type IncidentSums struct {
	ClaimFen, FromEscrowFen, FromPayerFen, FromGuaranteeFen, FromReserveFen, PaidLaterFen, UnpaidFen, DebtFen uint64
}

// Add adds one incident.
func (s *IncidentSums) Add(i *statepb.Incident) {
	s.ClaimFen = satAdd(s.ClaimFen, i.GetClaimFen())
	s.FromEscrowFen = satAdd(s.FromEscrowFen, i.GetFromEscrowFen())
	s.FromPayerFen = satAdd(s.FromPayerFen, i.GetFromPayerFen())
	s.FromGuaranteeFen = satAdd(s.FromGuaranteeFen, i.GetFromGuaranteeFen())
	s.FromReserveFen = satAdd(s.FromReserveFen, i.GetFromReserveFen())
	s.PaidLaterFen = satAdd(s.PaidLaterFen, i.GetPaidLaterFen())
	s.UnpaidFen = satAdd(s.UnpaidFen, i.GetUnpaidFen())
	s.DebtFen = satAdd(s.DebtFen, i.GetDebtFen())
}

// OfflineByBank returns every bank's offline figures, in bank-id order, from
// one snapshot. It reads every purse, settlement, incident and debt: run it
// on demand.
func (s *Store) OfflineByBank() ([]BankOffline, error) {
	var out []BankOffline
	err := s.readSnapshot(func(r pebbleReader) error {
		at := map[string]int{}
		var fail error
		err := scan(r, prefixBank, prefixEnd(prefixBank), func(k, v []byte) bool {
			var b statepb.BankRecord
			if fail = proto.Unmarshal(v, &b); fail != nil {
				return false
			}
			at[b.GetBank().GetId()] = len(out)
			bo, err := bankOfflineFigures(r, b.GetBank(), s.genesis.GetOffline().GetGuaranteeCoverBps())
			fail = err
			out = append(out, bo)
			return fail == nil
		})
		if err = cmp.Or(err, fail); err != nil {
			return err
		}
		bank := func(id string) (*BankOffline, error) {
			if i, ok := at[id]; ok {
				return &out[i], nil
			}
			return nil, invariant("offline record of unknown bank %q", id)
		}
		for _, add := range []func(pebbleReader, func(string) (*BankOffline, error)) error{addPurses, addSettlements, addIncidents, addDebts} {
			if err := add(r, bank); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// bankOfflineFigures starts a bank's figures from its offline record and
// its guarantee wallet.
func bankOfflineFigures(r pebbleReader, bank *statepb.Bank, coverBps uint32) (BankOffline, error) {
	b := BankOffline{BankID: bank.GetId()}
	var rec statepb.BankOfflineRecord
	if _, err := getProto(r, keyBankOffline(bank.GetId()), &rec); err != nil {
		return b, err
	}
	b.ExposureFen, b.ClaimsOpen = rec.GetExposureFen(), rec.GetClaimsOpen()
	b.CoverNeededFen = CoverNeededFen(rec.GetExposureFen(), coverBps)
	if id := bank.GetGuaranteeWalletId(); id != "" {
		var w statepb.WalletRecord
		if _, err := getProto(r, keyWallet(id), &w); err != nil {
			return b, err
		}
		b.GuaranteeHeldFen = w.GetBalanceFen()
	}
	return b, nil
}

// offScan scans one offline table, decoding each record into a fresh m()
// and handing it to fn with the record's bank.
func offScan[M proto.Message](r pebbleReader, table byte, what string, m func() M, bankOf func(M) string,
	bank func(string) (*BankOffline, error), fn func(*BankOffline, M)) error {
	var fail error
	err := scan(r, keyOff(table), prefixEnd(keyOff(table)), func(k, v []byte) bool {
		rec := m()
		if err := proto.Unmarshal(v, rec); err != nil {
			fail = invariant("%s %q: %v", what, k, err)
			return false
		}
		var b *BankOffline
		if b, fail = bank(bankOf(rec)); fail != nil {
			return false
		}
		fn(b, rec)
		return true
	})
	return cmp.Or(err, fail)
}

func addPurses(r pebbleReader, bank func(string) (*BankOffline, error)) error {
	return offScan(r, 'p', "purse", func() *statepb.PurseRecord { return &statepb.PurseRecord{} }, (*statepb.PurseRecord).GetBankId, bank,
		func(b *BankOffline, p *statepb.PurseRecord) {
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
			b.ReturnedFen = satAdd(b.ReturnedFen, p.GetReturnedFen())
		})
}

func addSettlements(r pebbleReader, bank func(string) (*BankOffline, error)) error {
	return offScan(r, 'h', "settlement", func() *statepb.Settlement { return &statepb.Settlement{} }, (*statepb.Settlement).GetBankId, bank,
		func(b *BankOffline, s *statepb.Settlement) {
			b.Payments++
			b.ClaimedFen = satAdd(b.ClaimedFen, s.GetAmountFen())
			b.PaidFen = satAdd(b.PaidFen, s.GetAmountFen()-min(s.GetUnpaidFen(), s.GetAmountFen()))
			b.FromEscrowFen = satAdd(b.FromEscrowFen, s.GetFromEscrowFen())
			b.FromPayerFen = satAdd(b.FromPayerFen, s.GetFromPayerFen())
			b.FromGuaranteeFen = satAdd(b.FromGuaranteeFen, s.GetFromGuaranteeFen())
			b.FromReserveFen = satAdd(b.FromReserveFen, s.GetFromReserveFen())
			b.PaidLaterFen = satAdd(b.PaidLaterFen, s.GetPaidLaterFen())
			b.UnpaidFen = satAdd(b.UnpaidFen, s.GetUnpaidFen())
		})
}

func addIncidents(r pebbleReader, bank func(string) (*BankOffline, error)) error {
	return offScan(r, 'i', "incident", func() *statepb.Incident { return &statepb.Incident{} }, (*statepb.Incident).GetBankId, bank,
		func(b *BankOffline, i *statepb.Incident) {
			b.Incidents++
			b.Incident.Add(i)
		})
}

func addDebts(r pebbleReader, bank func(string) (*BankOffline, error)) error {
	return offScan(r, 'b', "offline debt", func() *statepb.OfflineDebt { return &statepb.OfflineDebt{} }, (*statepb.OfflineDebt).GetBankId, bank,
		func(b *BankOffline, d *statepb.OfflineDebt) {
			b.DebtFen = satAdd(b.DebtFen, d.GetDebtFen())
			b.RepaidFen = satAdd(b.RepaidFen, d.GetRepaidFen())
			if d.GetDebtFen() > 0 {
				b.Debtors++
			}
		})
}
