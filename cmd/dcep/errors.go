package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/amount"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/state/statepb"
)

// Exit statuses (see the package comment).
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitNetwork = 3
	exitAudit   = 4
	// exitInconclusive: an audit that could check nothing (a replay that
	// re-executed no block); neither a pass nor evidence of tampering.
	exitInconclusive = 5
)

// The CLI's own error codes, beside the ledger's (statepb.Code) and the
// node API's (client.Code*).
const (
	codeUsage          = "USAGE"
	codeInvalidAmount  = "INVALID_AMOUNT"
	codeWalletNotFound = "WALLET_NOT_FOUND" // also a ledger code
	codePayeeNotFound  = "PAYEE_NOT_FOUND"  // also a ledger code
	codeBankNotFound   = "BANK_NOT_FOUND"   // also a ledger code
	codeKeyNotFound    = "KEY_NOT_FOUND"
	codeKeyExists      = "KEY_EXISTS"
	codeKeyMismatch    = "KEY_MISMATCH"
	codeKeystore       = "KEYSTORE_ERROR"
	codeKeyLocked      = "KEY_LOCKED"
	codeKeyWrongSecret = "KEY_WRONG_SECRET"
	codeKeyCorrupt     = "KEY_CORRUPT"
	codeNoKeystore     = "KEYSTORE_NOT_FOUND"
	codeOutcomeUnknown = "OUTCOME_UNKNOWN"
	codeBadResponse    = "BAD_RESPONSE"
	codeNotReady       = "NOT_READY"
	codeNoLeader       = "NO_LEADER"
	codeNoQuorum       = "NO_QUORUM" // also the node API's code
	codeInvariant      = "SUPPLY_INVARIANT_BROKEN"
	codeInterrupted    = "INTERRUPTED"
	codeError          = "ERROR"
)

// cliError is a failure as the CLI reports it: "error CODE: Msg", then
// any hints, and the exit status.
type cliError struct {
	Code  string
	Msg   string
	Exit  int
	Hints []string
	Err   error
}

func (e *cliError) Error() string { return e.Code + ": " + e.Msg }
func (e *cliError) Unwrap() error { return e.Err }

func fail(exit int, code, format string, args ...any) *cliError {
	return &cliError{Code: code, Msg: fmt.Sprintf(format, args...), Exit: exit}
}

func usage(format string, args ...any) *cliError {
	return fail(exitUsage, codeUsage, format, args...)
}

// hint adds a line of advice.
func (e *cliError) hint(format string, args ...any) *cliError {
	e.Hints = append(e.Hints, fmt.Sprintf(format, args...))
	return e
}

// runError marks an error returned by a command itself; any other error
// from cobra is a usage error (unknown command or flag, wrong arguments).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// report prints err and returns the exit status.
func (a *app) report(err error) int {
	ce := a.classify(err)
	fmt.Fprintf(a.stderr, "error %s: %s\n", ce.Code, ce.Msg)
	for _, h := range ce.Hints {
		fmt.Fprintf(a.stderr, "  %s\n", h)
	}
	if a.jsonOut {
		out := map[string]any{"error": map[string]any{"code": ce.Code, "message": ce.Msg, "exit": ce.Exit}}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	}
	return ce.Exit
}

// classify turns any error into a cliError with a stable code.
func (a *app) classify(err error) *cliError {
	var re runError
	if !errors.As(err, &re) {
		var ce *cliError
		if errors.As(err, &ce) {
			return ce
		}
		// From cobra: unknown command or flag, wrong number of arguments.
		return usage("%s", err).hint("see: dcep --help, or dcep COMMAND --help")
	}
	err = re.err

	var (
		ce  *cliError
		ae  *amount.Error
		ou  *client.OutcomeUnknownError
		te  *client.TxError
		fe  *client.FundsError
		se  *statepb.Error
		api *client.APIError
	)
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &ae):
		code := codeInvalidAmount
		if errors.Is(ae, amount.ErrZero) {
			code = statepb.Code_CODE_AMOUNT_ZERO.Short()
		}
		return &cliError{Code: code, Msg: ae.Error(), Exit: exitUsage, Err: err}
	case errors.As(err, &ou):
		id := hex.EncodeToString(ou.TxID[:])
		return (&cliError{Code: codeOutcomeUnknown, Exit: exitNetwork, Err: err,
			Msg: fmt.Sprintf("transaction %s was sent but no answer came back after %d attempts (last: %v); it may still commit", id, ou.Attempts, ou.Err)}).
			hint("check with: dcep tx %s", id).
			hint("do not simply run the command again: that would sign a new transaction, and could pay twice")
	case errors.As(err, &te):
		e := &cliError{Code: te.Code().Short(), Msg: te.Result.GetMessage(), Exit: exitRefused, Err: err}
		return a.ledgerHints(e, te.Code())
	case errors.As(err, &fe):
		return &cliError{Code: statepb.CodeOf(fe).Short(), Msg: fe.Error(), Exit: exitRefused, Err: err}
	case errors.As(err, &se):
		exit := exitRefused
		if se.Code < statepb.Code_CODE_SIGNATURE_COUNT { // stateless: the input itself is wrong
			exit = exitUsage
		}
		return a.ledgerHints(&cliError{Code: se.Code.Short(), Msg: se.Message, Exit: exit, Err: err}, se.Code)
	case errors.As(err, &api):
		return a.apiError(api)
	case errors.Is(err, client.ErrBadResponse):
		return &cliError{Code: codeBadResponse, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, keystore.ErrLocked):
		return (&cliError{Code: codeKeyLocked, Msg: err.Error(), Exit: exitRefused, Err: err}).
			hint("passphrase-encrypted keys: set $%s, or run on a terminal to be asked", keystore.EnvPassphrase).
			hint("keys encrypted to an age recipient: --key-identity FILE or $%s", keystore.EnvIdentity)
	case errors.Is(err, keystore.ErrWrongSecret):
		return &cliError{Code: codeKeyWrongSecret, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, keystore.ErrCorrupt):
		return &cliError{Code: codeKeyCorrupt, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, keystore.ErrNotFound):
		return &cliError{Code: codeKeyNotFound, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, keystore.ErrExists):
		return &cliError{Code: codeKeyExists, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, keystore.ErrInvalid):
		return &cliError{Code: statepb.Code_CODE_INVALID_FIELD.Short(), Msg: err.Error(), Exit: exitUsage, Err: err}
	case errors.Is(err, keystore.ErrPermissions), errors.Is(err, keystore.ErrAmbiguous):
		return &cliError{Code: codeKeystore, Msg: err.Error(), Exit: exitRefused, Err: err}
	case errors.Is(err, context.Canceled):
		return &cliError{Code: codeInterrupted, Msg: "interrupted", Exit: exitNetwork, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &cliError{Code: client.CodeTimeout, Msg: err.Error(), Exit: exitNetwork, Err: err}
	}
	return &cliError{Code: codeError, Msg: err.Error(), Exit: exitRefused, Err: err}
}

