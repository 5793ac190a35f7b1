package statepb

import (
	"fmt"
	"strconv"
)

// Text is the reason as people read it, "" if r names no rule. It is
// rendered when a record is read, never stored, and may be reworded in any
// release (state/DESIGN.md, "Outcomes").
func (r *LedgerReason) Text() string {
	switch r.GetCode() {
	case LedgerReasonCode_LEDGER_REASON_UNSPECIFIED:
		return ""
	case LedgerReasonCode_LEDGER_REASON_OFFLINE_DOUBLE_SPEND:
		s := "offline double spend: incident " + strconv.FormatUint(r.GetIncidentId(), 10)
		if len(r.GetPurseId()) > 0 {
			s += fmt.Sprintf(" (purse %x)", Short(r.GetPurseId()))
		}
		return s
	}
	return "ledger rule " + strconv.Itoa(int(r.GetCode()))
}

// PurseCounterparty is how a wallet's history names an offline purse its
// money came back from: "offline purse <first 6 bytes in hex>".
func PurseCounterparty(purseID []byte) string {
	return fmt.Sprintf("offline purse %x", Short(purseID))
}
