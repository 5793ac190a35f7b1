package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client/device"
	"github.com/dcep/dcep/state/offline"
	"github.com/dcep/dcep/state/statepb"
)

// The CLI's codes for device files (beside the ledger's offline codes,
// 80–97, which payment refusals carry).
const (
	codeNoDevice     = "DEVICE_NOT_FOUND"
	codeDeviceExists = "DEVICE_EXISTS"
	codeDeviceLocked = "DEVICE_LOCKED"
	codeDeviceFile   = "DEVICE_FILE_INVALID"
	codeNoPurse      = "NO_PURSE"
	codeBadMessage   = "BAD_MESSAGE"
)

func (a *app) offlineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "offline",
		Short: "Dual offline payments: load a phone, pay and get paid with no network, deposit",
		Long: `offline runs a payment device kept in a file (a software stand-in for a phone's
secure element): a key, the purses loaded onto it, its payment counters, what
it sent and received, and the revocation list.

Paying needs no network on either side: the payee's device makes a request,
the payer's device answers with a signed payment, the payee's device checks
it and answers with a receipt. Messages are printed to stdout and read from a
file or stdin ("-"), as base64 text (--binary for raw bytes), standing in for
NFC. Received money becomes spendable once the payee's device syncs
(deposits). See docs/offline.md.`,
		Example: `  dcep offline load --wallet alice --device alice.dev --amount 500
  dcep offline init --device bob.dev --wallet bob
  dcep offline request --device bob.dev --amount 100 > req
  dcep offline pay --device alice.dev --request req > payment
  dcep offline receive --device bob.dev payment > receipt
  dcep offline receipt --device alice.dev receipt
  dcep offline sync --device bob.dev
  dcep offline unload --device alice.dev`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.offlineInitCmd(), a.offlineLoadCmd(), a.offlineRequestCmd(), a.offlinePayCmd(), a.offlineReceiveCmd(),
		a.offlineReceiptCmd(), a.offlineSyncCmd(), a.offlineUnloadCmd(), a.offlineShowCmd(), a.offlineDebtCmd(), a.offlineGuaranteeCmd())
	return cmd
}

// openDevice opens a device file, with the CLI's errors.
func openDevice(path string) (*device.Device, error) {
	if path == "" {
		return nil, usage("--device FILE is required")
	}
	d, err := device.Open(path)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, fail(exitRefused, codeNoDevice, "no device file at %s", path).
			hint("a payer's device is made by: dcep offline load --wallet NAME --device %s --amount YUAN", path).
			hint("a payee's device by: dcep offline init --device %s --wallet NAME", path)
	case errors.Is(err, device.ErrLocked):
		return nil, fail(exitRefused, codeDeviceLocked, "%v", err)
	}
	return nil, fail(exitRefused, codeDeviceFile, "%v", err)
}

// createDevice makes a device file for the node's network, depositing to
// walletID.
func (a *app) createDevice(ctx context.Context, path, walletID string) (*device.Device, error) {
	b, err := a.builder(ctx)
	if err != nil {
		return nil, err
	}
	d, err := device.Create(path, b.Genesis(), walletID)
	if err != nil {
		return nil, fail(exitRefused, codeDeviceFile, "%v", err)
	}
	return d, nil
}

// deviceErr gives device errors their codes.
func deviceErr(err error) error {
	switch {
	case errors.Is(err, device.ErrRevoked):
		return fail(exitRefused, statepb.Code_CODE_DEVICE_REVOKED.Short(), "%v: a double spend was proven against it; it cannot pay", err).
			hint("its purses' rest returns to the wallet when they expire; see: dcep incidents")
	case errors.Is(err, device.ErrNoPurse):
		return fail(exitRefused, codeNoPurse, "%v", err).hint("load more with: dcep offline load --wallet NAME --device FILE --amount YUAN")
	}
	return err
}

// readMessage reads an offline message from a file or stdin ("-"): base64
// text or raw bytes.
func (a *app) readMessage(src string) (*statepb.OfflineMessage, error) {
	var raw []byte
	var err error
	if src == "-" || src == "" {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 4*offline.MaxMessageBytes))
	} else {
		raw, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, fail(exitUsage, codeBadMessage, "read %s: %v", src, err)
	}
	if txt := strings.TrimSpace(string(raw)); txt != "" {
		if b, err := base64.StdEncoding.DecodeString(txt); err == nil {
			raw = b
		}
	}
	m, err := offline.DecodeMessage(raw)
	if err != nil {
		return nil, fail(exitRefused, codeBadMessage, "%s is not an offline message: %v", src, err)
	}
	return m, nil
}

// writeMessage prints an offline message to stdout.
func (a *app) writeMessage(m *statepb.OfflineMessage, binary bool) error {
	raw, err := offline.EncodeMessage(m)
	if err != nil {
		return err
	}
	if binary {
		_, err = a.stdout.Write(raw)
		return err
	}
	_, err = fmt.Fprintln(a.stdout, base64.StdEncoding.EncodeToString(raw))
	return err
}

func (a *app) offlineInitCmd() *cobra.Command {
	var dev, walletName string
	cmd := &cobra.Command{
		Use:   "init --device FILE --wallet NAME",
		Short: "Make a device file that receives into a wallet (a payee's phone or till)",
		Long: `init makes a new device file with a new device key, for the network of the
node (its genesis is kept in the file, so the device checks certificates with
no network). Money it receives is deposited into --wallet (a keystore name or
a ledger wallet id) when it syncs.`,
		Example: `  dcep offline init --device bob.dev --wallet bob`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device", "wallet"); err != nil {
				return err
			}
			if _, err := os.Stat(dev); err == nil {
				return fail(exitRefused, codeDeviceExists, "%s already exists", dev)
			}
			w, err := a.lookupWallet(cmd.Context(), walletName, codeWalletNotFound)
			if err != nil {
				return err
			}
			d, err := a.createDevice(cmd.Context(), dev, w.ID)
			if err != nil {
				return err
			}
			defer d.Close()
			return a.emit(map[string]any{"device": dev, "device_key": hex.EncodeToString(d.PublicKey()), "wallet": w.ID, "chain_id": d.ChainID()}, func(o io.Writer) {
				fmt.Fprintf(o, "device %s (key %x…) receives into %s on %s\n", dev, d.PublicKey()[:8], w.ID, d.ChainID())
			})
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "device file to create")
	cmd.Flags().StringVar(&walletName, "wallet", "", "wallet that received money is deposited into")
	return cmd
}

