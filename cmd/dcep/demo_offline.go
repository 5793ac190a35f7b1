package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// offlineDoubleSpend is chapter 9 of dcep demo suzhou: a dual-offline
// double spend (SPEC §4) caught at deposit and recovered, driven through
// the dcep offline commands exactly as a user would run them (the device
// files stand for phones; their messages travel as files, as NFC would
// carry them). The wallets it opens get keys in the keystore, because the
// offline commands sign with keystore keys.
func (d *suzhouDemo) offlineDoubleSpend(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "dcep-demo-offline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	payer, shopA, shopB := d.id("off-buyer"), d.id("off-shop-a"), d.id("off-shop-b")
	phone, phone2 := filepath.Join(dir, "buyer.dev"), filepath.Join(dir, "buyer-copy.dev")
	posA, posB := filepath.Join(dir, "shop-a.dev"), filepath.Join(dir, "shop-b.dev")

	// cli runs one dcep command line against the same node and keystore.
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		full := append([]string{"--node", d.a.node, "--home", d.a.home}, args...)
		if code := run(ctx, full, &out, &errb); code != exitOK {
			return "", fmt.Errorf("dcep %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(errb.String()))
		}
		return out.String() + errb.String(), nil
	}
	write := func(name, content string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(content), 0o600)
	}
	bank, bank2 := d.banks[0], d.banks[1%len(d.banks)]
	// The bank certifies purses only while its offline guarantee covers its
	// exposure (the genesis cover ratio): `dcepd dev` funded it; on another
	// network the bank funds it now from its reserve.
	bk, err := d.a.bank(ctx, bank)
	if err != nil {
		return err
	}
	if g := d.balance(ctx, bk.GetGuaranteeWalletId()); bk.GetGuaranteeWalletId() != "" && g < 1_000*100 {
		if _, err := cli("offline", "guarantee", "--bank", bank, "--amount", "1000"); err != nil {
			return err
		}
		d.say("   %s moves ¥1,000.00 from its reserve into its offline guarantee, which backs the purses it certifies", bank)
	}
	for _, args := range [][]string{
		{"wallet", "create", payer, "--bank", bank, "--tier", "4"},
		{"wallet", "create", shopA, "--bank", bank2, "--tier", "2", "--kind", "merchant", "--region", "320500"},
		{"wallet", "create", shopB, "--bank", bank2, "--tier", "2", "--kind", "merchant", "--region", "320500"},
		{"exchange", "--to", payer, "--amount", "300"},
		{"offline", "load", "--wallet", payer, "--device", phone, "--amount", "100"},
		{"offline", "init", "--device", posA, "--wallet", shopA},
		{"offline", "init", "--device", posB, "--wallet", shopB},
	} {
		if _, err := cli(args...); err != nil {
			return err
		}
	}
	d.say("   %s loads ¥100.00 onto a phone's offline purse (escrow on the ledger, a certificate from %s), then copies the phone", payer, bank)
	raw, err := os.ReadFile(phone)
	if err != nil {
		return err
	}
	if err := os.WriteFile(phone2, raw, 0o600); err != nil {
		return err
	}
	// touch: request (payee), pay (payer), receive (payee), receipt (payer).
	touch := func(payerDev, payeeDev, tag string) error {
		req, err := cliStdout(ctx, d, "offline", "request", "--device", payeeDev, "--amount", "100")
		if err != nil {
			return err
		}
		rp, err := write(tag+".req", req)
		if err != nil {
			return err
		}
		pay, err := cliStdout(ctx, d, "offline", "pay", "--device", payerDev, "--request", rp)
		if err != nil {
			return err
		}
		pp, err := write(tag+".pay", pay)
		if err != nil {
			return err
		}
		rc, err := cliStdout(ctx, d, "offline", "receive", "--device", payeeDev, pp)
		if err != nil {
			return err
		}
		rcp, err := write(tag+".receipt", rc)
		if err != nil {
			return err
		}
		_, err = cli("offline", "receipt", "--device", payerDev, rcp)
		return err
	}
	if err := touch(phone, posA, "a"); err != nil {
		return err
	}
	if err := touch(phone2, posB, "b"); err != nil {
		return err
	}
	d.say("   with no network at all, the phone pays %s ¥100.00, and its copy pays %s the same ¥100.00", shopA, shopB)
	if _, err := cli("offline", "sync", "--device", posA); err != nil {
		return err
	}
	out, err := cli("offline", "sync", "--device", posB)
	if err != nil {
		return err
	}
	d.check(strings.Contains(out, "double spend proven") && strings.Contains(out, "paid in full: ¥100.00 from the payer's online funds"),
		"back online, both shops deposit: the second deposit proves the double spend (two signed payments, same purse and counter), and its shop is told it was paid in full from the buyer's online money")
	a, b, p := d.balance(ctx, shopA), d.balance(ctx, shopB), d.balance(ctx, payer)
	d.check(a == 100*100 && b == 100*100, "both honest shops are paid ¥100.00: %s from the purse's escrow, %s from the buyer's online money", shopA, shopB)
	d.check(p == 100*100, "%s is left with %s online (¥300.00 − ¥100.00 loaded − ¥100.00 recovered)", payer, yuan(p))
	js, err := cliStdout(ctx, d, "--json", "incidents")
	if err != nil {
		return err
	}
	var incs []incidentJSON
	if err := json.Unmarshal([]byte(js), &incs); err != nil {
		return fmt.Errorf("incidents: %w", err)
	}
	found := false
	for _, inc := range incs {
		if inc.Payer == payer {
			found = inc.FrozeWallet && inc.Status == "settled" && inc.FromPayerFen == 100*100
			d.say("   incident %d: %s, %s; %s recovered from the payer, wallet frozen: %v", inc.ID, inc.Kind, inc.Status, yuan(inc.FromPayerFen), inc.FrozeWallet)
		}
	}
	d.check(found, "the ledger recorded the incident, settled it and froze %s", payer)
	return nil
}

// cliStdout runs a dcep command line and returns only its standard output
// (for commands that write a message to pass on).
func cliStdout(ctx context.Context, d *suzhouDemo, args ...string) (string, error) {
	var out, errb bytes.Buffer
	full := append([]string{"--node", d.a.node, "--home", d.a.home}, args...)
	if code := run(ctx, full, &out, &errb); code != exitOK {
		return "", fmt.Errorf("dcep %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
