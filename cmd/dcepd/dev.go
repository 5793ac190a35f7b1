package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
	"github.com/dcep/dcep/state"
)

// devChainID names the development network.
const devChainID = "dcep-dev"

func devCmd() *cobra.Command {
	var dir string
	var p2pPort, apiPort int
	var guaranteeYuan uint64
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole network on this machine with development keys",
		Long: `dev starts the central bank and the six operating banks as seven Raft
voters and one regulator (read-only) node, all in this process on loopback.

The first run writes development keys, genesis and configs under --dir;
later runs start the same network again with its state. The keys go into
--dir/keys, which is where the dcep CLI looks by default, so dcep status
and dcep issue work with no flags. Each bank's offline guarantee wallet that
was never funded gets --guarantee yuan (issued to the bank's reserve, then
moved into the guarantee), so the banks can certify offline purses under the
genesis cover ratio (10% of their exposure) and pay honest payees of double
spends (docs/offline.md). Ctrl-C stops the network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(dir, p2pPort, apiPort, guaranteeYuan*100)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", defaultDevDir(), "where the dev network lives ($DCEP_DEV_DIR)")
	f.IntVar(&p2pPort, "p2p-port", 7101, "first libp2p port (used on first run only)")
	f.IntVar(&apiPort, "api-port", 8101, "first API port (used on first run only)")
	f.Uint64Var(&guaranteeYuan, "guarantee", netgen.DevGuaranteeFen/100, "yuan put into each bank's offline guarantee wallet if it was never funded (0: none)")
	return cmd
}

func runDev(dir string, p2pPort, apiPort int, guaranteeFen uint64) error {
	fresh := !netgen.Exists(dir)
	if fresh {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if _, err := netgen.Generate(dir, netgen.Options{
			ChainID: devChainID, Regulators: 1, P2PPort: p2pPort, APIPort: apiPort,
			// Eight nodes share one laptop and a small ledger.
			StateCacheMB: 64,
		}); err != nil {
			return fmt.Errorf("generate dev network: %w", err)
		}
	}
	net, err := netgen.Load(dir)
	if err != nil {
		return err
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	nodes, err := startDevNodes(net, logDir)
	if err != nil {
		return devStartErr(dir, err)
	}
	printDevBanner(dir, net, fresh)
	waitReady(nodes)
	if guaranteeFen > 0 {
		fundDevGuarantees(dir, net, guaranteeFen)
	}
	fmt.Println("network ready. Ctrl-C stops it; its state stays in", dir)
	// SIGHUP (a closed terminal, a log rotation) must not stop the network.
	hup := hangups()
	go func() {
		for range hup {
			for _, n := range nodes {
				if err := n.ReloadTLS(); err != nil {
					fmt.Println("SIGHUP: TLS certificate not reloaded:", err)
				}
			}
		}
	}()
	waitSignal()
	fmt.Println("stopping...")
	return closeNodes(nodes...)
}

// devStartErr says what a failed dev start means for dev: the usual two
// are another dcepd dev on the same --dir, or on the same ports.
func devStartErr(dir string, err error) error {
	var se *node.StartupError
	if !errors.As(err, &se) {
		return err
	}
	// A new error: the wrapping "start NODE: " fixed its text already.
	dev := *se
	switch {
	case errors.Is(err, node.ErrDataDirInUse):
		dev.Fix = "a dcepd dev already runs on " + dir + ": use that one, stop it (Ctrl-C), or pass --dir for another network"
	case errors.Is(err, node.ErrPortInUse):
		dev.Fix = "another process (a dcepd dev on another --dir?) has the port: stop it, or remove " + dir +
			" and run again with --p2p-port and --api-port (ports are chosen on the first run)"
	}
	return &dev
}

func startDevNodes(net *netgen.Network, logDir string) ([]*node.Node, error) {
	var nodes []*node.Node
	for _, nn := range net.Nodes {
		n, err := startDevNode(nn, logDir)
		if err != nil {
			_ = closeNodes(nodes...)
			return nil, fmt.Errorf("start %s: %w", nn.Name, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func startDevNode(nn netgen.NetworkNode, logDir string) (*node.Node, error) {
	cfg, err := node.LoadConfig(nn.Config)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(logDir, nn.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	log, err := newLogger(f, cfg.Log, new(slog.LevelVar))
	if err != nil {
		return nil, err
	}
	key, err := loadNodeKey(cfg)
	if err != nil {
		return nil, err
	}
	return node.Start(cfg, node.Options{Key: key, Logger: log})
}

func printDevBanner(dir string, net *netgen.Network, fresh bool) {
	if fresh {
		fmt.Printf("created dev network %q in %s\n", net.ChainID, dir)
	} else {
		fmt.Printf("restarted dev network %q from %s\n", net.ChainID, dir)
	}
	fmt.Println("\nnodes (API addresses):")
	printNodes(os.Stdout, net)
	fmt.Printf(`
keys (central bank, six banks, nodes): %s  (the dcep CLI's default)
logs: %s

next, in another terminal:
  go run ./cmd/dcep status
  go run ./cmd/dcep issue --bank icbc --amount 1000000
  go run ./cmd/dcep wallet create alice --bank icbc --tier 4
  go run ./cmd/dcep exchange --bank icbc --to alice --amount 500
  curl -s http://%s/status
`, filepath.Join(dir, "keys"), filepath.Join(dir, "logs"), trimScheme(net.Nodes[0].API))
}

// fundDevGuarantees puts fen into each bank's offline guarantee wallet that
// was never funded (the first run; a run interrupted before it), so the
// banks can certify offline purses under the genesis cover ratio and pay
// the honest payees of their wallets' double spends.
func fundDevGuarantees(dir string, net *netgen.Network, fen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	funded, err := netgen.FundGuarantees(ctx, dir, net.Nodes[0].API, fen)
	if err != nil {
		fmt.Println("warning: funding the banks' offline guarantees:", err)
		return
	}
	n := 0
	for _, f := range funded {
		if f.Fen > 0 {
			n++
		}
	}
	if n > 0 {
		fmt.Printf("funded the offline guarantee of %d banks with %s each (issued to the reserve, moved to BANK.guarantee)\n", n, state.Fen(fen))
	}
}

func trimScheme(u string) string {
	const p = "http://"
	if len(u) > len(p) && u[:len(p)] == p {
		return u[len(p):]
	}
	return u
}

// waitReady waits (up to a minute) until a leader is elected and every node
// is ready, printing progress.
func waitReady(nodes []*node.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		ready := 0
		for _, n := range nodes {
			if n.Ready() {
				ready++
			}
		}
		if ready == len(nodes) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Println("warning: not every node is ready after a minute; see the logs")
}
