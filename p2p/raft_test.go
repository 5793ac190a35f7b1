package p2p

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM records applied commands so the test can compare replicas.
type listFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &listSnapshot{slices.Clone(f.applied)}, nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

type listSnapshot struct{ applied []string }

func (s *listSnapshot) Persist(sink raft.SnapshotSink) error {
	for _, a := range s.applied {
		if _, err := io.WriteString(sink, a+"\n"); err != nil {
			_ = sink.Cancel()
			return err
		}
	}
	return sink.Close()
}

func (s *listSnapshot) Release() {}

type raftNode struct {
	r     *raft.Raft
	fsm   *listFSM
	trans *raft.NetworkTransport
}

func TestRaftOverStreamLayer(t *testing.T) {
	nodes := newCluster(t, 3)

	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(n.name),
			Address:  raft.ServerAddress(n.h.ID().String()),
		})
	}

	rafts := make([]*raftNode, len(nodes))
	for i, n := range nodes {
		sl, err := n.h.RaftStreamLayer()
		if err != nil {
			t.Fatal(err)
		}
		trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  sl,
			MaxPool: 3,
			Timeout: 2 * time.Second,
			Logger:  hclog.NewNullLogger(),
		})
		if got, want := trans.LocalAddr(), servers[i].Address; got != want {
			t.Fatalf("LocalAddr() = %q, want %q", got, want)
		}

		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.HeartbeatTimeout = 500 * time.Millisecond
		conf.ElectionTimeout = 500 * time.Millisecond
		conf.LeaderLeaseTimeout = 250 * time.Millisecond
		conf.CommitTimeout = 10 * time.Millisecond
		conf.Logger = hclog.NewNullLogger()

		store := raft.NewInmemStore()
		fsm := &listFSM{}
		r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
		if err != nil {
			t.Fatalf("NewRaft(%s): %v", n.name, err)
		}
		rafts[i] = &raftNode{r: r, fsm: fsm, trans: trans}
		// Registered after the host's cleanup, so it runs first: raft stops
		// before the libp2p host under it.
		t.Cleanup(func() {
			if err := r.Shutdown().Error(); err != nil {
				t.Errorf("raft shutdown %s: %v", n.name, err)
			}
			if err := trans.Close(); err != nil {
				t.Errorf("transport close %s: %v", n.name, err)
			}
		})
	}

	if err := rafts[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}

	const cmd = "credit:alice:100"
	deadline := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no leader accepted the command in time")
		}
		leader := findLeader(rafts)
		if leader == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		err := leader.r.Apply([]byte(cmd), 2*time.Second).Error()
		if err == nil {
			break
		}
		// Leadership may move during an early election under -race; only
		// those errors are worth a retry.
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
			t.Fatalf("Apply: %v", err)
		}
	}

	eventually(t, 10*time.Second, func() bool {
		for _, rn := range rafts {
			if !slices.Contains(rn.fsm.list(), cmd) {
				return false
			}
		}
		return true
	}, "all three FSMs to apply %q", cmd)

	// All replicas agree on the whole applied sequence, not just the entry.
	want := rafts[0].fsm.list()
	eventually(t, 10*time.Second, func() bool {
		for _, rn := range rafts[1:] {
			if !slices.Equal(rn.fsm.list(), want) {
				return false
			}
		}
		return true
	}, "replicas to converge on %v", want)
}

func findLeader(rafts []*raftNode) *raftNode {
	for _, rn := range rafts {
		if rn.r.State() == raft.Leader {
			return rn
		}
	}
	return nil
}
