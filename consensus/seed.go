package consensus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/dcep/dcep/state/statepb"
)

// ErrRaftDirInUse: a backup is restored only into a raft directory that
// holds no log and no snapshot; anything else is a node's own history,
// which a restore must not mix with another's.
var ErrRaftDirInUse = errors.New("raft directory is not empty")

// seedTerm is the Raft term of the snapshot that starts a network
// continued from a backup (SeedNewNetwork): the first one, since no node
// of the new network has a log or a vote.
const seedTerm = 1

// SeedRestored prepares the raft directory of a node whose ledger was
// restored from a backup at ledgerIndex and that joins a running network:
// its log is trusted (for the archive) only after the restored index, so
// everything up to it is fetched from members, never read from a log that
// does not hold it. Raft then starts with an empty log and the leader
// sends what follows (entries the ledger already holds are skipped).
func SeedRestored(dir string, ledgerIndex uint64) error {
	if err := checkEmptyRaftDir(dir); err != nil {
		return err
	}
	t := &logTrust{path: filepath.Join(dir, "log-trust")}
	return t.write(ledgerIndex + 1)
}

// SeedNewNetwork prepares the raft directory of one node of a new network
// that continues a lost one from a backup (docs/operations.md, "Every node
// lost"): a Raft snapshot at the backup's ledger index, whose contents are
// the backup itself (written by write) and whose configuration is members
// (voters as voters, the rest as non-voters). Every node of the new
// network is seeded with the same backup and members, so they agree on
// the log's start; Raft then numbers new entries from ledgerIndex+1, which
// the ledger, holding ledgerIndex, applies. No node bootstraps (a
// snapshot is existing state).
func SeedNewNetwork(dir string, ledgerIndex uint64, members []*statepb.Node, addressOf func(*statepb.Node) (raft.ServerAddress, error), write func(io.Writer) error) error {
	if err := SeedRestored(dir, ledgerIndex); err != nil {
		return err
	}
	conf, err := configurationOf(members, addressOf)
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("open snapshots: %w", err)
	}
	// Create encodes the legacy peer list through a transport; every
	// transport of ours encodes an address as its bytes, as this one does.
	_, enc := raft.NewInmemTransport("")
	defer enc.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, ledgerIndex, seedTerm, conf, ledgerIndex, enc)
	if err != nil {
		return fmt.Errorf("create raft snapshot: %w", err)
	}
	if err := write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	return nil
}

// checkEmptyRaftDir refuses a raft directory with a log or a snapshot.
func checkEmptyRaftDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	for _, name := range []string{"raft.db", "log-trust"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s exists (move the old data directory aside first)", ErrRaftDirInUse, filepath.Join(dir, name))
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s holds snapshots (move the old data directory aside first)", ErrRaftDirInUse, filepath.Join(dir, "snapshots"))
	}
	return nil
}

// configurationOf is the Raft configuration of a membership: voters as
// voters, regulators as non-voters.
func configurationOf(members []*statepb.Node, addressOf func(*statepb.Node) (raft.ServerAddress, error)) (raft.Configuration, error) {
	var conf raft.Configuration
	for _, m := range members {
		addr, err := addressOf(m)
		if err != nil {
			return conf, fmt.Errorf("member %s: %w", m.GetName(), err)
		}
		suffrage := raft.Voter
		if m.GetRole() != statepb.NodeRole_NODE_ROLE_VOTER {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(m.GetName()), Address: addr})
	}
	return conf, nil
}
