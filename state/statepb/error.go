package statepb

import (
	"errors"
	"strings"
)

// Error is a rejection with its stable code.
//
// Code, Field and Args are what the rule decided and what the ledger
// records and hashes (state/DESIGN.md, "Outcomes"); Message is the same
// rejection for people, derived from them by Errorf, and free to change
// between releases: it is never hashed.
type Error struct {
	Code Code
	// Field is the path of the field refused, e.g. "transfer.payees[1]",
	// or "" if the rule names none.
	Field string
	// Args are the typed values the message names, in its order, less
	// those marked Text (display only).
	Args []*Arg
	// Message names the field or rule, for people.
	Message string
}

// Errorf returns a rejection whose message is format with args, as
// fmt.Sprintf makes it, and whose recorded part is the field path and the
// typed args.
//
// The field is the part of format before the first ": ", formatted with
// the args it uses, if it reads as a field path ("transfer.payees[1]",
// "signatures[0].public_key"); those args are not recorded again. Every
// other arg is recorded by its type (argOf): integers, strings (ids), byte
// slices, protobuf enums, and this package's Fen, TimeMs, Short, Kind,
// WalletKindName and PurseStatusName, which record a number and print as
// people read it. Text args are printed but not recorded: the place for
// library error text and free text. A value of any other type is recorded
// as Arg{unsupported}, which keeps the hash deterministic and which the
// golden corpus test refuses.
func Errorf(code Code, format string, args ...any) *Error {
	e := &Error{Code: code, Message: sprintf(format, args)}
	rest := args
	if i := strings.Index(format, ": "); i > 0 {
		if n := countVerbs(format[:i]); n <= len(args) {
			if f := sprintf(format[:i], args[:n]); IsFieldPath(f) {
				e.Field, rest = f, args[n:]
			}
		}
	}
	e.Args = appendArgs(nil, rest)
	return e
}

func (e *Error) Error() string {
	return e.Code.Short() + ": " + e.Message
}

// Within returns e as a rejection of the field field contains: the field
// paths are joined ("deposit_offline.items[2]" and "payment" make
// "deposit_offline.items[2].payment") and the message is prefixed with
// field. The args stay.
func (e *Error) Within(field string) *Error {
	out := &Error{Code: e.Code, Field: field, Args: e.Args, Message: field + ": " + e.Message}
	if e.Field != "" {
		out.Field = field + "." + e.Field
	}
	return out
}

// At returns e with its field path set to field, for a rule whose message
// does not start with it. The message stays.
func (e *Error) At(field string) *Error {
	out := *e
	out.Field = field
	return &out
}

// Append returns e with format and args appended to its message and args
// recorded as Errorf records them.
func (e *Error) Append(format string, args ...any) *Error {
	out := *e
	out.Message += sprintf(format, args)
	out.Args = appendArgs(append([]*Arg(nil), e.Args...), args)
	return &out
}

// Fill sets r's code, field, args and message from e.
func (e *Error) Fill(r *TxResult) {
	r.Code, r.Field, r.Args, r.Message = e.Code, e.Field, e.Args, e.Message
}

// Short is the code's stable name without the CODE_ prefix, e.g. "INPUT_SPENT".
func (c Code) Short() string {
	return strings.TrimPrefix(c.String(), "CODE_")
}

// CodeOf returns the code of err if it is (or wraps) an *Error, else
// CODE_UNSPECIFIED.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Code_CODE_UNSPECIFIED
}

// ParseCode maps a short or full code name ("INPUT_SPENT" or
// "CODE_INPUT_SPENT") to its Code.
func ParseCode(name string) (Code, bool) {
	if !strings.HasPrefix(name, "CODE_") {
		name = "CODE_" + name
	}
	v, ok := Code_value[name]
	return Code(v), ok
}
