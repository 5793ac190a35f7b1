package state_test

import (
	"crypto/ed25519"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// reservedCodes are codes no kind of this version can produce; each names
// the later kind it is for. TestEveryCodeHasACase skips only these.
var reservedCodes = map[statepb.Code]string{
	statepb.Code_CODE_UNSPECIFIED: "not an outcome",
	statepb.Code_CODE_OK:          "success (every other test)",
}

// codeCase triggers one code with one concrete transaction.
type codeCase struct {
	name string
	code statepb.Code
	// field is what the message must name: the field, or the rule.
	field string
	// recorded: the outcome is kept under the transaction id.
	recorded bool
	// tx builds the transaction; it may apply setup blocks first.
	tx func(t *testing.T, f *fixture) []byte
}

func codeCases() []codeCase {
	sign := func(t *testing.T, f *fixture, body *statepb.Tx, keys ...ed25519.PrivateKey) []byte {
		return f.n.Sign(t, body, keys...)
	}
	alicePays := func(t *testing.T, f *fixture, payees ...*statepb.Payee) []byte {
		return f.n.Transfer(t, "alice", ins(f.aliceA), payees...)
	}
	// envelope returns a SignedTx around body bytes with the given signatures.
	envelope := func(body []byte, sigs ...*statepb.Signature) []byte {
		raw, err := proto.Marshal(&statepb.SignedTx{Body: body, Signatures: sigs})
		if err != nil {
			panic(err)
		}
		return raw
	}
	validBody := func(t *testing.T, f *fixture) []byte {
		b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
		b.Version, b.ChainId, b.Nonce = statepb.TxVersion, f.n.Genesis.GetChainId(), 7
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	aliceSig := func(t *testing.T, f *fixture, body []byte) *statepb.Signature {
		var stx statepb.SignedTx
		if err := proto.Unmarshal(f.n.SignRaw(t, body, f.n.Wallet("alice")), &stx); err != nil {
			t.Fatal(err)
		}
		return stx.GetSignatures()[0]
	}
	manyOutpoints := func(n int) []*statepb.Outpoint {
		var out []*statepb.Outpoint
		for i := range n {
			out = append(out, &statepb.Outpoint{TxId: make([]byte, 32), Index: uint32(i)})
		}
		return out
	}
	memberKey := func(f *fixture, name string) []byte { return f.n.Pub("node/" + name) }

	return append(programmableCodeCases(), []codeCase{
		// --- envelope and body: never recorded ---
		{"too large", statepb.Code_CODE_TX_TOO_LARGE, "transaction", false, func(t *testing.T, f *fixture) []byte {
			return make([]byte, statepb.MaxTxBytes+1)
		}},
		{"garbage bytes", statepb.Code_CODE_TX_MALFORMED, "signed_tx", false, func(t *testing.T, f *fixture) []byte {
			return []byte{0xff, 0xff, 0xff, 0xff, 0xff}
		}},
		{"truncated", statepb.Code_CODE_TX_MALFORMED, "signed_tx", false, func(t *testing.T, f *fixture) []byte {
			raw := alicePays(t, f, statetest.Pay("bob", yuan))
			return raw[:len(raw)-10]
		}},
		{"empty body", statepb.Code_CODE_TX_MALFORMED, "signed_tx.body", false, func(t *testing.T, f *fixture) []byte {
			return envelope(nil, &statepb.Signature{PublicKey: make([]byte, 32), Signature: make([]byte, 64)})
		}},
		{"garbage body", statepb.Code_CODE_TX_MALFORMED, "body", false, func(t *testing.T, f *fixture) []byte {
			body := []byte{0x0a, 0x05, 'a'} // chain_id claims 5 bytes, has 1
			return envelope(body, aliceSig(t, f, body))
		}},
		{"unknown field in body", statepb.Code_CODE_TX_UNKNOWN_FIELDS, "body", false, func(t *testing.T, f *fixture) []byte {
			body := protowire.AppendVarint(protowire.AppendTag(validBody(t, f), 99, protowire.VarintType), 1)
			return f.n.SignRaw(t, body, f.n.Wallet("alice"))
		}},
		{"unknown field in a payee", statepb.Code_CODE_TX_UNKNOWN_FIELDS, "body", false, func(t *testing.T, f *fixture) []byte {
			p := statetest.Pay("bob", yuan)
			p.ProtoReflect().SetUnknown(protoreflect.RawFields(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5)))
			return alicePays(t, f, p)
		}},
		{"unknown field in envelope", statepb.Code_CODE_TX_UNKNOWN_FIELDS, "signed_tx", false, func(t *testing.T, f *fixture) []byte {
			raw := alicePays(t, f, statetest.Pay("bob", yuan))
			return protowire.AppendBytes(protowire.AppendTag(raw, 7, protowire.BytesType), []byte("extra"))
		}},
		{"version 2", statepb.Code_CODE_VERSION_UNSUPPORTED, "version", false, func(t *testing.T, f *fixture) []byte {
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.Version = 2
			return sign(t, f, b, f.n.Wallet("alice"))
		}},
		{"wrong chain id", statepb.Code_CODE_CHAIN_ID_MISMATCH, "chain_id", false, func(t *testing.T, f *fixture) []byte {
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.ChainId = "dcep-main-1"
			return sign(t, f, b, f.n.Wallet("alice"))
		}},
		{"no kind", statepb.Code_CODE_KIND_MISSING, "kind", false, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, &statepb.Tx{Memo: "nothing"}, f.n.Wallet("alice"))
		}},
		{"memo too long", statepb.Code_CODE_MEMO_TOO_LONG, "memo", false, func(t *testing.T, f *fixture) []byte {
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.Memo = strings.Repeat("m", statepb.MaxMemoBytes+1)
			return sign(t, f, b, f.n.Wallet("alice"))
		}},
		{"plaintext memo", statepb.Code_CODE_MEMO_NOT_SEALED, "memo", false, func(t *testing.T, f *fixture) []byte {
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.Memo = "lunch"
			return sign(t, f, b, f.n.Wallet("alice"))
		}},
		{"sealed memo malformed", statepb.Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo", false, func(t *testing.T, f *fixture) []byte {
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.SealedMemo = make([]byte, statepb.SealedMemoHeaderBytes+statepb.SealedMemoStanzaBytes+20)
			b.SealedMemo[0] = statepb.SealedMemoVersion
			b.SealedMemo[statepb.SealedMemoHeaderBytes-1] = 9 // 9 recipients claimed, 1 present
			return sign(t, f, b, f.n.Wallet("alice"))
		}},
		{"too many inputs", statepb.Code_CODE_TOO_MANY_INPUTS, "transfer.inputs", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", manyOutpoints(statepb.MaxInputs+1), statetest.Pay("bob", yuan))
		}},
		{"too many payees", statepb.Code_CODE_TOO_MANY_OUTPUTS, "transfer.payees", false, func(t *testing.T, f *fixture) []byte {
			var ps []*statepb.Payee
			for range statepb.MaxPayees + 1 {
				ps = append(ps, statetest.Pay("bob", 1))
			}
			return alicePays(t, f, ps...)
		}},
		{"no inputs", statepb.Code_CODE_NO_INPUTS, "transfer.inputs", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", nil, statetest.Pay("bob", yuan))
		}},
		{"no payees", statepb.Code_CODE_NO_OUTPUTS, "transfer.payees", false, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f)
		}},
		{"input twice", statepb.Code_CODE_DUPLICATE_INPUT, "transfer.inputs", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", ins(f.aliceA, f.aliceB, f.aliceA), statetest.Pay("bob", yuan))
		}},
		{"zero amount", statepb.Code_CODE_AMOUNT_ZERO, "transfer.payees[0].amount_fen", false, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("bob", 0))
		}},
		{"payees overflow", statepb.Code_CODE_AMOUNT_OVERFLOW, "transfer.payees", false, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("bob", math.MaxUint64), statetest.Pay("shop", 1))
		}},
		{"bad wallet id", statepb.Code_CODE_INVALID_FIELD, "register_wallet.wallet_id", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Register(t, "icbc", "Alice", personal, tier4, "")
		}},
		{"bad outpoint", statepb.Code_CODE_INVALID_FIELD, "transfer.inputs[0].tx_id", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", ins(&statepb.Outpoint{TxId: make([]byte, 31)}), statetest.Pay("bob", yuan))
		}},

		// --- signatures and authority: never recorded ---
		{"no signature", statepb.Code_CODE_SIGNATURE_COUNT, "signatures", false, func(t *testing.T, f *fixture) []byte {
			return envelope(validBody(t, f))
		}},
		{"return with one signature", statepb.Code_CODE_SIGNATURE_COUNT, "signatures", false, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.ReturnBody("icbc", ins(f.icbcReserve), yuan), f.n.Bank("icbc"))
		}},
		{"short public key", statepb.Code_CODE_SIGNATURE_MALFORMED, "signatures[0].public_key", false, func(t *testing.T, f *fixture) []byte {
			body := validBody(t, f)
			s := aliceSig(t, f, body)
			s.PublicKey = s.PublicKey[:31]
			return envelope(body, s)
		}},
		{"short signature", statepb.Code_CODE_SIGNATURE_MALFORMED, "signatures[0].signature", false, func(t *testing.T, f *fixture) []byte {
			body := validBody(t, f)
			s := aliceSig(t, f, body)
			s.Signature = s.Signature[:63]
			return envelope(body, s)
		}},
		{"bad signature", statepb.Code_CODE_SIGNATURE_INVALID, "signatures[0]", false, func(t *testing.T, f *fixture) []byte {
			body := validBody(t, f)
			s := aliceSig(t, f, body)
			s.Signature[10] ^= 1
			return envelope(body, s)
		}},
		{"signed for another genesis", statepb.Code_CODE_SIGNATURE_INVALID, "signatures[0]", false, func(t *testing.T, f *fixture) []byte {
			other := f.n.Signer
			other.GenesisHash[0] ^= 1
			b := statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan))
			b.Version, b.ChainId, b.Nonce = statepb.TxVersion, f.n.Genesis.GetChainId(), 1
			raw, _, err := other.Sign(b, f.n.Wallet("alice"))
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}},
		{"wrong signer", statepb.Code_CODE_SIGNER_UNAUTHORIZED, "signatures[0]", false, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.TransferBody("alice", ins(f.aliceA), statetest.Pay("bob", yuan)), f.n.Wallet("bob"))
		}},
		{"exchange at unknown bank", statepb.Code_CODE_BANK_NOT_FOUND, "exchange.bank_id", false, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.ExchangeBody("hsbc", ins(f.icbcReserve), "alice", yuan), f.n.Bank("icbc"))
		}},
		{"register at unknown bank", statepb.Code_CODE_BANK_NOT_FOUND, "register_wallet.bank_id", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Register(t, "hsbc", "dora", personal, tier4, "")
		}},
		{"spend from unknown wallet", statepb.Code_CODE_WALLET_NOT_FOUND, "transfer.from_wallet_id", false, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "ghost", ins(f.aliceA), statetest.Pay("bob", yuan))
		}},
		{"freeze unknown wallet", statepb.Code_CODE_WALLET_NOT_FOUND, "freeze_wallet.wallet_id", false, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.FreezeBody("ghost", ""), f.n.Bank("icbc"))
		}},

		// --- ledger rules: recorded ---
		{"issue to unknown bank", statepb.Code_CODE_BANK_NOT_FOUND, "issue.bank_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Issue(t, "hsbc", yuan)
		}},
		{"issue overflows supply", statepb.Code_CODE_AMOUNT_OVERFLOW, "issue.amount_fen", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Issue(t, "icbc", math.MaxUint64-1_000_000*yuan)
		}},
		{"sub-wallet of unknown parent", statepb.Code_CODE_WALLET_NOT_FOUND, "register_wallet.parent_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "alice.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = "ghost"
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"sub-wallet of another bank's wallet", statepb.Code_CODE_PAYEE_WRONG_BANK, "register_wallet.parent_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "carol.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = "carol"
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"sub-wallet of a sub-wallet", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "register_wallet.parent_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "alice.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = "alice"
			f.c.MustOK(t, sign(t, f, b, f.n.Bank("icbc")))
			b = f.n.RegisterBody("icbc", "alice.jd.x", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = "alice.jd"
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"sub-wallet of a closed wallet", statepb.Code_CODE_WALLET_CLOSED, "register_wallet.parent_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "closed.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = "closed"
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"register existing wallet", statepb.Code_CODE_WALLET_EXISTS, "register_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Register(t, "icbc", "alice", personal, 3, "")
		}},
		{"frozen payer", statepb.Code_CODE_WALLET_FROZEN, "transfer.from_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "frozen", ins(f.aliceA), statetest.Pay("bob", yuan))
		}},
		{"freeze frozen wallet", statepb.Code_CODE_WALLET_FROZEN, "freeze_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.FreezeBody("frozen", "again"), f.n.Bank("icbc"))
		}},
		{"frozen redeemer", statepb.Code_CODE_WALLET_FROZEN, "redeem.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.RedeemBody("frozen", ins(f.aliceA), yuan), f.n.Wallet("frozen"))
		}},
		{"closed payer", statepb.Code_CODE_WALLET_CLOSED, "transfer.from_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "closed", ins(f.aliceA), statetest.Pay("bob", yuan))
		}},
		{"update closed wallet", statepb.Code_CODE_WALLET_CLOSED, "update_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.UpdateBody("closed", 2, "", "", nil), f.n.Bank("icbc"))
		}},
		{"unfreeze active wallet", statepb.Code_CODE_WALLET_NOT_FROZEN, "unfreeze_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.UnfreezeBody("alice", ""), f.n.Bank("icbc"))
		}},
		{"close wallet with money", statepb.Code_CODE_WALLET_NOT_EMPTY, "close_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.CloseBody("alice"), f.n.Bank("icbc"))
		}},
		{"pay a reserve", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "transfer.payees[0].wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay(statetest.Reserve("icbc"), yuan))
		}},
		{"transfer from a reserve", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "transfer.from_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.TransferBody(statetest.Reserve("icbc"), ins(f.icbcReserve), statetest.Pay("alice", yuan)), f.n.Bank("icbc"))
		}},
		{"redeem from a reserve", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "redeem.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.RedeemBody(statetest.Reserve("icbc"), ins(f.icbcReserve), yuan), f.n.Bank("icbc"))
		}},
		{"freeze a reserve", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "freeze_wallet.wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.FreezeBody(statetest.Reserve("icbc"), ""), f.n.Bank("icbc"))
		}},
		{"sub-wallet of a reserve", statepb.Code_CODE_WALLET_KIND_NOT_ALLOWED, "register_wallet.parent_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "reserve.jd", statepb.WalletKind_WALLET_KIND_SUB_WALLET, tier4)
			b.GetRegisterWallet().ParentWalletId = statetest.Reserve("icbc")
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"unknown payee", statepb.Code_CODE_PAYEE_NOT_FOUND, "transfer.payees[1]", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("bob", yuan), statetest.Pay("ghost", yuan))
		}},
		{"frozen payee", statepb.Code_CODE_PAYEE_FROZEN, "transfer.payees[0]", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("frozen", yuan))
		}},
		{"closed payee", statepb.Code_CODE_PAYEE_CLOSED, "transfer.payees[0]", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("closed", yuan))
		}},
		{"exchange to frozen", statepb.Code_CODE_PAYEE_FROZEN, "exchange.to_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Exchange(t, "icbc", ins(f.icbcReserve), "frozen", yuan)
		}},
		{"exchange to another bank's wallet", statepb.Code_CODE_PAYEE_WRONG_BANK, "exchange.to_wallet_id", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Exchange(t, "icbc", ins(f.icbcReserve), "carol", yuan)
		}},
		{"unknown input", statepb.Code_CODE_INPUT_NOT_FOUND, "transfer.inputs[1]", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", ins(f.aliceA, &statepb.Outpoint{TxId: make([]byte, 32)}), statetest.Pay("bob", yuan))
		}},
		{"input index past outputs", statepb.Code_CODE_INPUT_NOT_FOUND, "transfer.inputs[0]", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", ins(&statepb.Outpoint{TxId: f.aliceA.GetTxId(), Index: 2}), statetest.Pay("bob", yuan))
		}},
		{"spent input", statepb.Code_CODE_INPUT_SPENT, "transfer.inputs[0]", true, func(t *testing.T, f *fixture) []byte {
			f.c.MustOK(t, alicePays(t, f, statetest.Pay("bob", yuan)))
			return alicePays(t, f, statetest.Pay("shop", yuan))
		}},
		{"someone else's input", statepb.Code_CODE_INPUT_NOT_OWNED, "transfer.inputs[1]", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Transfer(t, "alice", ins(f.aliceA, f.carol), statetest.Pay("bob", yuan))
		}},
		{"bank spends a customer's output", statepb.Code_CODE_INPUT_NOT_OWNED, "exchange.inputs[0]", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Exchange(t, "icbc", ins(f.aliceA), "bob", yuan)
		}},
		{"inputs short", statepb.Code_CODE_INSUFFICIENT_INPUTS, "transfer.inputs", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("bob", 3000*yuan+1))
		}},
		{"return more than inputs", statepb.Code_CODE_INSUFFICIENT_INPUTS, "return.inputs", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.ReturnBody("icbc", ins(f.icbcReserve), 995_000*yuan+1), f.n.Bank("icbc"), f.n.CentralBank())
		}},
		{"tier 4 per payment", statepb.Code_CODE_LIMIT_PAYMENT, "per-payment limit", true, func(t *testing.T, f *fixture) []byte {
			return alicePays(t, f, statetest.Pay("bob", 2000*yuan+1))
		}},
		{"tier 4 per day", statepb.Code_CODE_LIMIT_DAILY, "daily limit", true, func(t *testing.T, f *fixture) []byte {
			r1 := f.c.MustOK(t, alicePays(t, f, statetest.Pay("shop", 2000*yuan))) // change ¥1,000
			f.c.MustOK(t, f.n.Transfer(t, "alice", ins(f.aliceB), statetest.Pay("shop", 2000*yuan)))
			r3 := f.c.MustOK(t, f.n.Transfer(t, "alice", ins(outOf(r1, 1)), statetest.Pay("shop", 999*yuan))) // ¥4,999 today
			more := f.c.MustOK(t, f.n.Exchange(t, "icbc", ins(f.icbcReserve), "alice", 1000*yuan))
			return f.n.Transfer(t, "alice", ins(outOf(r3, 1), outOf(more, 0)), statetest.Pay("shop", yuan+1))
		}},
		{"own yearly limit", statepb.Code_CODE_LIMIT_YEARLY, "yearly limit", true, func(t *testing.T, f *fixture) []byte {
			f.c.MustOK(t, sign(t, f, statetest.UpdateBody("alice", tier4, "", "", &statepb.Limits{MaxYearlyFen: 100 * yuan}), f.n.Bank("icbc")))
			r := f.c.MustOK(t, alicePays(t, f, statetest.Pay("shop", 100*yuan)))
			return f.n.Transfer(t, "alice", ins(outOf(r, 1)), statetest.Pay("shop", 1))
		}},
		{"payee over balance cap", statepb.Code_CODE_LIMIT_BALANCE, "balance limit", true, func(t *testing.T, f *fixture) []byte {
			f.c.MustOK(t, f.n.Exchange(t, "icbc", ins(f.icbcReserve), "bob", yuan))
			return f.n.Transfer(t, "carol", ins(f.carol), statetest.Pay("bob", 10_000*yuan))
		}},
		{"exchange over balance cap", statepb.Code_CODE_LIMIT_BALANCE, "balance limit", true, func(t *testing.T, f *fixture) []byte {
			return f.n.Exchange(t, "icbc", ins(f.icbcReserve), "alice", 5000*yuan+1)
		}},
		{"register above tier", statepb.Code_CODE_LIMIT_ABOVE_TIER, "register_wallet.limits.max_payment_fen", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.RegisterBody("icbc", "dora", personal, tier4)
			b.GetRegisterWallet().Limits = &statepb.Limits{MaxPaymentFen: 2000*yuan + 1}
			return sign(t, f, b, f.n.Bank("icbc"))
		}},
		{"update above tier", statepb.Code_CODE_LIMIT_ABOVE_TIER, "update_wallet.limits.max_balance_fen", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.UpdateBody("alice", 2, "", "", &statepb.Limits{MaxBalanceFen: 500_000*yuan + 1}), f.n.Bank("icbc"))
		}},
		{"add existing member", statepb.Code_CODE_MEMBER_EXISTS, "change_membership.node.name", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, f.n.AddMemberBody("icbc", statepb.NodeRole_NODE_ROLE_VOTER), f.n.CentralBank())
		}},
		{"add member with a used key", statepb.Code_CODE_MEMBER_EXISTS, "change_membership.node.public_key", true, func(t *testing.T, f *fixture) []byte {
			b := f.n.AddMemberBody("regulator-2", statepb.NodeRole_NODE_ROLE_REGULATOR)
			b.GetChangeMembership().GetNode().PublicKey = memberKey(f, "regulator")
			return sign(t, f, b, f.n.CentralBank())
		}},
		{"remove unknown member", statepb.Code_CODE_MEMBER_NOT_FOUND, "change_membership.node.name", true, func(t *testing.T, f *fixture) []byte {
			return sign(t, f, statetest.RemoveMemberBody("hsbc"), f.n.CentralBank())
		}},
		{"remove last voter", statepb.Code_CODE_MEMBER_LAST_VOTER, "change_membership.node.name", true, func(t *testing.T, f *fixture) []byte {
			var txs [][]byte
			for _, name := range []string{"pboc", "icbc", "abc", "boc", "ccb", "bocom"} {
				txs = append(txs, sign(t, f, statetest.RemoveMemberBody(name), f.n.CentralBank()))
			}
			mustAllOK(t, f.c.Apply(t, txs...))
			return sign(t, f, statetest.RemoveMemberBody("psbc"), f.n.CentralBank())
		}},
	}...)
}

