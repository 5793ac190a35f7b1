package statepb

import (
	"bytes"
	"math/bits"
	"reflect"
	"strconv"

	"filippo.io/edwards25519"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Checks in this file need no ledger state, so every node, the client SDK and
// fuzzers run the same ones. Each returns an *Error whose message names the
// field. The order of checks inside each function is the code precedence
// documented in docs/errors.md.

// ValidateBasic checks the envelope: signature count and sizes. Whether the
// signatures verify, and whose keys they must be, is decided by the ledger.
func (m *SignedTx) ValidateBasic() error {
	if len(m.GetBody()) == 0 {
		return Errorf(Code_CODE_TX_MALFORMED, "body: empty")
	}
	n := len(m.GetSignatures())
	if n == 0 || n > MaxSignatures {
		return Errorf(Code_CODE_SIGNATURE_COUNT, "signatures: %d (want 1..%d)", n, MaxSignatures)
	}
	for i, s := range m.GetSignatures() {
		if len(s.GetPublicKey()) != PublicKeyBytes {
			return Errorf(Code_CODE_SIGNATURE_MALFORMED, "signatures[%d].public_key: %d bytes (want %d)", i, len(s.GetPublicKey()), PublicKeyBytes)
		}
		if len(s.GetSignature()) != SignatureBytes {
			return Errorf(Code_CODE_SIGNATURE_MALFORMED, "signatures[%d].signature: %d bytes (want %d)", i, len(s.GetSignature()), SignatureBytes)
		}
	}
	return nil
}

// ValidateBasic checks the body's version, kind and every field of the kind.
func (m *Tx) ValidateBasic() error {
	if m.GetVersion() != TxVersion {
		return Errorf(Code_CODE_VERSION_UNSUPPORTED, "version: %d (this node knows %d)", m.GetVersion(), TxVersion)
	}
	if m.GetKind() == nil {
		return Errorf(Code_CODE_KIND_MISSING, "kind: none set")
	}
	if len(m.GetMemo()) > MaxMemoBytes {
		return Errorf(Code_CODE_MEMO_TOO_LONG, "memo: %d bytes (max %d)", len(m.GetMemo()), MaxMemoBytes)
	}
	v, ok := m.GetKind().(interface{ validate() error })
	if !ok {
		return Errorf(Code_CODE_KIND_MISSING, "kind: %s not supported", Text(reflectName(m.GetKind())))
	}
	return v.validate()
}

func (k *Tx_Issue) validate() error            { return k.Issue.ValidateBasic() }
func (k *Tx_Return) validate() error           { return k.Return.ValidateBasic() }
func (k *Tx_Exchange) validate() error         { return k.Exchange.ValidateBasic() }
func (k *Tx_Redeem) validate() error           { return k.Redeem.ValidateBasic() }
func (k *Tx_Transfer) validate() error         { return k.Transfer.ValidateBasic() }
func (k *Tx_RegisterWallet) validate() error   { return k.RegisterWallet.ValidateBasic() }
func (k *Tx_UpdateWallet) validate() error     { return k.UpdateWallet.ValidateBasic() }
func (k *Tx_RotateWalletKey) validate() error  { return k.RotateWalletKey.ValidateBasic() }
func (k *Tx_FreezeWallet) validate() error     { return k.FreezeWallet.ValidateBasic() }
func (k *Tx_UnfreezeWallet) validate() error   { return k.UnfreezeWallet.ValidateBasic() }
func (k *Tx_CloseWallet) validate() error      { return k.CloseWallet.ValidateBasic() }
func (k *Tx_ChangeMembership) validate() error { return k.ChangeMembership.ValidateBasic() }

// ValidateBasic checks an Issue.
func (m *Issue) ValidateBasic() error {
	if err := ValidateID("issue.bank_id", m.GetBankId()); err != nil {
		return err
	}
	return validateAmount("issue.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a Return.
func (m *Return) ValidateBasic() error {
	if err := ValidateID("return.bank_id", m.GetBankId()); err != nil {
		return err
	}
	if err := validateInputs("return.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("return.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks an Exchange.
func (m *Exchange) ValidateBasic() error {
	if err := ValidateID("exchange.bank_id", m.GetBankId()); err != nil {
		return err
	}
	if err := validateInputs("exchange.inputs", m.GetInputs()); err != nil {
		return err
	}
	if err := ValidateID("exchange.to_wallet_id", m.GetToWalletId()); err != nil {
		return err
	}
	return validateAmount("exchange.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a Redeem.
func (m *Redeem) ValidateBasic() error {
	if err := ValidateID("redeem.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	if err := validateInputs("redeem.inputs", m.GetInputs()); err != nil {
		return err
	}
	return validateAmount("redeem.amount_fen", m.GetAmountFen())
}

// ValidateBasic checks a Transfer, including that the payees' total does not
// overflow.
func (m *Transfer) ValidateBasic() error {
	if err := ValidateID("transfer.from_wallet_id", m.GetFromWalletId()); err != nil {
		return err
	}
	if err := validateInputs("transfer.inputs", m.GetInputs()); err != nil {
		return err
	}
	n := len(m.GetPayees())
	if n == 0 {
		return Errorf(Code_CODE_NO_OUTPUTS, "transfer.payees: none")
	}
	if n > MaxPayees {
		return Errorf(Code_CODE_TOO_MANY_OUTPUTS, "transfer.payees: %d (max %d)", n, MaxPayees)
	}
	var total uint64
	for i, p := range m.GetPayees() {
		if err := ValidateID(fieldIndex("transfer.payees", i, "wallet_id"), p.GetWalletId()); err != nil {
			return err
		}
		if err := validateAmount(fieldIndex("transfer.payees", i, "amount_fen"), p.GetAmountFen()); err != nil {
			return err
		}
		var carry uint64
		total, carry = bits.Add64(total, p.GetAmountFen(), 0)
		if carry != 0 {
			return Errorf(Code_CODE_AMOUNT_OVERFLOW, "transfer.payees: total overflows uint64 at payees[%d]", i)
		}
	}
	return nil
}

// ValidateBasic checks a RegisterWallet.
func (m *RegisterWallet) ValidateBasic() error {
	if err := ValidateID("register_wallet.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	if err := ValidateID("register_wallet.bank_id", m.GetBankId()); err != nil {
		return err
	}
	if err := validateKey("register_wallet.public_key", m.GetPublicKey()); err != nil {
		return err
	}
	switch m.GetKind() {
	case WalletKind_WALLET_KIND_PERSONAL, WalletKind_WALLET_KIND_MERCHANT, WalletKind_WALLET_KIND_GOVERNMENT, WalletKind_WALLET_KIND_SUB_WALLET:
	default:
		return Errorf(Code_CODE_INVALID_FIELD, "register_wallet.kind: %s cannot be registered", m.GetKind())
	}
	if (m.GetKind() == WalletKind_WALLET_KIND_SUB_WALLET) != (m.GetParentWalletId() != "") {
		return Errorf(Code_CODE_INVALID_FIELD, "register_wallet.parent_wallet_id: required for sub-wallets and only for them")
	}
	if m.GetParentWalletId() != "" {
		if err := ValidateID("register_wallet.parent_wallet_id", m.GetParentWalletId()); err != nil {
			return err
		}
	}
	return validateProfile("register_wallet", m.GetTier(), m.GetRegionCode(), m.GetCategory())
}

// ValidateBasic checks an UpdateWallet.
func (m *UpdateWallet) ValidateBasic() error {
	if err := ValidateID("update_wallet.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	return validateProfile("update_wallet", m.GetTier(), m.GetRegionCode(), m.GetCategory())
}

// ValidateBasic checks a RotateWalletKey.
func (m *RotateWalletKey) ValidateBasic() error {
	if err := ValidateID("rotate_wallet_key.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	return validateKey("rotate_wallet_key.new_public_key", m.GetNewPublicKey())
}

// ValidateBasic checks a FreezeWallet.
func (m *FreezeWallet) ValidateBasic() error {
	if err := ValidateID("freeze_wallet.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	return validateReason("freeze_wallet.reason", m.GetReason())
}

// ValidateBasic checks an UnfreezeWallet.
func (m *UnfreezeWallet) ValidateBasic() error {
	if err := ValidateID("unfreeze_wallet.wallet_id", m.GetWalletId()); err != nil {
		return err
	}
	return validateReason("unfreeze_wallet.reason", m.GetReason())
}

// ValidateBasic checks a CloseWallet.
func (m *CloseWallet) ValidateBasic() error {
	return ValidateID("close_wallet.wallet_id", m.GetWalletId())
}

// ValidateBasic checks a ChangeMembership.
func (m *ChangeMembership) ValidateBasic() error {
	switch m.GetAction() {
	case MembershipAction_MEMBERSHIP_ACTION_ADD:
		return m.GetNode().validate("change_membership.node")
	case MembershipAction_MEMBERSHIP_ACTION_REMOVE:
		return ValidateID("change_membership.node.name", m.GetNode().GetName())
	default:
		return Errorf(Code_CODE_INVALID_FIELD, "change_membership.action: %s", m.GetAction())
	}
}

// ValidateBasic checks a Node.
func (m *Node) ValidateBasic() error { return m.validate("node") }

func (m *Node) validate(field string) error {
	if m == nil {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: missing", field)
	}
	if err := ValidateID(field+".name", m.GetName()); err != nil {
		return err
	}
	if m.GetRole() != NodeRole_NODE_ROLE_VOTER && m.GetRole() != NodeRole_NODE_ROLE_REGULATOR {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.role: %s", field, m.GetRole())
	}
	if err := validateKey(field+".public_key", m.GetPublicKey()); err != nil {
		return err
	}
	if n := len(m.GetAddrs()); n == 0 || n > MaxNodeAddrs {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.addrs: %d (want 1..%d)", field, n, MaxNodeAddrs)
	}
	for i, a := range m.GetAddrs() {
		if len(a) == 0 || len(a) > MaxAddrBytes || a[0] != '/' {
			return Errorf(Code_CODE_INVALID_FIELD, "%s: not a multiaddr of 1..%d bytes", fieldIndex(field+".addrs", i, ""), MaxAddrBytes)
		}
	}
	if k := m.GetOperatorKey(); len(k) > 0 {
		if m.GetRole() != NodeRole_NODE_ROLE_REGULATOR {
			return Errorf(Code_CODE_INVALID_FIELD, "%s.operator_key: only a regulator has one (a bank signs in with its bank key)", field)
		}
		if err := validateKey(field+".operator_key", k); err != nil {
			return err
		}
	}
	return ValidateID(field+".operator", m.GetOperator())
}

// ValidateID checks a wallet, bank or node identifier: 1..MaxIDBytes of
// [a-z0-9._-], starting with a letter or digit. Lower case only, so that two
// ids can never differ by case alone.
func ValidateID(field, id string) error {
	if len(id) == 0 || len(id) > MaxIDBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: %d bytes (want 1..%d)", field, len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return Errorf(Code_CODE_INVALID_FIELD, "%s: %q has %q at %d (allowed: a-z 0-9 . _ -, first a-z 0-9)", field, id, c, i)
		}
	}
	return nil
}

func validateAmount(field string, fen uint64) error {
	if fen == 0 {
		return Errorf(Code_CODE_AMOUNT_ZERO, "%s: zero", field)
	}
	return nil
}

func validateKey(field string, key []byte) error {
	if len(key) != PublicKeyBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: %d bytes (want %d)", field, len(key), PublicKeyBytes)
	}
	if !UsableKey(key) {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: not a usable Ed25519 public key (not a curve point, or one of small order, for which anyone can forge signatures)", field)
	}
	return nil
}

// UsableKey reports whether key is an Ed25519 public key that only the
// holder of its private key can sign for: a point on the curve, not of
// small order. Signatures are valid by ZIP-215's cofactored rule
// (state/sigverify.go), under which a small-order key verifies forged
// signatures on any message, so the ledger never accepts one as a
// wallet's, a device's or a node's key.
func UsableKey(key []byte) bool {
	p, err := new(edwards25519.Point).SetBytes(key)
	if err != nil {
		return false
	}
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0
}

func validateReason(field, reason string) error {
	if len(reason) > MaxReasonBytes {
		return Errorf(Code_CODE_INVALID_FIELD, "%s: %d bytes (max %d)", field, len(reason), MaxReasonBytes)
	}
	return nil
}

// validateInputs checks count, outpoint shape and duplicates. Duplicates are
// found by sorting copies of the keys: no map, so the cost is bounded and the
// result does not depend on iteration order.
func validateInputs(field string, in []*Outpoint) error {
	if len(in) == 0 {
		return Errorf(Code_CODE_NO_INPUTS, "%s: none", field)
	}
	if len(in) > MaxInputs {
		return Errorf(Code_CODE_TOO_MANY_INPUTS, "%s: %d (max %d)", field, len(in), MaxInputs)
	}
	for i, o := range in {
		if len(o.GetTxId()) != TxIDBytes {
			return Errorf(Code_CODE_INVALID_FIELD, "%s: %d bytes (want %d)", fieldIndex(field, i, "tx_id"), len(o.GetTxId()), TxIDBytes)
		}
	}
	for i := 1; i < len(in); i++ {
		for j := 0; j < i; j++ {
			if in[i].GetIndex() == in[j].GetIndex() && bytes.Equal(in[i].GetTxId(), in[j].GetTxId()) {
				return Errorf(Code_CODE_DUPLICATE_INPUT, "%s: [%d] repeats [%d]", field, i, j)
			}
		}
	}
	return nil
}

func validateProfile(field string, tier uint32, region, category string) error {
	if tier < MinTier || tier > MaxTier {
		return Errorf(Code_CODE_INVALID_FIELD, "%s.tier: %d (want %d..%d)", field, tier, MinTier, MaxTier)
	}
	if region != "" {
		if len(region) != 6 || !allDigits(region) {
			return Errorf(Code_CODE_INVALID_FIELD, "%s.region_code: %q (want 6 digits, e.g. 320500)", field, region)
		}
	}
	if category != "" {
		if err := ValidateID(field+".category", category); err != nil {
			return err
		}
		if len(category) > MaxCategoryBytes {
			return Errorf(Code_CODE_INVALID_FIELD, "%s.category: %d bytes (max %d)", field, len(category), MaxCategoryBytes)
		}
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func fieldIndex(field string, i int, sub string) string {
	s := field + "[" + strconv.Itoa(i) + "]"
	if sub != "" {
		s += "." + sub
	}
	return s
}

// HasUnknownFields reports whether m or any message inside it carries fields
// this code does not know. Such input is refused: a node must never accept a
// transaction while silently ignoring part of what was signed.
func HasUnknownFields(m proto.Message) bool {
	return hasUnknown(m.ProtoReflect())
}

func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = hasUnknown(l.Get(i).Message())
			}
		case fd.IsMap():
			// The schema has no maps; refuse rather than walk one unchecked.
			found = true
		case fd.Message() != nil:
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// reflectName is a Go value's type name, for a message only.
func reflectName(v any) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}
