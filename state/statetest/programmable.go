package statetest

import (
	"crypto/sha256"

	"github.com/dcep/dcep/state/statepb"
)

// Body builders of programmable money (SPEC §5). Sign them with
// Net.Sign: campaigns with the sponsor's wallet key, enrolments with the
// citizen's, sub-wallet actions with the parent's, charges with the
// platform's, refunds with the merchant's.

// Seed is a lottery seed derived from a name; Commitment is its SHA-256.
func Seed(name string) []byte {
	s := sha256.Sum256([]byte("statetest/seed/" + name))
	return s[:]
}

// Commitment is SHA-256(seed).
func Commitment(seed []byte) []byte {
	c := sha256.Sum256(seed)
	return c[:]
}

// Campaign describes a campaign for CreateCampaignBody.
type Campaign struct {
	ID, Sponsor, Title   string
	Inputs               []*statepb.Outpoint
	Packets              uint32
	PacketFen            uint64
	EnrolStart, EnrolEnd int64
	SpendStart, SpendEnd int64
	Regions, Merchants   []string
	Seed                 []byte // the commitment is its SHA-256
	CommitmentOverride   []byte
}

// CreateCampaignBody is a CreateCampaign.
func CreateCampaignBody(c Campaign) *statepb.Tx {
	commit := c.CommitmentOverride
	if commit == nil {
		commit = Commitment(c.Seed)
	}
	return &statepb.Tx{Kind: &statepb.Tx_CreateCampaign{CreateCampaign: &statepb.CreateCampaign{
		CampaignId: c.ID, SponsorWalletId: c.Sponsor, Inputs: c.Inputs, PacketCount: c.Packets, PacketFen: c.PacketFen,
		EnrolStartMs: c.EnrolStart, EnrolEndMs: c.EnrolEnd, SpendStartMs: c.SpendStart, SpendEndMs: c.SpendEnd,
		RegionCodes: c.Regions, MerchantIds: c.Merchants, Commitment: commit, Title: c.Title,
	}}}
}

// AddMerchantsBody is an AddCampaignMerchants.
func AddMerchantsBody(campaign string, merchants ...string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_AddCampaignMerchants{AddCampaignMerchants: &statepb.AddCampaignMerchants{CampaignId: campaign, MerchantIds: merchants}}}
}

// EnrolBody is an EnrolCampaign.
func EnrolBody(campaign, wallet string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_EnrolCampaign{EnrolCampaign: &statepb.EnrolCampaign{CampaignId: campaign, WalletId: wallet}}}
}

// DrawBody is a DrawCampaign.
func DrawBody(campaign string, seed []byte) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_DrawCampaign{DrawCampaign: &statepb.DrawCampaign{CampaignId: campaign, Seed: seed}}}
}

// RefundBody is a RefundPayment.
func RefundBody(merchant string, payment []byte, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_RefundPayment{RefundPayment: &statepb.RefundPayment{MerchantWalletId: merchant, PaymentTxId: payment, Inputs: inputs, AmountFen: fen}}}
}

// CreateSubWalletBody is a CreateSubWallet.
func CreateSubWalletBody(parent, sub string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_CreateSubWallet{CreateSubWallet: &statepb.CreateSubWallet{ParentWalletId: parent, SubWalletId: sub}}}
}

// FundSubWalletBody is a FundSubWallet.
func FundSubWalletBody(sub string, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_FundSubWallet{FundSubWallet: &statepb.FundSubWallet{SubWalletId: sub, Inputs: inputs, AmountFen: fen}}}
}

// PushSubWalletBody is a PushSubWallet.
func PushSubWalletBody(sub, platform string, perPayment, daily uint64, expiresMs int64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_PushSubWallet{PushSubWallet: &statepb.PushSubWallet{
		SubWalletId: sub, PlatformWalletId: platform, MaxPaymentFen: perPayment, MaxDailyFen: daily, ExpiresMs: expiresMs,
	}}}
}

// RevokeSubWalletBody is a RevokeSubWallet.
func RevokeSubWalletBody(sub string) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_RevokeSubWallet{RevokeSubWallet: &statepb.RevokeSubWallet{SubWalletId: sub}}}
}

// WithdrawSubWalletBody is a WithdrawSubWallet.
func WithdrawSubWalletBody(sub string, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_WithdrawSubWallet{WithdrawSubWallet: &statepb.WithdrawSubWallet{SubWalletId: sub, Inputs: inputs, AmountFen: fen}}}
}

// ChargeBody is a ChargeSubWallet.
func ChargeBody(platform, sub string, inputs []*statepb.Outpoint, fen uint64) *statepb.Tx {
	return &statepb.Tx{Kind: &statepb.Tx_ChargeSubWallet{ChargeSubWallet: &statepb.ChargeSubWallet{PlatformWalletId: platform, SubWalletId: sub, Inputs: inputs, AmountFen: fen}}}
}