// TestCodes triggers each code with a concrete transaction and checks the
// code, that the message names the field or rule, that nothing but the
// outcome record (for recorded codes) changed, and that a recorded outcome
// is what a resubmission gets back.
func TestCodes(t *testing.T) {
	for _, tc := range codeCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			raw := tc.tx(t, f)
			before := snapshotLedger(t, f.s)
			r := f.c.Apply(t, raw)[0]
			wantCode(t, r, tc.code)
			if !strings.Contains(r.GetMessage(), tc.field) {
				t.Errorf("message %q does not name %q", r.GetMessage(), tc.field)
			}
			after := snapshotLedger(t, f.s)
			wantUnchanged(t, before, after, r.GetTxId(), tc.recorded)
			if len(r.GetTxId()) == 0 {
				return // undecodable: there is no id to record under
			}
			rec, err := f.s.Tx(r.GetTxId())
			switch {
			case !tc.recorded && !errors.Is(err, state.ErrNotFound):
				t.Fatalf("unrecorded rejection: Tx = %v, %v; want ErrNotFound", rec, err)
			case tc.recorded && err != nil:
				t.Fatalf("recorded rejection: Tx: %v", err)
			case tc.recorded:
				if !proto.Equal(rec.GetResult(), r) || rec.GetOutputCount() != 0 || string(rec.GetSignedTx()) != string(raw) {
					t.Fatalf("record %v, want result %v", rec, r)
				}
				// Resubmitted later, the same bytes get the first outcome.
				again := f.c.Apply(t, raw)[0]
				if !again.GetDuplicate() || again.GetCode() != tc.code || again.GetLogIndex() != r.GetLogIndex() {
					t.Fatalf("resubmission: %v, want duplicate of %v", again, r)
				}
			}
		})
	}
}

