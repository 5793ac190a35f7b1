package state

import (
	"encoding/binary"
	"math/bits"

	"github.com/dcep/dcep/state/statepb"
)

// A bank is liable for the devices it certifies (docs/offline.md, "Who
// pays"). What a payee is owed beyond the purse's escrow and the payer's
// online funds is paid by the bank: its guarantee wallet, then its reserve
// wallet. What those hold too little for is a claim on the bank
// (OfflineClaim), which the ledger pays by itself, in settlement order, as
// soon as the bank's guarantee or reserve holds money: the scheduled job
// jobOfflineClaims, woken whenever one of those wallets is credited while
// claims are open. So an honest payee is unpaid only while its bank holds
// nothing on the ledger, which checkOfflineBooks verifies.
//
// Keys (offline.go's "o:" table):
//
//	o:k<bank id>                  BankOfflineRecord (exposure, claims)
//	o:c<bank id>0x00<seq u64>     OfflineClaim

func keyBankOffline(bank string) []byte { return keyOff('k', []byte(bank)) }
func keyClaimPrefix(bank string) []byte { return append(keyOff('c', []byte(bank)), 0) }
func keyClaim(bank string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(keyClaimPrefix(bank), seq)
}

// jobOfflineClaims pays a bank's open claims (id: the bank id).
const jobOfflineClaims JobKind = 41

func init() { registerJob(jobOfflineClaims, runOfflineClaims) }

// claimUnits is the scheduled-work cost of paying one claim, beyond the
// outputs it spends: the claim, settlement, incident and debt records, the
// payee's output and history.
const claimUnits = 8

// bankOffline returns a bank's offline record (a new one if it has none).
// Callers write it back with setBankOffline.
func (a *applier) bankOffline(bank string) *statepb.BankOfflineRecord {
	r := &statepb.BankOfflineRecord{}
	if !a.get(keyBankOffline(bank), r) {
		r = &statepb.BankOfflineRecord{BankId: bank}
	}
	return r
}

func (a *applier) setBankOffline(r *statepb.BankOfflineRecord) {
	a.set(keyBankOffline(r.GetBankId()), r)
}

// isBankWallet: a bank's reserve or guarantee wallet, the wallets that pay
// its offline claims.
func isBankWallet(w *statepb.WalletRecord) bool {
	k := w.GetKind()
	return k == statepb.WalletKind_WALLET_KIND_BANK_RESERVE || k == statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE
}

// bankFunds is what a bank's guarantee and reserve wallets hold (their
// outputs are never red packets: those go only to merchants).
func (a *applier) bankFunds(bank *statepb.Bank) uint64 {
	var fen uint64
	for _, id := range []string{bank.GetGuaranteeWalletId(), bank.GetReserveWalletId()} {
		if id == "" {
			continue
		}
		fen = satAdd(fen, a.wallet(id).GetBalanceFen())
	}
	return fen
}

// --- Cover at open ---

// checkCover refuses to open a purse for a bank that owes payees unpaid
// claims, or whose guarantee wallet holds less than the genesis cover ratio
// of its offline exposure with this purse: guarantee × 10,000 ≥
// (exposure + amount) × guarantee_cover_bps, in 128 bits.
func (a *applier) checkCover(w *statepb.WalletRecord, c *statepb.PurseCertBody) *statepb.Error {
	bo := a.bankOffline(w.GetBankId())
	if bo.GetClaimsOpenFen() > 0 {
		return statepb.Errorf(statepb.Code_CODE_GUARANTEE_SHORT, "open_purse.cert.bank_id: bank %s owes payees %d fen on %d unpaid offline claims; it opens no purse until they are paid",
			w.GetBankId(), bo.GetClaimsOpenFen(), bo.GetClaimsOpen())
	}
	bps := uint64(a.s.genesis.GetOffline().GetGuaranteeCoverBps())
	if bps == 0 {
		return nil
	}
	exposure := satAdd(bo.GetExposureFen(), c.GetAmountFen())
	gid := a.bank(w.GetBankId()).GetBank().GetGuaranteeWalletId()
	var held uint64
	if gid != "" {
		held = a.wallet(gid).GetBalanceFen()
	}
	needHi, needLo := bits.Mul64(exposure, bps)
	heldHi, heldLo := bits.Mul64(held, 10_000)
	if heldHi > needHi || (heldHi == needHi && heldLo >= needLo) {
		return nil
	}
	return statepb.Errorf(statepb.Code_CODE_GUARANTEE_SHORT,
		"open_purse.cert.amount_fen: bank %s's guarantee wallet %q holds %d fen; its offline exposure with this purse, %d fen, needs %d fen at the genesis cover ratio of %d basis points",
		w.GetBankId(), gid, held, exposure, coverNeeded(needHi, needLo), bps)
}

