package capacity

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// TestTxBytesMatchesModel: the model's transfer size is the size of a real
// signed 2-in/2-out transfer, within 10%.
func TestTxBytesMatchesModel(t *testing.T) {
	n := statetest.NewNet(t, "capacity")
	var id [32]byte
	tx := n.Transfer(t, "alice.wallet.0001", []*statepb.Outpoint{statetest.Out(id, 0), statetest.Out(id, 1)},
		statetest.Pay("bob.wallet.0002", 12_345), statetest.Pay("alice.wallet.0001", 99_999))
	in, _ := Defaults(1, 1)
	if d := float64(len(tx)) - in.TxBytes; d > in.TxBytes/10 || d < -in.TxBytes/10 {
		t.Fatalf("a transfer is %d bytes; the model says %.0f", len(tx), in.TxBytes)
	}
}

// TestModel: the arithmetic, on hand-checked figures, and the direction of
// each input.
func TestModel(t *testing.T) {
	in, _ := Defaults(300_000, 64)
	r := Run(in)
	// (300k × 88 + 295,312.5 × 40) × 1.5 µs = 57.3 cores; 19.2 usable per host.
	if r.CoresPerBank < 57 || r.CoresPerBank > 57.5 || r.HostsByCPU != 3 {
		t.Fatalf("cores %.2f, hosts %d", r.CoresPerBank, r.HostsByCPU)
	}
	if r.Binding != "CPU" || r.Hosts != 3 {
		t.Fatalf("binding %s hosts %d", r.Binding, r.Hosts)
	}
	if r.P99IntraMs != 69 || r.P99CrossMs != 158 {
		t.Fatalf("p99 %v %v", r.P99IntraMs, r.P99CrossMs)
	}
	more := in
	more.TargetTxPerSec *= 2
	if Run(more).CoresPerBank <= r.CoresPerBank {
		t.Fatal("twice the rate, no more CPU")
	}
	slow := in
	slow.NICBitsPerSec = 0.5e9
	if got := Run(slow); got.Binding != "network" {
		t.Fatalf("500 Mbit/s: bound by %s", got.Binding)
	}
	var b strings.Builder
	src := map[string]string{}
	Print(&b, in, src, r)
	if !strings.Contains(b.String(), "hosts per bank 3 (bound by CPU)") {
		t.Fatal(b.String())
	}
}

// TestRaftGroupCost measures what one hashicorp/raft group costs a host
// when idle — goroutines per replica and heartbeats a leader sends — with
// real raft instances (in-memory stores and transport, the protocol code
// unchanged), for the scale-out design's "groups per host" figure.
func TestRaftGroupCost(t *testing.T) {
	const groups, replicas = 16, 3
	before := runtime.NumGoroutine()
	var all []*raft.Raft
	for g := range groups {
		var trans []*raft.InmemTransport
		var servers []raft.Server
		for i := range replicas {
			addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("g%d-r%d", g, i)))
			trans = append(trans, tr)
			servers = append(servers, raft.Server{ID: raft.ServerID(addr), Address: addr})
		}
		for i := range trans {
			for j := range trans {
				if i != j {
					trans[i].Connect(trans[j].LocalAddr(), trans[j])
				}
			}
		}
		for i, tr := range trans {
			cfg := raft.DefaultConfig()
			cfg.LocalID = servers[i].ID
			cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 1000*time.Millisecond, 1000*time.Millisecond, 500*time.Millisecond
			cfg.LogOutput = io.Discard
			cfg.LogLevel = "ERROR"
			store := raft.NewInmemStore()
			snaps := raft.NewInmemSnapshotStore()
			if err := raft.BootstrapCluster(cfg, store, store, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
				t.Fatal(err)
			}
			r, err := raft.NewRaft(cfg, &nopFSM{}, store, store, snaps, tr)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
	}
	defer func() {
		for _, r := range all {
			r.Shutdown().Error()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for leaders(all) < groups {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d groups have a leader", leaders(all), groups)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	perReplica := float64(runtime.NumGoroutine()-before) / float64(groups*replicas)
	// A leader runs a replication and a heartbeat goroutine per follower;
	// it sends a heartbeat to each every HeartbeatTimeout/10.
	t.Logf("goroutines per replica (3 per group, idle, one leader each): %.1f", perReplica)
	t.Logf("heartbeats a leader sends: %d followers × 10/s = %d/s per group", replicas-1, (replicas-1)*10)
	if perReplica < 2 || perReplica > 40 {
		t.Fatalf("goroutines per replica %.1f: outside what hashicorp/raft is known to run", perReplica)
	}
}

func leaders(all []*raft.Raft) int {
	n := 0
	for _, r := range all {
		if r.State() == raft.Leader {
			n++
		}
	}
	return n
}

type nopFSM struct{}

func (*nopFSM) Apply(*raft.Log) any                 { return nil }
func (*nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, fmt.Errorf("no snapshots") }
func (*nopFSM) Restore(io.ReadCloser) error         { return nil }