// casesElsewhere are codes whose cases live in another test file, with a
// fixture of their own (e.g. offline_codes_test.go), each naming that test;
// those files register them from an init function.
var casesElsewhere = map[statepb.Code]string{}

// TestEveryCodeHasACase fails when a code is added without a test that
// triggers it (or without being listed as reserved).
func TestEveryCodeHasACase(t *testing.T) {
	covered := map[statepb.Code]bool{}
	for _, tc := range codeCases() {
		covered[tc.code] = true
	}
	for c := range casesElsewhere {
		covered[c] = true
	}
	for n := range statepb.Code_name {
		c := statepb.Code(n)
		if _, reserved := reservedCodes[c]; reserved {
			if covered[c] {
				t.Errorf("%s is listed as reserved but has a case", c.Short())
			}
			continue
		}
		if !covered[c] {
			t.Errorf("%s has no case in codeCases", c.Short())
		}
	}
}

// TestDoubleSpendInOneBlock: two transactions spending the same output in
// one block: the first applies, the second is INPUT_SPENT and recorded, and
// the money moved once.
func TestDoubleSpendInOneBlock(t *testing.T) {
	f := newFixture(t)
	pay1 := f.n.Transfer(t, "alice", ins(f.aliceA), statetest.Pay("bob", 100*yuan))
	pay2 := f.n.Transfer(t, "alice", ins(f.aliceA), statetest.Pay("shop", 100*yuan))
	res := f.c.Apply(t, pay1, pay2, pay1)
	wantCode(t, res[0], statepb.Code_CODE_OK)
	wantCode(t, res[1], statepb.Code_CODE_INPUT_SPENT)
	if !res[2].GetDuplicate() || res[2].GetCode() != statepb.Code_CODE_OK {
		t.Fatalf("third (repeat of first): %v", res[2])
	}
	wantBalance(t, f.s, "alice", 4900*yuan)
	wantBalance(t, f.s, "bob", 100*yuan)
	wantBalance(t, f.s, "shop", 0)
	if rec, err := f.s.Tx(res[1].GetTxId()); err != nil || rec.GetResult().GetCode() != statepb.Code_CODE_INPUT_SPENT {
		t.Fatalf("second spend record: %v, %v", rec, err)
	}
	statetest.Audit(t, f.s)
}

// TestRejectedLeavesBatchGoing: a rejection in the middle of a block does
// not stop the transactions after it, and later transactions see the state
// as if the rejected one never was.
func TestRejectedLeavesBatchGoing(t *testing.T) {
	f := newFixture(t)
	bad := f.n.Transfer(t, "alice", ins(f.aliceA), statetest.Pay("bob", 3000*yuan+1)) // insufficient
	good := f.n.Transfer(t, "alice", ins(f.aliceA), statetest.Pay("bob", 1500*yuan))
	res := f.c.Apply(t, []byte("junk"), bad, good)
	wantCode(t, res[0], statepb.Code_CODE_TX_MALFORMED)
	wantCode(t, res[1], statepb.Code_CODE_INSUFFICIENT_INPUTS)
	wantCode(t, res[2], statepb.Code_CODE_OK)
	wantBalance(t, f.s, "bob", 1500*yuan)
	w, _ := f.s.Wallet("alice")
	if w.GetSpentDayFen() != 1500*yuan {
		t.Fatalf("alice spent today %d, want only the applied payment", w.GetSpentDayFen())
	}
}
