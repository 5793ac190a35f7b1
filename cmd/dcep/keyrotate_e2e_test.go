package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// TestKeyRotateCLI (issue 16): `dcep key rotate --bank icbc` and
// `--central-bank` on a running dev network. Each rotation commits, the
// keystore entry then holds the new key (the old one kept as a backup
// file, no pending file left), the CLI goes on signing with the new key
// (wallet create as icbc, issue as the central bank), and a transaction
// signed with the old key is refused by the ledger SIGNER_UNAUTHORIZED;
// the old central bank key no longer signs in to the API (UNAUTHENTICATED),
// the new one does.
func TestKeyRotateCLI(t *testing.T) {
	net, err := startDev(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := net.stop(); err != nil {
			t.Error(err)
		}
	}()
	ks, err := keystore.Open(filepath.Join(net.dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	oldBank, err := ks.Bank("icbc")
	if err != nil {
		t.Fatal(err)
	}
	oldCB, err := ks.CentralBank()
	if err != nil {
		t.Fatal(err)
	}
	net.ok(t, "wallet", "create", "rot-before", "--bank", "icbc", "--tier", "4")

	rotated := func(args ...string) keyRotateJSON {
		t.Helper()
		var out keyRotateJSON
		net.okJSON(t, &out, append([]string{"key", "rotate"}, args...)...)
		if out.Code != "OK" || out.Backup == "" {
			t.Fatalf("key rotate %v: %+v", args, out)
		}
		if _, err := os.Stat(out.Backup); err != nil {
			t.Fatalf("backup of the old key: %v", err)
		}
		return out
	}
	bankOut := rotated("--bank", "icbc")
	newBank, err := ks.Bank("icbc") // also: exactly one icbc key, no pending file
	if err != nil || hex.EncodeToString(newBank.Public()) != bankOut.NewPublicKey || newBank.Public().Equal(oldBank.Public()) {
		t.Fatalf("keystore after rotation: %v %v", newBank, err)
	}
	net.ok(t, "wallet", "create", "rot-after", "--bank", "icbc", "--tier", "4")

	cbOut := rotated("--central-bank")
	if newCB, err := ks.CentralBank(); err != nil || hex.EncodeToString(newCB.Public()) != cbOut.NewPublicKey {
		t.Fatalf("central bank key after rotation: %v %v", newCB, err)
	}
	net.ok(t, "issue", "--bank", "icbc", "--amount", "10")

	// The old keys, used directly with the SDK: the ledger refuses both.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(net.url("icbc"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := cl.Builder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthorized := func(what string, tx *client.SignedTx, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.SubmitOK(ctx, tx)
		var txErr *client.TxError
		if !errors.As(err, &txErr) || txErr.Result.GetCode() != statepb.Code_CODE_SIGNER_UNAUTHORIZED {
			t.Fatalf("%s signed with the old key: %v (want SIGNER_UNAUTHORIZED)", what, err)
		}
	}
	tx, err := b.CloseWallet(ed25519.PrivateKey(oldBank.Private), "rot-before")
	wantUnauthorized("icbc's CloseWallet", tx, err)
	tx, err = b.Issue(ed25519.PrivateKey(oldCB.Private), "icbc", 1000)
	wantUnauthorized("the central bank's Issue", tx, err)

	// Nor does the old central bank key sign in to the API; the new does.
	newCB, _ := ks.CentralBank()
	cbID := b.Genesis().GetCentralBank().GetId()
	for _, c := range []struct {
		key  ed25519.PrivateKey
		want connect.Code
	}{{oldCB.Private, connect.CodeUnauthenticated}, {newCB.Private, 0}} {
		as, err := client.New(net.url("icbc"), client.As(client.Identity{Subject: token.Subject{Kind: token.KindCentralBank, ID: cbID}, Key: c.key}))
		if err != nil {
			t.Fatal(err)
		}
		_, err = as.API().Supply(ctx, connect.NewRequest(&nodepb.SupplyRequest{Audit: true}))
		if (err == nil) != (c.want == 0) || (err != nil && connect.CodeOf(err) != c.want) {
			t.Fatalf("Supply signed in as the central bank (old key: %v): %v", c.want != 0, err)
		}
	}

	net.refused(t, exitUsage, "USAGE", []string{"key", "rotate", "--member", "pboc"}, "--new-key")
	net.refused(t, exitUsage, "USAGE", []string{"key", "rotate", "--bank", "icbc", "--central-bank"}, "exactly one")
}
