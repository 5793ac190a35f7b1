package device

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/state/statepb"
)

// The device's online side: loading a purse, depositing what it received
// and syncing the revocation list, closing its purses.

// LoadOptions shape a purse. Zero fields take defaults from the genesis
// offline policy and the wallet's tier.
type LoadOptions struct {
	AmountFen uint64
	// MaxPaymentFen: default the lowest of the amount, the policy's offline
	// per-payment maximum and the wallet's per-payment limit.
	MaxPaymentFen uint64
	// MaxPayments: default the policy's maximum.
	MaxPayments uint32
	// Validity: default 7 days, within the policy's maximum.
	Validity time.Duration
}

// Load loads a purse onto the device from walletID: the device proposes the
// certificate (its key, a random purse id), the wallet's bank signs it
// (bankKey stands in for the bank's service, which would sign after its
// own checks), the device records it as pending, the wallet submits
// open_purse, and once the ledger applied it the purse is open. If the
// ledger refuses, the purse is marked failed and the error is the
// *client.TxError.
func (d *Device) Load(ctx context.Context, cl *client.Client, walletKey ed25519.PrivateKey, walletID string, bankKey ed25519.PrivateKey, o LoadOptions) (*Purse, *statepb.TxResult, error) {
	b, err := cl.Builder(ctx)
	if err != nil {
		return nil, nil, err
	}
	if gh := b.Signer().GenesisHash; !bytes.Equal(gh[:], d.f.GenesisHash) {
		return nil, nil, fmt.Errorf("the node is on network %s (genesis %x), this device on %s (genesis %x)", b.Genesis().GetChainId(), gh[:6], d.f.ChainID, d.f.GenesisHash[:6])
	}
	pol := b.Genesis().GetOffline()
	if pol.GetMaxPurseFen() == 0 {
		return nil, nil, statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "offline purses are disabled on network %s", d.f.ChainID)
	}
	wr, err := cl.Wallet(ctx, walletID)
	if err != nil {
		return nil, nil, err
	}
	w := wr.GetWallet()
	if o.AmountFen == 0 {
		return nil, nil, statepb.Errorf(statepb.Code_CODE_AMOUNT_ZERO, "amount: zero")
	}
	if o.MaxPaymentFen == 0 {
		o.MaxPaymentFen = lowest(o.AmountFen, pol.GetMaxPaymentFen(), tierPaymentCap(b.Genesis(), w))
	}
	if o.MaxPayments == 0 {
		o.MaxPayments = pol.GetMaxPayments()
	}
	if o.Validity == 0 {
		o.Validity = 7 * 24 * time.Hour
		// Ledger time may trail this clock a little: keep a minute's margin.
		if m := time.Duration(pol.GetMaxValidityMs())*time.Millisecond - time.Minute; pol.GetMaxValidityMs() > 0 && m < o.Validity {
			o.Validity = m
		}
	}
	body, err := d.NewPurseBody(w.GetBankId(), walletID, o.AmountFen, o.MaxPaymentFen, o.MaxPayments, d.Now().Add(o.Validity))
	if err != nil {
		return nil, nil, err
	}
	cert, err := b.Offline().SignCert(bankKey, body)
	if err != nil {
		return nil, nil, err
	}
	p, err := d.AddPurse(cert)
	if err != nil {
		return nil, nil, err
	}
	res, err := cl.OpenPurse(ctx, walletKey, walletID, cert)
	if err != nil {
		var te *client.TxError
		var se *statepb.Error
		var fe *client.FundsError
		if errors.As(err, &te) || errors.As(err, &se) || errors.As(err, &fe) {
			_ = d.SetPurseStatus(p.ID, PurseFailed, nil)
		}
		return p, res, err
	}
	return p, res, d.SetPurseStatus(p.ID, PurseOpen, res.GetTxId())
}

// tierPaymentCap is the wallet's per-payment limit (0: none).
func tierPaymentCap(g *statepb.Genesis, w *statepb.WalletRecord) uint64 {
	var c uint64
	for _, t := range g.GetTiers() {
		if t.GetTier() == w.GetTier() {
			c = t.GetMaxPaymentFen()
		}
	}
	return lowest(c, w.GetLimits().GetMaxPaymentFen())
}

