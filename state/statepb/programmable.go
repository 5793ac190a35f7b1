package statepb

import (
	"math/bits"
	"slices"
)

// Protocol limits of programmable money (SPEC §5). Like those in limits.go,
// every node enforces the same numbers; docs/errors.md lists them.
const (
	// MaxCampaignPackets bounds the red packets of one campaign.
	MaxCampaignPackets = 1_000_000
	// MaxCampaignRegions bounds the region codes of one campaign.
	MaxCampaignRegions = 16
	// MaxMerchantsPerTx bounds the merchant ids one CreateCampaign or
	// AddCampaignMerchants carries (a 10,000-merchant list takes 20 of them).
	MaxMerchantsPerTx = 500
	// MaxCampaignTitleBytes bounds a campaign's title.
	MaxCampaignTitleBytes = 128
	// SeedBytes is the size of a lottery seed; CommitmentBytes of its
	// SHA-256.
	SeedBytes       = 32
	CommitmentBytes = 32
	// MaxRefundsPerPayment bounds how many refunds one payment can have.
	MaxRefundsPerPayment = 32
)

func (k *Tx_CreateCampaign) validate() error       { return k.CreateCampaign.ValidateBasic() }
func (k *Tx_AddCampaignMerchants) validate() error { return k.AddCampaignMerchants.ValidateBasic() }
func (k *Tx_EnrolCampaign) validate() error        { return k.EnrolCampaign.ValidateBasic() }
func (k *Tx_DrawCampaign) validate() error         { return k.DrawCampaign.ValidateBasic() }
func (k *Tx_RefundPayment) validate() error        { return k.RefundPayment.ValidateBasic() }
func (k *Tx_CreateSubWallet) validate() error      { return k.CreateSubWallet.ValidateBasic() }
func (k *Tx_FundSubWallet) validate() error        { return k.FundSubWallet.ValidateBasic() }
func (k *Tx_PushSubWallet) validate() error        { return k.PushSubWallet.ValidateBasic() }
func (k *Tx_RevokeSubWallet) validate() error      { return k.RevokeSubWallet.ValidateBasic() }
func (k *Tx_WithdrawSubWallet) validate() error    { return k.WithdrawSubWallet.ValidateBasic() }
func (k *Tx_ChargeSubWallet) validate() error      { return k.ChargeSubWallet.ValidateBasic() }

// ValidateBasic checks a CreateCampaign: ids, inputs, packet count and
// amount (their product must fit in uint64), the windows (each non-empty,
// enrolment closing no later than spending), regions, merchants,
// commitment, title.
func (m *CreateCampaign) ValidateBasic() error {
	const f = "create_campaign"
	if err := ValidateID(f+".campaign_id", m.GetCampaignId()); err != nil {
		return err
	}
	if err := ValidateID(f+".sponsor_wallet_id", m.GetSponsorWalletId()); err != nil {
		return err
	}
	if err := validateInputs(f+".inputs", m.GetInputs()); err != nil {
		return err
	}
	if n := m.GetPacketCount(); n == 0 || n > MaxCampaignPackets {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.packet_count: %d (want 1..%d)", f, n, MaxCampaignPackets)
	}
	if err := validateAmount(f+".packet_fen", m.GetPacketFen()); err != nil {
		return err
	}
	if _, err := m.TotalFen(); err != nil {
		return err
	}
	if err := validateWindow(f+".enrol", m.GetEnrolStartMs(), m.GetEnrolEndMs()); err != nil {
		return err
	}
	if err := validateWindow(f+".spend", m.GetSpendStartMs(), m.GetSpendEndMs()); err != nil {
		return err
	}
	if m.GetEnrolEndMs() > m.GetSpendEndMs() {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.enrol_end_ms: enrolment must close no later than the spending window (%d > %d)", f, m.GetEnrolEndMs(), m.GetSpendEndMs())
	}
	if n := len(m.GetRegionCodes()); n > MaxCampaignRegions {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.region_codes: %d (max %d)", f, n, MaxCampaignRegions)
	}
	for i, r := range m.GetRegionCodes() {
		if len(r) != 6 || !allDigits(r) {
			return Errorf(Code_CODE_INVALID_FIELD, "%s: %q (want 6 digits, e.g. 320500)", fieldIndex(f+".region_codes", i, ""), r)
		}
	}
	if err := noRepeats(f+".region_codes", m.GetRegionCodes()); err != nil {
		return err
	}
	if err := validateMerchantIDs(f+".merchant_ids", m.GetMerchantIds(), true); err != nil {
		return err
	}
	if len(m.GetCommitment()) != CommitmentBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.commitment: %d bytes (want %d: SHA-256 of the seed)", f, len(m.GetCommitment()), CommitmentBytes)
	}
	if len(m.GetTitle()) > MaxCampaignTitleBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.title: %d bytes (max %d)", f, len(m.GetTitle()), MaxCampaignTitleBytes)
	}
	return nil
}

// TotalFen is packet_count × packet_fen, or AMOUNT_OVERFLOW.
func (m *CreateCampaign) TotalFen() (uint64, error) {
	hi, lo := bits.Mul64(uint64(m.GetPacketCount()), m.GetPacketFen())
	if hi != 0 {
		return 0, Errorf(Code_CODE_AMOUNT_OVERFLOW, "create_campaign: %d packets × %d fen overflows", m.GetPacketCount(), m.GetPacketFen())
	}
	return lo, nil
}

// ValidateBasic checks an AddCampaignMerchants.
func (m *AddCampaignMerchants) ValidateBasic() error {
	if err := ValidateID("add_campaign_merchants.campaign_id", m.GetCampaignId()); err != nil {
		return err
	}
	return validateMerchantIDs("add_campaign_merchants.merchant_ids", m.GetMerchantIds(), false)
}

