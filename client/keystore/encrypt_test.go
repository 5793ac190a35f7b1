package keystore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// testWorkFactor keeps scrypt cheap in tests that decrypt many times;
// TestEncryptDefaultWorkFactor runs the default.
const testWorkFactor = 4

func cheapScrypt(t testing.TB) {
	t.Helper()
	old := ScryptWorkFactor
	ScryptWorkFactor = testWorkFactor
	t.Cleanup(func() { ScryptWorkFactor = old })
}

// unlockWith is an Unlock with a fixed passphrase and identities.
func unlockWith(pass string, ids ...age.Identity) Unlock {
	u := Unlock{Passphrase: func(string) (string, error) { return pass, nil }}
	if len(ids) > 0 {
		u.Identities = func() ([]age.Identity, string, error) { return ids, "the test's identities", nil }
	}
	return u
}

// reopen is a second Store on s's directory (no cached decryptions), with u.
func reopen(t *testing.T, s *Store, u Unlock) *Store {
	t.Helper()
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	s2.SetUnlock(u)
	return s2
}

// noSeed fails if the file at path holds the key's seed (hex) or its JSON.
func noSeed(t *testing.T, path string, k *Key) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(hex.EncodeToString(k.Private.Seed()))) || bytes.Contains(raw, []byte(`"seed"`)) {
		t.Fatalf("%s holds the plaintext key:\n%s", path, raw)
	}
	if !bytes.HasPrefix(raw, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("%s is not an armored age file:\n%s", path, raw)
	}
}

func wantErr(t *testing.T, err, want error, path string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error does not name the file %s: %v", path, err)
	}
}

// TestEncryptPassphrase: a key encrypted with Store.Encrypt to a passphrase
// no longer has its seed on disk, reads back as the same key with the
// passphrase (from a fresh Store, so from the file), is ErrLocked without
// one and ErrWrongSecret with another, each naming the file; Decrypt
// writes the plain file back.
func TestEncryptPassphrase(t *testing.T) {
	cheapScrypt(t)
	s := open(t)
	k, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := PassphraseRecipient("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Encrypt("alice", r); err != nil {
		t.Fatal(err)
	}
	path := s.Path("alice")
	noSeed(t, path, k)
	if m := mode(t, path); checkPerms && m != 0o600 {
		t.Errorf("encrypted file mode %04o", m)
	}
	noTemps(t, s)

	got, err := reopen(t, s, unlockWith("correct horse")).Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Private.Equal(k.Private) || !got.Encrypted || got.WalletID != "alice" || got.Seal == nil {
		t.Fatalf("decrypted %+v, want %+v (encrypted, with a Seal)", got, k)
	}

	_, err = reopen(t, s, Unlock{}).Get("alice")
	wantErr(t, err, ErrLocked, path)
	_, err = reopen(t, s, unlockWith("")).Get("alice")
	wantErr(t, err, ErrLocked, path)
	_, err = reopen(t, s, unlockWith("wrong horse")).Get("alice")
	wantErr(t, err, ErrWrongSecret, path)
	// Environment: DCEP_KEY_PASSPHRASE (the default Unlock).
	t.Setenv(EnvPassphrase, "")
	_, err = reopen(t, s, EnvUnlock()).Get("alice")
	wantErr(t, err, ErrLocked, path)
	if !strings.Contains(err.Error(), EnvPassphrase) {
		t.Errorf("locked error does not say how to unlock: %v", err)
	}
	t.Setenv(EnvPassphrase, "correct horse")
	if got, err := reopen(t, s, EnvUnlock()).Get("alice"); err != nil || !got.Private.Equal(k.Private) {
		t.Fatalf("with $%s: %v", EnvPassphrase, err)
	}

	// Encrypting twice is refused; decrypting restores the plain file.
	s2 := reopen(t, s, unlockWith("correct horse"))
	if _, err := s2.Encrypt("alice", r); !errors.Is(err, ErrInvalid) {
		t.Fatalf("encrypt an encrypted key: %v", err)
	}
	if err := s2.Decrypt("alice"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(hex.EncodeToString(k.Private.Seed()))) {
		t.Fatalf("decrypted file is not the plain JSON:\n%s", raw)
	}
	if got, err := reopen(t, s, Unlock{}).Get("alice"); err != nil || got.Encrypted || !got.Private.Equal(k.Private) {
		t.Fatalf("plain again: %+v %v", got, err)
	}
	if err := s2.Decrypt("alice"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("decrypt a plain key: %v", err)
	}
}

