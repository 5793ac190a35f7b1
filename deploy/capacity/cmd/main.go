// Command capacity prints the calibrated capacity model of a sharded dcep
// network (docs/scale-out.md) for a target rate.
//
//	go run ./deploy/capacity/cmd -target 300000 -shards 64
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dcep/dcep/deploy/capacity"
)

func main() {
	target := flag.Float64("target", 300_000, "transfers per second, the whole network")
	shards := flag.Int("shards", 64, "Raft groups")
	rtt := flag.Float64("rtt-ms", 40, "round trip between cities")
	cores := flag.Float64("cores", 32, "cores per host")
	flag.Parse()
	if *target <= 0 || *shards < 1 || *shards > 4096 || *rtt < 0 || *cores <= 0 {
		fmt.Fprintln(os.Stderr, "capacity: -target > 0, 1 ≤ -shards ≤ 4096, -rtt-ms ≥ 0, -cores > 0")
		os.Exit(2)
	}
	in, src := capacity.Defaults(*target, *shards)
	in.RTTMs, in.CoresPerHost = *rtt, *cores
	capacity.Print(os.Stdout, in, src, capacity.Run(in))
}
