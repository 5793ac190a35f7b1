package state

import (
	"bytes"
	"cmp"
	"fmt"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Audit is the supply invariant (SPEC §2) computed from the state itself:
//
//	issued − returned = Σ unspent outputs + Σ offline escrow + Σ campaign escrow
//
// with the per-bank breakdown regulators ask for (SPEC §6).
type Audit struct {
	AppliedIndex      uint64
	IssuedFen         uint64
	ReturnedFen       uint64
	OutstandingFen    uint64 // issued − returned
	UnspentFen        uint64 // Σ unspent outputs
	OfflineEscrowFen  uint64
	CampaignEscrowFen uint64
	Outputs           uint64
	Wallets           uint64
	// FrozenWallets and FrozenFen: wallets whose status is frozen and what
	// they hold (checked against the frozen-wallets index, audit.go).
	FrozenWallets uint64
	FrozenFen     uint64
	// OfflineDebtFen: what wallets owe their banks for offline payments
	// (their offline_debt_fen, checked against the debt records), and
	// OfflineClaimsFen: what banks owe payees (open claims), both checked by
	// checkOfflineBooks (offline_query.go).
	OfflineDebtFen   uint64
	OfflineClaimsFen uint64
	Banks            []BankAudit
}

// BankAudit is one bank's share.
type BankAudit struct {
	BankID      string
	IssuedFen   uint64
	ReturnedFen uint64
	// WalletsFen is the balance of every wallet the bank holds (its reserve
	// included).
	WalletsFen uint64
	Wallets    uint64
	// ReserveFen is what the bank's own reserve and guarantee wallets hold
	// (part of WalletsFen).
	ReserveFen uint64
	// OfflineEscrowFen and CampaignEscrowFen: money of the bank's wallets
	// in offline purses and red-packet campaign escrow (audit.go).
	OfflineEscrowFen  uint64
	CampaignEscrowFen uint64
	FrozenWallets     uint64
	FrozenFen         uint64
}

// AuditSupply recomputes every total from the outputs and wallets of one
// consistent snapshot and checks them against each other and against the
// supply record, and recomputes the content hash from every record and the
// state hash from it (checkContent). A disagreement is an error wrapping
// ErrInvariant that names it. It reads the whole state in constant memory:
// run it on demand, not per transaction.
func (s *Store) AuditSupply() (*Audit, error) {
	var a *Audit
	err := s.readSnapshot(func(r pebbleReader) error {
		var err error
		a, err = audit(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// audit is AuditSupply of the state r holds.
func audit(r pebbleReader) (*Audit, error) {
	a := &Audit{}
	var meta statepb.Meta
	var sup statepb.Supply
	if _, err := getProto(r, keyMeta, &meta); err != nil {
		return nil, err
	}
	if _, err := getProto(r, keySupply, &sup); err != nil {
		return nil, err
	}
	a.AppliedIndex = meta.GetAppliedIndex()
	a.IssuedFen, a.ReturnedFen = sup.GetIssuedFen(), sup.GetReturnedFen()
	a.OfflineEscrowFen, a.CampaignEscrowFen = sup.GetOfflineEscrowFen(), sup.GetCampaignEscrowFen()
	// The content first: a record that is not what the state hash commits
	// to says more than the totals it may upset.
	if err := checkContent(r, &meta); err != nil {
		return nil, err
	}
	for _, step := range []func(pebbleReader) error{a.sumOutputs, a.checkWallets, a.checkBanks, a.checkIndexes, a.checkPurses, a.checkCampaigns} {
		if err := step(r); err != nil {
			return nil, err
		}
	}
	if err := a.checkTotals(); err != nil {
		return nil, err
	}
	return a, nil
}

// checkContent recomputes the content hash from every hashed record and
// checks it against the meta's, then the state hash from it: after block
// n, SHA-256(domain | hash before | n | ledger time | write digest |
// content) must be the meta's state hash and the one recorded for n; with
// no block applied, the state hash is the genesis hash. So the content a
// store (or a snapshot) holds is the content its state hash commits to.
func checkContent(r pebbleReader, meta *statepb.Meta) error {
	got, err := scanContent(r)
	if err != nil {
		return err
	}
	if want, ok := ltFromBytes(meta.GetContentHash()); !ok || got != want {
		return invariant("content hash of the records (%x…) is not the meta's (%x…)", got.bytes()[:8], short(meta.GetContentHash()))
	}
	if meta.GetAppliedIndex() == 0 && meta.GetBlocks() == 0 {
		return checkGenesisContent(r, meta, &got)
	}
	sum := chainStateHash(meta.GetPrevStateHash(), meta.GetAppliedIndex(), meta.GetLedgerTimeMs(), meta.GetBlockDigest(), &got)
	if !bytes.Equal(sum, meta.GetStateHash()) {
		return invariant("state hash %x does not recompute from the content (%x)", short(meta.GetStateHash()), short(sum))
	}
	v, c, err := r.Get(keyHashIndex(meta.GetAppliedIndex()))
	if err != nil {
		return invariant("no state hash recorded for applied index %d: %v", meta.GetAppliedIndex(), err)
	}
	defer c.Close()
	if !bytes.Equal(v, sum) {
		return invariant("state hash recorded for index %d (%x) is not the meta's (%x)", meta.GetAppliedIndex(), short(v), short(sum))
	}
	return nil
}

func invariant(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...)
}

// sumOutputs totals every unspent output.
func (a *Audit) sumOutputs(r pebbleReader) error {
	var fail error
	err := scan(r, prefixUnspent, prefixEnd(prefixUnspent), func(k, v []byte) bool {
		var fen uint64
		if fen, fail = outputAmount(k, v); fail != nil {
			return false
		}
		var c uint64
		a.UnspentFen, c = bits.Add64(a.UnspentFen, fen, 0)
		if c != 0 {
			fail = invariant("output %q: amount %d makes the total overflow", k, fen)
			return false
		}
		a.Outputs++
		return true
	})
	return cmp.Or(err, fail)
}

// outputAmount decodes an unspent output's amount, which is never zero.
func outputAmount(k, v []byte) (uint64, error) {
	var o statepb.OutputRecord
	if err := proto.Unmarshal(v, &o); err != nil {
		return 0, invariant("output %q: %v", k, err)
	}
	if o.GetAmountFen() == 0 {
		return 0, invariant("output %q: amount zero", k)
	}
	return o.GetAmountFen(), nil
}

// checkWallets checks that every wallet's balance and unspent count equal
// its entries in the unspent index, walking both in wallet-id order (both
// key spaces sort by id, and 0x00 after the id sorts before any id byte), and
// adds balances up per bank.
func (a *Audit) checkWallets(r pebbleReader) error {
	uit, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixUnspent, UpperBound: prefixEnd(prefixUnspent)})
	if err != nil {
		return err
	}
	defer uit.Close()
	uit.First()
	perBank := map[string]*BankAudit{}
	var fail error
	var total uint64
	err = scan(r, prefixWallet, prefixEnd(prefixWallet), func(k, v []byte) bool {
		var w statepb.WalletRecord
		if err := proto.Unmarshal(v, &w); err != nil {
			fail = invariant("wallet %q: %v", k, err)
			return false
		}
		var got walletSum
		if got, fail = sumUnspent(uit, w.GetId()); fail != nil {
			return false
		}
		if got.fen != w.GetBalanceFen() || got.n != w.GetUnspentCount() {
			fail = invariant("wallet %q: balance %d over %d outputs, but its outputs sum to %d over %d", w.GetId(), w.GetBalanceFen(), w.GetUnspentCount(), got.fen, got.n)
			return false
		}
		b := perBank[w.GetBankId()]
		if b == nil {
			b = &BankAudit{BankID: w.GetBankId()}
			perBank[w.GetBankId()] = b
		}
		b.WalletsFen += w.GetBalanceFen() // Σ balances = Σ outputs, which did not overflow
		b.Wallets++
		if w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_FROZEN {
			b.FrozenWallets++
			b.FrozenFen += w.GetBalanceFen()
			a.FrozenWallets++
			a.FrozenFen += w.GetBalanceFen()
		}
		if w.GetKind() == statepb.WalletKind_WALLET_KIND_BANK_RESERVE || w.GetKind() == statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE {
			b.ReserveFen += w.GetBalanceFen()
		}
		a.Wallets++
		total += w.GetBalanceFen()
		a.OfflineDebtFen = satAdd(a.OfflineDebtFen, w.GetOfflineDebtFen())
		return true
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	if uit.Valid() {
		return invariant("unspent index entry %q has no wallet", uit.Key())
	}
	if total != a.UnspentFen {
		return invariant("wallet balances sum to %d, outputs to %d", total, a.UnspentFen)
	}
	a.Banks = a.Banks[:0]
	for _, b := range perBank {
		a.Banks = append(a.Banks, *b)
	}
	return nil
}

type walletSum struct{ fen, n uint64 }

// sumUnspent consumes the unspent-index entries of wallet id from it. An
// entry of a smaller id belongs to no wallet.
func sumUnspent(it *pebble.Iterator, id string) (walletSum, error) {
	var s walletSum
	prefix := keyUnspentPrefix(id)
	for ; it.Valid(); it.Next() {
		k := it.Key()
		if !hasPrefix(k, prefix) {
			if bytes.Compare(k, prefix) < 0 {
				return s, invariant("unspent index entry %q has no wallet", k)
			}
			break
		}
		fen, err := outputAmount(k, it.Value())
		if err != nil {
			return s, err
		}
		s.fen += fen // Σ of all outputs did not overflow (sumOutputs)
		s.n++
	}
	return s, it.Error()
}

// checkBanks checks per-bank issued and returned against the supply record
// and fills them into the breakdown, in bank order.
func (a *Audit) checkBanks(r pebbleReader) error {
	byID := map[string]BankAudit{}
	for _, b := range a.Banks {
		byID[b.BankID] = b
	}
	var out []BankAudit
	var issued, returned uint64
	var fail error
	err := scan(r, prefixBank, prefixEnd(prefixBank), func(k, v []byte) bool {
		var b statepb.BankRecord
		if err := proto.Unmarshal(v, &b); err != nil {
			fail = invariant("bank %q: %v", k, err)
			return false
		}
		ba := byID[b.GetBank().GetId()]
		ba.BankID, ba.IssuedFen, ba.ReturnedFen = b.GetBank().GetId(), b.GetIssuedFen(), b.GetReturnedFen()
		out = append(out, ba)
		issued += b.GetIssuedFen()
		returned += b.GetReturnedFen()
		return true
	})
	if err = cmp.Or(err, fail); err != nil {
		return err
	}
	a.Banks = out
	if issued != a.IssuedFen || returned != a.ReturnedFen {
		return invariant("banks total issued %d returned %d, supply says %d and %d", issued, returned, a.IssuedFen, a.ReturnedFen)
	}
	return nil
}

func (a *Audit) checkTotals() error {
	if a.ReturnedFen > a.IssuedFen {
		return invariant("returned %d exceeds issued %d", a.ReturnedFen, a.IssuedFen)
	}
	a.OutstandingFen = a.IssuedFen - a.ReturnedFen
	held, c1 := bits.Add64(a.UnspentFen, a.OfflineEscrowFen, 0)
	held, c2 := bits.Add64(held, a.CampaignEscrowFen, 0)
	if c1 != 0 || c2 != 0 || held != a.OutstandingFen {
		return invariant("issued − returned = %d, but outputs %d + offline escrow %d + campaign escrow %d = %d",
			a.OutstandingFen, a.UnspentFen, a.OfflineEscrowFen, a.CampaignEscrowFen, held)
	}
	return nil
}

// checkGenesisContent checks a state with no block applied: its state hash
// is the genesis hash and its content exactly what genesis makes.
func checkGenesisContent(r pebbleReader, meta *statepb.Meta, got *ltHash) error {
	if !bytes.Equal(meta.GetStateHash(), meta.GetGenesisHash()) {
		return invariant("no block applied, but the state hash %x is not the genesis hash %x", short(meta.GetStateHash()), short(meta.GetGenesisHash()))
	}
	var g statepb.Genesis
	if found, err := getProto(r, keyGenesis, &g); err != nil || !found {
		return cmp.Or(err, invariant("no genesis record"))
	}
	recs, err := genesisRecords(&g)
	if err != nil {
		return err
	}
	if want := contentOf(recs); want != *got {
		return invariant("no block applied, but the records are not what genesis makes")
	}
	return nil
}
