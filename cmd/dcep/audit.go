package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "audit",
		Short:   "Regulator: audit the ledger",
		Example: `  dcep audit supply`,
		Args:    args(0, ""),
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.auditSupplyCmd())
	a.addAuditCmds(cmd) // audit_more.go
	return cmd
}

type bankSupplyJSON struct {
	Bank              string `json:"bank"`
	IssuedFen         uint64 `json:"issued_fen"`
	ReturnedFen       uint64 `json:"returned_fen"`
	OutstandingFen    uint64 `json:"outstanding_fen"`
	WalletsFen        uint64 `json:"wallets_fen"`
	ReserveFen        uint64 `json:"reserve_fen"`
	OfflineEscrowFen  uint64 `json:"offline_escrow_fen"`
	CampaignEscrowFen uint64 `json:"campaign_escrow_fen"`
	Wallets           uint64 `json:"wallets"`
	FrozenWallets     uint64 `json:"frozen_wallets"`
	FrozenFen         uint64 `json:"frozen_fen"`
}

type auditJSON struct {
	Node              string           `json:"node"`
	Role              string           `json:"role"`
	URL               string           `json:"url"`
	AppliedIndex      uint64           `json:"applied_index"`
	LedgerTime        string           `json:"ledger_time"`
	InvariantHolds    bool             `json:"invariant_holds"`
	InvariantError    string           `json:"invariant_error,omitempty"`
	IssuedFen         uint64           `json:"issued_fen"`
	ReturnedFen       uint64           `json:"returned_fen"`
	OutstandingFen    uint64           `json:"outstanding_fen"`
	UnspentFen        uint64           `json:"unspent_fen"`
	OfflineEscrowFen  uint64           `json:"offline_escrow_fen"`
	CampaignEscrowFen uint64           `json:"campaign_escrow_fen"`
	Outputs           uint64           `json:"outputs"`
	Wallets           uint64           `json:"wallets"`
	FrozenWallets     uint64           `json:"frozen_wallets"`
	FrozenFen         uint64           `json:"frozen_fen"`
	Banks             []bankSupplyJSON `json:"banks"`
	Note              string           `json:"note,omitempty"`

	ledgerMs int64
}

func (a *app) auditSupplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "supply",
		Short: "Check that issued − returned = unspent + offline escrow + red-packet escrow, per bank",
		Long: `audit supply has a node recompute the money supply from every output and
wallet (SPEC §2): total issued − total returned = Σ unspent outputs + Σ offline
escrow + Σ red-packet escrow, with per bank: issuance, returns, what its wallets hold (its reserve
included), its wallets' money in offline purses and in red-packet campaign
escrow, and its frozen wallets.

It asks a regulator node: --node if given (flag or $DCEP_NODE), else a
regulator found in the status of the default node or in the dev network's
network.json, else the default node itself. It says which node answered.
Exit status 4 if the invariant does not hold.`,
		Example: `  dcep audit supply
  dcep --node http://127.0.0.1:8108 --json audit supply`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			sp, err := cl.AuditSupply(ctx, a.reads()...)
			if err != nil {
				return err
			}
			out := auditOut(sp)
			out.Role, out.URL, out.Note = role, cl.BaseURL(), note
			if err := a.emit(out, func(w io.Writer) { writeAudit(w, out) }); err != nil {
				return err
			}
			if !out.InvariantHolds {
				return fail(exitAudit, codeInvariant, "the supply invariant does not hold on %s: %s", out.Node, out.InvariantError)
			}
			return nil
		}),
	}
}

// auditor picks the node to audit with and says what it is.
func (a *app) auditor(ctx context.Context) (cl *client.Client, role, note string, err error) {
	if a.nodeForced {
		cl, err := a.client()
		if err != nil {
			return nil, "", "", err
		}
		st, err := cl.Status(ctx)
		if err != nil {
			return nil, "", "", err
		}
		return cl, roleName(st.GetNode().GetRole()), "", nil
	}
	// Regulators the default node knows of, then those of network.json.
	var urls []string
	def, err := a.client()
	if err != nil {
		return nil, "", "", err
	}
	st, serr := def.Status(ctx)
	regulator := roleName(statepb.NodeRole_NODE_ROLE_REGULATOR)
	if serr == nil {
		if st.GetNode().GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR {
			return def, regulator, "", nil
		}
		for _, p := range st.GetPeers() {
			if p.GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR && p.GetStatus().GetApiAddr() != "" {
				urls = append(urls, apiURL(p.GetStatus().GetApiAddr(), a.node))
			}
		}
	}
	if nodes, _ := devNodes(); len(nodes) > 0 {
		for _, n := range nodes {
			if n.Role == regulator && n.API != "" {
				urls = append(urls, n.API)
			}
		}
	}
	var tried []string
	for _, u := range urls {
		rc, err := client.New(u, a.clientOptions()...)
		if err != nil {
			continue
		}
		if rst, err := rc.Status(ctx); err == nil && rst.GetNode().GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR {
			return rc, regulator, "", nil
		}
		tried = append(tried, u)
	}
	if serr != nil {
		return nil, "", "", serr
	}
	note = "no regulator node found"
	if len(tried) > 0 {
		note = "no regulator answered (" + strings.Join(tried, ", ") + ")"
	}
	return def, roleName(st.GetNode().GetRole()), note + "; audited by " + st.GetNode().GetName() + " instead", nil
}

