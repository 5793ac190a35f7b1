package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/state/statepb"
)

// keyRotateJSON is what `dcep key rotate` reports.
type keyRotateJSON struct {
	txJSON
	Holder       string `json:"holder"`
	ID           string `json:"id,omitempty"`
	NewPublicKey string `json:"new_public_key"`
	// KeyFile is where the new key is now (the keystore entry replaced,
	// or the --new-key file); Backup the old key's file kept beside it.
	KeyFile string `json:"key_file,omitempty"`
	Backup  string `json:"backup,omitempty"`
}

// rotation is one `dcep key rotate`, as the flags gave it.
type rotation struct {
	centralBank bool
	bank, node  string
	newKeyFile  string
}

func (a *app) keyRotateCmd() *cobra.Command {
	var r rotation
	cmd := &cobra.Command{
		Use:   "rotate (--central-bank | --bank ID | --member NAME) [--new-key FILE]",
		Short: "Central bank: replace the central bank's, a bank's or a node's key",
		Long: `rotate signs a RotateKey transaction with the central bank's current key and
with the new key (proof that its holder has it). From the next transaction
on the old key is refused (SIGNER_UNAUTHORIZED), for signing and for signing
in to the API.

--central-bank and --bank: without --new-key a new key is generated; once
the ledger has committed the rotation, the keystore's entry for that key is
replaced by the new one and the old file is kept beside it as
NAME.key.bak-UNIXNANO. Until then the new key waits in NAME-rotating.key
(kept if the answer was lost: check the transaction, then rename it). With --new-key FILE (a keystore file of the right
kind, e.g. one the bank generated) that key is used and the file left as it
is.

--member (a node, by its member name; --node stays the API address to
talk to): --new-key is required: the node key file generated on the node's
host (only there should its private key live). After the rotation the node
still running the old key logs REMOVED and stops; put the new file in
place of its keys/node.key and start it (docs/operations.md, "Keys").`,
		Example: `  dcep key rotate --bank icbc
  dcep key rotate --central-bank
  dcep key rotate --member ccb --new-key ccb-node-new.key`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error { return a.rotateKey(cmd, r) }),
	}
	f := cmd.Flags()
	f.BoolVar(&r.centralBank, "central-bank", false, "rotate the central bank's own key")
	f.StringVar(&r.bank, "bank", "", "rotate this bank's operator key")
	f.StringVar(&r.node, "member", "", "rotate this member node's identity key (needs --new-key)")
	f.StringVar(&r.newKeyFile, "new-key", "", "keystore file holding the new key (default: generate one; required for --member)")
	return cmd
}

// holder checks the flags and names the key being replaced.
func (r rotation) holder() (statepb.KeyHolder, string, keystore.Kind, error) {
	n := 0
	for _, set := range []bool{r.centralBank, r.bank != "", r.node != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return 0, "", "", usage("give exactly one of --central-bank, --bank ID and --member NAME")
	}
	switch {
	case r.centralBank:
		return statepb.KeyHolder_KEY_HOLDER_CENTRAL_BANK, "", keystore.KindCentralBank, nil
	case r.bank != "":
		return statepb.KeyHolder_KEY_HOLDER_BANK, r.bank, keystore.KindBank, statepb.ValidateID("--bank", r.bank)
	}
	if r.newKeyFile == "" {
		return 0, "", "", usage("--member: give --new-key FILE, the new node key generated on the node's host")
	}
	return statepb.KeyHolder_KEY_HOLDER_NODE, r.node, keystore.KindNode, statepb.ValidateID("--member", r.node)
}

