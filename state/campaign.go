package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dcep/dcep/state/lottery"
	"github.com/dcep/dcep/state/statepb"
)

// Red-packet campaigns (SPEC §5): a sponsor (government wallet) funds a
// campaign into escrow; citizens enrol in the enrolment window; the sponsor
// reveals the lottery seed it committed to; the ledger grants the winners
// red packets in scheduled chunks (jobGrant) and, when the spending window
// closes, takes back everything unspent and returns it to the sponsor in
// scheduled chunks (jobReclaim). Nobody submits a transaction per packet.

// Scheduled job kinds of campaigns (schedule.go; this file owns 'G'..'R').
const (
	jobGrant   JobKind = 'G' // id: campaign id; due at the draw
	jobReclaim JobKind = 'R' // id: campaign id; due at the end of the spending window
)

// Units of scheduled work (≈ records written) per red packet granted or
// reclaimed; a block grants ScheduledWorkPerBlock / grantUnits packets.
const (
	grantUnits   = 5 // enrolment, winner, output, live index, history
	reclaimUnits = 4 // output, live index, history, wallet
)

func init() {
	registerJob(jobGrant, runGrant)
	registerJob(jobReclaim, runReclaim)
}

// reclaimOutput is the index, among the outputs of the campaign's create
// transaction, of what is returned to the sponsor at the end (output 0 is
// the change of the funding).
const reclaimOutput = 1

func (a *applier) createCampaign(t *decodedTx, k *statepb.CreateCampaign) (uint32, *statepb.Error) {
	const f = "create_campaign"
	sponsor := a.wallet(k.GetSponsorWalletId())
	if sponsor.GetKind() != statepb.WalletKind_WALLET_KIND_GOVERNMENT {
		return 0, statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s.sponsor_wallet_id: %q is a %s wallet; campaigns are funded by government wallets", f, sponsor.GetId(), walletKind(sponsor.GetKind()))
	}
	if a.campaign(k.GetCampaignId()) != nil {
		return 0, statepb.Errorf(statepb.Code_CODE_CAMPAIGN_EXISTS, "%s.campaign_id: %q already exists", f, k.GetCampaignId())
	}
	if k.GetEnrolEndMs() <= a.timeMs {
		return 0, statepb.Errorf(statepb.Code_CODE_CAMPAIGN_TOO_LATE, "%s.enrol_end_ms: enrolment would close at %s, ledger time is already %s", f, fmtTime(k.GetEnrolEndMs()), fmtTime(a.timeMs))
	}
	if rej := a.checkMerchants(f+".merchant_ids", k.GetMerchantIds()); rej != nil {
		return 0, rej
	}
	total, err := k.TotalFen()
	if err != nil { // ValidateBasic refused it
		a.fail("campaign total: %v", err)
		return 0, nil
	}
	if _, rej := a.moveMoney(&move{t: t, field: f, payerField: f + ".sponsor_wallet_id", payer: sponsor, inputs: k.GetInputs(), destroyFen: total}); rej != nil {
		return 0, rej
	}
	sup := a.getSupply()
	sup.CampaignEscrowFen += total // ≤ the inputs, part of the supply
	a.setSupply(sup)
	c := &statepb.CampaignRecord{
		Id: k.GetCampaignId(), SponsorWalletId: sponsor.GetId(), Title: k.GetTitle(),
		PacketCount: k.GetPacketCount(), PacketFen: k.GetPacketFen(), FundedFen: total, EscrowFen: total,
		EnrolStartMs: k.GetEnrolStartMs(), EnrolEndMs: k.GetEnrolEndMs(), SpendStartMs: k.GetSpendStartMs(), SpendEndMs: k.GetSpendEndMs(),
		RegionCodes: k.GetRegionCodes(), Commitment: k.GetCommitment(), CreateTxId: t.id[:], CreatedMs: a.timeMs,
		Status: statepb.CampaignStatus_CAMPAIGN_STATUS_OPEN,
	}
	a.listMerchants(c, k.GetMerchantIds())
	a.setCampaign(c)
	a.schedule(jobReclaim, c.GetSpendEndMs(), []byte(c.GetId()), nil)
	return reclaimOutput + 1, nil
}

