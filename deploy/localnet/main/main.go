// Command localnet runs a generated dcep network as separate dcepd processes
// on this machine until Ctrl-C. See deploy/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/node/netgen"
)

func main() {
	dir := flag.String("dir", "", "network directory (generated on first use)")
	bin := flag.String("dcepd", "dcepd", "path to the dcepd binary")
	regulators := flag.Int("regulators", 1, "regulator nodes (first use only)")
	p2pPort := flag.Int("p2p-port", 7201, "first libp2p port (first use only)")
	apiPort := flag.Int("api-port", 8201, "first API port (first use only)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "localnet: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *bin, *regulators, *p2pPort, *apiPort); err != nil {
		fmt.Fprintln(os.Stderr, "localnet:", err)
		os.Exit(1)
	}
}

func run(dir, bin string, regulators, p2pPort, apiPort int) error {
	var net *localnet.Network
	var err error
	if netgen.Exists(dir) {
		net, err = localnet.Open(dir, bin)
	} else {
		net, err = localnet.Create(dir, bin, localnet.Options{ChainID: "dcep-localnet", Regulators: regulators, P2PPort: p2pPort, APIPort: apiPort})
	}
	if err != nil {
		return err
	}
	if err := net.StartAll(); err != nil {
		_ = net.StopAll()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range net.Info.Nodes {
		if err := net.WaitReady(ctx, n.Name); err != nil {
			_ = net.StopAll()
			return err
		}
		fmt.Printf("  %-13s %-10s %s  (pid running, log %s/logs/%s.log)\n", n.Name, n.Role, n.API, dir, n.Name)
	}
	fmt.Println("all nodes ready; Ctrl-C stops them")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	return net.StopAll()
}