// coverNeeded is ⌈(hi, lo) / 10,000⌉, saturated to the uint64 range.
func coverNeeded(hi, lo uint64) uint64 {
	if hi >= 10_000 {
		return ^uint64(0)
	}
	q, r := bits.Div64(hi, lo, 10_000)
	if r > 0 && q < ^uint64(0) {
		q++
	}
	return q
}

// CoverNeededFen is what a guarantee must hold for an exposure at a cover
// ratio in basis points (what open_purse checks), for reports.
func CoverNeededFen(exposureFen uint64, bps uint32) uint64 {
	return coverNeeded(bits.Mul64(exposureFen, uint64(bps)))
}

// addExposure and releaseExposure keep the bank's exposure: the amounts of
// its purses from opening until their deadline (until then a copy of the
// device may still pay payees that have not synced).
func (a *applier) addExposure(bank string, fen uint64) {
	bo := a.bankOffline(bank)
	bo.ExposureFen = satAdd(bo.GetExposureFen(), fen)
	a.setBankOffline(bo)
}

func (a *applier) releaseExposure(bank string, fen uint64) {
	bo := a.bankOffline(bank)
	if bo.GetExposureFen() < fen {
		a.fail("bank %s: offline exposure %d < %d released", bank, bo.GetExposureFen(), fen)
		return
	}
	bo.ExposureFen -= fen
	a.setBankOffline(bo)
}

// --- Claims ---

// reserveClaim takes the bank's next claim number for a payment that is
// being settled with unpaid > 0; openClaim writes the claim once the
// incident (if any) has its id.
func (a *applier) reserveClaim(bank string) uint64 {
	return a.bankOffline(bank).GetLastClaim() + 1
}

// openClaim records what bank owes a payee for a payment (seq from
// reserveClaim) and wakes the job that pays claims if the bank holds money
// (its guarantee and reserve may hold outputs the 64-output cap left).
func (a *applier) openClaim(s *statepb.Settlement, seq uint64) {
	bo := a.bankOffline(s.GetBankId())
	if seq != bo.GetLastClaim()+1 {
		a.fail("bank %s: claim %d after claim %d", s.GetBankId(), seq, bo.GetLastClaim())
		return
	}
	bo.LastClaim = seq
	if bo.GetFirstOpenClaim() == 0 {
		bo.FirstOpenClaim = seq
	}
	bo.ClaimsOpen++
	bo.ClaimsOpenFen = satAdd(bo.GetClaimsOpenFen(), s.GetUnpaidFen())
	a.set(keyClaim(s.GetBankId(), seq), &statepb.OfflineClaim{
		BankId: s.GetBankId(), Seq: seq, PaymentHash: s.GetPaymentHash(), PayeeWalletId: s.GetPayeeWalletId(), PayerWalletId: s.GetPayerWalletId(),
		IncidentId: s.GetIncidentId(), OwedFen: s.GetUnpaidFen(), TimeMs: a.timeMs, LogIndex: a.index,
	})
	if a.bankFunds(a.bank(s.GetBankId()).GetBank()) > 0 {
		a.wakeClaims(bo)
	}
	a.setBankOffline(bo)
}

// wakeClaims schedules the bank's claims job now (it runs at the start of
// the next block) unless it is scheduled already or nothing is owed. The
// caller writes bo.
func (a *applier) wakeClaims(bo *statepb.BankOfflineRecord) {
	if bo.GetClaimsOpen() == 0 || bo.GetClaimsJobScheduled() {
		return
	}
	bo.ClaimsJobScheduled, bo.ClaimsJobDueMs = true, a.timeMs
	a.schedule(jobOfflineClaims, a.timeMs, []byte(bo.GetBankId()), nil)
}

// runOfflineClaims pays a bank's open claims in seq order from its
// guarantee, then its reserve, each payment at most maxRecoveryInputs
// outputs per wallet, as one recorded pay_offline_claims transaction. It
// stops at a claim it cannot pay in full; it is done when no claim is open
// or the bank holds nothing (a credit to its guarantee or reserve wakes it
// again), else it continues in the next block.
func runOfflineClaims(a *applier, id, _ []byte, budget int) (int, bool, []byte) {
	bankID := string(id)
	bo := a.bankOffline(bankID)
	bank := a.bank(bankID).GetBank()
	if bank == nil {
		a.fail("claims job of unknown bank %q", bankID)
		return 1, true, nil
	}
	body := &statepb.Tx{Version: statepb.TxVersion, ChainId: a.s.genesis.GetChainId(),
		Kind: &statepb.Tx_PayOfflineClaims{PayOfflineClaims: &statepb.PayOfflineClaims{BankId: bankID, Run: bo.GetClaimRuns() + 1}}}
	t := a.ledgerTx(body)
	if t == nil {
		return 1, true, nil
	}
	a.beginOffline(t)
	used := 1
	for bo.GetClaimsOpen() > 0 && used < budget && a.err == nil {
		paid, whole := a.payClaim(t, bank, bo)
		used += claimUnits + paid.outputs
		if !whole {
			break
		}
	}
	if n := a.endOffline(nil); n > 0 {
		bo.ClaimRuns++
		a.recordTx(t.id, &statepb.TxRecord{SignedTx: t.raw, OutputCount: n,
			Result: &statepb.TxResult{TxId: t.id[:], Code: statepb.Code_CODE_OK, LogIndex: a.index, TimeMs: a.timeMs}})
	}
	done := bo.GetClaimsOpen() == 0 || a.bankFunds(bank) == 0
	if done {
		bo.ClaimsJobScheduled, bo.ClaimsJobDueMs = false, 0
	}
	a.setBankOffline(bo)
	return used, done, nil
}

