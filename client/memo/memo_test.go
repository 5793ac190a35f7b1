package memo_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/dcep/dcep/client/memo"
	"github.com/dcep/dcep/state/statepb"
)

func key(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestSealOpen(t *testing.T) {
	alice, bob, carol := key(t, 1), key(t, 2), key(t, 3)
	sealed, err := memo.Seal("two lattes", []ed25519.PublicKey{pub(alice), pub(bob), pub(alice)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("lattes")) {
		t.Fatal("plaintext in the sealed bytes")
	}
	if n := sealed[statepb.SealedMemoHeaderBytes-1]; n != 2 {
		t.Fatalf("%d recipients, want 2 (duplicates sealed once)", n)
	}
	for name, k := range map[string]ed25519.PrivateKey{"payer": alice, "payee": bob} {
		if got, err := memo.Open(sealed, k); err != nil || got != "two lattes" {
			t.Fatalf("%s opens %q, %v", name, got, err)
		}
	}
	if _, err := memo.Open(sealed, carol); !errors.Is(err, memo.ErrNotRecipient) {
		t.Fatalf("a stranger opens it: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if got, err := memo.Open(bad, bob); err == nil {
			t.Fatalf("byte %d flipped, still opens to %q", i, got)
		}
	}
	again, _ := memo.Seal("two lattes", []ed25519.PublicKey{pub(alice), pub(bob)})
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of one memo are equal: no randomness")
	}
}

// TestLimitsMatchLedger: the largest memo to the most recipients fits the
// ledger's bound and framing; one more recipient or byte is refused here.
func TestLimitsMatchLedger(t *testing.T) {
	var rs []ed25519.PublicKey
	for i := range statepb.MaxMemoRecipients + 1 {
		rs = append(rs, pub(key(t, byte(10+i))))
	}
	text := strings.Repeat("m", statepb.MaxMemoBytes)
	sealed, err := memo.Seal(text, rs[:statepb.MaxMemoRecipients])
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != statepb.MaxSealedMemoBytes {
		t.Fatalf("largest seal is %d bytes, ledger bound %d", len(sealed), statepb.MaxSealedMemoBytes)
	}
	tx := &statepb.Tx{Version: statepb.TxVersion, SealedMemo: sealed, Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: "icbc", AmountFen: 1}}}
	if err := tx.ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text string
		rs   []ed25519.PublicKey
	}{{text, rs}, {text + "m", rs[:1]}, {"", rs[:1]}, {"x", nil}, {"x", []ed25519.PublicKey{make([]byte, 31)}}} {
		if _, err := memo.Seal(c.text, c.rs); !errors.Is(err, memo.ErrBadInput) {
			t.Fatalf("%d bytes to %d recipients: %v", len(c.text), len(c.rs), err)
		}
	}
}

func TestX25519Conversion(t *testing.T) {
	k := key(t, 7)
	x, err := memo.PublicX25519(pub(k))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := curve25519.X25519(memo.PrivateX25519(k), curve25519.Basepoint)
	if !bytes.Equal(x, want) {
		t.Fatal("public and private conversions disagree")
	}
}

// FuzzOpen: any bytes open to an error or a memo, never a panic.
func FuzzOpen(f *testing.F) {
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	s, _ := memo.Seal("lunch", []ed25519.PublicKey{pub(k)})
	f.Add(s)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := memo.Open(b, k)
		if err == nil && len(got) > statepb.MaxMemoBytes+statepb.MaxSealedMemoBytes {
			t.Fatal("opened beyond bounds")
		}
	})
}