// apiError explains an RPC failure.
func (a *app) apiError(api *client.APIError) *cliError {
	e := &cliError{Code: api.Code, Msg: api.Message, Exit: exitRefused, Err: api}
	switch api.Code {
	case client.CodeUnreachable:
		e.Exit = exitNetwork
		e.Msg = fmt.Sprintf("no dcep node at %s (%s; address from %s)", api.Node, api.Message, a.nodeFrom)
		e.hint("is dcepd dev running? Start it with: go run ./cmd/dcepd dev")
		e.hint("or name a node with --node URL or $DCEP_NODE")
	case client.CodeNoQuorum, client.CodeTimeout, client.CodeUnavailable, client.CodeOverloaded, client.CodeRateLimited:
		e.Exit = exitNetwork
		e.Msg = fmt.Sprintf("%s (node %s)", api.Message, api.Node)
	case client.CodeReadOnly:
		e.hint("the voters' API addresses: dcep status")
	case client.CodeUnauthenticated, client.CodePermissionDenied:
		e.hint("the CLI signs in with a key from %s (the wallet's own, else a regulator, bank or central bank key); choose one with --as NAME (dcep keys list)", a.home)
	}
	return e
}

// ledgerHints adds advice to some ledger rejections.
func (a *app) ledgerHints(e *cliError, code statepb.Code) *cliError {
	switch code {
	case statepb.Code_CODE_WALLET_FROZEN:
		e.hint("the wallet's bank can lift a freeze: dcep wallet unfreeze NAME")
	case statepb.Code_CODE_LIMIT_PAYMENT, statepb.Code_CODE_LIMIT_DAILY, statepb.Code_CODE_LIMIT_YEARLY, statepb.Code_CODE_LIMIT_BALANCE:
		e.hint("limits follow the wallet's KYC tier (dcep wallet show NAME); its bank can change the tier: dcep wallet update NAME --tier 2")
	case statepb.Code_CODE_SIGNER_UNAUTHORIZED:
		e.hint("the key in %s is not the one the ledger has for this wallet or bank", a.home)
	case statepb.Code_CODE_GUARANTEE_SHORT:
		e.hint("the bank funds its offline guarantee from its reserve: dcep offline guarantee --bank BANK --amount YUAN")
		e.hint("its exposure and the cover needed: dcep audit offline")
	}
	return e
}

// unknownWallet is the error for a wallet name found neither in the
// keystore nor (where looked up) on the ledger; it lists what exists.
func (a *app) unknownWallet(code, name string, onLedger bool) *cliError {
	where := "in the keystore " + a.home
	if onLedger {
		where = "on the ledger or " + where
	}
	e := fail(exitRefused, code, "no wallet %q %s", name, where)
	names := a.keystoreWallets()
	if len(names) == 0 {
		e.hint("the keystore holds no wallets; create one with: dcep wallet create NAME --bank icbc --tier 4")
	} else {
		e.hint("wallets in the keystore: %s", strings.Join(names, ", "))
	}
	e.hint("all wallets on the ledger: dcep wallet list --all")
	return e
}

// keystoreWallets lists the names of the keystore's wallet keys (best
// effort).
func (a *app) keystoreWallets() []string {
	ks, err := a.keys()
	if err != nil {
		return nil
	}
	keys, _ := ks.List()
	var names []string
	for _, k := range keys {
		if k.Kind == keystore.KindWallet {
			names = append(names, k.Name)
		}
	}
	return names
}