// apiURL makes a peer's API address ("127.0.0.1:8108") a URL with the
// scheme of the node that reported it.
func apiURL(addr, like string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	scheme := "http://"
	if strings.HasPrefix(like, "https://") {
		scheme = "https://"
	}
	return scheme + addr
}

func auditOut(sp *nodepb.AuditSupplyResponse) auditJSON {
	out := auditJSON{
		Node: sp.GetFreshness().GetNode(), AppliedIndex: sp.GetFreshness().GetAppliedIndex(), LedgerTime: whenJSON(sp.GetFreshness().GetLedgerTimeMs()),
		InvariantHolds: sp.GetInvariantHolds(), InvariantError: sp.GetInvariantError(),
		IssuedFen: sp.GetIssuedFen(), ReturnedFen: sp.GetReturnedFen(), OutstandingFen: sp.GetOutstandingFen(), UnspentFen: sp.GetUnspentFen(),
		OfflineEscrowFen: sp.GetOfflineEscrowFen(), CampaignEscrowFen: sp.GetCampaignEscrowFen(), Outputs: sp.GetOutputs(), Wallets: sp.GetWallets(),
		FrozenWallets: sp.GetFrozenWallets(), FrozenFen: sp.GetFrozenFen(),
		Banks: []bankSupplyJSON{}, ledgerMs: sp.GetFreshness().GetLedgerTimeMs(),
	}
	for _, b := range sp.GetBanks() {
		out.Banks = append(out.Banks, bankSupplyJSON{Bank: b.GetBankId(), IssuedFen: b.GetIssuedFen(), ReturnedFen: b.GetReturnedFen(),
			OutstandingFen: b.GetOutstandingFen(), WalletsFen: b.GetWalletsFen(), ReserveFen: b.GetReserveFen(),
			OfflineEscrowFen: b.GetOfflineEscrowFen(), CampaignEscrowFen: b.GetCampaignEscrowFen(), Wallets: b.GetWallets(),
			FrozenWallets: b.GetFrozenWallets(), FrozenFen: b.GetFrozenFen()})
	}
	return out
}

func writeAudit(w io.Writer, a auditJSON) {
	fmt.Fprintf(w, "supply audit by %s (%s) at index %d, ledger time %s (UTC+8)\n", a.Node, a.Role, a.AppliedIndex, when(a.ledgerMs))
	if a.Note != "" {
		fmt.Fprintf(w, "note: %s\n", a.Note)
	}
	if !a.InvariantHolds {
		fmt.Fprintf(w, "invariant DOES NOT HOLD: %s\n", a.InvariantError)
		return
	}
	fmt.Fprintln(w, "invariant holds: issued − returned = unspent + offline escrow + red-packet escrow")
	fmt.Fprintf(w, "  %s − %s = %s + %s + %s\n", yuan(a.IssuedFen), yuan(a.ReturnedFen), yuan(a.UnspentFen), yuan(a.OfflineEscrowFen), yuan(a.CampaignEscrowFen))
	fmt.Fprintf(w, "  outstanding %s in %s across %s\n\n", yuan(a.OutstandingFen), plural(a.Outputs, "output"), plural(a.Wallets, "wallet"))
	t := newTable("BANK", "ISSUED", "RETURNED", "OUTSTANDING", "IN ITS WALLETS", "OFFLINE ESCROW", "CAMPAIGN ESCROW", "WALLETS", "FROZEN").alignRight(1, 2, 3, 4, 5, 6, 7, 8)
	for _, b := range a.Banks {
		t.add(b.Bank, yuan(b.IssuedFen), yuan(b.ReturnedFen), yuan(b.OutstandingFen), yuan(b.WalletsFen),
			yuan(b.OfflineEscrowFen), yuan(b.CampaignEscrowFen), fmt.Sprint(b.Wallets), fmt.Sprint(b.FrozenWallets))
	}
	t.write(w)
}