func (a *app) rotateKey(cmd *cobra.Command, r rotation) error {
	holder, id, kind, err := r.holder()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cb, err := a.centralBankKey(ctx)
	if err != nil {
		return err
	}
	// The entry the new key replaces (central bank, bank): checked against
	// the key in force before anything is signed.
	var old *keystore.Key
	switch holder {
	case statepb.KeyHolder_KEY_HOLDER_CENTRAL_BANK:
		old = cb
	case statepb.KeyHolder_KEY_HOLDER_BANK:
		if _, old, err = a.bankKey(ctx, id); err != nil {
			return err
		}
	}
	newKey, err := a.rotationKey(r.newKeyFile, kind)
	if err != nil {
		return err
	}
	b, err := a.builder(ctx)
	if err != nil {
		return err
	}
	if cb.Private == nil {
		return usage("the central bank's key is in a token: rotate with the SDK (client.Builder.RotateKey with its crypto.Signer)")
	}
	tx, err := b.RotateKey(cb.Private, holder, id, newKey)
	if err != nil {
		return err
	}
	// A generated key is written to the keystore (as NAME-rotating) before
	// it is submitted, so a crash or a lost answer never loses the key the
	// ledger may already have committed; the pending file also makes the
	// next lookup of this holder ambiguous, which names both files.
	var ks *keystore.Store
	var pending string
	if r.newKeyFile == "" && old != nil && old.Private != nil {
		if ks, err = a.keys(); err != nil {
			return err
		}
		if old.Encrypted && old.Seal == nil {
			return fail(exitRefused, codeKeyWrongSecret, "%s is encrypted to a recipient the identity that opened it does not name: the new key cannot be encrypted the same way", ks.Path(old.Name)).
				hint("decrypt it (dcep key decrypt %s), rotate, then encrypt the new key", old.Name)
		}
		pending = old.Name + "-rotating"
		// Encrypted as the key it replaces is: the new key is never on
		// disk in plaintext if the old one was not.
		if _, err := ks.Import(keystore.Key{Name: pending, Kind: old.Kind, BankID: old.BankID, Private: newKey, Seal: old.Seal}); err != nil {
			return err
		}
	}
	cl, _ := a.client()
	res, err := cl.SubmitOK(ctx, tx)
	if err != nil {
		if pending != "" && notTaken(err) {
			// The ledger refused it, or the node answered without taking it:
			// the old key stays in force. Any other failure (an unknown
			// outcome) keeps the pending file.
			_ = ks.Delete(pending)
		}
		return err
	}
	out := keyRotateJSON{txJSON: txOut(res), Holder: strings.ToLower(strings.TrimPrefix(holder.String(), "KEY_HOLDER_")), ID: id,
		NewPublicKey: hex.EncodeToString(newKey.Public().(ed25519.PublicKey)), KeyFile: r.newKeyFile}
	if pending != "" {
		// Committed: the entry now holds the new key; Replace keeps the old.
		if out.Backup, err = ks.Replace(keystore.Key{Name: old.Name, Kind: old.Kind, BankID: old.BankID, Private: newKey}); err != nil {
			return fail(exitRefused, codeKeyNotFound, "the rotation is committed but %s was not replaced: %v; the new key is in %s", ks.Path(old.Name), err, ks.Path(pending))
		}
		if err := ks.Delete(pending); err != nil {
			return err
		}
		out.KeyFile = ks.Path(old.Name)
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "rotated the %s key%s to %s…\n", out.Holder, map[bool]string{true: " of " + id}[id != ""], out.NewPublicKey[:16])
		if out.KeyFile != "" {
			fmt.Fprintf(w, "new key: %s\n", out.KeyFile)
		}
		if out.Backup != "" {
			fmt.Fprintf(w, "old key kept as %s (the ledger refuses it from now on)\n", out.Backup)
		}
		writeTx(w, res)
	})
}

// rotationKey is the new key: read from file (of kind), or generated.
func (a *app) rotationKey(file string, kind keystore.Kind) (ed25519.PrivateKey, error) {
	if file == "" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	ks, err := a.openStore(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	k, err := ks.Get(strings.TrimSuffix(filepath.Base(file), ".key"))
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return nil, fmt.Errorf("--new-key: %w", err) // locked, corrupt: the message names the file
	}
	if err != nil {
		return nil, fail(exitRefused, codeKeyNotFound, "--new-key %s: %v", file, err)
	}
	if k.Kind != kind || k.Private == nil {
		return nil, usage("--new-key %s: is a %s key, want a %s key", file, k.Kind, kind)
	}
	return k.Private, nil
}

// notTaken: err says the rotation was certainly not applied — the ledger
// recorded it as rejected, or the node refused it before consensus. An
// unknown outcome (a lost answer) is not that.
func notTaken(err error) bool {
	var txErr *client.TxError
	var unknown *client.OutcomeUnknownError
	if errors.As(err, &txErr) {
		return true
	}
	if errors.As(err, &unknown) || !connect.IsWireError(err) {
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeFailedPrecondition:
		return true
	}
	return false
}