// checkMerchants checks that every id is a merchant wallet.
func (a *applier) checkMerchants(field string, ids []string) *statepb.Error {
	for i, id := range ids {
		w := a.wallet(id)
		if w == nil {
			return statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s[%d]: no wallet %q", field, i, id)
		}
		if w.GetKind() != statepb.WalletKind_WALLET_KIND_MERCHANT {
			return statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s[%d]: %q is a %s wallet, not a merchant", field, i, id, walletKind(w.GetKind()))
		}
	}
	return nil
}

// listMerchants puts merchants on a campaign's list (once each).
func (a *applier) listMerchants(c *statepb.CampaignRecord, ids []string) {
	for _, id := range ids {
		k := keyCampaignMerchant(c.GetId(), id)
		if a.has(k) {
			continue
		}
		a.setRaw(k, nil)
		c.Merchants++
	}
}

func (a *applier) addCampaignMerchants(t *decodedTx, k *statepb.AddCampaignMerchants) *statepb.Error {
	const f = "add_campaign_merchants"
	c := a.campaign(k.GetCampaignId())
	if a.timeMs >= c.GetSpendStartMs() {
		return statepb.Errorf(statepb.Code_CODE_CAMPAIGN_MERCHANTS_CLOSED, "%s.campaign_id: the list of %q closed when its spending window opened at %s", f, c.GetId(), fmtTime(c.GetSpendStartMs()))
	}
	if rej := a.checkMerchants(f+".merchant_ids", k.GetMerchantIds()); rej != nil {
		return rej
	}
	a.listMerchants(c, k.GetMerchantIds())
	a.setCampaign(c)
	a.sponsorHistory(t, c)
	return nil
}

// sponsorHistory notes a campaign transaction in the sponsor's history.
func (a *applier) sponsorHistory(t *decodedTx, c *statepb.CampaignRecord) {
	if s := a.wallet(c.GetSponsorWalletId()); s != nil {
		a.addHistory(s, t, &statepb.HistoryEntry{})
		a.setWallet(s)
	}
}

func (a *applier) enrolCampaign(t *decodedTx, k *statepb.EnrolCampaign) *statepb.Error {
	const f = "enrol_campaign"
	w := a.wallet(k.GetWalletId())
	c := a.campaign(k.GetCampaignId())
	if c == nil {
		return statepb.Errorf(statepb.Code_CODE_CAMPAIGN_NOT_FOUND, "%s.campaign_id: %q", f, k.GetCampaignId())
	}
	if w.GetKind() != statepb.WalletKind_WALLET_KIND_PERSONAL {
		return statepb.Errorf(statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "%s.wallet_id: %q is a %s wallet; people enrol with personal wallets", f, w.GetId(), walletKind(w.GetKind()))
	}
	if rej := senderStatus(f+".wallet_id", w); rej != nil {
		return rej
	}
	if a.timeMs < c.GetEnrolStartMs() || a.timeMs >= c.GetEnrolEndMs() {
		return statepb.Errorf(statepb.Code_CODE_ENROLMENT_CLOSED, "%s.campaign_id: enrolment in %q is open from %s to %s (ledger time now %s)",
			f, c.GetId(), fmtTime(c.GetEnrolStartMs()), fmtTime(c.GetEnrolEndMs()), fmtTime(a.timeMs))
	}
	if v, ok := a.getBytes(keyEnrolled(c.GetId(), w.GetId())); ok {
		return statepb.Errorf(statepb.Code_CODE_ALREADY_ENROLLED, "%s.wallet_id: %q is already enrolled in %q (enrolment %d)", f, w.GetId(), c.GetId(), binary.BigEndian.Uint64(v))
	}
	n := c.GetEnrolled()
	a.set(keyEnrolment(c.GetId(), n), &statepb.EnrolmentRecord{Number: n, WalletId: w.GetId(), TimeMs: a.timeMs})
	a.setRaw(keyEnrolled(c.GetId(), w.GetId()), be64(n))
	c.Enrolled++
	a.setCampaign(c)
	a.addHistory(w, t, &statepb.HistoryEntry{Counterparty: c.GetSponsorWalletId()})
	a.setWallet(w)
	return nil
}