// lowest is the smallest non-zero value (0 if all are zero).
func lowest(vs ...uint64) uint64 {
	var out uint64
	for _, v := range vs {
		if v != 0 && (out == 0 || v < out) {
			out = v
		}
	}
	return out
}

// SyncReport is what a Sync did.
type SyncReport struct {
	// Deposits are the deposit transactions submitted.
	Deposits []*statepb.TxResult
	// Settled counts payments newly credited (settled, torn or incident);
	// CreditedFen is their total.
	Settled     int
	CreditedFen uint64
	// Replayed counts payments the ledger had settled before.
	Replayed int
	// Refused are payments the ledger refused (Code says why).
	Refused []*Received
	// Incidents are the ids of incidents deposits of this sync proved.
	Incidents []uint64
	// Payments are the payments this sync settled, in deposit order, each
	// with its settlement as the ledger records it (Received.Paid): how much
	// the payee got, from where, and what its bank still owes.
	Payments []*Received
	// PaidLater are payments settled by earlier syncs whose bank has since
	// paid (some of) what it owed.
	PaidLater []*Received
	// NewRevocations counts revocation-list entries fetched; Revoked is true
	// if this device is among them.
	NewRevocations int
	Revoked        bool
}

// itemRef finds "items[i]" in a rejection message.
var itemRef = regexp.MustCompile(`deposit_offline\.items\[(\d+)\]`)

// Sync deposits every pending received payment (in batches of at most
// statepb.MaxDepositItems) to the device's wallet, records each one's
// outcome, then fetches the new revocations and the ledger's view of the
// device's purses. A payment the ledger refuses (its rejection names it) is
// marked refused and the rest are deposited again in a new transaction; a
// rejection of the whole deposit (e.g. the wallet is frozen) stops the
// sync with that error.
func (d *Device) Sync(ctx context.Context, cl *client.Client) (*SyncReport, error) {
	rep := &SyncReport{}
	b, err := cl.Builder(ctx)
	if err != nil {
		return nil, err
	}
	for {
		var batch []*Received
		for _, r := range d.f.Received {
			if r.Status == RecvPending && len(batch) < statepb.MaxDepositItems {
				batch = append(batch, r)
			}
		}
		if len(batch) == 0 {
			break
		}
		if err := d.deposit(ctx, cl, b, batch, rep); err != nil {
			return rep, err
		}
	}
	if err := d.syncSettlements(ctx, cl, rep); err != nil {
		return rep, err
	}
	if err := d.syncRevocations(ctx, cl, rep); err != nil {
		return rep, err
	}
	if err := d.syncPurses(ctx, cl); err != nil {
		return rep, err
	}
	return rep, d.save()
}

// deposit submits one batch and records the outcome of each payment.
func (d *Device) deposit(ctx context.Context, cl *client.Client, b *client.Builder, batch []*Received, rep *SyncReport) error {
	items := make([]*statepb.DepositItem, len(batch))
	for i, r := range batch {
		var p statepb.Payment
		var q statepb.PaymentRequest
		if err := proto.Unmarshal(r.Payment, &p); err != nil {
			return fmt.Errorf("%w: received payment: %v", ErrFormat, err)
		}
		if err := proto.Unmarshal(r.Request, &q); err != nil {
			return fmt.Errorf("%w: received request: %v", ErrFormat, err)
		}
		items[i] = &statepb.DepositItem{Payment: &p, Request: &q, RevocationIndex: r.RevocationIndex}
	}
	tx, err := b.DepositOffline(d.key, d.f.WalletID, items)
	if err != nil {
		return err
	}
	res, err := cl.Submit(ctx, tx)
	if err != nil {
		return err
	}
	rep.Deposits = append(rep.Deposits, res)
	switch res.GetCode() {
	case statepb.Code_CODE_OK:
		rec, err := cl.OfflineTx(ctx, tx.ID)
		if err != nil {
			return err
		}
		if len(rec.GetItems()) != len(batch) {
			return fmt.Errorf("%w: deposit %x has %d results for %d payments", client.ErrBadResponse, tx.ID[:6], len(rec.GetItems()), len(batch))
		}
		for i, it := range rec.GetItems() {
			d.recordItem(ctx, cl, batch[i], it, res.GetTxId(), rep)
		}
		return d.save()
	case statepb.Code_CODE_PAYMENT_REPLAYED:
		// Every payment of the batch was settled before (e.g. by a deposit
		// whose reply was lost): take each one's settlement.
		for _, r := range batch {
			s, err := cl.Settlement(ctx, r.Hash)
			if err != nil {
				return err
			}
			d.markSettled(r, s)
			rep.Replayed++
		}
		return d.save()
	}
	if m := itemRef.FindStringSubmatch(res.GetMessage()); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(batch) {
			r := batch[i]
			r.Status, r.Code, r.Message, r.DepositTx = RecvRefused, res.GetCode().Short(), res.GetMessage(), res.GetTxId()
			rep.Refused = append(rep.Refused, r)
			return d.save()
		}
	}
	return &client.TxError{Result: res}
}

