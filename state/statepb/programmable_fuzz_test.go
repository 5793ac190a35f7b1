package statepb_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// FuzzProgrammableTx decodes arbitrary bytes as a transaction body and as
// each stored record of programmable money (SPEC §5), and runs the
// stateless checks. Plain `go test` runs the seed corpus in
// testdata/fuzz/FuzzProgrammableTx (one valid body of every programmable
// kind, and broken variants); fuzz with
//
//	go test ./state/statepb -run '^$' -fuzz FuzzProgrammableTx -fuzztime 3m
//
// Properties: nothing panics; a rejection is a *statepb.Error with a code
// of the stateless range; a body that passes has the properties the
// ledger relies on (checked below) and survives a deterministic
// re-encoding unchanged.
func FuzzProgrammableTx(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, m := range []proto.Message{&statepb.CampaignRecord{}, &statepb.EnrolmentRecord{}, &statepb.WinnerRecord{},
			&statepb.SubWalletRecord{}, &statepb.PaymentRecord{}, &statepb.OutputRecord{}} {
			_ = proto.Unmarshal(raw, m)
		}
		var body statepb.Tx
		if proto.Unmarshal(raw, &body) != nil {
			return
		}
		err := body.ValidateBasic()
		if err != nil {
			var e *statepb.Error
			if !errors.As(err, &e) || e.Code < statepb.Code_CODE_TX_TOO_LARGE || e.Code >= statepb.Code_CODE_SIGNATURE_COUNT || e.Message == "" {
				t.Fatalf("rejection %v is not a stateless *statepb.Error", err)
			}
			return
		}
		checkValid(t, &body)
		enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(&body)
		if err != nil {
			t.Fatal(err)
		}
		var again statepb.Tx
		if err := proto.Unmarshal(enc, &again); err != nil || !proto.Equal(&body, &again) {
			t.Fatalf("re-encoding changed the body: %v", err)
		}
		enc2, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&again)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("deterministic encoding is not stable")
		}
	})
}

// checkValid checks what the ledger assumes of a body that passed
// ValidateBasic.
func checkValid(t *testing.T, body *statepb.Tx) {
	switch k := body.GetKind().(type) {
	case *statepb.Tx_CreateCampaign:
		c := k.CreateCampaign
		total, err := c.TotalFen()
		if err != nil || total == 0 || total/uint64(c.GetPacketCount()) != c.GetPacketFen() {
			t.Fatalf("total of a valid campaign: %d, %v", total, err)
		}
		if c.GetPacketCount() > statepb.MaxCampaignPackets || len(c.GetCommitment()) != 32 ||
			c.GetEnrolStartMs() >= c.GetEnrolEndMs() || c.GetSpendStartMs() >= c.GetSpendEndMs() || c.GetEnrolEndMs() > c.GetSpendEndMs() ||
			len(c.GetMerchantIds()) > statepb.MaxMerchantsPerTx || len(c.GetRegionCodes()) > statepb.MaxCampaignRegions || len(c.GetInputs()) == 0 {
			t.Fatalf("valid campaign breaks a bound: %v", c)
		}
	case *statepb.Tx_AddCampaignMerchants:
		if n := len(k.AddCampaignMerchants.GetMerchantIds()); n == 0 || n > statepb.MaxMerchantsPerTx {
			t.Fatalf("%d merchants", n)
		}
	case *statepb.Tx_DrawCampaign:
		if len(k.DrawCampaign.GetSeed()) != statepb.SeedBytes {
			t.Fatal("seed size")
		}
	case *statepb.Tx_RefundPayment:
		r := k.RefundPayment
		if len(r.GetPaymentTxId()) != statepb.TxIDBytes || r.GetAmountFen() == 0 || len(r.GetInputs()) == 0 {
			t.Fatalf("refund %v", r)
		}
	case *statepb.Tx_PushSubWallet:
		p := k.PushSubWallet
		if p.GetMaxPaymentFen() == 0 || p.GetMaxPaymentFen() > p.GetMaxDailyFen() || p.GetExpiresMs() <= 0 {
			t.Fatalf("push %v", p)
		}
	case *statepb.Tx_CreateSubWallet:
		if k.CreateSubWallet.GetSubWalletId() == k.CreateSubWallet.GetParentWalletId() {
			t.Fatal("sub-wallet is its own parent")
		}
	case *statepb.Tx_FundSubWallet, *statepb.Tx_WithdrawSubWallet, *statepb.Tx_ChargeSubWallet, *statepb.Tx_EnrolCampaign, *statepb.Tx_RevokeSubWallet:
	}
}
