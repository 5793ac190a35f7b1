package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Backups (docs/operations.md, "Backup and recovery"). A backup is one
// ledger snapshot stream (state.Snapshot.WriteTo): what Raft snapshots
// hold and what a leader sends a lagging follower, so every check the
// ledger makes of a snapshot applies to it.

var (
	// ErrDataDirNotEmpty: a backup is restored only into a data directory
	// that holds no ledger and no Raft state.
	ErrDataDirNotEmpty = errors.New("data directory is not empty")
	// ErrNodeRunning: the node is running, but its admin socket did not
	// answer (a save from a live node goes through the socket).
	ErrNodeRunning = errors.New("node is running but its admin socket does not answer")
)

// BackupInfo is what a verified backup holds.
type BackupInfo struct {
	Path         string
	Bytes        int64
	Index        uint64
	StateHash    []byte
	GenesisHash  [32]byte
	ChainID      string
	LedgerTimeMs int64
	Members      []*statepb.Node
	Supply       *state.Audit
}

// AdminSocket is the path of a node's admin socket: a Unix socket in its
// data directory, mode 0600, so only the operator who runs the node (who
// can read its data directory anyway) can use it.
func AdminSocket(cfg *Config) string { return filepath.Join(cfg.Path(cfg.DataDir), "admin.sock") }

// serveAdmin serves the operator's admin calls on the admin socket:
// GET /v1/snapshot streams a consistent ledger snapshot (a Pebble
// snapshot: the node goes on applying while it streams). A stale socket
// (kill -9) is removed: the ledger's lock, taken in openState, proves no
// other process serves this data directory.
func (n *Node) serveAdmin() {
	path := AdminSocket(n.cfg)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		// The node serves without it; only `dcepd snapshot save` from a
		// live node needs it (a stopped node's data dir works too).
		n.log.Warn("admin socket unavailable; dcepd snapshot save works only with the node stopped", "path", path, "error", err)
		if l != nil {
			_ = l.Close()
		}
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/snapshot", n.handleAdminSnapshot)
	n.adminSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = n.adminSrv.Serve(l) }()
}

func (n *Node) handleAdminSnapshot(w http.ResponseWriter, r *http.Request) {
	caughtUp := n.catchUpForBackup(r.Context())
	snap, err := n.store.Snapshot()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer snap.Release()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Dcep-Ledger-Index", strconv.FormatUint(snap.Meta().GetAppliedIndex(), 10))
	w.Header().Set("X-Dcep-Caught-Up", strconv.FormatBool(caughtUp))
	written, err := snap.WriteTo(w)
	if err != nil {
		n.log.Warn("admin: snapshot stream failed", "bytes", written, "error", err)
		return
	}
	n.log.Info("admin: snapshot streamed", "ledger_index", snap.Meta().GetAppliedIndex(), "bytes", written)
}

// backupCatchUpMs bounds how long a backup waits to apply what the
// leader has committed before it snapshots.
const backupCatchUpMs = 5000

// catchUpForBackup waits until this node has applied everything the
// leader had committed when the backup was asked for (a read index), so a
// backup taken after a transaction was acknowledged holds it even when it
// is taken from a follower that lagged. Without a leader (a quorum lost:
// the backup a survivor takes before recovery) it snapshots what it has
// and says so: false.
func (n *Node) catchUpForBackup(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, backupCatchUpMs*time.Millisecond)
	defer cancel()
	idx, err := n.readIndex(ctx)
	if err == nil {
		err = n.cons.WaitApplied(ctx, idx)
	}
	if err != nil {
		n.log.Warn("admin: backup taken without catching up with the leader (it holds what this node applied)", "error", err)
		return false
	}
	return true
}

// SaveBackup writes a consistent backup of cfg's node to path: from the
// running node over its admin socket, or, if the node is stopped, from its
// data directory. The file is written beside path, fsynced, verified
// (VerifyBackup) and only then renamed into place.
func SaveBackup(ctx context.Context, cfg *Config, path string) (*BackupInfo, error) {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create backup: %w", err)
	}
	defer os.Remove(tmp)
	err = streamBackup(ctx, cfg, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	g, err := LoadGenesis(cfg.Path(cfg.Genesis))
	if err != nil {
		return nil, err
	}
	info, err := VerifyBackup(tmp, g)
	if err != nil {
		return nil, fmt.Errorf("the backup just written does not verify: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("save backup: %w", err)
	}
	info.Path = path
	return info, syncParent(path)
}

// streamBackup writes the snapshot stream of cfg's node to w.
func streamBackup(ctx context.Context, cfg *Config, w io.Writer) error {
	sock := AdminSocket(cfg)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/v1/snapshot", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("node refused the snapshot: %s: %s", resp.Status, bytes.TrimSpace(msg))
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			return fmt.Errorf("snapshot from the running node: %w", err)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin socket %s: %w", sock, err)
	}
	// No node answers: read the stopped node's ledger. Pebble's lock
	// refuses this if a node runs after all.
	st, err := state.Open(filepath.Join(cfg.Path(cfg.DataDir), "state"), state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("%w (%s), and its ledger cannot be opened: %w", ErrNodeRunning, sock, err)
	}
	defer st.Close()
	snap, err := st.Snapshot()
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", st.Dir(), err)
	}
	defer snap.Release()
	_, err = snap.WriteTo(w)
	return err
}

