package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/state/statepb"
)

// recoveryOrderJSON is the order file `dcepd recover` reads
// (node.RecoveryOrder).
type recoveryOrderJSON struct {
	ChainID string   `json:"chain_id"`
	Remove  []string `json:"remove"`
	Txs     [][]byte `json:"txs"`
}

func (a *app) recoveryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recovery",
		Short: "Central bank: sign off disaster recovery",
		Args:  args(0, ""),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var remove []string
	var out string
	order := &cobra.Command{
		Use:   "order --remove NAME[,NAME...] --out FILE",
		Short: "Sign the removal of members lost for good, for dcepd recover",
		Long: `order signs, with the central bank's key, one ChangeMembership REMOVE per lost
member and writes them to FILE. Survivors of a network that lost a quorum of
its voters for good verify it (dcepd recover) before forcing the configuration
it leaves; the removals then commit in the log like any transaction. The node
asked (--node, any survivor: only its genesis is read) names the network.`,
		Example: `  dcep recovery order --remove ccb,bocom,psbc,pboc --out recovery.json`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if len(remove) == 0 || out == "" {
				return usage("--remove and --out are required")
			}
			ctx := cmd.Context()
			cb, err := a.centralBankKey(ctx)
			if err != nil {
				return err
			}
			b, err := a.builder(ctx)
			if err != nil {
				return err
			}
			o := recoveryOrderJSON{ChainID: b.Genesis().GetChainId(), Remove: remove}
			for _, name := range remove {
				tx, err := b.ChangeMembership(cb.Private, statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE, &statepb.Node{Name: name})
				if err != nil {
					return err
				}
				o.Txs = append(o.Txs, tx.Raw)
			}
			raw, err := json.MarshalIndent(o, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, append(raw, '\n'), 0o600); err != nil {
				return err
			}
			return a.emit(o, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %s: the central bank removes %s from %s\n", out, strings.Join(remove, ", "), o.ChainID)
			})
		}),
	}
	order.Flags().StringSliceVar(&remove, "remove", nil, "members lost for good")
	order.Flags().StringVar(&out, "out", "", "order file to write")
	cmd.AddCommand(order)
	return cmd
}
