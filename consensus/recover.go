package consensus

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus/consensuspb"
	"github.com/dcep/dcep/state/statepb"
)

// LogPosition is where a stopped node's Raft log ends: what the operator
// compares between survivors before forcing a configuration (the one with
// the latest log is recovered; docs/operations.md, "A quorum lost").
type LogPosition struct {
	LastIndex, LastTerm uint64
	// CurrentTerm is the term in the stable store.
	CurrentTerm uint64
	// Configuration is the latest one in the log or snapshot.
	Configuration raft.Configuration
}

// openStopped opens a stopped node's log (verified, as at start) and
// snapshots; the caller closes the returned node's stores.
func openStopped(dir string, log *slog.Logger) (*Node, *raft.FileSnapshotStore, error) {
	n := &Node{cfg: Config{Dir: dir}, log: log, stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := n.openLog(); err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, newHCLogger(log).Named("snapshots"))
	if err != nil {
		n.bolt.Close()
		return nil, nil, fmt.Errorf("open snapshots: %w", err)
	}
	return n, snaps, nil
}

// InspectLog reports where a stopped node's log ends.
func InspectLog(dir string, log *slog.Logger) (LogPosition, error) {
	n, snaps, err := openStopped(dir, log)
	if err != nil {
		return LogPosition{}, err
	}
	defer n.bolt.Close()
	return position(n.store, snaps)
}

func position(logs *checkedLog, snaps *raft.FileSnapshotStore) (LogPosition, error) {
	var p LogPosition
	metas, err := snaps.List()
	if err != nil {
		return p, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		p.LastIndex, p.LastTerm, p.Configuration = metas[0].Index, metas[0].Term, metas[0].Configuration
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return p, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return p, err
	}
	for i := max(first, p.LastIndex+1); first > 0 && i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return p, fmt.Errorf("read log entry %d: %w", i, err)
		}
		p.LastIndex, p.LastTerm = l.Index, l.Term
		if l.Type == raft.LogConfiguration {
			p.Configuration = raft.DecodeConfiguration(l.Data)
		}
	}
	if p.CurrentTerm, err = (checkedStable{logs}).GetUint64([]byte("CurrentTerm")); err != nil && err.Error() != "not found" {
		return p, fmt.Errorf("read current term: %w", err)
	}
	return p, nil
}

// ErrEmptyLog: a node with no log and no snapshot cannot be recovered
// from; restore it from a backup instead.
var ErrEmptyLog = errors.New("this node has no Raft log to recover from")

// ForceConfiguration is the last resort when a quorum of voters is lost
// for good (docs/operations.md, "A quorum lost"), as Consul's and rqlite's
// peers.json are: on a stopped survivor it appends two entries to the end
// of its log, in its last term — first a command carrying txs (the central
// bank's signed ChangeMembership removals of the lost members, checked by
// the caller), then a configuration of members (the membership those
// removals leave). Raft takes the latest configuration in the log at
// start, so the survivor elects a leader among members alone; once that
// leader commits an entry of its own term, both entries commit and reach
// the ledger like any others, in log order, so every node applies the
// removals at the same index and the ledger's membership agrees with
// Raft's again. Nothing else in the log changes. It returns the index of
// the configuration entry.
func ForceConfiguration(dir string, log *slog.Logger, txs [][]byte, members []*statepb.Node, addressOf func(*statepb.Node) (raft.ServerAddress, error)) (uint64, error) {
	n, snaps, err := openStopped(dir, log)
	if err != nil {
		return 0, err
	}
	defer n.bolt.Close()
	p, err := position(n.store, snaps)
	if err != nil {
		return 0, err
	}
	if p.LastIndex == 0 {
		return 0, ErrEmptyLog
	}
	conf, err := configurationOf(members, addressOf)
	if err != nil {
		return 0, err
	}
	data, err := proto.Marshal(&consensuspb.Entry{Txs: txs})
	if err != nil {
		return 0, err
	}
	entries := []*raft.Log{
		{Index: p.LastIndex + 1, Term: p.LastTerm, Type: raft.LogCommand, Data: data},
		{Index: p.LastIndex + 2, Term: p.LastTerm, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(conf)},
	}
	if err := n.store.StoreLogs(entries); err != nil {
		return 0, fmt.Errorf("append recovery entries: %w", err)
	}
	return p.LastIndex + 2, nil
}
