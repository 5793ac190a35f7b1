// Command dcepd is the dcep node. See `dcepd --help`.
package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client/keystore/pkcs11key"
	"github.com/dcep/dcep/deploy/k8s"
	"github.com/dcep/dcep/internal/cmddoc"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		// One line, whatever the error (docs/operations.md, "Start-up
		// errors"): the cause and, for start-up failures, the fix.
		fmt.Fprintln(os.Stderr, "dcepd:", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "dcepd",
		Short: "dcep node: the ledger operating banks and regulators run for a retail CBDC",
		Long: `dcepd runs a dcep node.

  dcepd dev                    the whole network on this machine, no configuration
  dcepd run --config FILE      one node of a real deployment
  dcepd testnet --out DIR ...  genesis, keys and one config per node for a deployment
  dcepd snapshot save|verify|restore   back up a node, verify a backup, restore a node`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version,
	}
	root.AddCommand(
		runCmd(),
		devCmd(),
		testnetCmd(),
		snapshotCmd(),
		recoverCmd(),
		cmddoc.ManCommand(),
	)
	return root
}

func runCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run one node of a deployment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			level := new(slog.LevelVar)
			log, err := newLogger(os.Stderr, cfg.Log, level)
			if err != nil {
				return err
			}
			key, err := loadNodeKey(cfg)
			if err != nil {
				return err
			}
			maxVersion, err := ledgerVersionMax()
			if err != nil {
				return err
			}
			n, err := node.Start(cfg, node.Options{Key: key, Logger: log, MaxLedgerVersion: maxVersion})
			if err != nil {
				return err
			}
			stop, hup := signalled(), hangups()
		wait:
			for {
				select {
				case <-hup:
					reload(log, cfgPath, level, n)
					continue
				case <-stop:
					log.Info("shutting down")
				case <-n.Fatal():
					if errors.Is(n.FatalErr(), node.ErrRemoved) {
						log.Warn("shutting down: removed from the network", "error", n.FatalErr())
						break wait
					}
					log.Error("shutting down: the node cannot go on", "error", n.FatalErr())
				}
				break
			}
			err = closeNodes(n)
			if errors.Is(err, node.ErrRemoved) {
				// Expected, and final: exit 0 so that a supervisor does
				// not restart a node that is no longer a member.
				fmt.Fprintln(os.Stderr, "dcepd:", err)
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (TOML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func testnetCmd() *cobra.Command {
	var out, chainID, hosts, k8sDir string
	var regulators, p2pPort, apiPort int
	var ko k8s.Options
	cmd := &cobra.Command{
		Use:   "testnet --out DIR --hosts HOST[,HOST...]",
		Short: "Write genesis, keys and one config per node for a multi-host deployment",
		Long: `testnet writes a new network into --out:

  genesis.json               the genesis every node loads
  keys/                      operator keys (central bank, the six banks) and node keys
  nodes/<name>/              one directory per node: config.toml, its key, data/
  network.json               node names, roles and API addresses

Give one host for all nodes, or one per node in the order
pboc, icbc, abc, boc, ccb, bocom, psbc, regulator-1, ...
Ship nodes/<name>/ and genesis.json to each host and run
  dcepd run --config nodes/<name>/config.toml
Move each bank's key in keys/ to that bank and delete the rest.

With --k8s DIR the nodes are pods: each node's host is its pod's DNS name
(NAME-0.NAME.NAMESPACE.svc.CLUSTER-DOMAIN), every node uses ports 7101 and
8101, and DIR gets Kubernetes manifests (kubectl apply -f DIR): per node a
StatefulSet, PersistentVolumeClaim, Secret (node key), ConfigMap (config,
genesis), headless and API Services; a PodDisruptionBudget over the voters.
Operator keys stay in --out/keys, off the cluster (deploy/README.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if k8sDir != "" {
				if cmd.Flags().Changed("hosts") || cmd.Flags().Changed("p2p-port") || cmd.Flags().Changed("api-port") {
					return errors.New("--k8s sets hosts and ports itself (the pods' DNS names, 7101 and 8101); drop --hosts, --p2p-port and --api-port")
				}
				ko.ChainID, ko.Regulators = chainID, regulators
				net, err := k8s.Generate(out, k8sDir, ko)
				if err != nil {
					return err
				}
				fmt.Printf("wrote network %q to %s and its Kubernetes manifests to %s:\n", net.ChainID, out, k8sDir)
				printNodes(os.Stdout, net)
				return nil
			}
			net, err := netgen.Generate(out, netgen.Options{
				ChainID: chainID, Regulators: regulators, Hosts: strings.Split(hosts, ","),
				P2PPort: p2pPort, APIPort: apiPort,
			})
			if err != nil {
				return err
			}
			fmt.Printf("wrote network %q to %s:\n", net.ChainID, out)
			printNodes(os.Stdout, net)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write (must not hold a network)")
	f.StringVar(&chainID, "chain-id", "dcep-testnet", "chain id")
	f.StringVar(&hosts, "hosts", "127.0.0.1", "comma-separated hosts: one for all nodes, or one per node")
	f.IntVar(&regulators, "regulators", 1, "number of regulator (read-only) nodes")
	f.IntVar(&p2pPort, "p2p-port", 7101, "libp2p port (on a shared host, node i uses port+i)")
	f.IntVar(&apiPort, "api-port", 8101, "API port (on a shared host, node i uses port+i)")
	f.StringVar(&k8sDir, "k8s", "", "also write Kubernetes manifests for the network into this directory")
	f.StringVar(&ko.Namespace, "namespace", "dcep", "with --k8s: the Kubernetes namespace")
	f.StringVar(&ko.ClusterDomain, "cluster-domain", "cluster.local", "with --k8s: the cluster's DNS domain")
	f.StringVar(&ko.Image, "image", "dcep:dev", "with --k8s: the dcep image (deploy/container)")
	f.StringVar(&ko.StorageSize, "storage-size", "10Gi", "with --k8s: each node's volume size")
	f.StringVar(&ko.StorageClass, "storage-class", "", "with --k8s: the volumes' storage class (default: the cluster's)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func printNodes(w io.Writer, net *netgen.Network) {
	for _, n := range net.Nodes {
		fmt.Fprintf(w, "  %-13s %-10s %s\n", n.Name, n.Role, n.API)
	}
}

// ledgerVersionMax is $DCEP_LEDGER_VERSION_MAX: the highest ledger version
// this process runs, for upgrade tests where the same binary stands for a
// newer build (0: this build's own, state.LedgerVersion).
func ledgerVersionMax() (uint32, error) {
	v := os.Getenv("DCEP_LEDGER_VERSION_MAX")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("$DCEP_LEDGER_VERSION_MAX %q: want a version 1..65535", v)
	}
	return uint32(n), nil
}

// loadNodeKey reads the node's identity key, naming the config key and
// the fix when it cannot: node_key is a keystore file, or a pkcs11: URI
// naming an Ed25519 key in a hardware token (client/keystore/pkcs11key),
// which then signs the libp2p handshakes.
func loadNodeKey(cfg *node.Config) (crypto.Signer, error) {
	if pkcs11key.IsURI(cfg.NodeKey) {
		s, err := pkcs11key.Open(cfg.NodeKey)
		if err != nil {
			return nil, &node.StartupError{Kind: node.ErrBadConfig, Err: err,
				Cause: fmt.Sprintf("node_key: %v", err),
				Fix:   "check the pkcs11: URI's token, object, module-path and PIN (docs/operations.md)"}
		}
		return s, nil
	}
	path := cfg.Path(cfg.NodeKey)
	load := netgen.LoadNodeKey
	if cfg.NodeKeyCheckPerms != nil && !*cfg.NodeKeyCheckPerms {
		load = netgen.LoadNodeKeyUnchecked
	}
	key, err := load(path)
	if err != nil {
		return nil, &node.StartupError{Kind: node.ErrBadConfig, Err: err,
			Cause: fmt.Sprintf("node_key %s: %v", path, err),
			Fix:   "point node_key at this node's key file (dcepd testnet: nodes/NAME/keys/node.key)"}
	}
	return key, nil
}

// hangups delivers SIGHUP (which would otherwise end the process).
func hangups() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch
}

// reload is SIGHUP: the config file is read again for log.level, and the
// API's TLS certificate and key are read again from their files. Nothing
// else changes without a restart; a bad file is logged and the old
// setting kept. The node never stops on SIGHUP.
func reload(log *slog.Logger, cfgPath string, level *slog.LevelVar, nodes ...*node.Node) {
	log.Info("SIGHUP: reloading log level and TLS certificates")
	if cfg, err := node.LoadConfig(cfgPath); err != nil {
		log.Warn("SIGHUP: config not reloaded; keeping the old log level", "error", err)
	} else if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		log.Warn("SIGHUP: bad log.level; keeping the old one", "level", cfg.Log.Level)
	} else {
		log.Info("SIGHUP: log level set", "level", level.Level().String())
	}
	for _, n := range nodes {
		if err := n.ReloadTLS(); err != nil {
			log.Warn("SIGHUP: TLS certificate not reloaded; keeping the old one", "error", err)
		}
	}
}

// newLogger builds the node's slog logger from its log config; level is
// set from it and may be changed later (SIGHUP).
func newLogger(w io.Writer, c node.LogConfig, level *slog.LevelVar) (*slog.Logger, error) {
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level %q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: want text or json", c.Format)
}

// waitSignal blocks until SIGINT or SIGTERM.
func waitSignal() { <-signalled() }

// signalled is closed on the first SIGINT or SIGTERM.
func signalled() <-chan struct{} {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		<-ch
		signal.Stop(ch)
		close(done)
	}()
	return done
}

// closeNodes shuts nodes down in parallel, each draining its API first.
func closeNodes(nodes ...*node.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func(n *node.Node) { errs <- n.Close(ctx) }(n)
	}
	var all []error
	for range nodes {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// defaultDevDir is where dcepd dev keeps its network: $DCEP_DEV_DIR, or
// ~/.dcep/dev.
func defaultDevDir() string {
	if d := os.Getenv("DCEP_DEV_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dcep-dev"
	}
	return filepath.Join(home, ".dcep", "dev")
}
