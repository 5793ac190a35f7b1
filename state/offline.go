package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// Dual offline payments (SPEC §4; docs/offline.md): the ledger kinds
// open_purse, deposit_offline (offline_deposit.go), close_purse, the purse
// expiry job, and their records. The rules a payment must meet live in
// state/offline, shared with the payee devices.
//
// Key layout, all under the "o:" prefix (keys.go):
//
//	o:p<purse id>               PurseRecord
//	o:s<purse id><counter u32>  hash of the payment settled first at that counter (32 bytes)
//	o:h<payment hash>           Settlement
//	o:i<incident id u64>        Incident
//	o:r<revocation index u64>   Revocation
//	o:v<device key>             Revocation (the device's)
//	o:b<wallet id>              OfflineDebt
//	o:t<tx id>                  OfflineTxRecord (output owners, deposit items)
//	o:n                         counters: last incident id u64, last revocation index u64
//	o:k<bank id>                BankOfflineRecord (exposure, claims; offline_claims.go)
//	o:c<bank id>0x00<seq u64>   OfflineClaim (offline_claims.go)

func keyOff(table byte, parts ...[]byte) []byte {
	k := append(cat(prefixOffline, nil), table)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func keyPurse(id []byte) []byte { return keyOff('p', id) }
func keySlot(purse []byte, counter uint32) []byte {
	return keyOff('s', purse, binary.BigEndian.AppendUint32(nil, counter))
}
func keySettlement(hash []byte) []byte { return keyOff('h', hash) }
func keyIncident(id uint64) []byte     { return keyOff('i', binary.BigEndian.AppendUint64(nil, id)) }
func keyRevocation(index uint64) []byte {
	return keyOff('r', binary.BigEndian.AppendUint64(nil, index))
}
func keyDeviceRevoked(device []byte) []byte { return keyOff('v', device) }
func keyDebt(wallet string) []byte          { return keyOff('b', []byte(wallet)) }
func keyOfflineTx(id []byte) []byte         { return keyOff('t', id) }

var keyOfflineCounters = keyOff('n')

// jobPurseExpiry returns an expired purse's rest to its wallet.
const jobPurseExpiry JobKind = 40

func init() { registerJob(jobPurseExpiry, runPurseExpiry) }

// freezeSourceOffline names the rule that froze a wallet in the frozen index.
const freezeSourceOffline = "offline_double_spend"

// maxRecoveryInputs bounds the outputs the ledger spends from one wallet to
// cover one payment (the payer's, or the bank's guarantee wallet); what
// they do not cover falls to the next source.
const maxRecoveryInputs = 64

// offlineNet builds the verification context once per store (genesis is
// fixed for the life of a Store).
type offlineNet struct {
	once sync.Once
	net  *offline.Network
}

func (s *Store) offlineNet() *offline.Network {
	s.offline.once.Do(func() { s.offline.net = offline.NewNetwork(s.genesis, s.genesisHash) })
	return s.offline.net
}

// offDecoded is what the stateless stage decoded and verified.
type offDecoded struct {
	cert  *statepb.PurseCertBody // open_purse
	items []*offline.Decoded     // deposit_offline, one per item
}

// checkOffline runs the offline rules that need no state, on the
// verification workers: the open_purse certificate's chain to a bank, and
// for a deposit every payment's shape, certificate, signature, addressee,
// nonce, amount, cap and count (offline.Network.Verify: the same function
// the payee device ran). A failure refuses the whole transaction, like any
// stateless check: not recorded.
func (s *Store) checkOffline(t *decodedTx, body *statepb.Tx) *statepb.Error {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_OpenPurse:
		c, err := s.offlineNet().VerifyCert(k.OpenPurse.GetCert())
		if err != nil {
			return within("open_purse.cert", err)
		}
		t.off = &offDecoded{cert: c}
	case *statepb.Tx_DepositOffline:
		dep := k.DepositOffline
		items := dep.GetItems()
		off := &offDecoded{items: make([]*offline.Decoded, len(items))}
		errs := make([]error, len(items))
		net := s.offlineNet()
		parallel(len(items), func(i int) {
			it := items[i]
			if errs[i] = offline.ValidateRequest(it.GetRequest()); errs[i] == nil {
				off.items[i], errs[i] = net.Verify(it.GetPayment(), offline.Expect{PayeeKey: dep.GetDevicePublicKey(), Request: it.GetRequest()})
			}
		})
		for i, err := range errs {
			if err != nil {
				return within("deposit_offline.items["+itoa(i)+"]", err)
			}
		}
		t.off = off
	}
	return nil
}

