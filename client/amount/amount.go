// Package amount converts between the yuan strings people type and read
// ("88.50", "¥1,000.00") and the uint64 fen (1/100 yuan) the ledger counts in.
//
// Accepted input, after surrounding white space is trimmed:
//
//   - an optional currency sign, "¥" (U+00A5) or "￥" (U+FFE5, full width);
//   - one or more ASCII digits, optionally grouped by commas in threes
//     ("1,000", "12,345,678"); a comma anywhere else is refused, so that
//     "88,50" (a decimal comma) can never be read as 8,850 yuan;
//   - optionally a point followed by one or two digits ("0.5", "88.50").
//
// Everything else is refused with an error that says what was wrong and
// wraps one of the sentinel errors below: signs ("-5", "+5"), exponents,
// a bare point (".5", "5."), more than two decimals ("0.001"), non-ASCII
// digits, and amounts above the uint64 range of fen
// (184,467,440,737,095,516.15 yuan).
package amount

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// FenPerYuan is the number of fen in one yuan.
const FenPerYuan = 100

// MaxFen is the largest amount the ledger can hold.
const MaxFen uint64 = math.MaxUint64

var (
	// ErrEmpty: no amount was given.
	ErrEmpty = errors.New("empty")
	// ErrNegative: the amount has a minus sign; amounts are never negative.
	ErrNegative = errors.New("negative amounts are not allowed")
	// ErrSyntax: the text is not a number in yuan.
	ErrSyntax = errors.New("not a number in yuan (e.g. 88.50)")
	// ErrPrecision: the amount has more than two decimals (fen, 0.01 yuan, is
	// the smallest unit).
	ErrPrecision = errors.New("more than two decimals (0.01 yuan is the smallest unit)")
	// ErrRange: the amount does not fit in a uint64 of fen.
	ErrRange = errors.New("too large (max 184467440737095516.15 yuan)")
	// ErrZero: the amount is zero where it must be positive.
	ErrZero = errors.New("must be more than zero")
)

// Error is a refused amount: the text as given and why. It wraps one of the
// sentinel errors, so errors.Is(err, ErrPrecision) works.
type Error struct {
	// Input is the text as given.
	Input string
	// Err is one of the sentinel errors of this package.
	Err error
	// Detail adds specifics, e.g. which comma is misplaced; may be empty.
	Detail string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("invalid amount %q: %v", e.Input, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// Parse reads a positive amount in yuan (see the package comment for the
// accepted forms) and returns it in fen. "88.50" is 8850 fen.
func Parse(s string) (uint64, error) {
	fen, err := ParseNonNegative(s)
	if err != nil {
		return 0, err
	}
	if fen == 0 {
		return 0, &Error{Input: s, Err: ErrZero}
	}
	return fen, nil
}

// ParseNonNegative is Parse that also accepts zero ("0", "0.00").
func ParseNonNegative(s string) (uint64, error) {
	fen, err := parse(s)
	if err != nil {
		err.Input = s
		return 0, err
	}
	return fen, nil
}

func parse(s string) (uint64, *Error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "¥")
	s = strings.TrimPrefix(s, "￥")
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, &Error{Err: ErrEmpty}
	}
	if s[0] == '-' || strings.HasPrefix(s, "−") { // ASCII hyphen-minus or U+2212
		return 0, &Error{Err: ErrNegative}
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if hasPoint && frac == "" {
		return 0, &Error{Err: ErrSyntax, Detail: "digits must follow the decimal point"}
	}
	if whole == "" {
		return 0, &Error{Err: ErrSyntax, Detail: "digits must precede the decimal point"}
	}
	digits, err := ungroup(whole)
	if err != nil {
		return 0, err
	}
	if !allDigits(frac) {
		return 0, &Error{Err: ErrSyntax}
	}
	if len(frac) > 2 {
		return 0, &Error{Err: ErrPrecision}
	}
	// Strip leading zeros so that "000000000000000000000001" is not an
	// overflow; keep one digit.
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		digits = "0"
	}
	yuan, perr := strconv.ParseUint(digits, 10, 64)
	if perr != nil {
		return 0, &Error{Err: ErrRange}
	}
	for len(frac) < 2 {
		frac += "0"
	}
	cents := uint64(frac[0]-'0')*10 + uint64(frac[1]-'0')
	if yuan > (MaxFen-cents)/FenPerYuan {
		return 0, &Error{Err: ErrRange}
	}
	return yuan*FenPerYuan + cents, nil
}

// ungroup removes thousands separators from the whole-yuan digits,
// refusing any comma that is not between complete groups of three.
func ungroup(whole string) (string, *Error) {
	if !strings.Contains(whole, ",") {
		if !allDigits(whole) {
			return "", &Error{Err: ErrSyntax}
		}
		return whole, nil
	}
	groups := strings.Split(whole, ",")
	for i, g := range groups {
		if !allDigits(g) {
			return "", &Error{Err: ErrSyntax}
		}
		if (i == 0 && (len(g) == 0 || len(g) > 3)) || (i > 0 && len(g) != 3) {
			return "", &Error{Err: ErrSyntax, Detail: "misplaced comma (commas may only separate thousands, e.g. 1,000.00)"}
		}
	}
	return strings.Join(groups, ""), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format writes fen as plain yuan with two decimals: 8850 → "88.50",
// 100000 → "1000.00". Parse reads it back.
func Format(fen uint64) string {
	return strconv.FormatUint(fen/FenPerYuan, 10) + "." + twoDigits(fen%FenPerYuan)
}

// Grouped writes fen as yuan with thousands separators: 100000000 →
// "1,000,000.00". Parse reads it back.
func Grouped(fen uint64) string {
	whole := strconv.FormatUint(fen/FenPerYuan, 10)
	var b strings.Builder
	for i := 0; i < len(whole); i++ {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(whole[i])
	}
	return b.String() + "." + twoDigits(fen%FenPerYuan)
}

// Yuan writes fen with the yuan sign and thousands separators, for people:
// 8850 → "¥88.50", 100000 → "¥1,000.00". Parse reads it back.
func Yuan(fen uint64) string { return "¥" + Grouped(fen) }

func twoDigits(c uint64) string {
	return string([]byte{byte('0' + c/10), byte('0' + c%10)})
}
