package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// dcep demo suzhou: the Suzhou Double-12 story (SPEC §5) played against a
// running network, with a narrative, the figures, and a check of every
// figure (exit status 1 if one is off).

type suzhouConfig struct {
	citizens, packets, listed int
	amount                    uint64
	enrolWindow, spendWindow  time.Duration
	concurrency               int
	tag                       string
}

func (a *app) demoSuzhouCmd() *cobra.Command {
	var cfg suzhouConfig
	var amt string
	cmd := &cobra.Command{
		Use:   "suzhou",
		Short: "Play Suzhou's Double-12 red-packet campaign against a running network",
		Long: `suzhou plays the whole story of SPEC §5 against a running network (e.g. dcepd
dev), as the central bank, the banks, the city of Suzhou, citizens, merchants, JD
and a regulator, and prints what happens with the figures:

  1. the central bank issues e-CNY to the six banks;
  2. banks open merchants in Suzhou (320500), one in Nanjing (320100), and JD;
  3. the city's government wallet funds a red-packet campaign into escrow,
     committing to a secret lottery seed;
  4. citizens enrol (once each; late is refused);
  5. the draw: another seed is refused, the committed one grants the winners,
     and the regulator recomputes the winners from the revealed seed;
  6. winners spend at eligible merchants (red packets first); a payment in
     Nanjing, to a friend, or back to the bank is refused;
  7. a citizen's JD sub-wallet: pushed with caps, charged by JD, revoked;
  8. a merchant refund (own money first, then the red packet, kept as one);
  9. a dual-offline double spend caught and recovered (if offline payments
     are available in this build);
 10. the window closes and everything unspent returns to the city by itself;
 11. the regulator's audit.

Every figure is checked; the exit status is 1 if any is off. Wallet and
campaign ids end in a run tag, so the demo can run again on the same network.
Windows are ledger time: short by default so the demo takes about a minute;
the real campaign is --citizens 1000000 --packets 100000 --listed 10000
--enrol-window 1h --spend-window 2h (and patience).`,
		Example: `  dcep demo suzhou
  dcep demo suzhou --citizens 200 --packets 50 --spend-window 60s`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			cfg.amount = fen
			switch {
			case cfg.citizens < 4:
				return usage("--citizens %d: at least 4", cfg.citizens)
			case cfg.packets < 3 || cfg.packets > statepb.MaxCampaignPackets:
				return usage("--packets %d: 3..%d", cfg.packets, statepb.MaxCampaignPackets)
			case cfg.enrolWindow < time.Second || cfg.spendWindow < 5*time.Second:
				return usage("--enrol-window at least 1s, --spend-window at least 5s")
			case cfg.concurrency < 1:
				return usage("--concurrency %d: at least 1", cfg.concurrency)
			}
			if cfg.tag == "" {
				b := make([]byte, 3)
				_, _ = rand.Read(b)
				cfg.tag = hex.EncodeToString(b)
			}
			if err := statepb.ValidateID("--tag", "x-"+cfg.tag); err != nil {
				return usage("--tag %q: use a-z 0-9", cfg.tag)
			}
			d := &suzhouDemo{a: a, cfg: cfg, w: a.stdout, keys: map[string]ed25519.PrivateKey{}}
			if a.jsonOut {
				d.w = io.Discard
			}
			err = d.run(cmd.Context())
			summary := map[string]any{"campaign": d.campaignID, "tag": cfg.tag, "checks": d.checks.Load(), "failed": d.failedChecks(), "figures": d.figures}
			if a.jsonOut {
				_ = a.emit(summary, func(io.Writer) {})
			}
			if err != nil {
				return err
			}
			if f := d.failedChecks(); len(f) > 0 {
				return fail(exitRefused, "DEMO_FAILED", "%d of %d checks failed: %s", len(f), d.checks.Load(), strings.Join(f, "; "))
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.IntVar(&cfg.citizens, "citizens", 40, "citizens who enrol")
	f.IntVar(&cfg.packets, "packets", 12, "red packets")
	f.StringVar(&amt, "amount", "200", "amount of each red packet, yuan")
	f.IntVar(&cfg.listed, "listed", 3, "merchants on the campaign's explicit list besides JD (the real campaign: 10000)")
	f.DurationVar(&cfg.enrolWindow, "enrol-window", 6*time.Second, "enrolment window (ledger time)")
	f.DurationVar(&cfg.spendWindow, "spend-window", 30*time.Second, "spending window (ledger time)")
	f.IntVar(&cfg.concurrency, "concurrency", 8, "transactions in flight at once")
	f.StringVar(&cfg.tag, "tag", "", "suffix of this run's ids (default random)")
	return cmd
}

type suzhouDemo struct {
	a   *app
	cfg suzhouConfig
	w   io.Writer
	cl  *client.Client
	reg *client.Client // a regulator's node, if one is found

	keys   map[string]ed25519.PrivateKey
	keysMu sync.Mutex

	banks      []string
	city       string
	suzhou     []string // Suzhou merchants, one per bank
	nanjing    string
	jd         string
	listed     []string
	citizens   []string
	late       string
	winners    []string
	campaignID string

	w0Payment, w1Payment       [32]byte
	spent, toHolder, toSponsor uint64
	seed                       []byte

	checks  atomic.Int64
	failMu  sync.Mutex
	failed  []string
	figures map[string]any
}

func (d *suzhouDemo) id(s string) string { return s + "-" + d.cfg.tag }

func (d *suzhouDemo) say(format string, args ...any) { fmt.Fprintf(d.w, format+"\n", args...) }

func (d *suzhouDemo) chapter(n int, title string) {
	fmt.Fprintf(d.w, "\n── %d. %s ──\n", n, title)
}

// check records a figure: ✓ when it holds, ✗ (and a failed check) when not.
func (d *suzhouDemo) check(ok bool, format string, args ...any) bool {
	d.checks.Add(1)
	msg := fmt.Sprintf(format, args...)
	if ok {
		fmt.Fprintf(d.w, "   ✓ %s\n", msg)
		return true
	}
	fmt.Fprintf(d.w, "   ✗ %s\n", msg)
	d.failMu.Lock()
	d.failed = append(d.failed, msg)
	d.failMu.Unlock()
	return false
}

func (d *suzhouDemo) failedChecks() []string {
	d.failMu.Lock()
	defer d.failMu.Unlock()
	return append([]string(nil), d.failed...)
}

// refused checks that err is the ledger refusing with code.
func (d *suzhouDemo) refused(what string, err error, code statepb.Code) {
	var te *client.TxError
	if errors.As(err, &te) && te.Code() == code {
		d.check(true, "%s: refused %s (%s)", what, code.Short(), te.Result.GetMessage())
		return
	}
	d.check(false, "%s: want %s, got %v", what, code.Short(), err)
}

// rawCharge is a platform's charge built and signed directly (not through
// Charge, which refuses what the push does not allow before sending):
// the ledger decides.
func (d *suzhouDemo) rawCharge(ctx context.Context, platform, sub string, fen uint64) error {
	b, err := d.cl.Builder(ctx)
	if err != nil {
		return err
	}
	us, err := d.cl.Unspent(ctx, sub, client.Linearizable())
	if err != nil {
		return err
	}
	sel, err := client.SelectInputs(us, min(fen, client.UnspentTotal(us)))
	if err != nil {
		return err
	}
	tx, err := b.ChargeSubWallet(d.key(platform), platform, sub, sel.Inputs, fen)
	if err != nil {
		return err
	}
	_, err = d.cl.SubmitOK(ctx, tx)
	return err
}

func (d *suzhouDemo) key(id string) ed25519.PrivateKey {
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	return d.keys[id]
}

// parallel runs fn for 0..n-1 with at most cfg.concurrency at once and
// returns the first error.
func (d *suzhouDemo) parallel(ctx context.Context, n int, fn func(i int) error) error {
	sem := make(chan struct{}, d.cfg.concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return cmpErr(first, ctx.Err())
}

func cmpErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// register opens a wallet with a fresh key the demo keeps in memory.
func (d *suzhouDemo) register(ctx context.Context, bankKey ed25519.PrivateKey, bank, id string, kind statepb.WalletKind, tier uint32, region string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	d.keysMu.Lock()
	d.keys[id] = priv
	d.keysMu.Unlock()
	_, err = d.cl.RegisterWallet(ctx, bankKey, &statepb.RegisterWallet{WalletId: id, BankId: bank, PublicKey: pub, Kind: kind, Tier: tier, RegionCode: region})
	if err != nil {
		return fmt.Errorf("register %s: %w", id, err)
	}
	return nil
}

func (d *suzhouDemo) balance(ctx context.Context, id string) uint64 {
	b, err := d.cl.Balance(ctx, id, client.Linearizable())
	if err != nil {
		d.check(false, "balance of %s: %v", id, err)
	}
	return b
}

func (d *suzhouDemo) run(ctx context.Context) error {
	cl, err := d.a.client()
	if err != nil {
		return err
	}
	d.cl = cl
	d.figures = map[string]any{}
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	b, err := cl.Builder(ctx)
	if err != nil {
		return err
	}
	d.say("Suzhou Double-12 on network %s (node %s, run %s)", b.Genesis().GetChainId(), st.GetNode().GetName(), d.cfg.tag)
	d.reg = d.findRegulator(ctx, st)
	for _, bk := range b.Genesis().GetBanks() {
		d.banks = append(d.banks, bk.GetId())
	}
	if len(d.banks) == 0 {
		return fmt.Errorf("the network has no operating banks")
	}
	for _, step := range []func(context.Context) error{d.issue, d.openWallets, d.createCampaign, d.enrol, d.draw, d.spend, d.subWallet, d.refund, d.offline, d.closeWindow, d.audit} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	d.say("\n%d checks, %d failed. Look around: dcep redpacket status %s; dcep payments %s", d.checks.Load(), len(d.failedChecks()), d.campaignID, d.suzhou[0])
	return nil
}

// findRegulator returns a client of a regulator node the answering node
// knows of, else nil (the demo then audits on --node).
func (d *suzhouDemo) findRegulator(ctx context.Context, st *nodepb.StatusResponse) *client.Client {
	if st.GetNode().GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR {
		return d.cl
	}
	for _, p := range st.GetPeers() {
		if p.GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR && p.GetStatus().GetApiAddr() != "" {
			if rc, err := client.New(apiURL(p.GetStatus().GetApiAddr(), d.a.node), d.a.clientOptions()...); err == nil {
				if _, err := rc.Status(ctx); err == nil {
					return rc
				}
			}
		}
	}
	return nil
}

// auditor is the regulator's client, or --node's.
func (d *suzhouDemo) auditor() (*client.Client, string) {
	if d.reg != nil {
		return d.reg, "the regulator's node"
	}
	return d.cl, "--node (no regulator found)"
}

// --- 1. issuance ---

const (
	citizenFloat  = 500 * 100  // each citizen's own e-CNY
	merchantFloat = 1000 * 100 // each merchant's float (for refunds)
)

func (d *suzhouDemo) issue(ctx context.Context) error {
	d.chapter(1, "The People's Bank of China issues e-CNY to the six operating banks")
	cb, err := d.a.centralBankKey(ctx)
	if err != nil {
		return err
	}
	funded := uint64(d.cfg.packets) * d.cfg.amount
	need := make([]uint64, len(d.banks))
	for i := range d.cfg.citizens + 2 {
		need[i%len(d.banks)] += citizenFloat
	}
	need[0] += funded + 10_000*100 // the city banks with the first bank
	for i := range need {
		need[i] += 2*merchantFloat + uint64(d.cfg.listed/len(d.banks)+1)*merchantFloat
	}
	for i, bk := range d.banks {
		r, err := d.cl.Issue(ctx, cb.Private, bk, need[i], client.Memo("Double-12 "+d.cfg.tag))
		if err != nil {
			return fmt.Errorf("issue to %s: %w", bk, err)
		}
		d.say("   issued %s to %s (index %d)", yuan(need[i]), bk, r.GetLogIndex())
	}
	return nil
}

// --- 2. wallets ---

func (d *suzhouDemo) openWallets(ctx context.Context) error {
	d.chapter(2, "Banks open merchants in Suzhou (320500), one in Nanjing (320100), JD, and citizens' wallets")
	bankKeys := map[string]ed25519.PrivateKey{}
	for _, bk := range d.banks {
		_, k, err := d.a.bankKey(ctx, bk)
		if err != nil {
			return err
		}
		bankKeys[bk] = k.Private
	}
	type open struct {
		bank, id string
		kind     statepb.WalletKind
		tier     uint32
		region   string
		float    uint64
	}
	var opens []open
	merchant, personal := statepb.WalletKind_WALLET_KIND_MERCHANT, statepb.WalletKind_WALLET_KIND_PERSONAL
	for _, bk := range d.banks {
		id := d.id("sz-" + bk + "-shop")
		d.suzhou = append(d.suzhou, id)
		opens = append(opens, open{bk, id, merchant, 2, "320500", merchantFloat})
	}
	d.nanjing = d.id("nanjing-shop")
	d.jd = d.id("jd")
	d.city = d.id("suzhou-city")
	opens = append(opens, open{d.banks[min(2, len(d.banks)-1)], d.nanjing, merchant, 2, "320100", merchantFloat},
		open{d.banks[0], d.jd, merchant, 1, "110000", merchantFloat},
		open{d.banks[0], d.city, statepb.WalletKind_WALLET_KIND_GOVERNMENT, 1, "320500", uint64(d.cfg.packets)*d.cfg.amount + 10_000*100})
	for i := range d.cfg.listed {
		id := d.id(fmt.Sprintf("listed-%d", i))
		d.listed = append(d.listed, id)
		opens = append(opens, open{d.banks[i%len(d.banks)], id, merchant, 2, "110000", 0})
	}
	for i := range d.cfg.citizens {
		id := d.id(fmt.Sprintf("c%d", i))
		d.citizens = append(d.citizens, id)
		opens = append(opens, open{d.banks[i%len(d.banks)], id, personal, 4, "", citizenFloat})
	}
	d.late = d.id("late")
	opens = append(opens, open{d.banks[1%len(d.banks)], d.late, personal, 4, "", citizenFloat})
	// A bank's reserve pays exchanges one at a time (each spends the change
	// of the one before), so exchanges are serialized per bank.
	reserve := map[string]*sync.Mutex{}
	for _, bk := range d.banks {
		reserve[bk] = &sync.Mutex{}
	}
	start := time.Now()
	err := d.parallel(ctx, len(opens), func(i int) error {
		o := opens[i]
		if err := d.register(ctx, bankKeys[o.bank], o.bank, o.id, o.kind, o.tier, o.region); err != nil {
			return err
		}
		if o.float > 0 {
			reserve[o.bank].Lock()
			defer reserve[o.bank].Unlock()
			if _, err := d.cl.Exchange(ctx, bankKeys[o.bank], o.bank, o.id, o.float); err != nil {
				return fmt.Errorf("exchange to %s: %w", o.id, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.say("   %d Suzhou merchants (%s, …), %s in Nanjing, %s (region 110000), %d more listed merchants", len(d.suzhou), d.suzhou[0], d.nanjing, d.jd, len(d.listed))
	d.say("   %d citizens with %s each of their own money (tier 4: phone number only), and the city's government wallet %s", d.cfg.citizens, yuan(citizenFloat), d.city)
	d.say("   %d wallets opened and funded in %v", len(opens), time.Since(start).Round(time.Millisecond))
	return nil
}

// --- 3. the campaign ---

func (d *suzhouDemo) createCampaign(ctx context.Context) error {
	d.chapter(3, "The city of Suzhou funds a red-packet campaign")
	d.campaignID = d.id("dbl12")
	d.seed = make([]byte, statepb.SeedBytes)
	if _, err := rand.Read(d.seed); err != nil {
		return err
	}
	commit := sha256.Sum256(d.seed)
	now, err := d.a.ledgerNow(ctx)
	if err != nil {
		return err
	}
	enrolEnd := now + d.cfg.enrolWindow.Milliseconds()
	spec := &statepb.CreateCampaign{
		CampaignId: d.campaignID, SponsorWalletId: d.city, Title: "Suzhou Double-12 (demo " + d.cfg.tag + ")",
		PacketCount: uint32(d.cfg.packets), PacketFen: d.cfg.amount,
		EnrolStartMs: now, EnrolEndMs: enrolEnd, SpendStartMs: enrolEnd, SpendEndMs: enrolEnd + d.cfg.spendWindow.Milliseconds(),
		RegionCodes: []string{"320500"}, MerchantIds: []string{d.jd}, Commitment: commit[:],
	}
	before := d.balance(ctx, d.city)
	r, err := d.cl.CreateCampaign(ctx, d.key(d.city), spec)
	if err != nil {
		return fmt.Errorf("create campaign: %w", err)
	}
	funded := uint64(d.cfg.packets) * d.cfg.amount
	d.say("   %s: %d red packets of %s, %s from %s into campaign escrow (tx %s)", d.campaignID, d.cfg.packets, yuan(d.cfg.amount), yuan(funded), d.city, shortID(r.GetTxId()))
	d.say("   eligible: merchants in region 320500, and those on its list: %s", d.jd)
	d.say("   the city commits to a secret lottery seed: SHA-256 = %x", commit)
	d.say("   enrolment %s → %s, spending → %s (ledger time, UTC+8)", when(spec.GetEnrolStartMs()), when(spec.GetEnrolEndMs()), when(spec.GetSpendEndMs()))
	if len(d.listed) > 0 {
		rs, err := d.cl.AddCampaignMerchants(ctx, d.key(d.city), d.campaignID, d.listed)
		if err != nil {
			return fmt.Errorf("add merchants: %w", err)
		}
		d.say("   %d more merchants put on its list in %d transaction(s) of at most %d", len(d.listed), len(rs), statepb.MaxMerchantsPerTx)
	}
	c, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	d.check(d.balance(ctx, d.city) == before-funded, "the city's wallet paid %s into escrow", yuan(funded))
	d.check(c.GetEscrowFen() == funded && c.GetFundedFen() == funded, "campaign escrow holds %s", yuan(c.GetEscrowFen()))
	d.figures["city_before_fen"] = before
	return nil
}

func (d *suzhouDemo) campaign(ctx context.Context) (*statepb.CampaignRecord, error) {
	r, err := d.cl.Campaign(ctx, d.campaignID, "", client.Linearizable())
	if err != nil {
		return nil, err
	}
	return r.GetCampaign(), nil
}

// --- 4. enrolment ---

func (d *suzhouDemo) enrol(ctx context.Context) error {
	d.chapter(4, "Citizens enrol")
	start := time.Now()
	err := d.parallel(ctx, len(d.citizens), func(i int) error {
		_, err := d.cl.Enrol(ctx, d.key(d.citizens[i]), d.campaignID, d.citizens[i])
		if err != nil {
			return fmt.Errorf("enrol %s: %w", d.citizens[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.say("   %d citizens enrolled in %v", len(d.citizens), time.Since(start).Round(time.Millisecond))
	_, err = d.cl.Enrol(ctx, d.key(d.citizens[0]), d.campaignID, d.citizens[0])
	d.refused(d.citizens[0]+" enrols a second time", err, statepb.Code_CODE_ALREADY_ENROLLED)
	c, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	d.check(c.GetEnrolled() == uint64(len(d.citizens)), "%d enrolments, numbered in order", c.GetEnrolled())
	return nil
}

// waitLedger waits until the leader's clock (stamped on the next block) is
// past ms, judged by this machine's clock and the node's ledger time.
func (d *suzhouDemo) waitLedger(ctx context.Context, ms int64, why string) error {
	now, err := d.a.ledgerNow(ctx)
	if err != nil {
		return err
	}
	if wait := time.Duration(ms-now+200) * time.Millisecond; wait > 0 {
		d.say("   (waiting %v of ledger time: %s)", wait.Round(100*time.Millisecond), why)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// --- 5. the draw ---

func (d *suzhouDemo) draw(ctx context.Context) error {
	d.chapter(5, "The draw")
	c, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	if err := d.waitLedger(ctx, c.GetEnrolEndMs(), "enrolment closes"); err != nil {
		return err
	}
	_, err = d.cl.Enrol(ctx, d.key(d.late), d.campaignID, d.late)
	d.refused(d.late+" enrols after the window", err, statepb.Code_CODE_ENROLMENT_CLOSED)
	other := sha256.Sum256(append([]byte("a seed the city would prefer"), d.seed...))
	_, err = d.cl.Draw(ctx, d.key(d.city), d.campaignID, other[:])
	d.refused("the city reveals another seed (to choose other winners)", err, statepb.Code_CODE_DRAW_SEED_MISMATCH)
	var r *statepb.TxResult
	for range 20 { // the leader's clock may lag this machine's a little
		r, err = d.cl.Draw(ctx, d.key(d.city), d.campaignID, d.seed)
		var te *client.TxError
		if !errors.As(err, &te) || te.Code() != statepb.Code_CODE_DRAW_TOO_EARLY {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	d.say("   the city reveals the seed %x (tx %s); the ledger grants the winners by itself", d.seed, shortID(r.GetTxId()))
	for {
		if c, err = d.campaign(ctx); err != nil {
			return err
		}
		if c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_GRANTING {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := uint64(min(d.cfg.packets, d.cfg.citizens))
	d.check(c.GetWinners() == want && c.GetGranted() == want, "%d winners among %d enrolments, %d red packets granted", c.GetWinners(), c.GetEnrolled(), c.GetGranted())
	aud, who := d.auditor()
	dc, err := aud.VerifyDraw(ctx, d.campaignID, client.Linearizable())
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	d.check(dc.OK() && dc.Checked == int(want), "%s recomputed the winners from the revealed seed and the enrolment list: all %d equal the ledger's", who, dc.Checked)
	shown := dc.Winners[:min(5, len(dc.Winners))]
	d.say("   winners by rank: %s%s", strings.Join(shown, ", "), map[bool]string{true: ", …", false: ""}[len(dc.Winners) > len(shown)])
	d.winners = dc.Winners
	for _, w := range d.winners {
		us, err := d.cl.Unspent(ctx, w, client.Linearizable())
		if err != nil {
			return err
		}
		if got := client.RedPacketTotal(us)[d.campaignID]; got != d.cfg.amount {
			d.check(false, "%s holds %s of red packets, want %s", w, yuan(got), yuan(d.cfg.amount))
		}
	}
	d.check(true, "every winner holds one red packet of %s", yuan(d.cfg.amount))
	return nil
}

// --- 6. spending ---

func (d *suzhouDemo) spend(ctx context.Context) error {
	d.chapter(6, "Winners spend their red packets at eligible merchants")
	c, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	if err := d.waitLedger(ctx, c.GetSpendStartMs(), "spending opens"); err != nil {
		return err
	}
	pk := d.cfg.amount
	w0, w1, w2 := d.winners[0], d.winners[1], d.winners[2]
	friend := d.late

	// w0 buys for a packet and ¥50 at a Suzhou shop: the SDK uses the red
	// packet first.
	r, err := d.cl.Pay(ctx, d.key(w0), w0, []*statepb.Payee{client.PayTo(d.suzhou[0], pk+50*100)}, client.Memo("Double-12 shopping"))
	if err != nil {
		return fmt.Errorf("%s pays %s: %w", w0, d.suzhou[0], err)
	}
	d.w0Payment = [32]byte(r.GetTxId())
	p, err := d.cl.Payment(ctx, d.suzhou[0], d.w0Payment, client.Linearizable())
	if err != nil {
		return err
	}
	d.check(p.GetPayment().GetRedPacketFen() == pk && p.GetPayment().GetAmountFen() == pk+50*100,
		"%s paid %s at %s: %s of it from the red packet, ¥50.00 of their own (tx %s)", w0, yuan(pk+50*100), d.suzhou[0], yuan(p.GetPayment().GetRedPacketFen()), shortID(r.GetTxId()))
	d.spent += pk

	// w1 tries Nanjing, then spends 60% of the packet at JD (on the list).
	_, err = d.cl.PayWithRedPackets(ctx, d.key(w1), w1, d.campaignID, []*statepb.Payee{client.PayTo(d.nanjing, 50*100)})
	d.refused(w1+" spends the red packet at a shop in Nanjing (outside Suzhou)", err, statepb.Code_CODE_RED_PACKET_MERCHANT_INELIGIBLE)
	part := pk * 3 / 5
	r, err = d.cl.Pay(ctx, d.key(w1), w1, []*statepb.Payee{client.PayTo(d.jd, part)}, client.Memo("jd.com order"))
	if err != nil {
		return fmt.Errorf("%s pays %s: %w", w1, d.jd, err)
	}
	d.w1Payment = [32]byte(r.GetTxId())
	d.spent += part
	us, _ := d.cl.Unspent(ctx, w1, client.Linearizable())
	d.check(client.RedPacketTotal(us)[d.campaignID] == pk-part, "%s paid %s at %s (on the campaign's list) from the red packet; %s stays a red packet", w1, yuan(part), d.jd, yuan(pk-part))

	// w2: not to a friend, not back to the bank; a plain payment to the
	// friend leaves the red packet alone; then a whole packet at a shop.
	_, err = d.cl.PayWithRedPackets(ctx, d.key(w2), w2, d.campaignID, []*statepb.Payee{client.PayTo(friend, 10*100)})
	d.refused(w2+" gives the red packet to a friend", err, statepb.Code_CODE_RED_PACKET_NOT_MERCHANT)
	us, _ = d.cl.Unspent(ctx, w2, client.Linearizable())
	var packet *statepb.Outpoint
	for _, u := range us {
		if u.GetCampaignId() == d.campaignID {
			packet = u.GetOutpoint()
		}
	}
	b, _ := d.cl.Builder(ctx)
	tx, err := b.Redeem(d.key(w2), w2, []*statepb.Outpoint{packet}, 10*100)
	if err != nil {
		return err
	}
	_, err = d.cl.SubmitOK(ctx, tx)
	d.refused(w2+" redeems the red packet into bank deposits", err, statepb.Code_CODE_INPUT_RESTRICTED)
	if _, err := d.cl.Pay(ctx, d.key(w2), w2, []*statepb.Payee{client.PayTo(friend, 10*100)}); err != nil {
		return fmt.Errorf("%s pays %s: %w", w2, friend, err)
	}
	us, _ = d.cl.Unspent(ctx, w2, client.Linearizable())
	d.check(client.RedPacketTotal(us)[d.campaignID] == pk, "%s paid a friend ¥10.00 with their own money; the red packet was not touched", w2)
	if _, err := d.cl.Pay(ctx, d.key(w2), w2, []*statepb.Payee{client.PayTo(d.suzhou[1%len(d.suzhou)], pk)}); err != nil {
		return err
	}
	d.spent += pk

	// Every other odd-ranked winner spends the whole packet at a shop of
	// the city or of the list; the rest keep theirs.
	var mu sync.Mutex
	n := 0
	err = d.parallel(ctx, len(d.winners), func(i int) error {
		if i < 3 || i%2 == 0 {
			return nil
		}
		shop := d.suzhou[i%len(d.suzhou)]
		if len(d.listed) > 0 && i%4 == 1 {
			shop = d.listed[i%len(d.listed)]
		}
		if _, err := d.cl.Pay(ctx, d.key(d.winners[i]), d.winners[i], []*statepb.Payee{client.PayTo(shop, pk)}); err != nil {
			return fmt.Errorf("%s pays %s: %w", d.winners[i], shop, err)
		}
		mu.Lock()
		n++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	d.spent += uint64(n) * pk
	d.say("   %d more winners spent their whole packet at Suzhou or listed merchants; %d keep theirs for now", n, len(d.winners)-3-n)
	c, err = d.campaign(ctx)
	if err != nil {
		return err
	}
	d.check(c.GetSpentFen() == d.spent, "red-packet money spent at merchants: %s in %d payments", yuan(c.GetSpentFen()), c.GetPayments())
	return nil
}

// --- 7. a JD sub-wallet ---

func (d *suzhouDemo) subWallet(ctx context.Context) error {
	d.chapter(7, "A citizen pays JD from a sub-wallet pushed to JD")
	holder := d.citizens[len(d.citizens)-1]
	sub := holder + ".jd"
	k := d.key(holder)
	if _, err := d.cl.CreateSubWallet(ctx, k, holder, sub); err != nil {
		return fmt.Errorf("create sub-wallet: %w", err)
	}
	if _, err := d.cl.FundSubWallet(ctx, k, holder, sub, 400*100); err != nil {
		return fmt.Errorf("fund sub-wallet: %w", err)
	}
	now, err := d.a.ledgerNow(ctx)
	if err != nil {
		return err
	}
	if _, err := d.cl.PushSubWallet(ctx, k, &statepb.PushSubWallet{SubWalletId: sub, PlatformWalletId: d.jd, MaxPaymentFen: 200 * 100, MaxDailyFen: 300 * 100, ExpiresMs: now + 3_600_000}); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	d.say("   %s opens %s, moves ¥400.00 into it and pushes it to %s: ¥200.00 a payment, ¥300.00 a day, for an hour", holder, sub, d.jd)
	jd := d.key(d.jd)
	if _, err := d.cl.Charge(ctx, jd, d.jd, sub, 99*100, client.Memo("order 1")); err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	d.check(true, "%s charges ¥99.00 with its own key, without %s", d.jd, holder)
	err = d.rawCharge(ctx, d.jd, sub, 201*100)
	d.refused(d.jd+" charges ¥201.00", err, statepb.Code_CODE_SUBWALLET_LIMIT_PAYMENT)
	if _, err := d.cl.Charge(ctx, jd, d.jd, sub, 199*100, client.Memo("order 2")); err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	err = d.rawCharge(ctx, d.jd, sub, 3*100)
	d.refused(d.jd+" charges ¥3.00 more today (¥298.00 already)", err, statepb.Code_CODE_SUBWALLET_LIMIT_DAILY)
	err = d.rawCharge(ctx, d.nanjing, sub, 10*100)
	d.refused(d.nanjing+" (another platform) charges it", err, statepb.Code_CODE_SUBWALLET_WRONG_PLATFORM)
	if _, err := d.cl.RevokeSubWallet(ctx, k, sub); err != nil {
		return err
	}
	err = d.rawCharge(ctx, d.jd, sub, 1*100)
	d.refused(d.jd+" charges after "+holder+" revoked", err, statepb.Code_CODE_SUBWALLET_REVOKED)
	left := d.balance(ctx, sub)
	parent0 := d.balance(ctx, holder)
	if _, err := d.cl.WithdrawSubWallet(ctx, k, sub, 0); err != nil {
		return err
	}
	d.check(d.balance(ctx, sub) == 0 && d.balance(ctx, holder) == parent0+left && left == 102*100, "%s pulls the %s left back into %s", holder, yuan(left), holder)
	sr, err := d.cl.SubWallet(ctx, sub, client.Linearizable())
	if err != nil {
		return err
	}
	d.check(sr.GetSubWallet().GetChargedFen() == 298*100 && sr.GetSubWallet().GetCharges() == 2 && sr.GetSubWallet().GetRevoked(), "%s received ¥298.00 in 2 charges; the push is revoked", d.jd)
	// Expiry: push for a second of ledger time.
	now, _ = d.a.ledgerNow(ctx)
	if _, err := d.cl.PushSubWallet(ctx, k, &statepb.PushSubWallet{SubWalletId: sub, PlatformWalletId: d.jd, MaxPaymentFen: 100 * 100, MaxDailyFen: 100 * 100, ExpiresMs: now + 1500}); err != nil {
		return err
	}
	if _, err := d.cl.FundSubWallet(ctx, k, holder, sub, 10*100); err != nil {
		return err
	}
	if err := d.waitLedger(ctx, now+1500, "the new push expires"); err != nil {
		return err
	}
	err = d.rawCharge(ctx, d.jd, sub, 1*100)
	d.refused(d.jd+" charges after the push expired", err, statepb.Code_CODE_SUBWALLET_EXPIRED)
	if _, err := d.cl.WithdrawSubWallet(ctx, k, sub, 0); err != nil {
		return err
	}
	return nil
}

// --- 8. a refund ---

func (d *suzhouDemo) refund(ctx context.Context) error {
	d.chapter(8, "A merchant refunds a purchase")
	w0, shop, pk := d.winners[0], d.suzhou[0], d.cfg.amount
	k := d.key(shop)
	if _, err := d.cl.Refund(ctx, k, shop, d.w0Payment, 30*100, client.Memo("one item returned")); err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	us, _ := d.cl.Unspent(ctx, w0, client.Linearizable())
	d.check(client.RedPacketTotal(us)[d.campaignID] == 0, "%s refunds ¥30.00 of %s's %s: self-funded money goes back first", shop, w0, yuan(pk+50*100))
	if _, err := d.cl.Refund(ctx, k, shop, d.w0Payment, 0, client.Memo("order cancelled")); err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	d.toHolder += pk
	us, _ = d.cl.Unspent(ctx, w0, client.Linearizable())
	d.check(client.RedPacketTotal(us)[d.campaignID] == pk, "then the rest: ¥20.00 self-funded and %s that comes back as a red packet, its conditions kept", yuan(pk))
	b, err := d.cl.Builder(ctx)
	if err != nil {
		return err
	}
	us, _ = d.cl.Unspent(ctx, shop, client.Linearizable())
	sel, err := client.SelectInputs(us, 100)
	if err != nil {
		return err
	}
	over, err := b.RefundPayment(k, shop, d.w0Payment, sel.Inputs, 100)
	if err != nil {
		return err
	}
	_, err = d.cl.SubmitOK(ctx, over)
	d.refused(shop+" refunds ¥1.00 more than was paid", err, statepb.Code_CODE_REFUND_EXCEEDS_PAYMENT)
	var seen bool
	for p, err := range d.cl.Payments(ctx, shop, client.Linearizable()) {
		if err != nil {
			return err
		}
		if [32]byte(p.GetTxId()) == d.w0Payment {
			seen = p.GetRefundedFen() == p.GetAmountFen() && p.GetRedPacketFen() == pk && len(p.GetRefunds()) == 2
		}
	}
	d.check(seen, "%s's view of payments received shows it: %s, %s red packet, refunded in full in 2 refunds", shop, yuan(pk+50*100), yuan(pk))
	return nil
}

// --- 9. offline ---

func (d *suzhouDemo) offline(ctx context.Context) error {
	d.chapter(9, "A dual-offline double spend")
	if c, _, err := (&app{stdout: io.Discard, stderr: io.Discard}).rootCmd().Find([]string{"offline"}); err != nil || c.Name() != "offline" {
		d.say("   skipped: offline payments are not available in this build of dcep")
		return nil
	}
	return d.offlineDoubleSpend(ctx)
}

// --- 10. the window closes ---

func (d *suzhouDemo) closeWindow(ctx context.Context) error {
	d.chapter(10, "The spending window closes; the rest returns to the city by itself")
	c, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	d.say("   %d red packets (%s) are still unspent in wallets; nobody submits anything now", c.GetLiveOutputs(), yuan(c.GetLiveFen()))
	if err := d.waitLedger(ctx, c.GetSpendEndMs(), "the window closes"); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for c.GetStatus() != statepb.CampaignStatus_CAMPAIGN_STATUS_FINISHED {
		if time.Now().After(deadline) {
			return fmt.Errorf("campaign %s not finished two minutes after its window closed (status %s)", d.campaignID, campaignStatus(c.GetStatus()))
		}
		time.Sleep(250 * time.Millisecond)
		if c, err = d.campaign(ctx); err != nil {
			return err
		}
	}
	d.say("   the ledger reclaimed %d red packets in scheduled work (no transaction per packet) and paid %s back to %s", c.GetReclaimedOutputs(), yuan(c.GetReclaimedFen()), c.GetReclaimedTo())
	// After the window, a refund's red-packet part goes to the city.
	jdPart := d.cfg.amount * 3 / 5
	if _, err := d.cl.Refund(ctx, d.key(d.jd), d.jd, d.w1Payment, 0, client.Memo("returned after the campaign")); err != nil {
		return fmt.Errorf("refund after the window: %w", err)
	}
	d.toSponsor += jdPart
	c, err = d.campaign(ctx)
	if err != nil {
		return err
	}
	funded := uint64(d.cfg.packets) * d.cfg.amount
	wantReclaimed := funded - d.spent + d.toHolder
	d.check(c.GetRefundedToSponsorFen() == d.toSponsor, "%s refunds %s's %s after the window: the red-packet money goes to the city, not back as a red packet", d.jd, d.winners[1], yuan(jdPart))
	d.check(c.GetSpentFen() == d.spent && c.GetRefundedToHolderFen() == d.toHolder && c.GetReclaimedFen() == wantReclaimed && c.GetEscrowFen() == 0 && c.GetLiveFen() == 0,
		"figures: funded %s, spent %s, refunded as red packets %s, reclaimed %s = funded − spent + refunded as red packets",
		yuan(funded), yuan(c.GetSpentFen()), yuan(c.GetRefundedToHolderFen()), yuan(c.GetReclaimedFen()))
	before, _ := d.figures["city_before_fen"].(uint64)
	after := d.balance(ctx, d.city)
	want := before - d.spent + d.toHolder + d.toSponsor
	d.check(after == want, "the city holds %s = %s before − spent %s + refunded %s: exactly funded − spent + refunded",
		yuan(after), yuan(before), yuan(d.spent), yuan(d.toHolder+d.toSponsor))
	left := 0
	for _, w := range d.winners {
		us, err := d.cl.Unspent(ctx, w, client.Linearizable())
		if err != nil {
			return err
		}
		if client.RedPacketTotal(us)[d.campaignID] > 0 {
			left++
		}
	}
	d.check(left == 0, "no wallet holds a red packet of %s any more", d.campaignID)
	d.figures["campaign"] = campaignOut(c)
	d.figures["city_after_fen"] = after
	aud, _ := d.auditor()
	d.say("")
	writeCampaign(d.w, c, c.GetFinishedMs())
	_ = aud
	return nil
}

// --- 11. the regulator ---

func (d *suzhouDemo) audit(ctx context.Context) error {
	d.chapter(11, "The regulator's audit")
	aud, who := d.auditor()
	sp, err := aud.Supply(ctx, true, client.Linearizable())
	if err != nil {
		return err
	}
	d.check(sp.GetInvariantHolds(), "on %s (%s), recomputed from the whole ledger: issued − returned = unspent + offline escrow + red-packet escrow: %s − %s = %s + %s + %s",
		sp.GetFreshness().GetNode(), who, yuan(sp.GetSupply().GetIssuedFen()), yuan(sp.GetSupply().GetReturnedFen()), yuan(sp.GetUnspentFen()),
		yuan(sp.GetSupply().GetOfflineEscrowFen()), yuan(sp.GetSupply().GetCampaignEscrowFen()))
	if !sp.GetInvariantHolds() {
		d.say("   %s", sp.GetInvariantError())
	}
	mine, err := d.campaign(ctx)
	if err != nil {
		return err
	}
	theirs, err := aud.Campaign(ctx, d.campaignID, "", client.Linearizable())
	if err != nil {
		return err
	}
	t := theirs.GetCampaign()
	d.check(t.GetSpentFen() == mine.GetSpentFen() && t.GetReclaimedFen() == mine.GetReclaimedFen() && t.GetEnrolled() == mine.GetEnrolled() && t.GetGranted() == mine.GetGranted(),
		"campaign progress on the regulator's node: %d enrolled, %d won, %d granted, %s spent, %s refunded, %s reclaimed — the same as the banks'",
		t.GetEnrolled(), t.GetWinners(), t.GetGranted(), yuan(t.GetSpentFen()), yuan(t.GetRefundedToHolderFen()+t.GetRefundedToSponsorFen()), yuan(t.GetReclaimedFen()))
	return nil
}
