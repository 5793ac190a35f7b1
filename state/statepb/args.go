package statepb

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Typed rejection arguments. Each records a value the rules decided on and
// prints it as people read it; the printed form may change between
// releases, the recorded one may not (state/DESIGN.md, "Outcomes").

// Fen is an amount of money in fen; it prints as yuan, thousands grouped:
// 8850 → "¥88.50", 250000 → "¥2,500.00".
type Fen uint64

func (f Fen) String() string {
	digits := strconv.FormatUint(uint64(f)/100, 10)
	out := make([]byte, 0, len(digits)+len(digits)/3+8)
	out = append(out, "¥"...)
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	out = append(out, '.', byte('0'+uint64(f)%100/10), byte('0'+uint64(f)%10))
	return string(out)
}

// TimeMs is a ledger time (Unix ms); it prints in Beijing time (UTC+8, a
// fixed offset: SPEC §2's days are Beijing days).
type TimeMs int64

var beijing = time.FixedZone("UTC+8", 8*3600)

func (t TimeMs) String() string {
	return time.UnixMilli(int64(t)).In(beijing).Format("2006-01-02 15:04:05.000") + " (UTC+8)"
}

// Short is an id of bytes (a purse id, payment hash, device key, tx id):
// recorded whole, printed by %x as its first 6 bytes (%.8x: 8).
type Short []byte

// Format prints the id's first bytes in hex, whatever the verb.
func (s Short) Format(f fmt.State, verb rune) {
	n, ok := f.Precision()
	if !ok {
		n = 6
	}
	b := []byte(s)
	if len(b) > n {
		b = b[:n]
	}
	fmt.Fprintf(f, "%x", b)
}

// Kind is a transaction kind: the field number of its Tx.kind oneof
// member. It prints as the member's name, e.g. "transfer".
type Kind int32

// KindOf is the kind of body (0 if none is set).
func KindOf(body *Tx) Kind {
	m := body.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind"))
	if f == nil {
		return 0
	}
	return Kind(f.Number())
}

func (k Kind) String() string {
	f := (&Tx{}).ProtoReflect().Descriptor().Fields().ByNumber(protoreflect.FieldNumber(k))
	if f == nil || f.ContainingOneof() == nil {
		return "none"
	}
	return string(f.Name())
}

// WalletKindName is a wallet kind printed as people say it: "personal",
// "merchant", "government", "sub-wallet", "bank reserve", "bank guarantee".
type WalletKindName WalletKind

func (k WalletKindName) String() string {
	switch WalletKind(k) {
	case WalletKind_WALLET_KIND_PERSONAL:
		return "personal"
	case WalletKind_WALLET_KIND_MERCHANT:
		return "merchant"
	case WalletKind_WALLET_KIND_GOVERNMENT:
		return "government"
	case WalletKind_WALLET_KIND_BANK_RESERVE:
		return "bank reserve"
	case WalletKind_WALLET_KIND_BANK_GUARANTEE:
		return "bank guarantee"
	case WalletKind_WALLET_KIND_SUB_WALLET:
		return "sub-wallet"
	}
	return WalletKind(k).String()
}

// PurseStatusName is a purse status printed as people say it.
type PurseStatusName PurseStatus

func (s PurseStatusName) String() string {
	switch PurseStatus(s) {
	case PurseStatus_PURSE_STATUS_OPEN:
		return "open"
	case PurseStatus_PURSE_STATUS_CLOSED:
		return "closed"
	case PurseStatus_PURSE_STATUS_EXPIRED:
		return "expired"
	case PurseStatus_PURSE_STATUS_UNBACKED:
		return "unbacked (never opened)"
	}
	return PurseStatus(s).String()
}

// Text is printed in the message and recorded nowhere: for a library's
// error text (protobuf-go varies its own between builds), free text a
// record carries (a freeze reason), or words that depend on who is asking.
type Text string

