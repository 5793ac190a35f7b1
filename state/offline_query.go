package state

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Queries of the offline records (offline.go). Each reads committed state.

// Purse returns a purse, or ErrNotFound.
func (s *Store) Purse(id []byte) (*statepb.PurseRecord, error) {
	var p statepb.PurseRecord
	return &p, s.getOne(keyPurse(id), &p)
}

// Settlement returns the settlement of a payment by its hash, or
// ErrNotFound.
func (s *Store) Settlement(paymentHash []byte) (*statepb.Settlement, error) {
	var st statepb.Settlement
	return &st, s.getOne(keySettlement(paymentHash), &st)
}

// PurseSettlements returns the payments settled first at each counter of a
// purse, in counter order, from counter from on, at most limit. (A payment
// that conflicted with one of them is in its incident.)
func (s *Store) PurseSettlements(purseID []byte, from uint32, limit int) ([]*statepb.Settlement, error) {
	limit = pageSize(limit)
	var out []*statepb.Settlement
	var derr error
	err := s.readSnapshot(func(r pebbleReader) error {
		prefix := keyOff('s', purseID)
		return scan(r, keySlot(purseID, from), prefixEnd(prefix), func(k, v []byte) bool {
			var st statepb.Settlement
			found, err := getProto(r, keySettlement(v), &st)
			if err != nil || !found {
				derr = cmp.Or(err, invariant("slot %x has no settlement", k))
				return false
			}
			out = append(out, &st)
			return len(out) < limit
		})
	})
	return out, cmp.Or(err, derr)
}

// Incident returns an incident, or ErrNotFound.
func (s *Store) Incident(id uint64) (*statepb.Incident, error) {
	var i statepb.Incident
	return &i, s.getOne(keyIncident(id), &i)
}

// Incidents lists incidents with ids above after, in id order, at most
// limit.
func (s *Store) Incidents(after uint64, limit int) ([]*statepb.Incident, error) {
	limit = pageSize(limit)
	var out []*statepb.Incident
	err := s.scanRange(keyIncident(after+1), prefixEnd(keyOff('i')), func() proto.Message { return &statepb.Incident{} }, func(m proto.Message) bool {
		out = append(out, m.(*statepb.Incident))
		return len(out) < limit
	})
	return out, err
}

// Revocations lists the device revocation list from index after+1 on, in
// order, at most limit: what a device that has synced up to after still
// needs.
func (s *Store) Revocations(after uint64, limit int) ([]*statepb.Revocation, error) {
	limit = pageSize(limit)
	var out []*statepb.Revocation
	err := s.scanRange(keyRevocation(after+1), prefixEnd(keyOff('r')), func() proto.Message { return &statepb.Revocation{} }, func(m proto.Message) bool {
		out = append(out, readableRevocation(m.(*statepb.Revocation)))
		return len(out) < limit
	})
	return out, err
}

// DeviceRevocation returns a device's revocation, or ErrNotFound if it is
// not revoked.
func (s *Store) DeviceRevocation(device []byte) (*statepb.Revocation, error) {
	var r statepb.Revocation
	err := s.getOne(keyDeviceRevoked(device), &r)
	return readableRevocation(&r), err
}

// OfflineTx returns what an offline transaction did beyond its outcome
// (output owners, a deposit's per-payment results), or ErrNotFound.
func (s *Store) OfflineTx(txID []byte) (*statepb.OfflineTxRecord, error) {
	var r statepb.OfflineTxRecord
	return &r, s.getOne(keyOfflineTx(txID), &r)
}

// OfflineDebt returns a wallet's offline debt to its bank, or ErrNotFound
// if it never had any.
func (s *Store) OfflineDebt(walletID string) (*statepb.OfflineDebt, error) {
	var d statepb.OfflineDebt
	return &d, s.getOne(keyDebt(walletID), &d)
}

// BankOffline returns a bank's offline liability record: its exposure and
// the claims it owes (a zero record if it never had any).
func (s *Store) BankOffline(bankID string) (*statepb.BankOfflineRecord, error) {
	var r statepb.BankOfflineRecord
	err := s.getOne(keyBankOffline(bankID), &r)
	if errors.Is(err, ErrNotFound) {
		return &statepb.BankOfflineRecord{BankId: bankID}, nil
	}
	return &r, err
}

