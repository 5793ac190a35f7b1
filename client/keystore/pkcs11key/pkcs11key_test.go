package pkcs11key_test

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dcep/dcep/client/keystore/pkcs11key"
	"github.com/dcep/dcep/client/keystore/pkcs11key/softhsmtest"
)

func TestParseURI(t *testing.T) {
	pin := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pin, []byte("9876\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := pkcs11key.ParseURI("pkcs11:token=my%20hsm;object=pboc;type=private;id=%01%02?module-path=/usr/lib/x.so&pin-source=file:" + pin)
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "my hsm" || u.Object != "pboc" || string(u.ID) != "\x01\x02" || u.Module != "/usr/lib/x.so" || u.PIN != "9876" {
		t.Fatalf("parsed %+v", u)
	}
	if strings.Contains(u.String(), "9876") {
		t.Fatalf("String() shows the PIN: %s", u)
	}
	for _, bad := range []string{
		"file:/x", "pkcs11:object=a?module-path=/m", "pkcs11:token=t?module-path=/m", "pkcs11:token=t;object=a",
		"pkcs11:token=t;object=a;colour=red?module-path=/m", "pkcs11:token=t;object=%zz?module-path=/m",
		"pkcs11:token=t;object=a;type=secret-key?module-path=/m", "pkcs11:token=t;object=a?module-name=softhsm2",
		"pkcs11:" + strings.Repeat("a", pkcs11key.MaxURIBytes),
	} {
		if _, err := pkcs11key.ParseURI(bad); !errors.Is(err, pkcs11key.ErrURI) {
			t.Errorf("ParseURI(%.60q): %v, want ErrURI", bad, err)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=t;object=a?module-path=/m&pin-value=1")
	f.Add("pkcs11:serial=1;id=%00?module-path=/m")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := pkcs11key.ParseURI(s)
		if err != nil {
			if !errors.Is(err, pkcs11key.ErrURI) {
				t.Fatalf("error not ErrURI: %v", err)
			}
			return
		}
		if u.Module == "" || (u.Token == "" && u.Serial == "") || (u.Object == "" && len(u.ID) == 0) {
			t.Fatalf("accepted an incomplete URI: %+v", u)
		}
	})
}

// TestSoftHSMSignVerify generates a key in a real SoftHSM2 token and one
// imported from a seed, signs with both through CKM_EDDSA and verifies with
// crypto/ed25519.
func TestSoftHSMSignVerify(t *testing.T) {
	tk := softhsmtest.New(t)
	t.Logf("SoftHSM2 %s", strings.TrimSpace(softhsmtest.Version()))
	pub, err := pkcs11key.Generate(tk.URI("gen-1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := pkcs11key.Open(tk.URI("gen-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !pub.Equal(s.Public()) {
		t.Fatal("opened key's public key differs from the generated one")
	}
	msg := []byte("issue 1000000 fen to icbc")
	sig, err := s.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, msg, sig) || ed25519.Verify(pub, []byte("other"), sig) {
		t.Fatal("token signature does not verify as Ed25519")
	}
	if _, err := s.Sign(nil, msg, crypto.SHA256); !errors.Is(err, pkcs11key.ErrKey) {
		t.Fatalf("Sign with a hash: %v, want ErrKey", err)
	}

	seedPub, seed, _ := ed25519.GenerateKey(nil)
	if err := pkcs11key.Import(tk.URI("imported-1"), seed); err != nil {
		t.Fatal(err)
	}
	imp, err := pkcs11key.Open(tk.URI("imported-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	sig, err = imp.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	// Ed25519 is deterministic: the token signs exactly as the seed does.
	if !seedPub.Equal(imp.Public()) || string(sig) != string(ed25519.Sign(seed, msg)) {
		t.Fatal("imported key does not sign as its seed")
	}

	if _, err := pkcs11key.Open(tk.URI("no-such-key")); !errors.Is(err, pkcs11key.ErrKey) {
		t.Fatalf("Open of a missing key: %v, want ErrKey", err)
	}
	// A wrong PIN is not tested here: PKCS#11 login is per process and
	// token, so once this process logged in every session is in.
}