// recordItem records one payment's outcome in a deposit.
func (d *Device) recordItem(ctx context.Context, cl *client.Client, r *Received, it *statepb.DepositItemResult, txID []byte, rep *SyncReport) {
	r.DepositTx, r.CreditedFen, r.IncidentID = txID, it.GetCreditedFen(), it.GetIncidentId()
	switch it.GetOutcome() {
	case statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_SETTLED:
		r.Status = RecvSettled
	case statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_TORN:
		r.Status = RecvTorn
	case statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_INCIDENT:
		r.Status = RecvIncident
		rep.Incidents = append(rep.Incidents, it.GetIncidentId())
	case statepb.DepositItemOutcome_DEPOSIT_ITEM_OUTCOME_REPLAYED:
		r.Status, r.DepositTx, r.CreditedFen = RecvReplayed, it.GetFirstDepositTxId(), 0
		if s, err := cl.Settlement(ctx, r.Hash); err == nil {
			d.markSettled(r, s)
		}
		rep.Replayed++
		return
	}
	rep.Settled++
	rep.CreditedFen += r.CreditedFen
	rep.Payments = append(rep.Payments, r)
}

// syncSettlements reads the ledger's settlement of every payment settled
// to this device whose record it lacks (just deposited) or that its bank
// still owes part of (it may have paid since), and records it.
func (d *Device) syncSettlements(ctx context.Context, cl *client.Client, rep *SyncReport) error {
	for _, r := range d.f.Received {
		switch r.Status {
		case RecvSettled, RecvIncident, RecvTorn:
		default:
			continue
		}
		if r.Paid != nil && r.Paid.Unpaid == 0 {
			continue
		}
		s, err := cl.Settlement(ctx, r.Hash)
		if err != nil {
			return err
		}
		if !bytes.Equal(s.GetPaymentHash(), r.Hash) || s.GetPayeeWalletId() != d.f.WalletID {
			return fmt.Errorf("%w: settlement of payment %x is not this device's", client.ErrBadResponse, r.Hash[:6])
		}
		before := r.Paid
		r.Paid = PaidOf(s)
		if before != nil && r.Paid.PaidLater > before.PaidLater {
			rep.PaidLater = append(rep.PaidLater, r)
		}
	}
	return d.save()
}

// markSettled records a payment settled by an earlier deposit: if that
// deposit credited this device's wallet, the money arrived (e.g. a reply
// was lost); otherwise (a copy of this device deposited it elsewhere) it
// is a replay.
func (d *Device) markSettled(r *Received, s *statepb.Settlement) {
	r.DepositTx, r.IncidentID = s.GetDepositTxId(), s.GetIncidentId()
	r.Status, r.CreditedFen = RecvReplayed, 0
	if bytes.Equal(s.GetPaymentHash(), r.Hash) && s.GetPayeeWalletId() == d.f.WalletID {
		r.Status, r.CreditedFen = RecvSettled, s.GetAmountFen()-s.GetUnpaidFen()-s.GetPaidLaterFen()
		r.Paid = PaidOf(s)
	}
}

// syncRevocations fetches the revocation list after the device's index.
func (d *Device) syncRevocations(ctx context.Context, cl *client.Client, rep *SyncReport) error {
	revs, _, err := cl.Revocations(ctx, d.f.Revocations.Index)
	if err != nil {
		return err
	}
	rep.NewRevocations = d.applyRevocations(revs)
	rep.Revoked = d.f.Revoked
	return nil
}