// parallel runs fn(0..n-1) on up to GOMAXPROCS goroutines. A deposit of 64
// payments is 129 signature verifications: one pipeline chunk of such
// transactions would otherwise keep one core busy while the others wait.
// Results go to fixed positions, so nothing depends on timing.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/minPerWorker)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// minPerWorker is how many payments make another verifying goroutine
// worth starting.
const minPerWorker = 8

// within prefixes a rule's message with the field it applies to.
func within(field string, err error) *statepb.Error {
	return asRejection(err).Within(field)
}

// offlineSigners: open_purse — the wallet's key; deposit_offline — the
// receiving device named in it; close_purse — the purse's device.
func (a *applier) offlineSigners(body *statepb.Tx) ([]signer, *statepb.Error) {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_OpenPurse:
		return a.ownerSigner("open_purse.wallet_id", k.OpenPurse.GetWalletId())
	case *statepb.Tx_DepositOffline:
		return []signer{{k.DepositOffline.GetDevicePublicKey(), "the receiving device"}}, nil
	case *statepb.Tx_ClosePurse:
		p := a.purse(k.ClosePurse.GetPurseId())
		if p == nil {
			return nil, statepb.Errorf(statepb.Code_CODE_PURSE_NOT_FOUND, "close_purse.purse_id: no purse %x", short(k.ClosePurse.GetPurseId()))
		}
		return []signer{{p.GetDevicePublicKey(), "the purse's device"}}, nil
	}
	return nil, statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "%s: not submittable", kindName(body))
}

// --- Per-transaction state ---

// offState is one offline transaction's (or expiry's) working state: the
// purses it read or changed (written once, at the end, in first-read order)
// and the owners of the outputs it created, in index order.
type offState struct {
	t      *decodedTx
	owners []string
	purses []*statepb.PurseRecord
	debts  []*statepb.OfflineDebt
}

func (a *applier) beginOffline(t *decodedTx) {
	a.off = offState{t: t}
}

// endOffline writes the changed purses and debts and the transaction's
// offline record (if it created outputs or is a deposit).
func (a *applier) endOffline(rec *statepb.OfflineTxRecord) uint32 {
	for _, p := range a.off.purses {
		a.set(keyPurse(p.GetPurseId()), p)
	}
	for _, d := range a.off.debts {
		a.set(keyDebt(d.GetWalletId()), d)
	}
	if rec == nil && len(a.off.owners) > 0 {
		rec = &statepb.OfflineTxRecord{}
	}
	if rec != nil {
		rec.OutputOwners = a.off.owners
		a.set(keyOfflineTx(a.off.t.id[:]), rec)
	}
	n := uint32(len(a.off.owners))
	a.off = offState{}
	return n
}

// out creates the transaction's next output, to w, and credits w.
func (a *applier) out(w *statepb.WalletRecord, fen uint64) {
	a.createOutput(a.off.t, uint32(len(a.off.owners)), w, fen)
	a.off.owners = append(a.off.owners, w.GetId())
}

// offlineOutputOwner is outputOwner for the offline kinds: read from the
// transaction's offline record.
func (a *applier) offlineOutputOwner(rec *statepb.TxRecord, index uint32) string {
	var r statepb.OfflineTxRecord
	if !a.get(keyOfflineTx(rec.GetResult().GetTxId()), &r) || int(index) >= len(r.GetOutputOwners()) {
		a.fail("offline transaction %x: no owner of output %d", short(rec.GetResult().GetTxId()), index)
		return ""
	}
	return r.GetOutputOwners()[index]
}

// --- Records ---

// purse returns a purse as this transaction has it, or nil.
func (a *applier) purse(id []byte) *statepb.PurseRecord {
	for _, p := range a.off.purses {
		if bytes.Equal(p.GetPurseId(), id) {
			return p
		}
	}
	p := &statepb.PurseRecord{}
	if !a.get(keyPurse(id), p) {
		return nil
	}
	if a.off.t != nil {
		a.off.purses = append(a.off.purses, p)
	}
	return p
}