// argOf is the recorded form of one argument; nil for Text.
func argOf(a any) *Arg {
	switch v := a.(type) {
	case Text:
		return nil
	case Fen:
		return &Arg{Value: &Arg_Fen{Fen: uint64(v)}}
	case TimeMs:
		return &Arg{Value: &Arg_TimeMs{TimeMs: int64(v)}}
	case Short:
		return &Arg{Value: &Arg_Bytes{Bytes: bytes.Clone(v)}}
	case Kind:
		return &Arg{Value: &Arg_Kind{Kind: int32(v)}}
	case WalletKindName:
		return &Arg{Value: &Arg_Enum{Enum: int32(v)}}
	case PurseStatusName:
		return &Arg{Value: &Arg_Enum{Enum: int32(v)}}
	case string:
		return &Arg{Value: &Arg_Str{Str: v}}
	case []byte:
		return &Arg{Value: &Arg_Bytes{Bytes: bytes.Clone(v)}}
	case bool:
		return &Arg{Value: &Arg_Bool{Bool: v}}
	case int:
		return &Arg{Value: &Arg_Int{Int: int64(v)}}
	case int32:
		return &Arg{Value: &Arg_Int{Int: int64(v)}}
	case int64:
		return &Arg{Value: &Arg_Int{Int: v}}
	case uint:
		return &Arg{Value: &Arg_Uint{Uint: uint64(v)}}
	case uint8:
		return &Arg{Value: &Arg_Uint{Uint: uint64(v)}}
	case uint32:
		return &Arg{Value: &Arg_Uint{Uint: uint64(v)}}
	case uint64:
		return &Arg{Value: &Arg_Uint{Uint: v}}
	case protoreflect.Enum:
		return &Arg{Value: &Arg_Enum{Enum: int32(v.Number())}}
	}
	return &Arg{Value: &Arg_Unsupported{Unsupported: true}}
}

func appendArgs(out []*Arg, args []any) []*Arg {
	for _, a := range args {
		if r := argOf(a); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func sprintf(format string, args []any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// countVerbs is how many arguments format consumes (no explicit argument
// indexes or * widths: this package's messages use neither).
func countVerbs(format string) int {
	n := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			i++
			continue
		}
		n++
	}
	return n
}

// IsFieldPath reports whether s reads as one field path or a list of them
// separated by ", ": segments of [a-z][a-z0-9_]*, each optionally indexed
// by [n], joined by ".".
func IsFieldPath(s string) bool {
	for len(s) > 0 {
		end := len(s)
		for i := 0; i+1 < len(s); i++ {
			if s[i] == ',' && s[i+1] == ' ' {
				end = i
				break
			}
		}
		if !isPath(s[:end]) {
			return false
		}
		if end == len(s) {
			return true
		}
		s = s[end+2:]
	}
	return false
}

func isPath(p string) bool {
	seg := 0 // length of the current segment's name
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_' && seg > 0, c >= '0' && c <= '9' && seg > 0:
			seg++
		case c == '.' && seg > 0:
			seg = 0
		case c == '[' && seg > 0:
			j := i + 1
			for j < len(p) && p[j] >= '0' && p[j] <= '9' {
				j++
			}
			if j == i+1 || j == len(p) || p[j] != ']' {
				return false
			}
			i = j
		default:
			return false
		}
	}
	return seg > 0
}

// CheckRecorded reports why a recorded rejection (field, args) breaks the
// rule of state/DESIGN.md's "Outcomes", or nil: its field is a field path,
// no arg is unsupported, every string arg is an id (ValidateID's charset,
// as ids, codes and region codes are). The golden corpus test runs it on
// every outcome.
func CheckRecorded(field string, args []*Arg) error {
	if field != "" && !IsFieldPath(field) {
		return fmt.Errorf("field %q is not a field path", field)
	}
	for i, a := range args {
		switch v := a.GetValue().(type) {
		case nil:
			return fmt.Errorf("args[%d]: empty", i)
		case *Arg_Unsupported:
			return fmt.Errorf("args[%d]: a value of a type a rejection cannot record", i)
		case *Arg_Str:
			if ValidateID("str", v.Str) != nil {
				return fmt.Errorf("args[%d]: string %q is not an id (text for people goes in a Text arg)", i, v.Str)
			}
		}
	}
	return nil
}
