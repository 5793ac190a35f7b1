package state

import (
	"cmp"
	"encoding/binary"

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
		out = append(out, m.(*statepb.Revocation))
		return len(out) < limit
	})
	return out, err
}

// DeviceRevocation returns a device's revocation, or ErrNotFound if it is
// not revoked.
func (s *Store) DeviceRevocation(device []byte) (*statepb.Revocation, error) {
	var r statepb.Revocation
	return &r, s.getOne(keyDeviceRevoked(device), &r)
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
// fills each bank's OfflineEscrowFen.
func (a *Audit) checkPurses(r pebbleReader) error {
	perBank := map[string]uint64{}
	var total uint64
	var fail error
	err := scan(r, keyOff('p'), prefixEnd(keyOff('p')), func(k, v []byte) bool {
		var p statepb.PurseRecord
		if err := proto.Unmarshal(v, &p); err != nil {
			fail = invariant("purse %q: %v", k, err)
			return false
		}
		e := p.GetEscrowFen()
		switch {
		case e > p.GetAmountFen():
			fail = invariant("purse %x: escrow %d above its amount %d", short(p.GetPurseId()), e, p.GetAmountFen())
		case e > 0 && p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN && p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_CLOSED:
			fail = invariant("purse %x: %s but holds escrow %d", short(p.GetPurseId()), purseStatusName(p.GetStatus()), e)
		}
		total += e // each ≤ its amount; Σ ≤ the supply, checked below
		perBank[p.GetBankId()] += e
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
	return nil
}
