package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dcep/dcep/client/keystore"
)

// TestKeyEncryptCLI (issue 17): on a running dev network, `dcep key encrypt`
// rewrites a wallet holder's key file so it no longer holds the seed; a
// payment from that wallet then fails KEY_LOCKED (naming the file) without
// $DCEP_KEY_PASSPHRASE, KEY_WRONG_SECRET with another passphrase, and
// commits with the right one; `keys list` marks the file encrypted; `key
// decrypt` brings the plain file back. `key new --encrypt` writes a key
// that never was plaintext, to a passphrase or (--recipient) an age key
// opened with --key-identity; an altered encrypted file is KEY_CORRUPT.
func TestKeyEncryptCLI(t *testing.T) {
	net := shared(t)
	keysDir := filepath.Join(net.dir, "keys")
	pass := net.env("DCEP_KEY_PASSPHRASE=correct horse battery")
	wrong := net.env("DCEP_KEY_PASSPHRASE=wrong horse")
	net.ok(t, "wallet", "create", "enc-alice", "--bank", "icbc", "--tier", "4")
	net.ok(t, "wallet", "create", "enc-bob", "--bank", "icbc", "--tier", "4")
	net.ok(t, "issue", "--bank", "icbc", "--amount", "1000")
	net.ok(t, "exchange", "--bank", "icbc", "--to", "enc-alice", "--amount", "100")

	path := filepath.Join(keysDir, "enc-alice.key")
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ks.Get("enc-alice")
	if err != nil {
		t.Fatal(err)
	}
	seed := hex.EncodeToString(alice.Private.Seed())
	if !bytes.Contains(plain, []byte(seed)) {
		t.Fatalf("the plain key file should hold the seed:\n%s", plain)
	}

	if r := runDcep(t, pass, net.home, "key", "encrypt", "enc-alice"); r.exit != 0 || !strings.Contains(r.stdout, "encrypted "+path) {
		t.Fatalf("key encrypt:\n%v", r)
	}
	enc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc, []byte(seed)) || bytes.Contains(enc, []byte(`"seed"`)) || !bytes.HasPrefix(enc, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("the encrypted key file still holds the key, or is not an age file:\n%s", enc)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("encrypted file mode: %v %v", fi.Mode(), err)
	}

	pay := []string{"pay", "--from", "enc-alice", "--to", "enc-bob", "--amount", "12.50"}
	net.refused(t, exitRefused, "KEY_LOCKED", pay, path, "DCEP_KEY_PASSPHRASE")
	checkRefused(t, runDcep(t, wrong, net.home, pay...), exitRefused, "KEY_WRONG_SECRET", path)
	if r := runDcep(t, pass, net.home, pay...); r.exit != 0 {
		t.Fatalf("pay with the passphrase:\n%v", r)
	}
	r := runDcep(t, pass, net.home, "--json", "balance", "enc-alice", "enc-bob")
	if r.exit != 0 || !strings.Contains(r.stdout, "8750") || !strings.Contains(r.stdout, "1250") {
		t.Fatalf("balances after the payment (want 8750 and 1250 fen):\n%v", r)
	}
	// Another key of the store still works without the passphrase.
	net.ok(t, "exchange", "--bank", "icbc", "--to", "enc-bob", "--amount", "1")

	var list []keyJSON
	if r := runDcep(t, pass, net.home, "--json", "keys", "list"); r.exit != 0 {
		t.Fatalf("keys list:\n%v", r)
	} else if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	for _, k := range list {
		if (k.Name == "enc-alice") != k.Encrypted {
			t.Errorf("keys list: %s encrypted=%v", k.Name, k.Encrypted)
		}
	}

	// Decrypt: the plain file is back and needs no passphrase.
	checkRefused(t, runDcep(t, wrong, net.home, "key", "decrypt", "enc-alice"), exitRefused, "KEY_WRONG_SECRET", path)
	if r := runDcep(t, pass, net.home, "key", "decrypt", "enc-alice"); r.exit != 0 {
		t.Fatalf("key decrypt:\n%v", r)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, []byte(seed)) {
		t.Fatalf("decrypted file:\n%s", b)
	}
	net.ok(t, "pay", "--from", "enc-alice", "--to", "enc-bob", "--amount", "1")

	// key new --encrypt: never on disk in plaintext.
	var nk keyJSON
	if r := runDcep(t, pass, net.home, "--json", "key", "new", "enc-reg", "--kind", "regulator", "--encrypt"); r.exit != 0 {
		t.Fatalf("key new --encrypt:\n%v", r)
	} else if err := json.Unmarshal([]byte(r.stdout), &nk); err != nil || !nk.Encrypted || nk.Role != "regulator:enc-reg" {
		t.Fatalf("key new: %+v %v", nk, err)
	}
	regPath := filepath.Join(keysDir, "enc-reg.key")
	// Other tests on this network sign in with the keystore's regulator key.
	t.Cleanup(func() { _ = os.Remove(regPath) })
	if b, _ := os.ReadFile(regPath); !bytes.HasPrefix(b, []byte("-----BEGIN AGE")) || bytes.Contains(b, []byte(`"seed"`)) {
		t.Fatalf("key new --encrypt wrote:\n%s", b)
	}
	net.refused(t, exitUsage, "USAGE", []string{"key", "new", "enc-x", "--kind", "wallet", "--recipient", "age1x"}, "--encrypt")
	net.refused(t, exitRefused, "KEY_EXISTS", []string{"key", "new", "enc-reg", "--kind", "regulator"})

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "age.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	net.ok(t, "key", "new", "enc-dev", "--kind", "device", "--encrypt", "--recipient", id.Recipient().String())
	devPath := filepath.Join(keysDir, "enc-dev.key")
	t.Cleanup(func() { _ = os.Remove(devPath) })
	// `key decrypt` is a command that reads the key: locked without the
	// identity, open with --key-identity.
	net.refused(t, exitRefused, "KEY_LOCKED", []string{"key", "decrypt", "enc-dev"}, devPath, "--key-identity")
	other, _ := age.GenerateX25519Identity()
	otherFile := filepath.Join(t.TempDir(), "other.txt")
	_ = os.WriteFile(otherFile, []byte(other.String()+"\n"), 0o600)
	net.refused(t, exitRefused, "KEY_WRONG_SECRET", []string{"--key-identity", otherFile, "key", "decrypt", "enc-dev"}, devPath)
	net.ok(t, "--key-identity", idFile, "key", "decrypt", "enc-dev")

	// An altered encrypted file: KEY_CORRUPT, naming it, never another key.
	b, _ := os.ReadFile(regPath)
	lines := strings.Split(string(b), "\n")
	last := len(lines) - 3 // the last base64 line (before END and the final "")
	if lines[last][0] == 'A' {
		lines[last] = "B" + lines[last][1:]
	} else {
		lines[last] = "A" + lines[last][1:]
	}
	if err := os.WriteFile(regPath, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	checkRefused(t, runDcep(t, pass, net.home, "key", "decrypt", "enc-reg"), exitRefused, "KEY_CORRUPT", regPath)
}
