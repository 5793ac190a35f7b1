package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/state/statepb"
)

// snapshotCmd is `dcepd snapshot save|verify|restore` (docs/operations.md,
// "Backup and recovery").
func snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up a node's ledger, verify a backup, restore a node from one",
		Long: `A backup is one file: a complete, checksummed ledger snapshot.

  dcepd snapshot save FILE --config CONFIG      from the running node (its admin socket) or a stopped node's data dir
  dcepd snapshot verify FILE [--config CONFIG]  checksum, state hash at its index, supply audit, genesis
  dcepd snapshot restore FILE --config CONFIG   seed an empty data dir; the node starts at the backup's index`,
	}
	cmd.AddCommand(snapshotSaveCmd(), snapshotVerifyCmd(), snapshotRestoreCmd())
	return cmd
}

func snapshotSaveCmd() *cobra.Command {
	var cfgPath string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "save FILE --config CONFIG",
		Short: "Write a consistent, verified backup of the node's ledger to FILE",
		Long: `save asks the running node, over the admin socket in its data directory
(data_dir/admin.sock, mode 0600: only the node's operator can use it), for a
consistent snapshot of its ledger, and writes it to FILE. If the node is
stopped, it reads the data directory instead. The file is verified (as
'snapshot verify' does) before it is renamed into place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			info, err := node.SaveBackup(context.Background(), cfg, args[0])
			if err != nil {
				return err
			}
			return printBackup(cmd.OutOrStdout(), "saved", info, jsonOut)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (TOML)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func snapshotVerifyCmd() *cobra.Command {
	var cfgPath, genesisPath string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "verify FILE [--config CONFIG | --genesis GENESIS]",
		Short: "Verify a backup: checksum, state hash at its index, supply audit, genesis",
		Long: `verify restores FILE into a temporary ledger beside it and checks
everything a node checks of a snapshot: the stream's SHA-256, record order
and bounds, the content hash and the state hash at the backup's index
recomputed from its records, and the supply audit. With --config or
--genesis the backup must be of that network (same genesis, so the same
chain id). Exit status 0 only if every check holds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var g *statepb.Genesis
			switch {
			case cfgPath != "":
				cfg, err := node.LoadConfig(cfgPath)
				if err != nil {
					return err
				}
				genesisPath = cfg.Path(cfg.Genesis)
				fallthrough
			case genesisPath != "":
				var err error
				if g, err = node.LoadGenesis(genesisPath); err != nil {
					return err
				}
			}
			info, err := node.VerifyBackup(args[0], g)
			if err != nil {
				return err
			}
			return printBackup(cmd.OutOrStdout(), "verified", info, jsonOut)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file: the backup must be of its genesis")
	cmd.Flags().StringVar(&genesisPath, "genesis", "", "genesis file: the backup must be of this network")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func snapshotRestoreCmd() *cobra.Command {
	var cfgPath string
	var newNetwork, jsonOut bool
	cmd := &cobra.Command{
		Use:   "restore FILE --config CONFIG [--new-network]",
		Short: "Seed an empty or lost node's data directory from a verified backup",
		Long: `restore verifies FILE and writes it as the node's ledger into its data
directory, which must hold no ledger and no Raft state (move a damaged one
aside first). The node then starts at the backup's index:

  without --new-network  it joins the running network and takes what
                         follows from the leader (a lost node)
  with --new-network     every node of a network that lost all its nodes is
                         restored from the same backup with this flag: each
                         gets a Raft snapshot at the backup's index whose
                         configuration is the backup's membership, and the
                         network continues the same chain from there`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			info, err := node.RestoreBackup(cfg, args[0], newNetwork)
			if err != nil {
				return err
			}
			return printBackup(cmd.OutOrStdout(), "restored", info, jsonOut)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (TOML)")
	cmd.Flags().BoolVar(&newNetwork, "new-network", false, "every node was lost: start a new network from this backup (same chain, same state)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// backupJSON is the --json form of a backup's description.
type backupJSON struct {
	Path           string   `json:"path"`
	Bytes          int64    `json:"bytes"`
	ChainID        string   `json:"chain_id"`
	GenesisHash    string   `json:"genesis_hash"`
	LedgerIndex    uint64   `json:"ledger_index"`
	StateHash      string   `json:"state_hash"`
	LedgerTimeMs   int64    `json:"ledger_time_ms"`
	OutstandingFen uint64   `json:"outstanding_fen"`
	Wallets        uint64   `json:"wallets"`
	Members        []string `json:"members"`
}

func printBackup(w io.Writer, verb string, info *node.BackupInfo, asJSON bool) error {
	var members []string
	for _, m := range info.Members {
		members = append(members, m.GetName()+"("+strings.TrimPrefix(strings.ToLower(m.GetRole().String()), "node_role_")+")")
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(backupJSON{
			Path: info.Path, Bytes: info.Bytes, ChainID: info.ChainID, GenesisHash: fmt.Sprintf("%x", info.GenesisHash),
			LedgerIndex: info.Index, StateHash: fmt.Sprintf("%x", info.StateHash), LedgerTimeMs: info.LedgerTimeMs,
			OutstandingFen: info.Supply.OutstandingFen, Wallets: info.Supply.Wallets, Members: members,
		})
	}
	_, err := fmt.Fprintf(w, "%s %s (%d bytes): chain %s, ledger index %d, state hash %x\n  supply audit holds: %d fen outstanding, %d wallets\n  members: %s\n",
		verb, info.Path, info.Bytes, info.ChainID, info.Index, info.StateHash, info.Supply.OutstandingFen, info.Supply.Wallets, strings.Join(members, ", "))
	if err == nil && verb == "restored" {
		_, err = fmt.Fprintln(w, "  start the node: dcepd run --config CONFIG")
	}
	return err
}