// newPurse adds a purse record to the transaction's changes.
func (a *applier) newPurse(p *statepb.PurseRecord) {
	a.off.purses = append(a.off.purses, p)
}

// debt returns a wallet's offline debt record as this transaction has it
// (it is written at the end of the transaction); if there is none, a new one
// if create, else nil.
func (a *applier) debt(wallet string, create bool) *statepb.OfflineDebt {
	for _, d := range a.off.debts {
		if d.GetWalletId() == wallet {
			return d
		}
	}
	d := &statepb.OfflineDebt{}
	if !a.get(keyDebt(wallet), d) {
		if a.err != nil || !create {
			return nil
		}
		d = &statepb.OfflineDebt{WalletId: wallet}
	}
	a.off.debts = append(a.off.debts, d)
	return d
}

// revocation returns a device's revocation, or nil.
func (a *applier) revocation(device []byte) *statepb.Revocation {
	r := &statepb.Revocation{}
	if !a.get(keyDeviceRevoked(device), r) {
		return nil
	}
	return r
}

// counters reads the last incident id and revocation index.
func (a *applier) offlineCounters() (incidents, revocations uint64) {
	if a.err != nil {
		return 0, 0
	}
	v, c, err := a.b.Get(keyOfflineCounters)
	if err == pebble.ErrNotFound {
		return 0, 0
	}
	if err != nil {
		a.err = fmt.Errorf("read offline counters: %w", err)
		return 0, 0
	}
	defer c.Close()
	if len(v) != 16 {
		a.fail("offline counters: %d bytes", len(v))
		return 0, 0
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])
}

func (a *applier) setOfflineCounters(incidents, revocations uint64) {
	a.setRaw(keyOfflineCounters, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, incidents), revocations))
}

// policy is the genesis offline policy; nil if offline purses are disabled.
func (a *applier) policy() *statepb.OfflinePolicy {
	p := a.s.genesis.GetOffline()
	if p.GetMaxPurseFen() == 0 || p.GetMaxPayments() == 0 || p.GetMaxPaymentFen() == 0 {
		return nil
	}
	return p
}

// --- open_purse ---

// openPurse moves the certificate's amount from a wallet into a purse's
// escrow. Check order (docs/errors.md): payer kind and status; the
// certificate is this wallet's and by its bank (CERT_INVALID); purse id
// unused (PURSE_EXISTS); device not revoked (DEVICE_REVOKED); genesis
// policy and tier (PURSE_LIMIT, CERT_EXPIRED, LIMIT_DAILY, LIMIT_YEARLY);
// then the inputs as for any payment (moveMoney).
func (a *applier) openPurse(t *decodedTx, k *statepb.OpenPurse) (uint32, *statepb.Error) {
	w := a.wallet(k.GetWalletId())
	if rej := notForKinds("open_purse.wallet_id", w, append(reserveKinds, statepb.WalletKind_WALLET_KIND_SUB_WALLET)...); rej != nil {
		return 0, rej
	}
	if rej := senderStatus("open_purse.wallet_id", w); rej != nil {
		return 0, rej
	}
	c := t.off.cert
	if c.GetWalletId() != w.GetId() {
		return 0, statepb.Errorf(statepb.Code_CODE_CERT_INVALID, "open_purse.cert: for wallet %q, not %q", c.GetWalletId(), w.GetId())
	}
	if c.GetBankId() != w.GetBankId() {
		return 0, statepb.Errorf(statepb.Code_CODE_CERT_INVALID, "open_purse.cert: signed by bank %s, but wallet %q is at %s", c.GetBankId(), w.GetId(), w.GetBankId())
	}
	if a.purse(c.GetPurseId()) != nil {
		return 0, statepb.Errorf(statepb.Code_CODE_PURSE_EXISTS, "open_purse.cert.purse_id: purse %x already exists", short(c.GetPurseId()))
	}
	if r := a.revocation(c.GetDevicePublicKey()); r != nil {
		return 0, statepb.Errorf(statepb.Code_CODE_DEVICE_REVOKED, "open_purse.cert.device_public_key: device %x was revoked (revocation %d)", short(c.GetDevicePublicKey()), r.GetIndex())
	}
	if rej := a.checkPursePolicy(w, c); rej != nil {
		return 0, rej
	}
	if rej := a.checkCover(w, c); rej != nil {
		return 0, rej
	}
	amount := c.GetAmountFen()
	n, rej := a.moveMoney(&move{t: t, field: "open_purse", payerField: "open_purse.wallet_id", payer: w, inputs: k.GetInputs(), destroyFen: amount})
	if rej != nil {
		return 0, rej
	}
	// The escrowed amount can be spent offline with no further check by the
	// ledger, so it counts against the day's and year's limits now.
	a.countSpend(w, amount)
	a.setWallet(w)
	sup := a.getSupply()
	sup.OfflineEscrowFen += amount // ≤ issued − returned
	a.setSupply(sup)
	deadline := offline.Deadline(c, a.s.genesis.GetOffline().GetGraceMs())
	a.set(keyPurse(c.GetPurseId()), &statepb.PurseRecord{
		PurseId: c.GetPurseId(), Cert: k.GetCert(), WalletId: w.GetId(), BankId: w.GetBankId(), DevicePublicKey: c.GetDevicePublicKey(),
		AmountFen: amount, MaxPaymentFen: c.GetMaxPaymentFen(), MaxPayments: c.GetMaxPayments(), NotAfterMs: c.GetNotAfterMs(),
		DeadlineMs: deadline, Status: statepb.PurseStatus_PURSE_STATUS_OPEN, EscrowFen: amount, OpenTxId: t.id[:], OpenedMs: a.timeMs,
	})
	a.schedule(jobPurseExpiry, deadline, c.GetPurseId(), nil)
	a.addExposure(w.GetBankId(), amount)
	return n, nil
}

