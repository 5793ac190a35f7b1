package amount

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fen  uint64
		want error // nil: accepted
	}{
		{"88.50", 8850, nil},
		{"88.5", 8850, nil},
		{"88", 8800, nil},
		{"100", 10000, nil},
		{"0.01", 1, nil},
		{"0.1", 10, nil},
		{"0.10", 10, nil},
		{"1.00", 100, nil},
		{"007", 700, nil},
		{"007.05", 705, nil},
		{"1,000", 100000, nil},
		{"1,000.00", 100000, nil},
		{"12,345,678.9", 1234567890, nil},
		{"123,456", 12345600, nil},
		{"¥88.50", 8850, nil},
		{"￥88.50", 8850, nil},
		{"¥ 88.50", 8850, nil},
		{"  88.50\n", 8850, nil},
		{"\t¥1,000.00 ", 100000, nil},
		{"184467440737095516.15", math.MaxUint64, nil},
		{"184,467,440,737,095,516.15", math.MaxUint64, nil},
		{"184467440737095516.14", math.MaxUint64 - 1, nil},
		{"184467440737095516", 18446744073709551600, nil},
		{"0000000000000000000000000000001.00", 100, nil},

		{"", 0, ErrEmpty},
		{"   ", 0, ErrEmpty},
		{"¥", 0, ErrEmpty},
		{"0", 0, ErrZero},
		{"0.00", 0, ErrZero},
		{"000", 0, ErrZero},
		{"-1", 0, ErrNegative},
		{"-0.01", 0, ErrNegative},
		{"¥-5", 0, ErrNegative},
		{"−5", 0, ErrNegative},
		{"+5", 0, ErrSyntax},
		{"abc", 0, ErrSyntax},
		{"88.5x", 0, ErrSyntax},
		{"8 850", 0, ErrSyntax},
		{"1e3", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{".5", 0, ErrSyntax},
		{"5.", 0, ErrSyntax},
		{".", 0, ErrSyntax},
		{"1.2.3", 0, ErrSyntax},
		{"88,50", 0, ErrSyntax},
		{"1,0000", 0, ErrSyntax},
		{"1000,000", 0, ErrSyntax},
		{",100", 0, ErrSyntax},
		{"100,", 0, ErrSyntax},
		{"1,,000", 0, ErrSyntax},
		{"1.000,00", 0, ErrSyntax},
		{"１００", 0, ErrSyntax}, // full-width digits
		{"NaN", 0, ErrSyntax},
		{"Inf", 0, ErrSyntax},
		{"$5", 0, ErrSyntax},
		{"5 yuan", 0, ErrSyntax},
		{"88.505", 0, ErrPrecision},
		{"0.001", 0, ErrPrecision},
		{"1.000", 0, ErrPrecision},
		{"184467440737095516.16", 0, ErrRange},
		{"184467440737095517", 0, ErrRange},
		{"99999999999999999999", 0, ErrRange},
		{"18446744073709551616", 0, ErrRange},
	} {
		got, err := Parse(tc.in)
		if tc.want == nil {
			if err != nil || got != tc.fen {
				t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.fen)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Parse(%q) = %d, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Input != tc.in || !strings.Contains(err.Error(), "invalid amount") {
			t.Errorf("Parse(%q): error %q does not name the input", tc.in, err)
		}
	}
}

func TestParseNonNegative(t *testing.T) {
	for _, in := range []string{"0", "0.00", "¥0", "0,000.0"} {
		if fen, err := ParseNonNegative(in); err != nil || fen != 0 {
			t.Errorf("ParseNonNegative(%q) = %d, %v", in, fen, err)
		}
	}
	if _, err := ParseNonNegative("-0"); !errors.Is(err, ErrNegative) {
		t.Errorf("ParseNonNegative(-0): %v", err)
	}
}

func TestMessages(t *testing.T) {
	for in, want := range map[string]string{
		"88.505":                `invalid amount "88.505": more than two decimals (0.01 yuan is the smallest unit)`,
		"-5":                    `invalid amount "-5": negative amounts are not allowed`,
		"abc":                   `invalid amount "abc": not a number in yuan (e.g. 88.50)`,
		"":                      `invalid amount "": empty`,
		"0":                     `invalid amount "0": must be more than zero`,
		"88,50":                 `invalid amount "88,50": not a number in yuan (e.g. 88.50): misplaced comma (commas may only separate thousands, e.g. 1,000.00)`,
		"1e30":                  `invalid amount "1e30": not a number in yuan (e.g. 88.50)`,
		"999999999999999999999": `invalid amount "999999999999999999999": too large (max 184467440737095516.15 yuan)`,
	} {
		_, err := Parse(in)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q): %v\nwant %s", in, err, want)
		}
	}
	// The documented maximum is the real one.
	if !strings.Contains(ErrRange.Error(), Format(MaxFen)) {
		t.Errorf("ErrRange %q does not state max %s", ErrRange, Format(MaxFen))
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		fen                    uint64
		plain, grouped, symbol string
	}{
		{0, "0.00", "0.00", "¥0.00"},
		{1, "0.01", "0.01", "¥0.01"},
		{10, "0.10", "0.10", "¥0.10"},
		{99, "0.99", "0.99", "¥0.99"},
		{100, "1.00", "1.00", "¥1.00"},
		{8850, "88.50", "88.50", "¥88.50"},
		{99999, "999.99", "999.99", "¥999.99"},
		{100000, "1000.00", "1,000.00", "¥1,000.00"},
		{1234567890, "12345678.90", "12,345,678.90", "¥12,345,678.90"},
		{100_000_000, "1000000.00", "1,000,000.00", "¥1,000,000.00"},
		{math.MaxUint64, "184467440737095516.15", "184,467,440,737,095,516.15", "¥184,467,440,737,095,516.15"},
	} {
		if got := Format(tc.fen); got != tc.plain {
			t.Errorf("Format(%d) = %q, want %q", tc.fen, got, tc.plain)
		}
		if got := Grouped(tc.fen); got != tc.grouped {
			t.Errorf("Grouped(%d) = %q, want %q", tc.fen, got, tc.grouped)
		}
		if got := Yuan(tc.fen); got != tc.symbol {
			t.Errorf("Yuan(%d) = %q, want %q", tc.fen, got, tc.symbol)
		}
	}
}

// FuzzRoundTrip checks that every fen value formats to text that parses back
// to the same value, in all three forms.
func FuzzRoundTrip(f *testing.F) {
	for _, v := range []uint64{0, 1, 99, 100, 8850, 100000, math.MaxUint64, math.MaxUint64 - 1, 1 << 63} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, fen uint64) {
		for _, s := range []string{Format(fen), Grouped(fen), Yuan(fen)} {
			got, err := ParseNonNegative(s)
			if err != nil || got != fen {
				t.Fatalf("ParseNonNegative(%q) = %d, %v; want %d", s, got, err, fen)
			}
		}
	})
}

// FuzzParse checks that Parse never panics, that anything it accepts
// formats back to an equivalent amount, and that errors wrap a sentinel.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"88.50", "1,000.00", "¥0.01", "-1", "1e3", "88.505", "184467440737095516.16", "..", ",", "¥"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := ParseNonNegative(s)
		if err != nil {
			for _, sentinel := range []error{ErrEmpty, ErrNegative, ErrSyntax, ErrPrecision, ErrRange} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("ParseNonNegative(%q): %v wraps no sentinel", s, err)
		}
		again, err := ParseNonNegative(Format(fen))
		if err != nil || again != fen {
			t.Fatalf("%q → %d → %q → %d, %v", s, fen, Format(fen), again, err)
		}
	})
}
