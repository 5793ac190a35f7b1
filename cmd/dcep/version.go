package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// ledgerVersionCmd is `dcep ledger-version activate`: the central bank
// schedules a ledger version (docs/operations.md, "Rolling upgrade").
func (a *app) ledgerVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger-version",
		Short: "Central bank: activate a ledger version at an agreed log index",
		Args:  args(0, ""),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var version uint32
	var at uint64
	activate := &cobra.Command{
		Use:   "activate --version N --at INDEX",
		Short: "Schedule ledger version N from log index INDEX on",
		Long: `activate signs an ActivateVersion with the central bank's key. From log index
INDEX on the ledger runs version N; a node whose build cannot run it stops
before that index with a message naming the version. Upgrade every node
first (docs/operations.md, "Rolling upgrade"), then pick an index far
enough ahead for every operator to check (dcep status shows the index now).`,
		Example: `  dcep ledger-version activate --version 2 --at 250000`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if version < 2 || at == 0 {
				return usage("--version (2 or more) and --at (a log index) are required")
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
			tx, err := b.ActivateVersion(cb.Private, version, at)
			if err != nil {
				return err
			}
			cl, _ := a.client()
			r, err := cl.SubmitOK(ctx, tx)
			if err != nil {
				return err
			}
			return a.emit(txOut(r), func(w io.Writer) {
				fmt.Fprintf(w, "ledger version %d activates at log index %d\n", version, at)
				writeTx(w, r)
			})
		}),
	}
	activate.Flags().Uint32Var(&version, "version", 0, "ledger version to activate")
	activate.Flags().Uint64Var(&at, "at", 0, "log index from which it runs")
	cmd.AddCommand(activate)
	return cmd
}
