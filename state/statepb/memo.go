package statepb

// Sealed memo framing (client/DESIGN.md, "Memos", has the construction).
// The ledger checks only this framing and the size: it cannot open a memo,
// and whether one opens is the parties' business.
//
//	version (1) | ephemeral X25519 public key (32) | nonce (24) |
//	recipients n (1) | n × wrapped content key (32 + 16 tag) |
//	XChaCha20-Poly1305 ciphertext of the memo (len + 16 tag)
const (
	// SealedMemoVersion is the only framing version this code accepts.
	SealedMemoVersion = 1
	// MaxMemoRecipients: the payer and up to MaxPayees payees.
	MaxMemoRecipients = 1 + MaxPayees
	// SealedMemoHeaderBytes is the fixed part before the recipients.
	SealedMemoHeaderBytes = 1 + 32 + 24 + 1
	// SealedMemoStanzaBytes is one recipient's wrapped content key.
	SealedMemoStanzaBytes = 32 + 16
	// SealedMemoTagBytes is the AEAD tag of the ciphertext.
	SealedMemoTagBytes = 16
	// MaxSealedMemoBytes bounds sealed_memo: a MaxMemoBytes memo sealed
	// to MaxMemoRecipients parties (1,146 bytes).
	MaxSealedMemoBytes = SealedMemoHeaderBytes + MaxMemoRecipients*SealedMemoStanzaBytes + MaxMemoBytes + SealedMemoTagBytes
)

// validateSealedMemo checks the framing of a sealed memo (empty: no memo).
func validateSealedMemo(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) > MaxSealedMemoBytes {
		return Errorf(Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: %d bytes (max %d)", len(b), MaxSealedMemoBytes)
	}
	if len(b) < SealedMemoHeaderBytes {
		return Errorf(Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: %d bytes, shorter than its %d-byte header", len(b), SealedMemoHeaderBytes)
	}
	if b[0] != SealedMemoVersion {
		return Errorf(Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: version %d (this node knows %d)", b[0], SealedMemoVersion)
	}
	n := int(b[SealedMemoHeaderBytes-1])
	if n < 1 || n > MaxMemoRecipients {
		return Errorf(Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: %d recipients (want 1..%d)", n, MaxMemoRecipients)
	}
	lo := SealedMemoHeaderBytes + n*SealedMemoStanzaBytes + SealedMemoTagBytes + 1
	if hi := lo - 1 + MaxMemoBytes; len(b) < lo || len(b) > hi {
		return Errorf(Code_CODE_SEALED_MEMO_MALFORMED, "sealed_memo: %d bytes, want %d..%d for %d recipients", len(b), lo, hi, n)
	}
	return nil
}