// VerifyBackup checks a backup completely, without a node: it is restored
// into a temporary ledger, which checks the stream's checksum, order and
// bounds, recomputes the content hash and the state hash at its index, and
// runs the supply audit (state.Store.Restore). If genesis is given, the
// backup must be of that network (its genesis hash, hence its chain id).
func VerifyBackup(path string, genesis *statepb.Genesis) (*BackupInfo, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".verify-")
	if err != nil {
		tmp, err = os.MkdirTemp("", "dcep-verify-")
	}
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	st, err := state.Open(tmp, state.Options{Logger: slog.New(slog.DiscardHandler), CacheBytes: 32 << 20, MemTableBytes: 16 << 20})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if genesis != nil {
		if err := st.InitGenesis(genesis); err != nil {
			return nil, err
		}
	}
	info, err := restoreFile(st, path)
	if err != nil {
		return nil, err
	}
	info.Path = path
	return info, nil
}

// restoreFile restores the backup at path into st and describes it.
func restoreFile(st *state.Store, path string) (*BackupInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := st.Restore(f); err != nil {
		return nil, fmt.Errorf("backup %s: %w", path, err)
	}
	audit, err := st.AuditSupply()
	if err != nil {
		return nil, fmt.Errorf("backup %s: supply audit: %w", path, err)
	}
	members, err := st.Members()
	if err != nil {
		return nil, err
	}
	m := st.Meta()
	return &BackupInfo{
		Bytes: fi.Size(), Index: m.GetAppliedIndex(), StateHash: m.GetStateHash(), GenesisHash: st.GenesisHash(),
		ChainID: st.Genesis().GetChainId(), LedgerTimeMs: m.GetLedgerTimeMs(), Members: members, Supply: audit,
	}, nil
}

// RestoreBackup seeds cfg's empty data directory from a backup, which is
// verified as it is restored and must be of cfg's network (its genesis
// file). With newNetwork unset the node joins a running network at the
// backup's index and takes the rest from the leader (a lost node). With
// newNetwork set it also gets a Raft snapshot at that index, with the
// backup's membership as configuration: every node of a network that lost
// all its nodes is restored so, from the same backup, and the network
// continues the same chain from there (consensus.SeedNewNetwork).
func RestoreBackup(cfg *Config, path string, newNetwork bool) (*BackupInfo, error) {
	data := cfg.Path(cfg.DataDir)
	if err := checkEmptyDataDir(data); err != nil {
		return nil, err
	}
	g, err := LoadGenesis(cfg.Path(cfg.Genesis))
	if err != nil {
		return nil, err
	}
	st, err := state.Open(filepath.Join(data, "state"), state.Options{Logger: slog.New(slog.DiscardHandler), CacheBytes: 32 << 20})
	if err != nil {
		return nil, err
	}
	info, err := func() (*BackupInfo, error) {
		defer st.Close()
		if err := st.InitGenesis(g); err != nil {
			return nil, err
		}
		return restoreFile(st, path)
	}()
	if err != nil {
		_ = os.RemoveAll(filepath.Join(data, "state"))
		return nil, err
	}
	info.Path = path
	raftDir := filepath.Join(data, "raft")
	if !newNetwork {
		return info, consensus.SeedRestored(raftDir, info.Index)
	}
	copyBackup := func(w io.Writer) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	}
	return info, consensus.SeedNewNetwork(raftDir, info.Index, info.Members, raftAddress, copyBackup)
}

// checkEmptyDataDir refuses a data directory holding a ledger or Raft
// state: a restore never overwrites a node's own data.
func checkEmptyDataDir(data string) error {
	for _, sub := range []string{"state", "raft"} {
		entries, err := os.ReadDir(filepath.Join(data, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%w: %s holds data; move the old data directory aside first (mv %s %s.old)", ErrDataDirNotEmpty, filepath.Join(data, sub), data, data)
		}
	}
	return nil
}

func syncParent(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
