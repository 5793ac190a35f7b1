package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node"
)

// recoverCmd is `dcepd recover`: a quorum of voters lost for good
// (docs/operations.md, "A quorum lost for good").
func recoverCmd() *cobra.Command {
	var cfgPath string
	var inspect bool
	cmd := &cobra.Command{
		Use:   "recover --config CONFIG (--inspect | ORDER)",
		Short: "Last resort when a quorum of voters is lost for good: force a new configuration on a stopped survivor",
		Long: `recover acts on a stopped survivor of a network that lost a quorum of its voters
for good, as Consul's and rqlite's peers.json do, signed off by the central bank.

  dcepd recover --config CONFIG --inspect   where this survivor's ledger and log end
  dcepd recover --config CONFIG ORDER       verify ORDER (dcep recovery order: the
                                            central bank's signed removals of the lost
                                            members) against this node's ledger, then
                                            append the removals and the configuration
                                            they leave to its log

Run it on ONE survivor: the one whose log ends last (highest term, then index,
from --inspect on each). Re-seed every other survivor from it (dcepd snapshot
save with it stopped, then snapshot restore on each), start them all.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if inspect {
				applied, p, err := node.InspectSurvivor(cfg)
				if err != nil {
					return err
				}
				var servers []string
				for _, s := range p.Configuration.Servers {
					servers = append(servers, string(s.ID))
				}
				return json.NewEncoder(w).Encode(map[string]any{
					"node": cfg.Name, "ledger_applied_index": applied, "log_last_index": p.LastIndex, "log_last_term": p.LastTerm,
					"current_term": p.CurrentTerm, "configuration": servers,
				})
			}
			if len(args) != 1 {
				return fmt.Errorf("recover needs the order file (or --inspect)")
			}
			order, err := node.ReadRecoveryOrder(args[0])
			if err != nil {
				return err
			}
			res, err := node.Recover(cfg, order)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "recovered %s (chain %s): removed %s; voters now %s; forced configuration at log index %d (log ended at %d, term %d; ledger at %d)\nstart it: dcepd run --config %s\n",
				cfg.Name, res.ChainID, strings.Join(res.Removed, ", "), strings.Join(res.Voters, ", "), res.Index,
				res.Position.LastIndex, res.Position.LastTerm, res.LedgerAt, cfgPath)
			return err
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (TOML)")
	cmd.Flags().BoolVar(&inspect, "inspect", false, "only print where this survivor's ledger and log end (JSON)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