// checkPursePolicy checks a certificate against the genesis policy and the
// wallet's tier: amount ≤ max purse; per-payment cap ≤ the policy's and the
// wallet's per-payment limit; count ≤ the policy's; not_after in the future
// and within the maximum validity; and the amount within what the wallet
// may still spend today and this year.
func (a *applier) checkPursePolicy(w *statepb.WalletRecord, c *statepb.PurseCertBody) *statepb.Error {
	pol := a.policy()
	if pol == nil {
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse: offline purses are disabled on this network (genesis offline policy)")
	}
	caps := a.capsOf(w)
	switch {
	case c.GetAmountFen() > pol.GetMaxPurseFen():
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.amount_fen: %s is above the maximum purse %s", statepb.Fen(c.GetAmountFen()), statepb.Fen(pol.GetMaxPurseFen()))
	case c.GetMaxPaymentFen() > pol.GetMaxPaymentFen():
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.max_payment_fen: %s is above the offline per-payment maximum %s", statepb.Fen(c.GetMaxPaymentFen()), statepb.Fen(pol.GetMaxPaymentFen()))
	case exceeds(caps.payment, 0, c.GetMaxPaymentFen()):
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.max_payment_fen: %s is above wallet %q's per-payment limit %s", statepb.Fen(c.GetMaxPaymentFen()), w.GetId(), statepb.Fen(caps.payment))
	case c.GetMaxPayments() > pol.GetMaxPayments():
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.max_payments: %d is above the maximum %d", c.GetMaxPayments(), pol.GetMaxPayments())
	case c.GetNotAfterMs() <= a.timeMs:
		return statepb.Errorf(statepb.Code_CODE_CERT_EXPIRED, "open_purse.cert.not_after_ms: %d is not after ledger time %d", c.GetNotAfterMs(), a.timeMs)
	case pol.GetMaxValidityMs() > 0 && c.GetNotAfterMs()-a.timeMs > pol.GetMaxValidityMs():
		return statepb.Errorf(statepb.Code_CODE_PURSE_LIMIT, "open_purse.cert.not_after_ms: valid for %d ms, above the maximum %d ms", c.GetNotAfterMs()-a.timeMs, pol.GetMaxValidityMs())
	}
	_, dayUsed, _, yearUsed := a.spent(w)
	if exceeds(caps.daily, dayUsed, c.GetAmountFen()) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_DAILY, "open_purse: purse %s would take wallet %q past its daily limit %s (%s already paid today, Beijing time)", statepb.Fen(c.GetAmountFen()), w.GetId(), statepb.Fen(caps.daily), statepb.Fen(dayUsed))
	}
	if exceeds(caps.yearly, yearUsed, c.GetAmountFen()) {
		return statepb.Errorf(statepb.Code_CODE_LIMIT_YEARLY, "open_purse: purse %s would take wallet %q past its yearly limit %s (%s already paid this year)", statepb.Fen(c.GetAmountFen()), w.GetId(), statepb.Fen(caps.yearly), statepb.Fen(yearUsed))
	}
	return nil
}