func (a *app) offlineLoadCmd() *cobra.Command {
	var dev, walletName, amt, maxPay string
	var count uint32
	var validity time.Duration
	cmd := &cobra.Command{
		Use:   "load --wallet NAME --device FILE --amount YUAN",
		Short: "Move money from a wallet into an offline purse on a device",
		Long: `load opens an offline purse: the wallet's bank signs a purse certificate for
the device's key (here with the bank's key from the keystore, standing in for
the bank's service), and the wallet moves the amount into the purse's escrow
on the ledger. The device file is created if it does not exist. Limits come
from the genesis offline policy and the wallet's KYC tier.`,
		Example: `  dcep offline load --wallet alice --device alice.dev --amount 500
  dcep offline load --wallet alice --device alice.dev --amount 200 --max-payment 50 --payments 10 --validity 24h`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device", "wallet", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			o := device.LoadOptions{AmountFen: fen, MaxPayments: count, Validity: validity}
			if maxPay != "" {
				if o.MaxPaymentFen, err = parseAmount("max-payment", maxPay); err != nil {
					return err
				}
			}
			k, err := a.walletKey(walletName)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			_, bkey, err := a.bankKey(ctx, k.BankID)
			if err != nil {
				return err
			}
			var d *device.Device
			if _, serr := os.Stat(dev); errors.Is(serr, os.ErrNotExist) {
				d, err = a.createDevice(ctx, dev, k.WalletID)
			} else {
				d, err = openDevice(dev)
			}
			if err != nil {
				return err
			}
			defer d.Close()
			cl, _ := a.client()
			p, res, err := d.Load(ctx, cl, k.Private, k.WalletID, bkey.Private, o)
			if err != nil {
				return err
			}
			out := purseOut(p)
			out.TxID = hex.EncodeToString(res.GetTxId())
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "loaded %s from %s onto %s: purse %s, up to %s a payment, %d payments, valid until %s\n",
					yuan(p.AmountFen), k.WalletID, dev, out.Purse[:16], yuan(p.MaxPayFen), p.MaxPayments, when(p.NotAfterMs))
				writeTx(w, res)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dev, "device", "", "device file (created if missing)")
	f.StringVar(&walletName, "wallet", "", "wallet to load from (keystore name)")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	f.StringVar(&maxPay, "max-payment", "", "cap per offline payment in yuan (default: the lowest of the amount, the policy's and the wallet's tier's)")
	f.Uint32Var(&count, "payments", 0, "maximum number of payments (default: the policy's)")
	f.DurationVar(&validity, "validity", 0, "how long payees accept the purse (default 7 days, within the policy)")
	return cmd
}

func (a *app) offlineRequestCmd() *cobra.Command {
	var dev, amt, merchant string
	var binary bool
	cmd := &cobra.Command{
		Use:   "request --device FILE --amount YUAN > req",
		Short: "Payee: make a payment request (offline)",
		Long: `request prints a payment request for the payer's device: this device's key,
the amount and a fresh random nonce that the payment must carry. No network.`,
		Example: `  dcep offline request --device bob.dev --amount 100 > req`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			r, err := d.Request(fen, merchant)
			if err != nil {
				return err
			}
			return a.writeMessage(&statepb.OfflineMessage{Message: &statepb.OfflineMessage_Request{Request: r}}, binary)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dev, "device", "", "payee's device file")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	f.StringVar(&merchant, "merchant", "", "merchant id shown to the payer (optional)")
	f.BoolVar(&binary, "binary", false, "print raw bytes instead of base64")
	return cmd
}

func (a *app) offlinePayCmd() *cobra.Command {
	var dev, reqFile string
	var binary bool
	cmd := &cobra.Command{
		Use:   "pay --device FILE --request REQ > payment",
		Short: "Payer: answer a payment request with a signed payment (offline)",
		Long: `pay signs a payment answering the request (a file, or - for stdin) from a purse
on this device, advancing the purse's counter, and prints it. The counter is
saved before the payment is printed, so a crash never reuses one. No network.`,
		Example: `  dcep offline pay --device alice.dev --request req > payment`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device", "request"); err != nil {
				return err
			}
			m, err := a.readMessage(reqFile)
			if err != nil {
				return err
			}
			req := m.GetRequest()
			if req == nil {
				return fail(exitRefused, codeBadMessage, "%s is not a payment request", reqFile)
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			p, err := d.Pay(req)
			if err != nil {
				return deviceErr(err)
			}
			fmt.Fprintf(a.stderr, "paid %s to device %x… (counter %d)\n", yuan(req.GetAmountFen()), req.GetPayeeDeviceKey()[:8], d.Sent()[len(d.Sent())-1].Counter)
			return a.writeMessage(&statepb.OfflineMessage{Message: &statepb.OfflineMessage_Payment{Payment: p}}, binary)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dev, "device", "", "payer's device file")
	f.StringVar(&reqFile, "request", "", "the payee's request: a file, or - for stdin")
	f.BoolVar(&binary, "binary", false, "print raw bytes instead of base64")
	return cmd
}

