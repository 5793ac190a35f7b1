package main

import "github.com/spf13/cobra"

func (a *app) demoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Play a scenario against a running network (e.g. dcepd dev)",
		Args:  args(0, ""),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.demoSuzhouCmd())
	return cmd
}
