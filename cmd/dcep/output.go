package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dcep/dcep/client/amount"
	"github.com/dcep/dcep/state/statepb"
)

// emit prints v as JSON with --json, else calls text.
func (a *app) emit(v any, text func(w io.Writer)) error {
	if a.jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

// table prints aligned columns; columns whose index is in right are
// right-aligned (amounts).
type table struct {
	head  []string
	rows  [][]string
	right map[int]bool
}

func newTable(head ...string) *table { return &table{head: head, right: map[int]bool{}} }

func (t *table) alignRight(cols ...int) *table {
	for _, c := range cols {
		t.right[c] = true
	}
	return t
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], utf8.RuneCountInString(c))
			}
		}
	}
	for _, r := range append([][]string{t.head}, t.rows...) {
		var b strings.Builder
		for i, c := range r {
			if i >= len(width) {
				break
			}
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// yuan formats fen for people: ¥1,000.00.
func yuan(fen uint64) string { return amount.Yuan(fen) }

// plain formats fen for JSON: 1000.00.
func plain(fen uint64) string { return amount.Format(fen) }

// beijing is the ledger's time zone (UTC+8, fixed).
var beijing = time.FixedZone("UTC+8", 8*3600)

// when formats ledger time (ms) for people, in Beijing time.
func when(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).In(beijing).Format("2006-01-02 15:04:05")
}

// whenJSON formats ledger time for JSON (RFC 3339, +08:00).
func whenJSON(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).In(beijing).Format(time.RFC3339Nano)
}

// ago formats a duration in milliseconds shortly: 0.3s, 12s, 4m.
func ago(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%dh", int(d.Hours()))
}

// shortID abbreviates a hex id for tables.
func shortID(id []byte) string {
	h := hex.EncodeToString(id)
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// kindName is a wallet kind for people: personal, merchant, ...
func kindName(k statepb.WalletKind) string {
	switch k {
	case statepb.WalletKind_WALLET_KIND_PERSONAL:
		return "personal"
	case statepb.WalletKind_WALLET_KIND_MERCHANT:
		return "merchant"
	case statepb.WalletKind_WALLET_KIND_GOVERNMENT:
		return "government"
	case statepb.WalletKind_WALLET_KIND_BANK_RESERVE:
		return "bank-reserve"
	case statepb.WalletKind_WALLET_KIND_SUB_WALLET:
		return "sub-wallet"
	case statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE:
		return "bank-guarantee"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "WALLET_KIND_"))
}

// statusName is a wallet status for people: active, frozen, closed.
func statusName(s statepb.WalletStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WALLET_STATUS_"))
}

// roleName is a node role for people: voter, regulator.
func roleName(r statepb.NodeRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "NODE_ROLE_"))
}

// txJSON is a transaction outcome in JSON.
type txJSON struct {
	TxID      string `json:"tx_id"`
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	LogIndex  uint64 `json:"log_index"`
	Time      string `json:"time"`
	Duplicate bool   `json:"duplicate"`
}

func txOut(r *statepb.TxResult) txJSON {
	return txJSON{
		TxID: hex.EncodeToString(r.GetTxId()), Code: r.GetCode().Short(), Message: r.GetMessage(),
		LogIndex: r.GetLogIndex(), Time: whenJSON(r.GetTimeMs()), Duplicate: r.GetDuplicate(),
	}
}

// writeTx prints the line every write ends with.
func writeTx(w io.Writer, r *statepb.TxResult) {
	fmt.Fprintf(w, "tx %x at index %d, %s\n", r.GetTxId(), r.GetLogIndex(), when(r.GetTimeMs()))
	if r.GetDuplicate() {
		fmt.Fprintln(w, "(this exact transaction was already recorded; nothing changed this time)")
	}
}

// timeYear is the Beijing-time year at ledger time ms.
func timeYear(ms int64) int { return time.UnixMilli(ms).In(beijing).Year() }

// plural is "1 output", "2 outputs", "1 entry", "3 entries".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
