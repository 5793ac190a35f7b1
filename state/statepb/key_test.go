package statepb_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/hdevalence/ed25519consensus"

	"github.com/dcep/dcep/state/statepb"
)

// TestSmallOrderKeysRefused: under the cofactored rule the ledger verifies
// by, a small-order public key accepts a forged signature on any message,
// so such keys (and bytes that are no curve point) are refused wherever a
// key enters the ledger; ordinary keys pass.
func TestSmallOrderKeysRefused(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1 // the encoding of the neutral point
	// Why it matters: R = neutral point, s = 0 "signs" anything for it.
	forged := append(append([]byte{}, identity...), make([]byte, 32)...)
	if !ed25519consensus.Verify(identity, []byte("pay everything to mallory"), forged) {
		t.Fatal("expected the forgery to verify under ZIP-215; the premise of this check changed")
	}
	notPoint := make([]byte, 32)
	notPoint[0] = 2 // y = 2 has no x on the curve
	good, _, _ := ed25519.GenerateKey(rand.Reader)

	for _, tc := range []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"neutral point", identity, false},
		{"not a curve point", notPoint, false},
		{"ordinary key", good, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statepb.UsableKey(tc.key); got != tc.ok {
				t.Fatalf("UsableKey = %v, want %v", got, tc.ok)
			}
			reg := &statepb.RegisterWallet{WalletId: "alice", BankId: "icbc", PublicKey: tc.key, Tier: 4, Kind: statepb.WalletKind_WALLET_KIND_PERSONAL}
			err := (&statepb.Tx{Version: statepb.TxVersion, ChainId: "c", Kind: &statepb.Tx_RegisterWallet{RegisterWallet: reg}}).ValidateBasic()
			if tc.ok {
				if err != nil {
					t.Fatalf("ordinary key refused: %v", err)
				}
				return
			}
			if statepb.CodeOf(err) != statepb.Code_CODE_INVALID_FIELD || !strings.Contains(err.Error(), "register_wallet.public_key") {
				t.Fatalf("got %v, want INVALID_FIELD naming register_wallet.public_key", err)
			}
		})
	}
}
