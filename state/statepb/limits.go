// Package statepb holds the ledger's wire and storage types (generated from
// the .proto files beside this file) and their context-free checks
// (ValidateBasic). Regenerate with `go tool -modfile=tools.mod buf generate`
// from the repository root.
package statepb

// Limits on everything a transaction carries. They are protocol rules: every
// node enforces the same numbers, so changing one is a network upgrade.
// docs/errors.md lists them with the code each one yields.
const (
	// TxVersion is the only body version this code accepts.
	TxVersion = 1
	// MaxTxBytes bounds a serialized SignedTx; an offline deposit of many
	// payments is the largest legitimate transaction.
	MaxTxBytes = 64 << 10
	// MaxInputs bounds the outputs one transaction spends.
	MaxInputs = 32
	// MaxPayees bounds the payees of one transfer.
	MaxPayees = 16
	// MaxSignatures bounds the signatures on one transaction.
	MaxSignatures = 4
	// MaxMemoBytes bounds a transaction memo (UTF-8 bytes).
	MaxMemoBytes = 256
	// MaxReasonBytes bounds a freeze or unfreeze reason.
	MaxReasonBytes = 256
	// MaxIDBytes bounds wallet, bank and node identifiers.
	MaxIDBytes = 64
	// MaxCategoryBytes bounds a merchant category.
	MaxCategoryBytes = 32
	// MaxChainIDBytes bounds the chain id.
	MaxChainIDBytes = 64
	// MaxNodeAddrs bounds the multiaddrs of one node.
	MaxNodeAddrs = 8
	// MaxAddrBytes bounds one multiaddr.
	MaxAddrBytes = 256
	// MaxNameBytes bounds display names of banks and nodes.
	MaxNameBytes = 128
	// PublicKeyBytes is the size of an Ed25519 public key.
	PublicKeyBytes = 32
	// SignatureBytes is the size of an Ed25519 signature.
	SignatureBytes = 64
	// TxIDBytes is the size of a transaction id (SHA-256).
	TxIDBytes = 32
	// MinTier and MaxTier bound KYC tiers (1 = in person, 4 = phone only).
	MinTier = 1
	MaxTier = 4
)
