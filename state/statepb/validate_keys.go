package statepb

func (k *Tx_RotateKey) validate() error       { return k.RotateKey.ValidateBasic() }
func (k *Tx_ActivateVersion) validate() error { return k.ActivateVersion.ValidateBasic() }

// ValidateBasic checks a RotateKey: a known holder, an id exactly when the
// holder has one, and a valid new key.
func (m *RotateKey) ValidateBasic() error {
	switch m.GetHolder() {
	case KeyHolder_KEY_HOLDER_CENTRAL_BANK:
		if m.GetId() != "" {
			return Errorf(Code_CODE_INVALID_FIELD, "rotate_key.id: must be empty for the central bank")
		}
	case KeyHolder_KEY_HOLDER_BANK, KeyHolder_KEY_HOLDER_NODE:
		if err := ValidateID("rotate_key.id", m.GetId()); err != nil {
			return err
		}
	default:
		return Errorf(Code_CODE_INVALID_FIELD, "rotate_key.holder: %s", m.GetHolder())
	}
	return validateKey("rotate_key.new_public_key", m.GetNewPublicKey())
}

// ValidateBasic checks an ActivateVersion: a version above 1 and an index.
func (m *ActivateVersion) ValidateBasic() error {
	if m.GetVersion() < 2 {
		return Errorf(Code_CODE_INVALID_FIELD, "activate_version.version: %d (version 1 is genesis's)", m.GetVersion())
	}
	if m.GetActivateAtIndex() == 0 {
		return Errorf(Code_CODE_INVALID_FIELD, "activate_version.activate_at_index: 0")
	}
	return nil
}