// ApplyRevocations adds revocation-list entries (in index order, as the
// ledger lists them) to the device's list and saves it. Entries at or below
// the device's index are skipped.
func (d *Device) ApplyRevocations(revs []*statepb.Revocation) error {
	d.applyRevocations(revs)
	return d.save()
}

func (d *Device) applyRevocations(revs []*statepb.Revocation) int {
	n := 0
	for _, r := range revs {
		if r.GetIndex() <= d.f.Revocations.Index {
			continue
		}
		d.f.Revocations.Keys = append(d.f.Revocations.Keys, r.GetDevicePublicKey())
		d.f.Revocations.Index = r.GetIndex()
		if bytes.Equal(r.GetDevicePublicKey(), d.PublicKey()) {
			d.f.Revoked = true
		}
		n++
	}
	return n
}

// syncPurses takes the ledger's status of each purse not yet final.
func (d *Device) syncPurses(ctx context.Context, cl *client.Client) error {
	for _, p := range d.f.Purses {
		if p.Status == PurseExpired || p.Status == PurseFailed {
			continue
		}
		resp, err := cl.Purse(ctx, p.ID)
		if errors.Is(err, client.ErrNotFound) {
			continue // an open_purse not committed (yet)
		}
		if err != nil {
			return err
		}
		lp := resp.GetPurse()
		switch lp.GetStatus() {
		case statepb.PurseStatus_PURSE_STATUS_OPEN:
			if p.Status == PursePending {
				p.Status, p.OpenTx = PurseOpen, lp.GetOpenTxId()
			}
		case statepb.PurseStatus_PURSE_STATUS_CLOSED:
			p.Status, p.CloseTx = PurseClosed, lp.GetCloseTxId()
		case statepb.PurseStatus_PURSE_STATUS_EXPIRED:
			p.Status = PurseExpired
		}
		p.ReturnedFen = lp.GetReturnedFen()
		if resp.GetRevocation() != nil {
			d.f.Revoked = true
		}
	}
	return nil
}

// UnloadResult is what closing one purse did.
type UnloadResult struct {
	Purse  *Purse
	Result *statepb.TxResult
	// ReturnedFen came back to the wallet now; ReservedFen stays in escrow
	// for receipted payments not deposited yet.
	ReturnedFen uint64
	ReservedFen uint64
	// Torn are payments sent without a receipt: their amounts came back
	// with the rest; if one is deposited later, the ledger takes it from
	// the wallet again.
	Torn []*Sent
	Err  error
}

// Unload closes every open purse on the device: the device signs its last
// counter and the payments it holds receipts for; the rest of the escrow,
// torn payments included, returns to the wallet.
func (d *Device) Unload(ctx context.Context, cl *client.Client) ([]*UnloadResult, error) {
	b, err := cl.Builder(ctx)
	if err != nil {
		return nil, err
	}
	var out []*UnloadResult
	for _, p := range d.f.Purses {
		if p.Status != PurseOpen {
			continue
		}
		final, receipted, err := d.CloseBody(p.ID)
		if err != nil {
			return out, err
		}
		tx, err := b.ClosePurse(d.key, p.ID, final, receipted)
		if err != nil {
			return out, err
		}
		u := &UnloadResult{Purse: p, Torn: d.Torn(p.ID)}
		out = append(out, u)
		res, err := cl.SubmitOK(ctx, tx)
		u.Result, u.Err = res, err
		if err != nil {
			var te *client.TxError
			if !errors.As(err, &te) {
				return out, err
			}
			continue
		}
		resp, err := cl.Purse(ctx, p.ID)
		if err != nil {
			return out, err
		}
		lp := resp.GetPurse()
		u.ReturnedFen = lp.GetReturnedFen()
		for _, r := range lp.GetReserved() {
			u.ReservedFen += r.GetAmountFen()
		}
		p.Status, p.CloseTx, p.ReturnedFen = PurseClosed, res.GetTxId(), lp.GetReturnedFen()
		if err := d.save(); err != nil {
			return out, err
		}
	}
	return out, nil
}
