package statepb

import "bytes"

// Context-free checks of the dual-offline kinds (SPEC §4). Decoding and
// verifying the certificates and payments they carry is state/offline's
// job (state runs it on its verification workers); here only the envelope
// of each field is checked.

// Offline limits (protocol rules; docs/errors.md).
const (
	// MaxDepositItems bounds the payments of one deposit.
	MaxDepositItems = 64
	// MaxReceiptedAtClose bounds the receipted payments a close lists.
	MaxReceiptedAtClose = 256
	// offlineIDBytes is the size of purse ids and payment hashes.
	offlineIDBytes = 32
)

func (k *Tx_OpenPurse) validate() error      { return k.OpenPurse.ValidateBasic() }
func (k *Tx_DepositOffline) validate() error { return k.DepositOffline.ValidateBasic() }
func (k *Tx_ClosePurse) validate() error     { return k.ClosePurse.ValidateBasic() }
func (k *Tx_ExpirePurse) validate() error    { return k.ExpirePurse.ValidateBasic() }
func (k *Tx_PayOfflineClaims) validate() error {
	return k.PayOfflineClaims.ValidateBasic()
}
func (k *Tx_CollectOfflineDebt) validate() error {
	return k.CollectOfflineDebt.ValidateBasic()
}

// ValidateBasic checks an OpenPurse.
func (m *OpenPurse) ValidateBasic() error {
	if err := ValidateID("open_purse.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	if err := validateInputs("open_purse.inputs", m.GetInputs()); err != nil {
		return err
	}
	c := m.GetCert()
	if len(c.GetBody()) == 0 || len(c.GetSignature()) != SignatureBytes {
		return Errorf(Code_CODE_CERT_INVALID, "open_purse.cert: body of %d bytes, signature of %d (want a body and %d)", len(c.GetBody()), len(c.GetSignature()), SignatureBytes)
	}
	return nil
}

// ValidateBasic checks a DepositOffline: the device key, the wallet, 1..64
// items each with a payment and a request, and no payment twice.
func (m *DepositOffline) ValidateBasic() error {
	if err := validateKey("deposit_offline.device_public_key", m.GetDevicePublicKey()); err != nil {
		return err
	}
	if err := ValidateID("deposit_offline.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	items := m.GetItems()
	if len(items) == 0 {
		return Errorf(Code_CODE_NO_INPUTS, "deposit_offline.items: none")
	}
	if len(items) > MaxDepositItems {
		return Errorf(Code_CODE_TOO_MANY_INPUTS, "deposit_offline.items: %d (max %d)", len(items), MaxDepositItems)
	}
	for i, it := range items {
		f := fieldIndex("deposit_offline.items", i, "")
		if len(it.GetPayment().GetBody()) == 0 || len(it.GetPayment().GetSignature()) != SignatureBytes {
			return Errorf(Code_CODE_PAYMENT_MALFORMED, "%s.payment: body of %d bytes, signature of %d", f, len(it.GetPayment().GetBody()), len(it.GetPayment().GetSignature()))
		}
		if it.GetRequest() == nil {
			return Errorf(Code_CODE_INVALID_FIELD, "%s.request: missing", f)
		}
		for j := 0; j < i; j++ {
			if bytes.Equal(items[j].GetPayment().GetBody(), it.GetPayment().GetBody()) {
				return Errorf(Code_CODE_PAYMENT_REPLAYED, "%s: repeats the payment of items[%d]", f, j)
			}
		}
	}
	return nil
}

// ValidateBasic checks a ClosePurse: the purse id, and the receipted
// payments (at most 256, counters strictly increasing within
// 1..final_counter, amounts above zero, 32-byte hashes).
func (m *ClosePurse) ValidateBasic() error {
	if len(m.GetPurseId()) != offlineIDBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "close_purse.purse_id: %d bytes (want %d)", len(m.GetPurseId()), offlineIDBytes)
	}
	rs := m.GetReceipted()
	if len(rs) > MaxReceiptedAtClose {
		return Errorf(Code_CODE_PURSE_CLOSE_INVALID, "close_purse.receipted: %d (max %d)", len(rs), MaxReceiptedAtClose)
	}
	var last uint32
	for i, r := range rs {
		f := fieldIndex("close_purse.receipted", i, "")
		switch {
		case r.GetCounter() <= last || r.GetCounter() > m.GetFinalCounter():
			return Errorf(Code_CODE_PURSE_CLOSE_INVALID, "%s.counter: %d (want increasing, within 1..final_counter %d)", f, r.GetCounter(), m.GetFinalCounter())
		case r.GetAmountFen() == 0:
			return Errorf(Code_CODE_AMOUNT_ZERO, "%s.amount_fen: zero", f)
		case len(r.GetPaymentHash()) != offlineIDBytes:
			return Errorf(Code_CODE_INVALID_FIELD, "%s.payment_hash: %d bytes (want %d)", f, len(r.GetPaymentHash()), offlineIDBytes)
		}
		last = r.GetCounter()
	}
	return nil
}

// ValidateBasic refuses every ExpirePurse: only the ledger writes them.
func (m *ExpirePurse) ValidateBasic() error {
	return Errorf(Code_CODE_INVALID_FIELD, "expire_purse: written by the ledger when a purse expires; it cannot be submitted")
}

// ValidateBasic refuses every PayOfflineClaims: only the ledger writes them.
func (m *PayOfflineClaims) ValidateBasic() error {
	return Errorf(Code_CODE_INVALID_FIELD, "pay_offline_claims: written by the ledger when it pays a bank's offline claims; it cannot be submitted")
}

// ValidateBasic refuses every CollectOfflineDebt: only the ledger writes them.
func (m *CollectOfflineDebt) ValidateBasic() error {
	return Errorf(Code_CODE_INVALID_FIELD, "collect_offline_debt: written by the ledger when money repays an offline debt; it cannot be submitted")
}
