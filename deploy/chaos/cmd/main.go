// Command cmd runs dcep's fault campaign (package deploy/chaos): every node
// of a `dcepd testnet` network a `dcepd run` process in its own network
// namespace, faults from a seed, a checked workload, a report. Run as root
// (namespaces, nftables, tc, tmpfs):
//
//	go run ./deploy/chaos/cmd -seed 1              # one fault of each kind
//	go run ./deploy/chaos/cmd -seed 7 -faults 1000 # a soak
//	go run ./deploy/chaos/cmd -cleanup             # remove what a crashed run left
//
// The exit status is 1 if the campaign found a violation (the report names
// it, with the command that replays it), 2 if it could not run.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dcep/dcep/deploy/chaos"
)

func main() {
	var cfg chaos.Config
	kinds := flag.String("kinds", "all", "comma-separated fault kinds (all: "+fmt.Sprint(chaos.Kinds)+")")
	cleanup := flag.Bool("cleanup", false, "only remove namespaces, mounts, rules and processes a campaign left, then exit")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	flag.Int64Var(&cfg.Seed, "seed", 1, "seed of the schedule, the targets and the workload")
	flag.IntVar(&cfg.Faults, "faults", 0, "faults to inject (0: one of each kind)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "stop injecting after this long (0: after -faults)")
	flag.StringVar(&cfg.Fabric, "fabric", "auto", "auto, netns or loopback")
	flag.StringVar(&cfg.Dir, "dir", "", "run directory (default: a new temp dir, removed after a passing run)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the run directory after a passing run")
	flag.StringVar(&cfg.Dcepd, "dcepd", "", "dcepd binary (default: built from this module)")
	flag.IntVar(&cfg.Cells, "cells", 6, "workload cells (four wallets each)")
	flag.IntVar(&cfg.WorkersPerCell, "workers", 2, "concurrent clients per cell")
	flag.IntVar(&cfg.PaceMs, "pace-ms", 150, "mean pause between one client's operations")
	flag.BoolVar(&cfg.Replay, "replay", true, "re-validate every node's log at the end (AuditService.Replay)")
	recoverTimeout := flag.Duration("recover-timeout", 2*time.Minute, "how long every node may take to be ready after a heal")
	flag.Parse()
	if *cleanup {
		if err := chaos.Cleanup(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos cleanup:", err)
			os.Exit(2)
		}
		return
	}
	var err error
	if cfg.Kinds, err = chaos.ParseKinds(*kinds); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	cfg.RecoverTimeout = *recoverTimeout
	rep, err := chaos.Run(cfg)
	if rep != nil {
		rep.Print(os.Stdout)
		if *jsonOut != "" {
			if werr := rep.WriteJSON(*jsonOut); werr != nil {
				fmt.Fprintln(os.Stderr, "chaos:", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if rep.Failed() {
		os.Exit(1)
	}
}
