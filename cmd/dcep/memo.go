package main

import (
	"crypto/ed25519"

	"github.com/dcep/dcep/client"
)

// sealedMemo is what the CLI shows for a memo none of the keystore's keys
// can open: the memo exists, but only its parties read it.
const sealedMemo = "(sealed)"

// memo opens a transaction's sealed memo with the keystore's keys (a
// payer's or payee's wallet key, a bank's or the central bank's key): it
// is shown only to a party to it; anyone else sees "(sealed)". Ledger-
// written text (a campaign title) is public and shown as it is.
func (a *app) memo(sealed []byte, public string) string {
	if len(sealed) == 0 {
		return public
	}
	for _, k := range a.memoKeys() {
		if text, ok := client.OpenMemo(sealed, k); ok {
			return text
		}
	}
	return sealedMemo
}

// memoKeys are the keystore's private keys (none without a keystore: a
// caller with no keys is no party to any memo).
func (a *app) memoKeys() []ed25519.PrivateKey {
	if a.memoKeyCache != nil {
		return *a.memoKeyCache
	}
	var keys []ed25519.PrivateKey
	if ks, err := a.keys(); err == nil {
		if all, err := ks.List(); err == nil {
			for _, k := range all {
				keys = append(keys, k.Private)
			}
		}
	}
	a.memoKeyCache = &keys
	return keys
}