// taken is what a recovery moved: fen, over how many outputs.
type taken struct {
	fen     uint64
	outputs int
}

// payClaim pays as much of the bank's oldest open claim as its guarantee
// and reserve give, to the payee (or, if the payee's wallet was closed
// meanwhile, to its bank's reserve), and updates the claim, the
// settlement, the incident, the payer's debt and bo. whole: the claim is
// now paid in full.
func (a *applier) payClaim(t *decodedTx, bank *statepb.Bank, bo *statepb.BankOfflineRecord) (taken, bool) {
	c := &statepb.OfflineClaim{}
	if !a.get(keyClaim(bank.GetId(), bo.GetFirstOpenClaim()), c) {
		a.fail("bank %s: open claim %d missing", bank.GetId(), bo.GetFirstOpenClaim())
		return taken{}, false
	}
	need := c.GetOwedFen() - c.GetPaidFen()
	g := a.takeFrom(bank.GetGuaranteeWalletId(), need, c.GetPayeeWalletId())
	r := a.takeFrom(bank.GetReserveWalletId(), need-g.fen, c.GetPayeeWalletId())
	got := taken{g.fen + r.fen, g.outputs + r.outputs}
	if got.fen == 0 {
		return got, false
	}
	to := a.wallet(c.GetPayeeWalletId())
	if to.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
		to = a.mustWallet(a.bank(to.GetBankId()).GetBank().GetReserveWalletId())
	}
	if to == nil {
		a.fail("claim %s/%d: payee %q missing", bank.GetId(), c.GetSeq(), c.GetPayeeWalletId())
		return got, false
	}
	a.out(to, got.fen)
	a.addHistory(to, t, &statepb.HistoryEntry{InFen: got.fen, Counterparty: bank.GetId()})
	a.setWallet(to)

	c.PaidFen += got.fen // ≤ owed
	c.PaidToWalletId = to.GetId()
	whole := c.GetPaidFen() == c.GetOwedFen()
	if whole {
		c.PaidMs = a.timeMs
		bo.ClaimsOpen--
		bo.FirstOpenClaim = 0
		if c.GetSeq() < bo.GetLastClaim() {
			bo.FirstOpenClaim = c.GetSeq() + 1 // claims are paid in order
		}
	}
	a.set(keyClaim(bank.GetId(), c.GetSeq()), c)
	bo.ClaimsOpenFen -= got.fen
	bo.ClaimsPaidFen = satAdd(bo.GetClaimsPaidFen(), got.fen)
	a.claimPaidLater(c, got.fen)
	return got, whole
}

// claimPaidLater moves fen from unpaid to paid later on the claim's
// settlement, incident and the payer's debt record.
func (a *applier) claimPaidLater(c *statepb.OfflineClaim, fen uint64) {
	s := a.settlement(c.GetPaymentHash())
	if s == nil || s.GetUnpaidFen() < fen {
		a.fail("claim %s/%d: settlement missing or owes less than %d", c.GetBankId(), c.GetSeq(), fen)
		return
	}
	s.UnpaidFen -= fen
	s.PaidLaterFen += fen
	a.set(keySettlement(s.GetPaymentHash()), s)
	if c.GetIncidentId() != 0 {
		inc := &statepb.Incident{}
		if !a.get(keyIncident(c.GetIncidentId()), inc) || inc.GetUnpaidFen() < fen {
			a.fail("claim %s/%d: incident %d missing or owes less than %d", c.GetBankId(), c.GetSeq(), c.GetIncidentId(), fen)
			return
		}
		inc.UnpaidFen -= fen
		inc.PaidLaterFen += fen
		if inc.GetUnpaidFen() == 0 {
			inc.Status = statepb.IncidentStatus_INCIDENT_STATUS_PAID_LATE
		}
		a.set(keyIncident(inc.GetId()), inc)
	}
	if d := a.debt(c.GetPayerWalletId(), false); d != nil && d.GetUnpaidFen() >= fen {
		d.UnpaidFen -= fen
	} else {
		a.fail("claim %s/%d: payer %q's debt record owes its payees less than %d", c.GetBankId(), c.GetSeq(), c.GetPayerWalletId(), fen)
	}
}