func (a *applier) drawCampaign(t *decodedTx, k *statepb.DrawCampaign) (uint32, *statepb.Error) {
	const f = "draw_campaign"
	c := a.campaign(k.GetCampaignId())
	switch c.GetStatus() {
	case statepb.CampaignStatus_CAMPAIGN_STATUS_OPEN:
	case statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING, statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED:
		return 0, statepb.Errorf(statepb.Code_CODE_ALREADY_DRAWN, "%s.campaign_id: %q was drawn at %s", f, c.GetId(), fmtTime(c.GetDrawnMs()))
	default:
		return 0, statepb.Errorf(statepb.Code_CODE_DRAW_TOO_LATE, "%s.campaign_id: %q has closed", f, c.GetId())
	}
	if a.timeMs < c.GetEnrolEndMs() {
		return 0, statepb.Errorf(statepb.Code_CODE_DRAW_TOO_EARLY, "%s.campaign_id: enrolment in %q is open until %s (ledger time now %s)", f, c.GetId(), fmtTime(c.GetEnrolEndMs()), fmtTime(a.timeMs))
	}
	if a.timeMs >= c.GetSpendEndMs() {
		return 0, statepb.Errorf(statepb.Code_CODE_DRAW_TOO_LATE, "%s.campaign_id: the spending window of %q closed at %s", f, c.GetId(), fmtTime(c.GetSpendEndMs()))
	}
	if !lottery.Verify(k.GetSeed(), c.GetCommitment()) {
		return 0, statepb.Errorf(statepb.Code_CODE_DRAW_SEED_MISMATCH, "%s.seed: SHA-256 of the seed is not the commitment %.8x of %q", f, short(c.GetCommitment()), c.GetId())
	}
	d := lottery.Draw{Seed: k.GetSeed(), Campaign: c.GetId(), N: c.GetEnrolled(), K: uint64(c.GetPacketCount())}
	c.Seed, c.DrawTxId, c.DrawnMs, c.Winners = k.GetSeed(), t.id[:], a.timeMs, d.Winners()
	c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED
	if c.GetWinners() > 0 {
		c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING
		a.schedule(jobGrant, a.timeMs, []byte(c.GetId()), nil)
	}
	a.setCampaign(c)
	a.sponsorHistory(t, c)
	return uint32(c.GetWinners()), nil // ≤ MaxCampaignPackets
}

// enrolment reads enrolment n of a campaign through the batch.
func (a *applier) enrolment(campaign string, n uint64) *statepb.EnrolmentRecord {
	var e statepb.EnrolmentRecord
	if !a.get(keyEnrolment(campaign, n), &e) {
		if a.err == nil {
			a.fail("campaign %q: enrolment %d missing", campaign, n)
		}
		return nil
	}
	return &e
}

