package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMemoSealedOnLedger pays with a memo on real nodes, then reads every
// byte the nodes keep (Pebble tables and WAL, raft-boltdb log, snapshots,
// archive) and finds the memo nowhere — while the payee's wallet id from
// the same transaction is found there (so the search does see plaintext).
// The payee's CLI, holding only the payee's key, shows the memo; a CLI
// with only the payee bank's key shows "(sealed)"; one with no key is
// refused.
func TestMemoSealedOnLedger(t *testing.T) {
	net := shared(t)
	tag := fmt.Sprintf("%x", time.Now().UnixNano())
	payer, payee := "memo-payer-"+tag[len(tag)-6:], "memo-payee-"+tag[len(tag)-6:]
	secret := "private-memo-" + tag
	fund(t, net, payer, "icbc", "50")
	net.ok(t, "wallet", "create", payee, "--bank", "abc", "--tier", "4")
	var pay moneyJSON
	net.okJSON(t, &pay, "pay", "--from", payer, "--to", payee, "--amount", "3.50", "--memo", secret)
	if pay.Memo != secret {
		t.Fatalf("the payer's own answer shows memo %q", pay.Memo)
	}
	// Let every node apply it (and flush nothing on purpose: the WAL and
	// the Raft log are where fresh bytes are).
	var hist []historyJSON
	net.okJSON(t, &hist, "history", payee)

	keys := filepath.Join(net.dir, "keys")
	payeeHome, bankHome, nobody := t.TempDir(), t.TempDir(), t.TempDir()
	copyKey(t, keys, payeeHome, payee)
	copyKey(t, keys, bankHome, "abc")

	// Each signs in with the one key its keystore holds (--as): the payee
	// reads its memo; its bank may read the payee's history and the
	// transaction but sees the memo sealed.
	for _, c := range []struct {
		who, home, as, want string
	}{{"payee", payeeHome, payee, secret}, {"payee's bank", bankHome, "abc", sealedMemo}} {
		var h []historyJSON
		net.okJSON(t, &h, "--home", c.home, "--as", c.as, "history", payee)
		if len(h) == 0 || h[0].Memo != c.want {
			t.Fatalf("%s: history shows %+v, want memo %q", c.who, h, c.want)
		}
		var tx txDetailJSON
		net.okJSON(t, &tx, "--home", c.home, "--as", c.as, "tx", pay.TxID)
		if tx.Memo != c.want {
			t.Fatalf("%s: tx shows memo %q, want %q", c.who, tx.Memo, c.want)
		}
		if r := net.ok(t, "--home", c.home, "--as", c.as, "history", payee); !strings.Contains(r.stdout, c.want) {
			t.Fatalf("%s: history table lacks %q:\n%s", c.who, c.want, r.stdout)
		}
	}
	// With no key the CLI signs in as nobody: refused, the memo never shown.
	for _, args := range [][]string{{"history", payee}, {"tx", pay.TxID}} {
		r := net.refused(t, exitRefused, "UNAUTHENTICATED", append([]string{"--home", nobody}, args...))
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("a keyless caller saw the memo: %v", r)
		}
	}

	files, sawPayee := 0, 0
	err := filepath.WalkDir(net.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "keys" || d.Name() == "logs" {
				return filepath.SkipDir
			}
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil // a file removed while we walk (compaction)
		}
		files++
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("plaintext memo found in %s", path)
		}
		if bytes.Contains(raw, []byte(payee)) {
			sawPayee++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sawPayee == 0 {
		t.Fatalf("the payee's id is in none of %d files: the search cannot see plaintext", files)
	}
	t.Logf("%d files read; the payee id in %d of them; the memo in none", files, sawPayee)
}

// copyKey copies one key file from one keystore directory to another.
func copyKey(t *testing.T, from, to, name string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(from, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, name+".key"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMemoToStranger: a payer whose keystore holds only its own key — it
// may not read the payee's wallet (PERMISSION_DENIED) — pays a stranger at
// another bank with a memo: the CLI seals it to the key GetWalletKey
// answers. The payee's CLI shows the memo, so does the payer's; the payer's
// bank and the payee's bank see "(sealed)". Before GetWalletKey the payment
// failed: the payee's key was read with GetWallet, which the payer may not
// call.
func TestMemoToStranger(t *testing.T) {
	net := shared(t)
	tag := fmt.Sprintf("%x", time.Now().UnixNano())
	payer, payee := "mts-payer-"+tag[len(tag)-6:], "mts-payee-"+tag[len(tag)-6:]
	secret := "stranger-memo-" + tag
	fund(t, net, payer, "icbc", "50")
	net.ok(t, "wallet", "create", payee, "--bank", "abc", "--tier", "4")

	keys := filepath.Join(net.dir, "keys")
	payerHome, payeeHome, icbcHome, abcHome := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	copyKey(t, keys, payerHome, payer)
	copyKey(t, keys, payeeHome, payee)
	copyKey(t, keys, icbcHome, "icbc")
	copyKey(t, keys, abcHome, "abc")

	net.refused(t, exitRefused, "PERMISSION_DENIED", []string{"--home", payerHome, "--as", payer, "wallet", "show", payee})
	var pay moneyJSON
	net.okJSON(t, &pay, "--home", payerHome, "pay", "--from", payer, "--to", payee, "--amount", "2.50", "--memo", secret)
	if pay.Memo != secret {
		t.Fatalf("the payer's answer shows memo %q", pay.Memo)
	}
	for _, c := range []struct {
		who, home, wallet, want string
	}{
		{"payee", payeeHome, payee, secret},
		{"payer", payerHome, payer, secret},
		{"payer's bank", icbcHome, payer, sealedMemo},
		{"payee's bank", abcHome, payee, sealedMemo},
	} {
		var h []historyJSON
		net.okJSON(t, &h, "--home", c.home, "history", c.wallet)
		if len(h) == 0 || h[0].TxID != pay.TxID || h[0].Memo != c.want {
			t.Fatalf("%s: history of %s shows %+v, want tx %s with memo %q", c.who, c.wallet, h, pay.TxID, c.want)
		}
		if r := net.ok(t, "--home", c.home, "history", c.wallet); !strings.Contains(r.stdout, c.want) {
			t.Fatalf("%s: history table lacks %q:\n%s", c.who, c.want, r.stdout)
		}
	}
}