func (a *app) offlineReceiveCmd() *cobra.Command {
	var dev string
	var binary bool
	cmd := &cobra.Command{
		Use:   "receive --device FILE PAYMENT > receipt",
		Short: "Payee: check a payment offline, keep it, print the receipt",
		Long: `receive checks a payment as a payee must, with no network: the certificate
chains to a bank of the network, the payer device's signature, addressed to
this device with one of its request nonces and the requested amount, within the
purse's caps and count, not from a device on its revocation list, not expired by
this device's clock, counter above what it saw from that purse. If it passes it
is kept (to deposit at the next sync) and the receipt is printed for the payer.
A refusal prints the ledger's code. PAYMENT is a file, or - for stdin.`,
		Example: `  dcep offline receive --device bob.dev payment > receipt`,
		Args:    args(1, "a payment file (or - for stdin)"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "device"); err != nil {
				return err
			}
			m, err := a.readMessage(argv[0])
			if err != nil {
				return err
			}
			p := m.GetPayment()
			if p == nil {
				return fail(exitRefused, codeBadMessage, "%s is not a payment", argv[0])
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			rc, err := d.Receive(p)
			if err != nil {
				return err
			}
			r := d.Received()[len(d.Received())-1]
			fmt.Fprintf(a.stderr, "received %s from %s's device; spendable after: dcep offline sync --device %s\n", yuan(r.Amount), r.PayerWallet, dev)
			return a.writeMessage(&statepb.OfflineMessage{Message: &statepb.OfflineMessage_Receipt{Receipt: rc}}, binary)
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "payee's device file")
	cmd.Flags().BoolVar(&binary, "binary", false, "print raw bytes instead of base64")
	return cmd
}

func (a *app) offlineReceiptCmd() *cobra.Command {
	var dev string
	cmd := &cobra.Command{
		Use:   "receipt --device FILE RECEIPT",
		Short: "Payer: record the payee's receipt for a payment (offline)",
		Long: `receipt records the payee device's signed receipt. A payment with a receipt
keeps its amount in escrow when the purse is unloaded; one without (torn: the
payee may never have got it) comes back with the rest. RECEIPT is a file, or
- for stdin.`,
		Example: `  dcep offline receipt --device alice.dev receipt`,
		Args:    args(1, "a receipt file (or - for stdin)"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "device"); err != nil {
				return err
			}
			m, err := a.readMessage(argv[0])
			if err != nil {
				return err
			}
			rc := m.GetReceipt()
			if rc == nil {
				return fail(exitRefused, codeBadMessage, "%s is not a receipt", argv[0])
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			s, err := d.AddReceipt(rc)
			if err != nil {
				return err
			}
			return a.emit(map[string]any{"payment": hex.EncodeToString(s.Hash), "counter": s.Counter, "amount_fen": s.Amount}, func(w io.Writer) {
				fmt.Fprintf(w, "receipt recorded for payment %d of %s\n", s.Counter, yuan(s.Amount))
			})
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "payer's device file")
	return cmd
}

func (a *app) offlineSyncCmd() *cobra.Command {
	var dev string
	cmd := &cobra.Command{
		Use:   "sync --device FILE",
		Short: "Deposit received payments, refresh the revocation list and purses",
		Long: `sync deposits every payment the device received and has not deposited into its
wallet (batches of up to 64, signed by the device) and reports each one as the
ledger's settlement records it: paid in full, paid in part or unpaid, how much
came from where (the purse's escrow, the payer's online funds, the payer's
bank's guarantee or reserve) and what that bank still owes (a claim the ledger
pays as soon as the bank holds money); whether it proved a double spend, was
a torn payment, was settled before, or was refused with the ledger's code. It
also reports payments its bank has paid since the last sync, then fetches the
revocation list and the ledger's view of the device's own purses.`,
		Example: `  dcep offline sync --device bob.dev`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device"); err != nil {
				return err
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			cl, err := a.client()
			if err != nil {
				return err
			}
			rep, err := d.Sync(cmd.Context(), cl)
			if err != nil {
				return err
			}
			out := syncJSON{Device: dev, Wallet: d.WalletID(), Settled: rep.Settled, CreditedFen: rep.CreditedFen, Credited: plain(rep.CreditedFen),
				Replayed: rep.Replayed, Incidents: rep.Incidents, NewRevocations: rep.NewRevocations, RevocationIndex: d.RevocationList().Index, Revoked: d.Revoked(),
				Payments: []settledJSON{}}
			for _, r := range rep.Payments {
				j := settledOut(r)
				out.Payments = append(out.Payments, j)
				out.OwedFen += j.UnpaidFen
			}
			for _, r := range rep.PaidLater {
				out.PaidLater = append(out.PaidLater, settledOut(r))
			}
			for _, r := range rep.Refused {
				out.Refused = append(out.Refused, refusedJSON{Payment: hex.EncodeToString(r.Hash), AmountFen: r.Amount, Code: r.Code, Message: r.Message})
			}
			for _, r := range rep.Deposits {
				out.Deposits = append(out.Deposits, txOut(r))
			}
			var bal uint64
			haveBal := false
			if rep.CreditedFen > 0 || len(rep.PaidLater) > 0 {
				bal, haveBal = a.balanceAfter(cmd.Context(), d.WalletID())
			}
			return a.emit(out, func(w io.Writer) {
				switch {
				case rep.Settled == 0 && len(rep.Refused) == 0 && rep.Replayed == 0:
					fmt.Fprintln(w, "nothing to deposit")
				case rep.Settled > 0:
					fmt.Fprintf(w, "deposited %s: %s credited to %s", plural(uint64(rep.Settled), "payment"), yuan(rep.CreditedFen), d.WalletID())
					if out.OwedFen > 0 {
						fmt.Fprintf(w, ", %s still owed by the payers' banks", yuan(out.OwedFen))
					}
					fmt.Fprintln(w)
				}
				for _, j := range out.Payments {
					writeSettled(w, "", j)
				}
				for _, j := range out.PaidLater {
					writeSettled(w, "since the last sync, "+j.Bank+" paid what it owed: ", j)
				}
				for _, id := range rep.Incidents {
					fmt.Fprintf(w, "double spend proven: incident %d; see: dcep incidents %d\n", id, id)
				}
				if rep.Replayed > 0 {
					fmt.Fprintf(w, "%s settled earlier\n", plural(uint64(rep.Replayed), "payment"))
				}
				for _, r := range rep.Refused {
					fmt.Fprintf(w, "refused %s: %s %s\n", yuan(r.Amount), r.Code, r.Message)
				}
				if haveBal {
					fmt.Fprintf(w, "%s now holds %s\n", d.WalletID(), yuan(bal))
				}
				fmt.Fprintf(w, "revocation list: %d entries (%d new)\n", d.RevocationList().Index, rep.NewRevocations)
				if d.Revoked() {
					fmt.Fprintln(w, "this device is revoked: it can no longer pay")
				}
				for _, r := range rep.Deposits {
					writeTx(w, r)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "device file")
	return cmd
}

type syncJSON struct {
	Device      string `json:"device"`
	Wallet      string `json:"wallet"`
	Settled     int    `json:"settled"`
	CreditedFen uint64 `json:"credited_fen"`
	Credited    string `json:"credited"`
	// OwedFen: what the payers' banks still owe for the payments settled
	// now (their claims).
	OwedFen uint64 `json:"owed_fen"`
	// Payments: each payment settled now, as the ledger's settlement
	// records it; PaidLater: payments settled before whose bank has paid
	// (some of) what it owed since.
	Payments        []settledJSON `json:"payments"`
	PaidLater       []settledJSON `json:"paid_later,omitempty"`
	Replayed        int           `json:"replayed"`
	Refused         []refusedJSON `json:"refused,omitempty"`
	Incidents       []uint64      `json:"incidents,omitempty"`
	NewRevocations  int           `json:"new_revocations"`
	RevocationIndex uint64        `json:"revocation_index"`
	Revoked         bool          `json:"revoked"`
	Deposits        []txJSON      `json:"deposits,omitempty"`
}

// settledJSON is one settled payment, from the ledger's settlement record.
// Outcome: paid_in_full, paid_in_part or unpaid; then how much and from
// where (escrow, the payer's online funds, the bank's guarantee, its
// reserve, the bank later), and what the bank (owed_by) still owes.
type settledJSON struct {
	Payment          string `json:"payment"`
	AmountFen        uint64 `json:"amount_fen"`
	Payer            string `json:"payer_wallet"`
	Bank             string `json:"bank"`
	Status           string `json:"status"`
	Incident         uint64 `json:"incident,omitempty"`
	Outcome          string `json:"outcome"`
	PaidFen          uint64 `json:"paid_fen"`
	FromEscrowFen    uint64 `json:"from_escrow_fen"`
	FromPayerFen     uint64 `json:"from_payer_fen"`
	FromGuaranteeFen uint64 `json:"from_guarantee_fen"`
	FromReserveFen   uint64 `json:"from_reserve_fen"`
	PaidLaterFen     uint64 `json:"paid_later_fen"`
	UnpaidFen        uint64 `json:"unpaid_fen"`
	OwedBy           string `json:"owed_by,omitempty"`
	Claim            uint64 `json:"claim,omitempty"`
}

// The outcomes of a settled payment.
const (
	outcomePaidInFull = "paid_in_full"
	outcomePaidInPart = "paid_in_part"
	outcomeUnpaid     = "unpaid"
)

func settledOut(r *device.Received) settledJSON {
	j := settledJSON{Payment: hex.EncodeToString(r.Hash), AmountFen: r.Amount, Payer: r.PayerWallet, Status: r.Status, Incident: r.IncidentID}
	p := r.Paid
	if p == nil { // not synced: what the deposit credited
		p = &device.Paid{FromEscrow: r.CreditedFen, Unpaid: r.Amount - min(r.CreditedFen, r.Amount)}
	}
	j.Bank, j.Claim = p.Bank, p.ClaimSeq
	j.FromEscrowFen, j.FromPayerFen, j.FromGuaranteeFen, j.FromReserveFen, j.PaidLaterFen, j.UnpaidFen =
		p.FromEscrow, p.FromPayer, p.FromGuarantee, p.FromReserve, p.PaidLater, p.Unpaid
	j.PaidFen = p.TotalFen()
	switch {
	case j.UnpaidFen == 0:
		j.Outcome = outcomePaidInFull
	case j.PaidFen > 0:
		j.Outcome, j.OwedBy = outcomePaidInPart, j.Bank
	default:
		j.Outcome, j.OwedBy = outcomeUnpaid, j.Bank
	}
	return j
}

// writeSettled says what a payee got for a payment, from the settlement:
// "payment 1a2b… (¥100.00 from alice): paid in full: ¥100.00 from icbc's
// guarantee", "… paid in part: ¥60.00 of ¥100.00 (…); icbc owes you
// ¥40.00 (claim 1) …", "… unpaid: icbc owes you ¥100.00 …".
func writeSettled(w io.Writer, prefix string, j settledJSON) {
	what := fmt.Sprintf("%s from %s", yuan(j.AmountFen), j.Payer)
	switch {
	case j.Incident != 0:
		what += fmt.Sprintf(", a double spend: incident %d", j.Incident)
	case j.Status == device.RecvTorn:
		what += ", a torn payment"
	}
	var from []string
	for _, part := range []struct {
		fen  uint64
		from string
	}{
		{j.FromEscrowFen, "the purse's escrow"}, {j.FromPayerFen, "the payer's online funds"}, {j.FromGuaranteeFen, j.Bank + "'s guarantee"},
		{j.FromReserveFen, j.Bank + "'s reserve"}, {j.PaidLaterFen, j.Bank + ", paid later"},
	} {
		if part.fen > 0 {
			from = append(from, yuan(part.fen)+" from "+part.from)
		}
	}
	owes := fmt.Sprintf("%s owes you %s (claim %d); the ledger pays it as soon as %s holds money", j.OwedBy, yuan(j.UnpaidFen), j.Claim, j.OwedBy)
	switch j.Outcome {
	case outcomePaidInFull:
		fmt.Fprintf(w, "%spayment %s (%s): paid in full: %s\n", prefix, j.Payment[:12], what, strings.Join(from, ", "))
	case outcomePaidInPart:
		fmt.Fprintf(w, "%spayment %s (%s): paid in part: %s of %s (%s); %s\n", prefix, j.Payment[:12], what, yuan(j.PaidFen), yuan(j.AmountFen), strings.Join(from, ", "), owes)
	default:
		fmt.Fprintf(w, "%spayment %s (%s): unpaid: %s\n", prefix, j.Payment[:12], what, owes)
	}
}

type refusedJSON struct {
	Payment   string `json:"payment"`
	AmountFen uint64 `json:"amount_fen"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func (a *app) offlineUnloadCmd() *cobra.Command {
	var dev string
	cmd := &cobra.Command{
		Use:   "unload --device FILE",
		Short: "Close the device's purses: the unspent rest returns to the wallet",
		Long: `unload closes every open purse on the device: the device signs its last counter
and the payments it holds receipts for. Their amounts stay in escrow for their
payees; the rest returns to the wallet at once, including what torn payments
(sent, never acknowledged) took — if one of those is deposited later, the
ledger takes it from the wallet again.`,
		Example: `  dcep offline unload --device alice.dev`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device"); err != nil {
				return err
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := d.Unload(cmd.Context(), cl)
			if err != nil {
				return err
			}
			var out []unloadJSON
			var firstErr error
			for _, u := range res {
				j := unloadJSON{Purse: hex.EncodeToString(u.Purse.ID), ReturnedFen: u.ReturnedFen, Returned: plain(u.ReturnedFen), ReservedFen: u.ReservedFen, Torn: len(u.Torn)}
				if u.Err != nil {
					ce := a.classify(runError{u.Err})
					j.Error = ce.Code + ": " + ce.Msg
					if firstErr == nil {
						firstErr = u.Err
					}
				} else {
					j.Tx = ptr(txOut(u.Result))
				}
				out = append(out, j)
			}
			if len(out) == 0 {
				return a.emit([]unloadJSON{}, func(w io.Writer) { fmt.Fprintln(w, "no open purse on this device") })
			}
			if err := a.emit(out, func(w io.Writer) {
				for i, j := range out {
					if j.Error != "" {
						fmt.Fprintf(w, "purse %s: not closed: %s\n", j.Purse[:16], j.Error)
						continue
					}
					fmt.Fprintf(w, "purse %s closed: %s back to %s, %s kept for receipted payments not deposited yet, %d torn\n",
						j.Purse[:16], yuan(j.ReturnedFen), res[i].Purse.WalletID, yuan(j.ReservedFen), j.Torn)
					writeTx(w, res[i].Result)
				}
			}); err != nil {
				return err
			}
			return firstErr
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "device file")
	return cmd
}

type unloadJSON struct {
	Purse       string  `json:"purse"`
	ReturnedFen uint64  `json:"returned_fen"`
	Returned    string  `json:"returned"`
	ReservedFen uint64  `json:"reserved_fen"`
	Torn        int     `json:"torn"`
	Tx          *txJSON `json:"tx,omitempty"`
	Error       string  `json:"error,omitempty"`
}

func ptr[T any](v T) *T { return &v }

type purseJSON struct {
	Purse       string `json:"purse"`
	Wallet      string `json:"wallet"`
	Bank        string `json:"bank"`
	Status      string `json:"status"`
	AmountFen   uint64 `json:"amount_fen"`
	SpentFen    uint64 `json:"spent_fen"`
	LeftFen     uint64 `json:"remaining_fen"`
	MaxPayFen   uint64 `json:"max_payment_fen"`
	Counter     uint32 `json:"counter"`
	MaxPayments uint32 `json:"max_payments"`
	NotAfter    string `json:"not_after"`
	ReturnedFen uint64 `json:"returned_fen,omitempty"`
	TxID        string `json:"tx_id,omitempty"`
}

func purseOut(p *device.Purse) purseJSON {
	return purseJSON{Purse: hex.EncodeToString(p.ID), Wallet: p.WalletID, Bank: p.BankID, Status: p.Status, AmountFen: p.AmountFen, SpentFen: p.SpentFen,
		LeftFen: p.RemainingFen(), MaxPayFen: p.MaxPayFen, Counter: p.Counter, MaxPayments: p.MaxPayments, NotAfter: whenJSON(p.NotAfterMs), ReturnedFen: p.ReturnedFen}
}

type showJSON struct {
	Device          string         `json:"device"`
	DeviceKey       string         `json:"device_key"`
	ChainID         string         `json:"chain_id"`
	Wallet          string         `json:"wallet"`
	Revoked         bool           `json:"revoked"`
	RevocationIndex uint64         `json:"revocation_index"`
	Purses          []purseJSON    `json:"purses"`
	Sent            []sentJSON     `json:"sent"`
	Received        []receivedJSON `json:"received"`
	Requests        int            `json:"open_requests"`
}

type sentJSON struct {
	Purse     string `json:"purse"`
	Counter   uint32 `json:"counter"`
	AmountFen uint64 `json:"amount_fen"`
	Payee     string `json:"payee_device"`
	Payment   string `json:"payment"`
	Receipt   bool   `json:"receipt"`
	Time      string `json:"time"`
}

type receivedJSON struct {
	Payment     string `json:"payment"`
	AmountFen   uint64 `json:"amount_fen"`
	Payer       string `json:"payer_wallet"`
	Status      string `json:"status"`
	Code        string `json:"code,omitempty"`
	CreditedFen uint64 `json:"credited_fen,omitempty"`
	Incident    uint64 `json:"incident,omitempty"`
	Time        string `json:"time"`
	// Settlement: what the ledger's settlement said at the last sync.
	Settlement *settledJSON `json:"settlement,omitempty"`
}

func (a *app) offlineShowCmd() *cobra.Command {
	var dev string
	cmd := &cobra.Command{
		Use:     "show --device FILE",
		Short:   "Show a device: purses, payments sent and received, revocation list (offline)",
		Example: `  dcep offline show --device alice.dev`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "device"); err != nil {
				return err
			}
			d, err := openDevice(dev)
			if err != nil {
				return err
			}
			defer d.Close()
			out := showJSON{Device: dev, DeviceKey: hex.EncodeToString(d.PublicKey()), ChainID: d.ChainID(), Wallet: d.WalletID(), Revoked: d.Revoked(),
				RevocationIndex: d.RevocationList().Index, Requests: len(d.Requests()), Purses: []purseJSON{}, Sent: []sentJSON{}, Received: []receivedJSON{}}
			for _, p := range d.Purses() {
				out.Purses = append(out.Purses, purseOut(p))
			}
			for _, s := range d.Sent() {
				out.Sent = append(out.Sent, sentJSON{Purse: hex.EncodeToString(s.PurseID), Counter: s.Counter, AmountFen: s.Amount, Payee: hex.EncodeToString(s.PayeeKey),
					Payment: hex.EncodeToString(s.Hash), Receipt: len(s.Receipt) > 0, Time: whenJSON(s.TimeMs)})
			}
			for _, r := range d.Received() {
				j := receivedJSON{Payment: hex.EncodeToString(r.Hash), AmountFen: r.Amount, Payer: r.PayerWallet, Status: r.Status,
					Code: r.Code, CreditedFen: r.CreditedFen, Incident: r.IncidentID, Time: whenJSON(r.TimeMs)}
				if r.Paid != nil {
					j.Settlement = ptr(settledOut(r))
				}
				out.Received = append(out.Received, j)
			}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "device %s (key %s…) on %s, deposits into %s\n", dev, out.DeviceKey[:16], out.ChainID, out.Wallet)
				if out.Revoked {
					fmt.Fprintln(w, "REVOKED: this device can no longer pay")
				}
				fmt.Fprintf(w, "revocation list: %d entries; %d open requests\n", out.RevocationIndex, out.Requests)
				if len(out.Purses) > 0 {
					fmt.Fprintln(w, "\npurses:")
					t := newTable("PURSE", "WALLET", "STATUS", "AMOUNT", "LEFT", "PAYMENTS", "VALID UNTIL").alignRight(3, 4)
					for _, p := range d.Purses() {
						t.add(shortID(p.ID), p.WalletID, p.Status, yuan(p.AmountFen), yuan(p.RemainingFen()), fmt.Sprintf("%d/%d", p.Counter, p.MaxPayments), when(p.NotAfterMs))
					}
					t.write(w)
				}
				if len(out.Sent) > 0 {
					fmt.Fprintln(w, "\nsent:")
					t := newTable("PURSE", "#", "AMOUNT", "TO DEVICE", "RECEIPT", "TIME").alignRight(1, 2)
					for _, s := range d.Sent() {
						rc := "yes"
						if len(s.Receipt) == 0 {
							rc = "no (torn?)"
						}
						t.add(shortID(s.PurseID), fmt.Sprint(s.Counter), yuan(s.Amount), shortID(s.PayeeKey), rc, when(s.TimeMs))
					}
					t.write(w)
				}
				if len(out.Received) > 0 {
					fmt.Fprintln(w, "\nreceived:")
					t := newTable("PAYMENT", "FROM", "AMOUNT", "STATUS", "PAID", "TIME").alignRight(2)
					for i, r := range d.Received() {
						st := r.Status
						if r.Code != "" {
							st += " " + r.Code
						}
						if r.IncidentID != 0 {
							st += fmt.Sprintf(" (incident %d)", r.IncidentID)
						}
						paid := ""
						if j := out.Received[i].Settlement; j != nil {
							paid = strings.ReplaceAll(j.Outcome, "_", " ")
							if j.UnpaidFen > 0 {
								paid += fmt.Sprintf(": %s, %s owes %s", yuan(j.PaidFen), j.OwedBy, yuan(j.UnpaidFen))
							}
						}
						t.add(shortID(r.Hash), r.PayerWallet, yuan(r.Amount), st, paid, when(r.TimeMs))
					}
					t.write(w)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&dev, "device", "", "device file")
	return cmd
}

type debtJSON struct {
	Wallet       string `json:"wallet"`
	Bank         string `json:"bank"`
	DebtFen      uint64 `json:"debt_fen"`
	Debt         string `json:"debt"`
	TotalFen     uint64 `json:"total_fen"`
	GuaranteeFen uint64 `json:"guarantee_fen"`
	ReserveFen   uint64 `json:"reserve_fen"`
	ClaimedFen   uint64 `json:"claimed_fen"`
	RepaidFen    uint64 `json:"repaid_fen"`
	UnpaidFen    uint64 `json:"unpaid_fen"`
	Collections  uint64 `json:"collections"`
}

func (a *app) offlineDebtCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "debt NAME|ID",
		Short: "What a wallet owes its bank for offline payments its own money did not cover",
		Long: `debt shows what a wallet owes its bank for offline payments (double spends of
its devices, torn payments) that the bank paid for it — from its guarantee or
its reserve — or still owes the payees (claims): what was charged, what was
repaid, and what the payees are still owed. Money reaching the wallet repays the
debt first: returned escrow, and any credit (the ledger then records a
collect_offline_debt moving it to the bank's guarantee).`,
		Example: `  dcep offline debt alice
  dcep --json offline debt alice`,
		Args: args(1, "a wallet name or id"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			w, err := a.lookupWallet(ctx, argv[0], codeWalletNotFound)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			d, err := cl.OfflineDebt(ctx, w.ID, a.reads()...)
			if err != nil {
				return err
			}
			bank := d.GetBankId()
			if bank == "" {
				bank = w.Rec.GetBankId()
			}
			out := debtJSON{Wallet: w.ID, Bank: bank, DebtFen: d.GetDebtFen(), Debt: plain(d.GetDebtFen()), TotalFen: d.GetTotalFen(),
				GuaranteeFen: d.GetGuaranteeFen(), ReserveFen: d.GetReserveFen(), ClaimedFen: d.GetClaimedFen(), RepaidFen: d.GetRepaidFen(),
				UnpaidFen: d.GetUnpaidFen(), Collections: d.GetCollections()}
			return a.emit(out, func(wr io.Writer) {
				if out.TotalFen == 0 {
					fmt.Fprintf(wr, "%s owes %s nothing for offline payments\n", w.ID, bank)
					return
				}
				fmt.Fprintf(wr, "%s owes %s %s for offline payments\n", w.ID, bank, yuan(out.DebtFen))
				fmt.Fprintf(wr, "  charged %s: %s paid by %s's guarantee, %s by its reserve, %s owed to payees as claims on %s\n",
					yuan(out.TotalFen), yuan(out.GuaranteeFen), bank, yuan(out.ReserveFen), yuan(out.ClaimedFen), bank)
				fmt.Fprintf(wr, "  repaid %s; %s still owes its payees %s\n", yuan(out.RepaidFen), bank, yuan(out.UnpaidFen))
				if out.DebtFen > 0 {
					fmt.Fprintf(wr, "  money reaching %s repays the debt first, to %s's guarantee\n", w.ID, bank)
				}
			})
		}),
	}
}

func (a *app) offlineGuaranteeCmd() *cobra.Command {
	var bank, amt string
	cmd := &cobra.Command{
		Use:   "guarantee --bank BANK --amount YUAN",
		Short: "Bank: fund its offline guarantee wallet from its reserve",
		Long: `guarantee moves e-CNY from a bank's reserve into its guarantee wallet (an
exchange signed with the bank's key from the keystore). The guarantee pays the
payees of its wallets' offline double spends and torn payments beyond escrow
and the payers' online funds (its reserve pays what the guarantee lacks), and
under the genesis cover ratio a purse opens only while the guarantee covers
the bank's offline exposure (GUARANTEE_SHORT otherwise). Money in a guarantee
wallet can only pay offline payees. See: dcep audit offline (EXPOSURE, COVER
NEEDED), docs/offline.md.`,
		Example: `  dcep issue --bank icbc --amount 100000
  dcep offline guarantee --bank icbc --amount 100000`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "bank", "amount"); err != nil {
				return err
			}
			fen, err := parseAmount("amount", amt)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			bk, bkey, err := a.bankKey(ctx, bank)
			if err != nil {
				return err
			}
			if bk.GetGuaranteeWalletId() == "" {
				return fail(exitRefused, statepb.Code_CODE_WALLET_NOT_FOUND.Short(), "bank %s has no guarantee wallet in genesis", bank)
			}
			cl, _ := a.client()
			r, err := cl.Exchange(ctx, bkey.Signer(), bank, bk.GetGuaranteeWalletId(), fen)
			if err != nil {
				return err
			}
			bal, ok := a.balanceAfter(ctx, bk.GetGuaranteeWalletId())
			return a.moneyOut(r, "exchange", bk.GetReserveWalletId(), bk.GetGuaranteeWalletId(), fen, "", bk.GetGuaranteeWalletId(), bal, ok,
				fmt.Sprintf("moved %s from %s to its offline guarantee %s", yuan(fen), bk.GetReserveWalletId(), bk.GetGuaranteeWalletId()))
		}),
	}
	f := cmd.Flags()
	f.StringVar(&bank, "bank", "", "bank id")
	f.StringVar(&amt, "amount", "", "amount in yuan")
	return cmd
}

// --- incidents ---

type incidentJSON struct {
	ID            uint64 `json:"id"`
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Payer         string `json:"payer_wallet"`
	Bank          string `json:"bank"`
	Device        string `json:"device_key"`
	Purse         string `json:"purse"`
	FirstPayee    string `json:"first_payee,omitempty"`
	SecondPayee   string `json:"second_payee"`
	ClaimFen      uint64 `json:"claim_fen"`
	FromEscrowFen uint64 `json:"from_escrow_fen"`
	FromPayerFen  uint64 `json:"from_payer_fen"`
	FromGuarFen   uint64 `json:"from_guarantee_fen"`
	FromReserve   uint64 `json:"from_reserve_fen"`
	PaidLaterFen  uint64 `json:"paid_later_fen"`
	DebtFen       uint64 `json:"debt_fen"`
	UnpaidFen     uint64 `json:"unpaid_fen"`
	Claim         uint64 `json:"claim,omitempty"`
	FirstPayment  string `json:"first_payment,omitempty"`
	SecondPayment string `json:"second_payment"`
	CloseTx       string `json:"close_tx,omitempty"`
	DepositTx     string `json:"deposit_tx"`
	LogIndex      uint64 `json:"log_index"`
	Time          string `json:"time"`
	FrozeWallet   bool   `json:"froze_wallet"`
	Revocation    uint64 `json:"revocation_index"`
}

func incidentOut(i *statepb.Incident) incidentJSON {
	b64 := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	return incidentJSON{
		ID: i.GetId(), Kind: strings.ToLower(strings.TrimPrefix(i.GetKind().String(), "INCIDENT_KIND_")), Status: strings.ToLower(strings.TrimPrefix(i.GetStatus().String(), "INCIDENT_STATUS_")),
		Payer: i.GetPayerWalletId(), Bank: i.GetBankId(), Device: hex.EncodeToString(i.GetDevicePublicKey()), Purse: hex.EncodeToString(i.GetPurseId()),
		FirstPayee: i.GetFirstPayeeWalletId(), SecondPayee: i.GetSecondPayeeWalletId(), ClaimFen: i.GetClaimFen(),
		FromEscrowFen: i.GetFromEscrowFen(), FromPayerFen: i.GetFromPayerFen(), FromGuarFen: i.GetFromGuaranteeFen(), FromReserve: i.GetFromReserveFen(),
		PaidLaterFen: i.GetPaidLaterFen(), DebtFen: i.GetDebtFen(), UnpaidFen: i.GetUnpaidFen(), Claim: i.GetClaimSeq(),
		FirstPayment: b64(i.GetFirstPayment()), SecondPayment: b64(i.GetSecondPayment()), CloseTx: hex.EncodeToString(i.GetCloseTxId()),
		DepositTx: hex.EncodeToString(i.GetDepositTxId()), LogIndex: i.GetLogIndex(), Time: whenJSON(i.GetTimeMs()),
		FrozeWallet: i.GetFrozeWallet(), Revocation: i.GetRevocationIndex(),
	}
}

func (a *app) incidentsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "incidents [ID]",
		Short: "Double-spend incidents of offline payments, with their proof and recovery",
		Long: `incidents lists the double spends the ledger has proven (two different payments
with one purse and counter, payments beyond a purse's amount, a payment above a
closed purse's final counter, or under a certificate whose purse was never
opened): the payer, the device, both payments, and where the honest payee's
money came from (escrow, the payer's online funds, the payer's bank's
guarantee and reserve, the bank later), what the bank still owes the payee and
what the payer owes the bank. With ID, one incident in full, the signed payments
included (base64).`,
		Example: `  dcep incidents
  dcep incidents 1
  dcep --json incidents`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usage("incidents takes at most one incident id")
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(argv) == 1 {
				var id uint64
				if _, err := fmt.Sscan(argv[0], &id); err != nil || id == 0 {
					return usage("incident id %q: want a number like 1", argv[0])
				}
				for i, err := range cl.Incidents(ctx, id-1, a.reads()...) {
					if err != nil {
						return err
					}
					if i.GetId() != id {
						break
					}
					j := incidentOut(i)
					return a.emit(j, func(w io.Writer) { writeIncident(w, j, true) })
				}
				return fail(exitRefused, "INCIDENT_NOT_FOUND", "no incident %d", id)
			}
			out := []incidentJSON{}
			for i, err := range cl.Incidents(ctx, 0, a.reads()...) {
				if err != nil {
					return err
				}
				out = append(out, incidentOut(i))
			}
			return a.emit(out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintln(w, "no double-spend incidents")
					return
				}
				t := newTable("ID", "KIND", "PAYER", "BANK", "PAYEES", "CLAIM", "ESCROW", "PAYER PAID", "GUARANTEE", "RESERVE", "PAID LATER", "UNPAID", "STATUS", "TIME").
					alignRight(5, 6, 7, 8, 9, 10, 11)
				for _, j := range out {
					payees := j.SecondPayee
					if j.FirstPayee != "" {
						payees = j.FirstPayee + ", " + j.SecondPayee
					}
					t.add(fmt.Sprint(j.ID), j.Kind, j.Payer, j.Bank, payees, yuan(j.ClaimFen), yuan(j.FromEscrowFen), yuan(j.FromPayerFen), yuan(j.FromGuarFen),
						yuan(j.FromReserve), yuan(j.PaidLaterFen), yuan(j.UnpaidFen), strings.ReplaceAll(j.Status, "_", " "), j.Time)
				}
				t.write(w)
			})
		}),
	}
}