// runGrant grants red packets in rank order, each winner chosen by one
// lottery step (state/lottery), within the block's budget. Granting stops
// when the spending window closes (the rest stays in escrow and is
// reclaimed). A winner whose wallet is closed forfeits the packet (it
// stays in escrow); a frozen wallet is granted (it cannot spend it, and the
// packet is reclaimed at the end if still there).
func runGrant(a *applier, id, _ []byte, budget int) (int, bool, []byte) {
	c := a.campaign(string(id))
	if c == nil {
		a.fail("grant job: campaign %q missing", id)
		return 1, true, nil
	}
	if c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING {
		return 1, true, nil
	}
	if a.timeMs >= c.GetSpendEndMs() {
		c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED
		a.setCampaign(c)
		return 1, true, nil
	}
	d := lottery.Draw{Seed: c.GetSeed(), Campaign: c.GetId(), N: c.GetEnrolled(), K: uint64(c.GetPacketCount())}
	sup := a.getSupply()
	used := 0
	for c.GetGranted() < c.GetWinners() && used < budget && a.err == nil {
		r := c.GetGranted()
		n := d.Step(r, func(e uint64) bool { return a.enrolment(c.GetId(), e).GetWon() })
		e := a.enrolment(c.GetId(), n)
		if e == nil || e.GetWon() {
			a.fail("campaign %q: lottery step %d chose enrolment %d twice", c.GetId(), r, n)
			break
		}
		e.Won, e.Rank = true, r
		a.set(keyEnrolment(c.GetId(), n), e)
		win := &statepb.WinnerRecord{Rank: r, Enrolment: n, WalletId: e.GetWalletId(), GrantedMs: a.timeMs}
		w := a.wallet(e.GetWalletId())
		switch {
		case w == nil:
			a.fail("campaign %q: winner wallet %q missing", c.GetId(), e.GetWalletId())
		case w.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED:
			win.Forfeited = true
			c.Forfeited++
		case c.GetEscrowFen() < c.GetPacketFen() || sup.GetCampaignEscrowFen() < c.GetPacketFen():
			a.fail("campaign %q: escrow %d (supply %d) below a packet", c.GetId(), c.GetEscrowFen(), sup.GetCampaignEscrowFen())
		default:
			c.EscrowFen -= c.GetPacketFen()
			sup.CampaignEscrowFen -= c.GetPacketFen()
			c.GrantedFen += c.GetPacketFen()
			a.createRedPacket(c.GetDrawTxId(), uint32(r), w, c.GetPacketFen(), c.GetId())
			a.addLedgerHistory(w, c.GetDrawTxId(), "red_packet_grant", &statepb.HistoryEntry{InFen: c.GetPacketFen(), Counterparty: c.GetSponsorWalletId(), Memo: c.GetTitle()})
			a.setWallet(w)
		}
		a.set(keyWinner(c.GetId(), r), win)
		c.Granted++
		used += grantUnits
	}
	done := c.GetGranted() == c.GetWinners()
	if done {
		c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED
	}
	a.setCampaign(c)
	a.setSupply(sup)
	return used, done, nil
}

// liveEntry is one entry of a campaign's live red-packet index.
type liveEntry struct {
	key   []byte
	owner string
	op    *statepb.Outpoint
	fen   uint64
}

// liveEntries reads up to n entries of a campaign's live index, in key
// order, through the batch.
func (a *applier) liveEntries(campaign string, n int) (out []liveEntry, more bool) {
	if a.err != nil {
		return nil, false
	}
	prefix := keyCampaignTab(campaign, tabLive)
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		a.err = fmt.Errorf("scan live red packets: %w", err)
		return nil, false
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if len(out) == n {
			return out, true
		}
		e, ok := parseLive(prefix, it.Key(), it.Value())
		if !ok {
			a.fail("live red-packet entry %q", it.Key())
			return nil, false
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		a.err = fmt.Errorf("scan live red packets: %w", err)
	}
	return out, false
}

// parseLive decodes a live-index entry: owner 0x00 tx id index(4) → amount(8).
func parseLive(prefix, k, v []byte) (liveEntry, bool) {
	rest := k[len(prefix):]
	i := 0
	for i < len(rest) && rest[i] != 0 {
		i++
	}
	if i == 0 || len(rest) != i+1+statepb.TxIDBytes+4 || len(v) != 8 {
		return liveEntry{}, false
	}
	op := &statepb.Outpoint{TxId: append([]byte(nil), rest[i+1:i+1+statepb.TxIDBytes]...), Index: binary.BigEndian.Uint32(rest[i+1+statepb.TxIDBytes:])}
	return liveEntry{key: append([]byte(nil), k...), owner: string(rest[:i]), op: op, fen: binary.BigEndian.Uint64(v)}, true
}