// --- close_purse ---

// closePurse closes a purse on its device's word: the final counter and the
// payments it holds receipts for. Their amounts (unless deposited already)
// stay in escrow for their payees; the rest, including what torn payments
// took, returns to the wallet now. Check order: open (PURSE_CLOSED); device
// not revoked (DEVICE_REVOKED: a cloned device's escrow stays for the
// clones' payees until expiry); final counter within the purse's count and
// not below a counter already deposited (PURSE_CLOSE_INVALID).
func (a *applier) closePurse(t *decodedTx, k *statepb.ClosePurse) (uint32, *statepb.Error) {
	p := a.purse(k.GetPurseId())
	if p.GetStatus() != statepb.PurseStatus_PURSE_STATUS_OPEN {
		return 0, statepb.Errorf(statepb.Code_CODE_PURSE_CLOSED, "close_purse.purse_id: purse %x is %s", short(p.GetPurseId()), purseStatusName(p.GetStatus()))
	}
	if r := a.revocation(p.GetDevicePublicKey()); r != nil {
		return 0, statepb.Errorf(statepb.Code_CODE_DEVICE_REVOKED, "close_purse: device %x was revoked (revocation %d); the purse's rest returns when it expires", short(p.GetDevicePublicKey()), r.GetIndex())
	}
	if k.GetFinalCounter() > p.GetMaxPayments() {
		return 0, statepb.Errorf(statepb.Code_CODE_PURSE_CLOSE_INVALID, "close_purse.final_counter: %d is above the purse's %d payments", k.GetFinalCounter(), p.GetMaxPayments())
	}
	if k.GetFinalCounter() < p.GetLastSettledCounter() {
		return 0, statepb.Errorf(statepb.Code_CODE_PURSE_CLOSE_INVALID, "close_purse.final_counter: %d is below counter %d, which was deposited already", k.GetFinalCounter(), p.GetLastSettledCounter())
	}
	a.beginOffline(t)
	a.off.purses = append(a.off.purses, p)
	var reserved []*statepb.ReservedPayment
	var reservedFen uint64
	for _, r := range k.GetReceipted() {
		if h := a.slot(p.GetPurseId(), r.GetCounter()); bytes.Equal(h, r.GetPaymentHash()) {
			continue // deposited already
		}
		reserved = append(reserved, r)
		reservedFen = satAdd(reservedFen, r.GetAmountFen())
	}
	rest := p.GetEscrowFen() - min(reservedFen, p.GetEscrowFen())
	a.returnEscrow(p, rest)
	p.Status, p.FinalCounter, p.Reserved = statepb.PurseStatus_PURSE_STATUS_CLOSED, k.GetFinalCounter(), reserved
	// The expiry stays scheduled even with nothing left in escrow: until the
	// deadline a copy of the device may still pay, so the bank's exposure
	// lasts until then.
	p.CloseTxId, p.ClosedMs = t.id[:], a.timeMs
	return a.endOffline(nil), nil
}

// returnEscrow takes fen out of a purse's escrow back to its wallet. If the
// wallet owes its bank for offline payments, that is repaid first, to the
// bank's guarantee wallet (repayTo). The outputs are the current
// transaction's next ones. No balance cap applies: it was the wallet's money.
func (a *applier) returnEscrow(p *statepb.PurseRecord, fen uint64) {
	if fen == 0 || a.err != nil {
		return
	}
	if fen > p.GetEscrowFen() {
		a.fail("purse %x: returning %d of escrow %d", short(p.GetPurseId()), fen, p.GetEscrowFen())
		return
	}
	w := a.mustWallet(p.GetWalletId())
	if w == nil {
		return
	}
	p.EscrowFen -= fen
	p.ReturnedFen += fen
	sup := a.getSupply()
	if sup.GetOfflineEscrowFen() < fen {
		a.fail("supply offline escrow %d < %d returned", sup.GetOfflineEscrowFen(), fen)
		return
	}
	sup.OfflineEscrowFen -= fen
	a.setSupply(sup)
	var repay uint64
	var to *statepb.WalletRecord
	if d := a.debt(w.GetId(), false); d.GetDebtFen() > 0 {
		if to = a.repayTo(d.GetBankId()); to == nil {
			return
		}
		repay = min(fen, d.GetDebtFen())
		a.repayDebt(d, w, repay)
	}
	if fen > repay {
		a.out(w, fen-repay)
		a.addHistory(w, a.off.t, &statepb.HistoryEntry{InFen: fen - repay, PurseId: p.GetPurseId()})
	}
	a.setWallet(w)
	if repay > 0 {
		a.out(to, repay)
		a.addHistory(to, a.off.t, &statepb.HistoryEntry{InFen: repay, Counterparty: w.GetId()})
		a.setWallet(to)
	}
}