func writeIncident(w io.Writer, j incidentJSON, full bool) {
	fmt.Fprintf(w, "incident %d: %s double spend by %s (bank %s), %s\n", j.ID, strings.ReplaceAll(j.Kind, "_", "-"), j.Payer, j.Bank, j.Status)
	fmt.Fprintf(w, "  device %s, purse %s\n", j.Device, j.Purse)
	if j.FirstPayee != "" {
		fmt.Fprintf(w, "  first payment to %s; second payment to %s, %s\n", j.FirstPayee, j.SecondPayee, yuan(j.ClaimFen))
	} else {
		fmt.Fprintf(w, "  payment to %s, %s (other half of the proof: the purse's signed close %s)\n", j.SecondPayee, yuan(j.ClaimFen), j.CloseTx)
	}
	fmt.Fprintf(w, "  paid from escrow %s, from the payer's funds %s, from %s's guarantee %s, from its reserve %s, by %s later %s; %s still owes the payee %s\n",
		yuan(j.FromEscrowFen), yuan(j.FromPayerFen), j.Bank, yuan(j.FromGuarFen), yuan(j.FromReserve), j.Bank, yuan(j.PaidLaterFen), j.Bank, yuan(j.UnpaidFen))
	fmt.Fprintf(w, "  payer owes %s %s for it; wallet frozen by this incident: %v; device revocation %d\n", j.Bank, yuan(j.DebtFen), j.FrozeWallet, j.Revocation)
	fmt.Fprintf(w, "  deposit %s at index %d, %s\n", j.DepositTx, j.LogIndex, j.Time)
	if full {
		if j.FirstPayment != "" {
			fmt.Fprintf(w, "  first payment (signed, base64): %s\n", j.FirstPayment)
		}
		fmt.Fprintf(w, "  second payment (signed, base64): %s\n", j.SecondPayment)
	}
}