// TestEncryptDefaultWorkFactor: the work factor keys are written with
// (2^18) is one the reader accepts, and it is the one in the file.
func TestEncryptDefaultWorkFactor(t *testing.T) {
	s := open(t)
	r, err := PassphraseRecipient("pw")
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Generate(Key{Name: "cb", Kind: KindCentralBank, Seal: r})
	if err != nil {
		t.Fatal(err)
	}
	noSeed(t, s.Path("cb"), k)
	got, err := reopen(t, s, unlockWith("pw")).Get("cb")
	if err != nil || !got.Private.Equal(k.Private) {
		t.Fatalf("%v %v", got, err)
	}
	// A reader capped below the file's work factor refuses it as corrupt
	// rather than spending the memory.
	cheapScrypt(t)
	_, err = reopen(t, s, unlockWith("pw")).Get("cb")
	wantErr(t, err, ErrCorrupt, s.Path("cb"))
}

// TestEncryptRecipient: a key sealed to an age recipient opens with its
// identity (also from a DCEP_KEY_IDENTITY file), is ErrLocked with no
// identity and ErrWrongSecret with another one.
func TestEncryptRecipient(t *testing.T) {
	s := open(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	r, err := ParseRecipient(id.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Generate(Key{Name: "icbc", Kind: KindBank, BankID: "icbc", Seal: r})
	if err != nil {
		t.Fatal(err)
	}
	if !k.Encrypted {
		t.Error("Generate with Seal: not marked encrypted")
	}
	path := s.Path("icbc")
	noSeed(t, path, k)

	got, err := reopen(t, s, unlockWith("", id)).Get("icbc")
	if err != nil || !got.Private.Equal(k.Private) || got.Seal == nil {
		t.Fatalf("%+v %v", got, err)
	}
	_, err = reopen(t, s, unlockWith("some passphrase")).Get("icbc")
	wantErr(t, err, ErrLocked, path)
	_, err = reopen(t, s, unlockWith("", other)).Get("icbc")
	wantErr(t, err, ErrWrongSecret, path)

	idFile := filepath.Join(t.TempDir(), "id.txt")
	if err := os.WriteFile(idFile, []byte("# test identity\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvIdentity, idFile)
	if got, err := reopen(t, s, EnvUnlock()).Bank("icbc"); err != nil || !got.Private.Equal(k.Private) {
		t.Fatalf("with $%s: %v", EnvIdentity, err)
	}
	t.Setenv(EnvIdentity, "")
	_, err = reopen(t, s, EnvUnlock()).Get("icbc")
	wantErr(t, err, ErrLocked, path)

	if _, err := ParseRecipient("age1notakey"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad recipient: %v", err)
	}
}

// TestReplaceKeepsEncryption: what a key rotation writes (Store.Replace,
// as `dcep key rotate` calls it, with no Seal of its own) is encrypted the
// way the old file was — passphrase or recipient — and the old encrypted
// file is the backup.
func TestReplaceKeepsEncryption(t *testing.T) {
	cheapScrypt(t)
	id, _ := age.GenerateX25519Identity()
	pr, _ := PassphraseRecipient("pw")
	for _, c := range []struct {
		name string
		seal age.Recipient
		u    Unlock
	}{{"passphrase", pr, unlockWith("pw")}, {"recipient", id.Recipient(), unlockWith("", id)}} {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			s.SetUnlock(c.u)
			old, err := s.Generate(Key{Name: "icbc", Kind: KindBank, BankID: "icbc", Seal: c.seal})
			if err != nil {
				t.Fatal(err)
			}
			// A fresh Store: the Seal is what reading the file derives.
			fresh := reopen(t, s, c.u)
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			nk := &Key{Name: "icbc", Kind: KindBank, BankID: "icbc", Private: priv}
			backup, err := fresh.Replace(*nk)
			if err != nil {
				t.Fatal(err)
			}
			noSeed(t, s.Path("icbc"), nk)
			noSeed(t, backup, old)
			got, err := reopen(t, s, c.u).Get("icbc")
			if err != nil || !got.Private.Equal(nk.Private) || !got.Encrypted {
				t.Fatalf("replaced key: %+v %v", got, err)
			}
			if _, err := reopen(t, s, Unlock{}).Get("icbc"); !errors.Is(err, ErrLocked) {
				t.Fatalf("replaced key without a secret: %v", err)
			}
		})
	}
}

// TestEncryptedTampered: every single flipped byte of an encrypted key file,
// and every truncation of it, is refused with one of the encrypted-file
// errors naming the file — or, for a flip the format ignores, reads as the
// same key: never a different key, never a panic. Flips in the payload
// (past the header) are ErrCorrupt: age authenticates it.
func TestEncryptedTampered(t *testing.T) {
	cheapScrypt(t)
	s := open(t)
	r, _ := PassphraseRecipient("pw")
	k, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice", Seal: r})
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path("alice")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unlockWith("pw")
	check := func(what string, data []byte) error {
		t.Helper()
		got, err := decodeFile(path, "alice", data, u)
		if err == nil {
			if !got.Private.Equal(k.Private) {
				t.Fatalf("%s: read as a different key", what)
			}
			return nil
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongSecret) && !errors.Is(err, ErrLocked) {
			t.Fatalf("%s: %v (want an encrypted-file error)", what, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: error does not name the file: %v", what, err)
		}
		return err
	}
	// The binary payload follows the header's "---" MAC line.
	bin := decodeArmor(t, orig)
	payload := bytes.Index(bin, []byte("\n---"))
	payload += bytes.IndexByte(bin[payload+1:], '\n') + 2
	refused := 0
	for i := range bin {
		mod := bytes.Clone(bin)
		mod[i] ^= 0x01
		err := check("binary flip", mod)
		if err != nil {
			refused++
		}
		if i >= payload && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at payload byte %d: %v (want ErrCorrupt)", i-payload, err)
		}
	}
	if refused != len(bin) {
		t.Errorf("%d of %d binary flips read as the key", len(bin)-refused, len(bin))
	}
	for i := range orig {
		mod := bytes.Clone(orig)
		mod[i] ^= 0x01
		check("armored flip", mod)
	}
	for n := range orig {
		if err := check("truncation", orig[:n]); err == nil && len(bytes.TrimSpace(orig[n:])) > 0 {
			t.Fatalf("file truncated to %d of %d bytes read", n, len(orig))
		}
	}
	for n := range bin {
		if err := check("truncation", bin[:n]); err == nil {
			t.Fatalf("binary file truncated to %d of %d bytes read", n, len(bin))
		}
	}
	// The same through the store, from disk.
	if err := os.WriteFile(path, orig[:len(orig)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = reopen(t, s, u).Get("alice")
	wantErr(t, err, ErrCorrupt, path)
}

func decodeArmor(t *testing.T, armored []byte) []byte {
	t.Helper()
	var b64 strings.Builder
	for _, line := range strings.Split(string(armored), "\n") {
		if !strings.HasPrefix(line, "-----") {
			b64.WriteString(strings.TrimSpace(line))
		}
	}
	out, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEncryptedMixedStore: plain files (what dev mode writes) and encrypted
// ones live in one store. Without a secret, lookups still find the plain
// keys; a lookup that matches nothing readable reports the locked file
// (not KEY_NOT_FOUND); with the secret, every key is found.
func TestEncryptedMixedStore(t *testing.T) {
	cheapScrypt(t)
	s := open(t)
	s.SetUnlock(Unlock{})
	r, _ := PassphraseRecipient("pw")
	if _, err := s.Generate(Key{Name: "pboc", Kind: KindCentralBank}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate(Key{Name: "icbc", Kind: KindBank, BankID: "icbc", Seal: r}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CentralBank(); err != nil {
		t.Fatalf("plain key beside an encrypted one: %v", err)
	}
	keys, err := s.List()
	wantErr(t, err, ErrLocked, s.Path("icbc"))
	if len(keys) != 1 || keys[0].Name != "pboc" {
		t.Fatalf("List without the passphrase: %v", keys)
	}
	_, err = s.Bank("icbc")
	wantErr(t, err, ErrLocked, s.Path("icbc"))
	if errors.Is(err, ErrNotFound) {
		t.Errorf("a locked bank key is reported as not found: %v", err)
	}
	if _, err := s.Bank("boc"); !errors.Is(err, ErrLocked) {
		t.Errorf("another bank, icbc locked: %v", err)
	}
	s2 := reopen(t, s, unlockWith("pw"))
	if k, err := s2.Bank("icbc"); err != nil || !k.Encrypted {
		t.Fatalf("with the passphrase: %v %v", k, err)
	}
	if _, err := s2.Bank("boc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a bank with no key, all files readable: %v", err)
	}
}

// FuzzDecodeFile: the key file decoder (plain JSON, armored or binary age)
// never panics on any input, and whatever it accepts is a valid key of the
// file's name, encrypted only if the input was an age file.
func FuzzDecodeFile(f *testing.F) {
	cheapScrypt(f)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "keys"))
	if err != nil {
		f.Fatal(err)
	}
	pr, _ := PassphraseRecipient("pw")
	for _, k := range []Key{
		{Name: "plain", Kind: KindCentralBank},
		{Name: "pass", Kind: KindWallet, BankID: "icbc", WalletID: "alice", Seal: pr},
		{Name: "rcpt", Kind: KindBank, BankID: "icbc", Seal: id.Recipient()},
	} {
		if _, err := s.Generate(k); err != nil {
			f.Fatal(err)
		}
		raw, err := os.ReadFile(s.Path(k.Name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(k.Name, raw)
		if k.Seal != nil {
			var b64 strings.Builder
			for _, line := range strings.Split(string(raw), "\n") {
				if !strings.HasPrefix(line, "-----") {
					b64.WriteString(strings.TrimSpace(line))
				}
			}
			bin, err := base64.StdEncoding.DecodeString(b64.String())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(k.Name, bin)
		}
	}
	f.Add("x", []byte("-----BEGIN AGE ENCRYPTED FILE-----\n-----END AGE ENCRYPTED FILE-----\n"))
	f.Add("x", []byte("age-encryption.org/v1\n-> scrypt AAAA 30\nAAAA\n--- AAAA\n"))
	f.Add("x", []byte(`{"format":"dcep-key/v1"}`))
	u := unlockWith("pw", id)
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		k, err := decodeFile("/fuzz/"+name+".key", name, data, u)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongSecret) && !errors.Is(err, ErrLocked) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error of no documented kind: %v", err)
			}
			return
		}
		if k.Name != name {
			t.Fatalf("file named %q decoded as key %q", name, k.Name)
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("accepted an invalid key: %v", err)
		}
		if k.Encrypted != isEncrypted(data) {
			t.Fatalf("encrypted %v for input encrypted %v", k.Encrypted, isEncrypted(data))
		}
	})
}