// slot returns the hash of the payment settled first at (purse, counter),
// or nil.
func (a *applier) slot(purse []byte, counter uint32) []byte {
	if a.err != nil {
		return nil
	}
	v, c, err := a.b.Get(keySlot(purse, counter))
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		a.err = fmt.Errorf("read slot: %w", err)
		return nil
	}
	defer c.Close()
	return append([]byte(nil), v...)
}

// --- expiry ---

// runPurseExpiry runs at a purse's deadline (not_after + grace): what is
// left in escrow returns to the wallet, no more deposits are accepted, and
// the purse no longer counts in its bank's exposure. The outputs belong to
// a transaction the ledger records itself, expire_purse, so they can be
// looked up and spent like any others.
func runPurseExpiry(a *applier, id, _ []byte, _ int) (int, bool, []byte) {
	p := &statepb.PurseRecord{}
	if !a.get(keyPurse(id), p) {
		a.fail("scheduled expiry of purse %x, which does not exist", short(id))
		return 1, true, nil
	}
	switch p.GetStatus() {
	case statepb.PurseStatus_PURSE_STATUS_OPEN, statepb.PurseStatus_PURSE_STATUS_CLOSED:
	default:
		return 1, true, nil
	}
	t := a.ledgerTx(&statepb.Tx{Version: statepb.TxVersion, ChainId: a.s.genesis.GetChainId(), Kind: &statepb.Tx_ExpirePurse{ExpirePurse: &statepb.ExpirePurse{PurseId: id}}})
	if t == nil {
		return 1, true, nil
	}
	a.beginOffline(t)
	a.off.purses = append(a.off.purses, p)
	a.returnEscrow(p, p.GetEscrowFen())
	p.Status, p.Reserved = statepb.PurseStatus_PURSE_STATUS_EXPIRED, nil
	a.releaseExposure(p.GetBankId(), p.GetAmountFen())
	n := a.endOffline(nil)
	a.recordTx(t.id, &statepb.TxRecord{SignedTx: t.raw, OutputCount: n,
		Result: &statepb.TxResult{TxId: t.id[:], Code: statepb.Code_CODE_OK, LogIndex: a.index, TimeMs: a.timeMs}})
	return 4, true, nil
}

// ExpiryTxID is the id of the expire_purse transaction the ledger records
// when the purse expires.
func ExpiryTxID(chainID string, purseID []byte) [32]byte {
	return ledgerTxID(&statepb.Tx{Version: statepb.TxVersion, ChainId: chainID, Kind: &statepb.Tx_ExpirePurse{ExpirePurse: &statepb.ExpirePurse{PurseId: purseID}}})
}

// PayClaimsTxID is the id of a bank's run-th pay_offline_claims.
func PayClaimsTxID(chainID, bankID string, run uint64) [32]byte {
	return ledgerTxID(&statepb.Tx{Version: statepb.TxVersion, ChainId: chainID,
		Kind: &statepb.Tx_PayOfflineClaims{PayOfflineClaims: &statepb.PayOfflineClaims{BankId: bankID, Run: run}}})
}

func ledgerTxID(body *statepb.Tx) [32]byte {
	raw, _ := deterministic.Marshal(body)
	return TxID(raw)
}

// --- helpers ---

// short is an id of bytes for a message: recorded whole in a rejection,
// printed by %x as its first 6 bytes.
func short(b []byte) statepb.Short { return statepb.Short(b) }

func purseStatusName(s statepb.PurseStatus) statepb.PurseStatusName {
	return statepb.PurseStatusName(s)
}