// OfflineClaims lists a bank's claims with seq above after, in seq order,
// at most limit.
func (s *Store) OfflineClaims(bankID string, after uint64, limit int) ([]*statepb.OfflineClaim, error) {
	limit = pageSize(limit)
	var out []*statepb.OfflineClaim
	err := s.scanRange(keyClaim(bankID, after+1), prefixEnd(keyClaimPrefix(bankID)), func() proto.Message { return &statepb.OfflineClaim{} }, func(m proto.Message) bool {
		out = append(out, m.(*statepb.OfflineClaim))
		return len(out) < limit
	})
	return out, err
}

// OfflineCounts returns how many incidents and revocations there are.
func (s *Store) OfflineCounts() (incidents, revocations uint64, err error) {
	err = s.read(func(r pebbleReader) error {
		v, c, err := r.Get(keyOfflineCounters)
		if err == pebble.ErrNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		defer c.Close()
		if len(v) != 16 {
			return invariant("offline counters: %d bytes", len(v))
		}
		incidents, revocations = binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])
		return nil
	})
	return incidents, revocations, err
}

// checkPurses is AuditSupply's check of offline escrow: the escrow of every
// purse adds up to the supply record's offline escrow, no purse holds more
// than it was opened with, and expired or unbacked purses hold nothing. It
// fills each bank's OfflineEscrowFen, then checks the offline books
// (checkOfflineBooks) against each bank's exposure (the amounts of its open
// and closed purses).
func (a *Audit) checkPurses(r pebbleReader) error {
	perBank := map[string]uint64{}
	exposure := map[string]uint64{}
	var total uint64
	var fail error
	err := scan(r, keyOff('p'), prefixEnd(keyOff('p')), func(k, v []byte) bool {
		var p statepb.PurseRecord
		if err := proto.Unmarshal(v, &p); err != nil {
			fail = invariant("purse %q: %v", k, err)
			return false
		}
		e := p.GetEscrowFen()
		live := p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_OPEN || p.GetStatus() == statepb.PurseStatus_PURSE_STATUS_CLOSED
		switch {
		case e > p.GetAmountFen():
			fail = invariant("purse %x: escrow %d above its amount %d", short(p.GetPurseId()), e, p.GetAmountFen())
		case e > 0 && !live:
			fail = invariant("purse %x: %s but holds escrow %d", short(p.GetPurseId()), purseStatusName(p.GetStatus()), e)
		}
		total += e // each ≤ its amount; Σ ≤ the supply, checked below
		perBank[p.GetBankId()] += e
		if live {
			exposure[p.GetBankId()] = satAdd(exposure[p.GetBankId()], p.GetAmountFen())
		}
		return fail == nil
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if total != a.OfflineEscrowFen {
		return invariant("purses hold %d in escrow, the supply record says %d", total, a.OfflineEscrowFen)
	}
	for i := range a.Banks {
		a.Banks[i].OfflineEscrowFen = perBank[a.Banks[i].BankID]
	}
	return a.checkOfflineBooks(r, exposure)
}

// offBooks is what checkOfflineBooks adds up from the claim records.
type offBooks struct {
	claimsOpen    map[string]uint64 // bank → open claims
	claimsOpenFen map[string]uint64 // bank → still owed
	payerUnpaid   map[string]uint64 // payer wallet → still owed to its payees
}

// checkOfflineBooks checks the books of SPEC §4's promise that an honest
// payee is paid whenever its bank is solvent (docs/offline.md, "Who pays"):
//
//   - every settlement adds up: escrow + payer + guarantee + reserve + paid
//     later + unpaid = amount, and an unpaid rest has a claim;
//   - every claim owes what its settlement says is unpaid; each bank's open
//     claims add up to its record, which also holds its exposure;
//   - no bank owes payees while its guarantee or reserve holds money,
//     unless the job paying its claims is scheduled (it runs in the next
//     block);
//   - every debt adds up (charged = guarantee + reserve + claimed, debt =
//     charged − repaid), its unpaid part is what its payees are still owed,
//     and its wallet mirrors it (Σ = a.OfflineDebtFen, from checkWallets).
func (a *Audit) checkOfflineBooks(r pebbleReader, exposure map[string]uint64) error {
	b := offBooks{claimsOpen: map[string]uint64{}, claimsOpenFen: map[string]uint64{}, payerUnpaid: map[string]uint64{}}
	for _, step := range []func(pebbleReader) error{a.checkSettlements, b.checkClaims} {
		if err := step(r); err != nil {
			return err
		}
	}
	if err := a.checkBankBooks(r, &b, exposure); err != nil {
		return err
	}
	return a.checkDebts(r, &b)
}

// checkSettlements: each settlement's sources add up to its amount.
func (a *Audit) checkSettlements(r pebbleReader) error {
	var fail error
	err := scan(r, keyOff('h'), prefixEnd(keyOff('h')), func(k, v []byte) bool {
		var s statepb.Settlement
		if err := proto.Unmarshal(v, &s); err != nil {
			fail = invariant("settlement %q: %v", k, err)
			return false
		}
		var sum, c, carry uint64
		for _, f := range []uint64{s.GetFromEscrowFen(), s.GetFromPayerFen(), s.GetFromGuaranteeFen(), s.GetFromReserveFen(), s.GetPaidLaterFen(), s.GetUnpaidFen()} {
			sum, c = bits.Add64(sum, f, 0)
			carry |= c
		}
		switch {
		case carry != 0 || sum != s.GetAmountFen():
			fail = invariant("settlement of payment %x: sources add up to %d, amount %d", short(s.GetPaymentHash()), sum, s.GetAmountFen())
		case s.GetUnpaidFen() > 0 && s.GetClaimSeq() == 0:
			fail = invariant("settlement of payment %x: %d unpaid without a claim", short(s.GetPaymentHash()), s.GetUnpaidFen())
		}
		return fail == nil
	})
	return cmp.Or(err, fail)
}

// checkClaims adds up the claims per bank and per payer and checks each
// against its settlement.
func (b *offBooks) checkClaims(r pebbleReader) error {
	var fail error
	err := scan(r, keyOff('c'), prefixEnd(keyOff('c')), func(k, v []byte) bool {
		var c statepb.OfflineClaim
		if err := proto.Unmarshal(v, &c); err != nil {
			fail = invariant("claim %q: %v", k, err)
			return false
		}
		var s statepb.Settlement
		found, err := getProto(r, keySettlement(c.GetPaymentHash()), &s)
		switch {
		case err != nil:
			fail = err
		case c.GetPaidFen() > c.GetOwedFen():
			fail = invariant("claim %s/%d: paid %d of %d", c.GetBankId(), c.GetSeq(), c.GetPaidFen(), c.GetOwedFen())
		case !found || s.GetClaimSeq() != c.GetSeq() || s.GetBankId() != c.GetBankId() || s.GetUnpaidFen() != c.GetOwedFen()-c.GetPaidFen() ||
			s.GetPaidLaterFen() != c.GetPaidFen():
			fail = invariant("claim %s/%d: owes %d, paid %d, but its settlement says unpaid %d, paid later %d", c.GetBankId(), c.GetSeq(),
				c.GetOwedFen()-c.GetPaidFen(), c.GetPaidFen(), s.GetUnpaidFen(), s.GetPaidLaterFen())
		}
		if open := c.GetOwedFen() - c.GetPaidFen(); fail == nil && open > 0 {
			b.claimsOpen[c.GetBankId()]++
			b.claimsOpenFen[c.GetBankId()] += open // Σ ≤ what was paid out, which fits
			b.payerUnpaid[c.GetPayerWalletId()] += open
		}
		return fail == nil
	})
	return cmp.Or(err, fail)
}

// checkBankBooks checks each bank's offline record against the purses and
// claims, and that a bank owing payees holds nothing (or is about to pay).
func (a *Audit) checkBankBooks(r pebbleReader, b *offBooks, exposure map[string]uint64) error {
	var fail error
	err := scan(r, prefixBank, prefixEnd(prefixBank), func(k, v []byte) bool {
		var br statepb.BankRecord
		if err := proto.Unmarshal(v, &br); err != nil {
			fail = invariant("bank %q: %v", k, err)
			return false
		}
		bank := br.GetBank()
		var bo statepb.BankOfflineRecord
		if _, err := getProto(r, keyBankOffline(bank.GetId()), &bo); err != nil {
			fail = err
			return false
		}
		id := bank.GetId()
		if bo.GetExposureFen() != exposure[id] || bo.GetClaimsOpen() != b.claimsOpen[id] || bo.GetClaimsOpenFen() != b.claimsOpenFen[id] {
			fail = invariant("bank %s: offline record says exposure %d, %d claims owing %d; the purses and claims say %d, %d, %d",
				id, bo.GetExposureFen(), bo.GetClaimsOpen(), bo.GetClaimsOpenFen(), exposure[id], b.claimsOpen[id], b.claimsOpenFen[id])
			return false
		}
		delete(b.claimsOpen, id)
		a.OfflineClaimsFen += bo.GetClaimsOpenFen()
		if bo.GetClaimsOpenFen() == 0 {
			return true
		}
		var funds uint64
		for _, wid := range []string{bank.GetGuaranteeWalletId(), bank.GetReserveWalletId()} {
			var w statepb.WalletRecord
			if _, err := getProto(r, keyWallet(wid), &w); wid != "" && err != nil {
				fail = err
				return false
			}
			funds = satAdd(funds, w.GetBalanceFen())
		}
		if funds > 0 {
			found, err := hasKey(r, keySchedule(bo.GetClaimsJobDueMs(), jobOfflineClaims, []byte(id)))
			if err != nil || !bo.GetClaimsJobScheduled() || !found {
				fail = cmp.Or(err, invariant("bank %s owes payees %d on %d claims while its guarantee and reserve hold %d, and no payment of its claims is scheduled",
					id, bo.GetClaimsOpenFen(), bo.GetClaimsOpen(), funds))
			}
		}
		return fail == nil
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if len(b.claimsOpen) > 0 {
		return invariant("claims of unknown banks %q", slices.Sorted(maps.Keys(b.claimsOpen)))
	}
	return nil
}

// checkDebts checks every debt record and its wallet's mirror.
func (a *Audit) checkDebts(r pebbleReader, b *offBooks) error {
	var fail error
	var total uint64
	err := scan(r, keyOff('b'), prefixEnd(keyOff('b')), func(k, v []byte) bool {
		var d statepb.OfflineDebt
		if err := proto.Unmarshal(v, &d); err != nil {
			fail = invariant("offline debt %q: %v", k, err)
			return false
		}
		var w statepb.WalletRecord
		found, err := getProto(r, keyWallet(d.GetWalletId()), &w)
		charged := satAdd(satAdd(d.GetGuaranteeFen(), d.GetReserveFen()), d.GetClaimedFen())
		switch {
		case err != nil:
			fail = err
		case charged != d.GetTotalFen() || d.GetRepaidFen() > d.GetTotalFen() || d.GetDebtFen() != d.GetTotalFen()-d.GetRepaidFen():
			fail = invariant("offline debt of %q: charged %d (guarantee %d + reserve %d + claimed %d), repaid %d, but owes %d",
				d.GetWalletId(), d.GetTotalFen(), d.GetGuaranteeFen(), d.GetReserveFen(), d.GetClaimedFen(), d.GetRepaidFen(), d.GetDebtFen())
		case d.GetUnpaidFen() != b.payerUnpaid[d.GetWalletId()]:
			fail = invariant("offline debt of %q: its payees are owed %d, its claims say %d", d.GetWalletId(), d.GetUnpaidFen(), b.payerUnpaid[d.GetWalletId()])
		case found && w.GetOfflineDebtFen() != d.GetDebtFen():
			fail = invariant("wallet %q: offline debt %d, its debt record says %d", d.GetWalletId(), w.GetOfflineDebtFen(), d.GetDebtFen())
		}
		delete(b.payerUnpaid, d.GetWalletId())
		if found {
			total = satAdd(total, d.GetDebtFen())
		}
		return fail == nil
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if len(b.payerUnpaid) > 0 {
		return invariant("claims on payments of %q, which have no debt record", slices.Sorted(maps.Keys(b.payerUnpaid)))
	}
	if total != a.OfflineDebtFen {
		return invariant("wallets owe %d for offline payments, their debt records %d", a.OfflineDebtFen, total)
	}
	return nil
}

// hasKey reports whether key is in r.
func hasKey(r pebbleReader, key []byte) (bool, error) {
	_, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %q: %w", key, err)
	}
	return true, c.Close()
}