// runReclaim runs when the spending window has closed: it takes every
// live red packet of the campaign back into escrow, a budget's worth per
// block, then pays the whole escrow (undistributed packets included) to the
// sponsor as output 1 of the campaign's create transaction, and finishes.
func runReclaim(a *applier, id, _ []byte, budget int) (int, bool, []byte) {
	c := a.campaign(string(id))
	if c == nil {
		a.fail("reclaim job: campaign %q missing", id)
		return 1, true, nil
	}
	switch c.GetStatus() {
	case statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED:
		return 1, true, nil
	case statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING:
		// The grant job (due earlier) stops at the window's end; whatever
		// ran first, granting is over.
		c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTED
	}
	c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_RECLAIMING
	sup := a.getSupply()
	entries, more := a.liveEntries(c.GetId(), max(budget/reclaimUnits, 1))
	used := 0
	for _, e := range entries {
		var o statepb.OutputRecord
		w := a.wallet(e.owner)
		if w == nil || !a.unspent(e.owner, e.op, &o) || o.GetAmountFen() != e.fen || o.GetCampaignId() != c.GetId() {
			a.fail("campaign %q: live entry %x:%d of %q has no matching output", c.GetId(), e.op.GetTxId()[:8], e.op.GetIndex(), e.owner)
			return used, false, nil
		}
		if c.GetLiveFen() < e.fen || c.GetLiveOutputs() == 0 {
			a.fail("campaign %q: live %d fen over %d outputs, reclaiming %d", c.GetId(), c.GetLiveFen(), c.GetLiveOutputs(), e.fen)
			return used, false, nil
		}
		a.dropOutput(w, e.op, e.fen)
		a.del(e.key)
		a.addLedgerHistory(w, c.GetCreateTxId(), "red_packet_reclaim", &statepb.HistoryEntry{OutFen: e.fen, Counterparty: c.GetSponsorWalletId(), Memo: c.GetTitle()})
		a.setWallet(w)
		c.LiveFen -= e.fen
		c.LiveOutputs--
		c.EscrowFen += e.fen // ≤ funded
		sup.CampaignEscrowFen += e.fen
		c.ReclaimedOutputs++
		c.ReclaimedOutputsFen += e.fen
		used += reclaimUnits
	}
	if !more {
		a.finishCampaign(c, sup)
		used++
	}
	a.setCampaign(c)
	a.setSupply(sup)
	return used, !more, nil
}

// finishCampaign pays the escrow to the sponsor (its bank's reserve if the
// sponsor's wallet was closed, which cannot receive) and ends the campaign.
func (a *applier) finishCampaign(c *statepb.CampaignRecord, sup *statepb.Supply) {
	to := a.wallet(c.GetSponsorWalletId())
	if to == nil {
		a.fail("campaign %q: sponsor %q missing", c.GetId(), c.GetSponsorWalletId())
		return
	}
	if to.GetStatus() == statepb.WalletStatus_WALLET_STATUS_CLOSED {
		b := a.bank(to.GetBankId())
		to = a.mustWallet(b.GetBank().GetReserveWalletId())
		if to == nil {
			return
		}
	}
	if fen := c.GetEscrowFen(); fen > 0 {
		if sup.GetCampaignEscrowFen() < fen {
			a.fail("campaign %q: escrow %d above the supply's %d", c.GetId(), fen, sup.GetCampaignEscrowFen())
			return
		}
		a.putOutput(&statepb.Outpoint{TxId: c.GetCreateTxId(), Index: reclaimOutput}, to, &statepb.OutputRecord{AmountFen: fen})
		a.addLedgerHistory(to, c.GetCreateTxId(), "campaign_reclaim", &statepb.HistoryEntry{InFen: fen, Memo: c.GetTitle()})
		a.setWallet(to)
		sup.CampaignEscrowFen -= fen
		c.ReclaimedFen, c.EscrowFen = fen, 0
	}
	c.ReclaimedTo = to.GetId()
	c.Status = statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED
	c.FinishedMs = a.timeMs
}

func be64(x uint64) []byte { return binary.BigEndian.AppendUint64(nil, x) }

// fmtTime is a ledger time for a rejection: recorded as the number, printed
// in Beijing time.
func fmtTime(ms int64) statepb.TimeMs { return statepb.TimeMs(ms) }