// ValidateBasic checks an EnrolCampaign.
func (m *EnrolCampaign) ValidateBasic() error {
	if err := ValidateID("enrol_campaign.campaign_id", m.GetCampaignId()); err != nil {
		return err
	}
	return ValidateID("enrol_campaign.wallet_id", m.GetWalletId())
}

// ValidateBasic checks a DrawCampaign.
func (m *DrawCampaign) ValidateBasic() error {
	if err := ValidateID("draw_campaign.campaign_id", m.GetCampaignId()); err != nil {
		return err
	}
	if len(m.GetSeed()) != SeedBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "draw_campaign.seed: %d bytes (want %d)", len(m.GetSeed()), SeedBytes)
	}
	return nil
}

// ValidateBasic checks a RefundPayment.
func (m *RefundPayment) ValidateBasic() error {
	if err := ValidateID("refund_payment.merchant_wallet_id", m.GetMerchantWalletId()); err != nil {
		return err
	}
	if len(m.GetPaymentTxId()) != TxIDBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "refund_payment.payment_tx_id: %d bytes (want %d)", len(m.GetPaymentTxId()), TxIDBytes)
	}
	if err := validateInputs("refund_payment.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("refund_payment.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a CreateSubWallet.
func (m *CreateSubWallet) ValidateBasic() error {
	if err := ValidateID("create_sub_wallet.parent_wallet_id", m.GetParentWalletId()); err != nil {
		return err
	}
	if err := ValidateID("create_sub_wallet.sub_wallet_id", m.GetSubWalletId()); err != nil {
		return err
	}
	if m.GetSubWalletId() == m.GetParentWalletId() {
		return Errorf(Code_CODE_INVALID_FIELD, "create_sub_wallet.sub_wallet_id: same as the parent")
	}
	return nil
}

// ValidateBasic checks a FundSubWallet.
func (m *FundSubWallet) ValidateBasic() error {
	if err := ValidateID("fund_sub_wallet.sub_wallet_id", m.GetSubWalletId()); err != nil {
		return err
	}
	if err := validateInputs("fund_sub_wallet.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("fund_sub_wallet.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a PushSubWallet: both caps set, the per-payment cap
// no higher than the daily one, an expiry.
func (m *PushSubWallet) ValidateBasic() error {
	if err := ValidateID("push_sub_wallet.sub_wallet_id", m.GetSubWalletId()); err != nil {
		return err
	}
	if err := ValidateID("push_sub_wallet.platform_wallet_id", m.GetPlatformWalletId()); err != nil {
		return err
	}
	if err := validateAmount("push_sub_wallet.max_payment_fen", m.GetMaxPaymentFen()); err != nil {
		return err
	}
	if err := validateAmount("push_sub_wallet.max_daily_fen", m.GetMaxDailyFen()); err != nil {
		return err
	}
	if m.GetMaxPaymentFen() > m.GetMaxDailyFen() {
		return Errorf(Code_CODE_INVALID_FIELD, "push_sub_wallet.max_payment_fen: above max_daily_fen")
	}
	if m.GetExpiresMs() <= 0 {
		return Errorf(Code_CODE_INVALID_FIELD, "push_sub_wallet.expires_ms: %d (want a ledger time)", m.GetExpiresMs())
	}
	return nil
}

// ValidateBasic checks a RevokeSubWallet.
func (m *RevokeSubWallet) ValidateBasic() error {
	return ValidateID("revoke_sub_wallet.sub_wallet_id", m.GetSubWalletId())
}

// ValidateBasic checks a WithdrawSubWallet.
func (m *WithdrawSubWallet) ValidateBasic() error {
	if err := ValidateID("withdraw_sub_wallet.sub_wallet_id", m.GetSubWalletId()); err != nil {
		return err
	}
	if err := validateInputs("withdraw_sub_wallet.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("withdraw_sub_wallet.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a ChargeSubWallet.
func (m *ChargeSubWallet) ValidateBasic() error {
	if err := ValidateID("charge_sub_wallet.platform_wallet_id", m.GetPlatformWalletId()); err != nil {
		return err
	}
	if err := ValidateID("charge_sub_wallet.sub_wallet_id", m.GetSubWalletId()); err != nil {
		return err
	}
	if err := validateInputs("charge_sub_wallet.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("charge_sub_wallet.amount_fen", m.GetAmountFen())
}

func validateWindow(field string, start, end int64) error {
	if start <= 0 || end <= start {
		return Errorf(Code_CODE_INVALID_FIELD, "%s_start_ms, %s_end_ms: [%d, %d) is not a window of ledger time", field, field, start, end)
	}
	return nil
}

// validateMerchantIDs checks a merchant list: bounded, valid ids, no
// repeats (found by sorting a copy: bounded cost, no map).
func validateMerchantIDs(field string, ids []string, mayBeEmpty bool) error {
	if len(ids) == 0 && !mayBeEmpty {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: none", field)
	}
	if len(ids) > MaxMerchantsPerTx {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: %d (max %d per transaction; add more with add_campaign_merchants)", field, len(ids), MaxMerchantsPerTx)
	}
	for i, id := range ids {
		if err := ValidateID(fieldIndex(field, i, ""), id); err != nil {
			return err
		}
	}
	return noRepeats(field, ids)
}

func noRepeats(field string, xs []string) error {
	s := slices.Clone(xs)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return Errorf(Code_CODE_INVALID_FIELD, "%s: %q twice", field, s[i])
		}
	}
	return nil
}
