// Package consensus replicates the ledger with hashicorp/raft: raft-boltdb
// for the log and stable store, the state package as a batching FSM, file
// snapshots streamed from Pebble, and a leader-side proposer that groups many
// client transactions into one log entry. See DESIGN.md.
package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/dcep/dcep/consensus/archive"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Errors a caller can act on.
var (
	// ErrNotLeader: this node is not (or not yet) the leader able to take
	// proposals; send them to Leader().
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: no leader is known, e.g. fewer than a quorum of voters
	// are reachable.
	ErrNoLeader = errors.New("no leader: fewer than a quorum of voters reachable")
	// ErrUnknownOutcome: leadership was lost while an entry was in flight; it
	// may or may not commit. Resubmitting the same bytes is safe (the ledger
	// returns the first outcome of a duplicate).
	ErrUnknownOutcome = errors.New("outcome unknown: leadership lost while committing")
	// ErrOverloaded: the proposal queue is full; retry later.
	ErrOverloaded = errors.New("proposal queue full")
	// ErrStopped: the node is shutting down.
	ErrStopped = errors.New("consensus stopped")
	// ErrTooLarge: a transaction is larger than one log entry may be
	// (Batch.MaxBytes); it can never be proposed.
	ErrTooLarge = errors.New("transaction larger than a log entry")
	// ErrNoSnapshot: there is no snapshot (to start a replay from).
	ErrNoSnapshot = errors.New("no snapshot")
	// ErrHistoryGap: history asked for is neither in this node's archive
	// nor in the part of its log it can trust (a *GapError says which).
	ErrHistoryGap = errors.New("history not on this node")
	// ErrNotArchived: this node cannot serve a segment from that index
	// (no archive, or a hole of its own).
	ErrNotArchived = errors.New("not in this node's archive")
	// ErrSegmentRefused: a peer's segment is well-formed but does not fit:
	// not where it was asked for, or a state hash this ledger recorded
	// differently.
	ErrSegmentRefused = errors.New("archive segment refused")

	// ErrLogCorrupt: an entry of this node's Raft log, its stable store or
	// the file holding them is damaged (a *LogCorruptError names which and
	// the repair). Found at start, New refuses; found while running, the
	// node stops (Config.OnFatal) rather than apply or send the entry.
	ErrLogCorrupt = errors.New("raft log damaged")
	// ErrShutdownTimeout: Shutdown gave up waiting for Raft to stop (what
	// it waited for is logged); nothing is lost, every write was durable
	// when it was acknowledged.
	ErrShutdownTimeout = errors.New("consensus did not stop in time")

	// errLogMismatch: the log store returned an entry of another index.
	errLogMismatch = errors.New("log store returned another index")
	// errTrustFile: the log-trust file is not one this node wrote.
	errTrustFile = errors.New("bad log trust file")
)

// Config configures a Node. Durations are tuned for links between bank data
// centres (tens of milliseconds apart); zero means the default.
type Config struct {
	// Dir holds raft.db (log and stable store) and snapshots/.
	Dir string
	// ID is this node's name (its Raft server id).
	ID string
	// Store is the ledger; the node applies committed entries to it.
	Store *state.Store
	// Transport carries Raft traffic (libp2p streams in production).
	Transport raft.Transport
	// AddressOf maps a member to its Raft address (its libp2p peer id).
	AddressOf func(*statepb.Node) (raft.ServerAddress, error)
	Logger    *slog.Logger

	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	CommitTimeout      time.Duration // default 10ms: a follower learns of a commit at most ~2× this after the last entry, and a client waiting on that follower waits as long
	// SnapshotThreshold: log entries since the last snapshot before another
	// is taken (default 8192); TrailingLogs: entries kept after a snapshot
	// for followers that lag (default 10240); SnapshotInterval: how often
	// the threshold is checked (default 2m).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration

	Batch BatchConfig
	// Archive keeps committed entries beyond compaction (ArchiveConfig).
	Archive ArchiveConfig
	// Now is this node's clock; default time.Now. As a leader it is one of
	// the voters' readings ledger time is stamped from (clock.go).
	Now func() time.Time
	// SampleClocks, if set, asks every voter for a fresh clock reading now
	// (feeding ObserveClock) and returns when done or ctx ends. The leader
	// calls it when its own clock was stepped (clock.go).
	SampleClocks func(ctx context.Context)
	// OnFatal is called once, on its own goroutine, when the node found a
	// failure it must not run on (a damaged Raft log, ErrLogCorrupt, or a
	// damaged ledger file met while applying, state.ErrCorrupt); the
	// node has stopped taking proposals and is shutting down. The process
	// should stop and exit non-zero.
	OnFatal func(error)
	// ShutdownTimeout bounds Shutdown (default 10s).
	ShutdownTimeout time.Duration
	// OnApplied is called after each applied batch (on the FSM goroutine;
	// must not block). Used for metrics and outcome streams.
	OnApplied func(ApplyInfo)
	// ConfirmSnapshot, if set, is asked before a snapshot received from
	// the leader is swapped in whether the network agrees with its state
	// hash (the node asks a quorum of voters); an error refuses the
	// snapshot, Raft answers the leader with it and the leader sends it
	// again later. Restores of this node's own snapshots at start are not
	// asked: they verify in themselves, and the network may be down.
	ConfirmSnapshot func(index uint64, stateHash []byte) error
}

// ApplyInfo describes one applied batch.
type ApplyInfo struct {
	LastIndex uint64
	Applied   *state.Applied
	Elapsed   time.Duration
	Txs       int
}

// BatchConfig bounds how the leader groups transactions into one entry.
type BatchConfig struct {
	MaxTxs   int           // default 2000
	MaxBytes int           // default 1 MiB
	MaxDelay time.Duration // default 2ms: the most a transaction waits for company
	// MaxInflight bounds entries proposed but not yet applied (default 32).
	MaxInflight int
	// QueueLen bounds transactions waiting for a batch (default 100,000).
	QueueLen int
	// ApplyTimeout bounds waiting to hand an entry to Raft (default 5s).
	ApplyTimeout time.Duration
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, time.Second)
	def(&c.ElectionTimeout, time.Second)
	def(&c.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&c.CommitTimeout, 10*time.Millisecond)
	def(&c.SnapshotInterval, 2*time.Minute)
	def(&c.Batch.MaxDelay, 2*time.Millisecond)
	def(&c.Batch.ApplyTimeout, 5*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Batch.MaxTxs <= 0 {
		c.Batch.MaxTxs = 2000
	}
	if c.Batch.MaxBytes <= 0 {
		c.Batch.MaxBytes = 1 << 20
	}
	if c.Batch.MaxInflight <= 0 {
		c.Batch.MaxInflight = 32
	}
	if c.Batch.QueueLen <= 0 {
		c.Batch.QueueLen = 100_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Archive.SegmentBytes <= 0 {
		c.Archive.SegmentBytes = 4 << 20
	}
	c.Archive.SegmentBytes = min(c.Archive.SegmentBytes, archive.MaxRawBytes/2)
}

// logCacheBytes bounds the memory of Raft's cache of recent log entries.
// The cache counts entries, not bytes, and an entry may be up to
// Batch.MaxBytes, so its length follows from the bound: 256 entries of the
// default 1 MiB. (It was 4,096 entries: up to 4 GiB of heap on every node.)
// A follower further behind than the cache reads the entries from
// raft-boltdb instead.
const logCacheBytes = 256 << 20

func logCacheEntries(maxEntryBytes int) int {
	return min(4096, max(64, logCacheBytes/max(1, maxEntryBytes)))
}

// Node is one Raft member applying the log to the ledger.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *fsm
	bolt  *raftboltdb.BoltStore
	store *checkedLog // raft-boltdb with a checksum in every entry (logcheck.go)
	logs  *guardedLog // what Raft, the archiver and History read the log through
	snaps *raft.FileSnapshotStore
	prop  *proposer
	reads *readIndexer
	// targets caches LedgerTarget's log scan (readindex.go).
	targets ledgerTargets
	clock   *netClock
	trust   *logTrust
	ar      *archiver // nil without an archive
	pins    pins

	// ready is true while this node is leader and has applied everything
	// committed before its term (so ledger time and reads are current).
	ready atomic.Bool
	stop  chan struct{}
	wg    sync.WaitGroup
	// started: Raft runs (damage found before is New's error, after it
	// stops the node); fatal is the failure that stopped it.
	started   atomic.Bool
	fatal     atomic.Pointer[error]
	fatalOnce sync.Once
	// shutdownOnce and stopped make Shutdown safe to call from several
	// goroutines: every caller waits for the one that runs.
	shutdownOnce sync.Once
	stopped      chan struct{}
	shutdownErr  error
	// reconcile wakes the membership reconciler.
	reconcile chan struct{}
}

// New opens the log, stable store, snapshots and archive in cfg.Dir and
// starts Raft. If the ledger already holds everything up to the newest
// snapshot, Raft is told not to restore that snapshot on start (a restart
// must not replay what Pebble holds); otherwise it restores it, then
// replays the log.
func New(cfg Config) (*Node, error) {
	cfg.defaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "consensus"), stop: make(chan struct{}), stopped: make(chan struct{}), reconcile: make(chan struct{}, 1), clock: newNetClock(cfg.Now)}
	if err := n.openLog(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()
	var err error
	hlog := newHCLogger(cfg.Logger)
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog.Named("snapshots")); err != nil {
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	cache, err := raft.NewLogCache(logCacheEntries(cfg.Batch.MaxBytes), n.store)
	if err != nil {
		return nil, err
	}
	n.logs = &guardedLog{LogStore: cache, n: n}
	n.fsm = newFSM(cfg.Store, n.log)
	n.fsm.onApplied, n.fsm.beforeRestore, n.fsm.afterRestore, n.fsm.onFatal = n.onApplied, n.beforeRestore, n.afterRestore, n.fail
	if err := n.openArchive(); err != nil {
		return nil, err
	}
	rc := n.raftConfig(hlog)
	if rc.NoSnapshotRestoreOnStart, err = n.skipRestore(); err != nil {
		return nil, err
	}
	trans := wrapTransport(cfg.Transport, n.log)
	if n.raft, err = raft.NewRaft(rc, n.fsm, raftLog{n.logs}, checkedStable{n.store}, n.snaps, trans); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	watchLeadership(trans, n.raft)
	// From now on a restore is a snapshot installed from the leader.
	n.fsm.confirm.Store(&cfg.ConfirmSnapshot)
	ok = true
	n.started.Store(true)
	if err := n.Fatal(); err != nil { // found while Raft started (fail)
		_ = n.Shutdown()
		return nil, err
	}
	n.prop = newProposer(n)
	n.reads = newReadIndexer(n)
	n.wg.Add(3)
	go n.watchLeadership()
	go n.prop.run()
	go n.reconcileLoop()
	if n.ar != nil {
		n.wg.Add(1)
		go n.ar.run()
	}
	return n, nil
}

// openLog verifies raft.db (checkLogFile: a damaged file is refused here,
// naming what is damaged and the repair), opens it, and seals a file from
// before checksums (upgradeLog).
func (n *Node) openLog() error {
	path := filepath.Join(n.cfg.Dir, "raft.db")
	info, err := checkLogFile(path)
	if err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	if info.exists {
		n.log.Info("raft log verified", "path", path, "entries", info.entries, "first_index", info.first, "last_index", info.last,
			"file_bytes", info.fileBytes, "elapsed_ms", info.elapsed.Milliseconds())
	}
	if n.bolt, err = raftboltdb.New(raftboltdb.Options{Path: path}); err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	n.store = &checkedLog{bolt: n.bolt, path: path, onCorrupt: n.fail}
	if err := upgradeLog(n.store, info, n.log); err != nil {
		n.bolt.Close()
		return err
	}
	return nil
}

// fail stops a node that found damage it must not run on (its Raft log,
// or the ledger below the FSM): no more proposals, Raft shut down, the
// caller told (Config.OnFatal). Before Raft runs, New returns the error
// instead.
func (n *Node) fail(err error) {
	n.fatalOnce.Do(func() {
		n.fatal.Store(&err)
		n.ready.Store(false)
		if !n.started.Load() {
			return // New sees it
		}
		if errors.Is(err, state.ErrLedgerVersion) {
			n.log.Error("STOPPING: the network activated a ledger version this build cannot run; it applies nothing more (upgrade dcepd and start it again)", "error", err)
		} else {
			n.log.Error("STOPPING: damaged storage; this node neither applies nor sends from it", "error", err)
		}
		go func() {
			if serr := n.Shutdown(); serr != nil {
				n.log.Error("shutdown after damaged storage", "error", serr)
			}
		}()
		if n.cfg.OnFatal != nil {
			go n.cfg.OnFatal(err)
		}
	})
}

// Fatal is the failure that stopped this node (nil if none).
func (n *Node) Fatal() error {
	if p := n.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// openArchive reads the log-trust record and, if configured, opens the
// archive (before Raft starts: a restore on start goes through both).
func (n *Node) openArchive() error {
	snaps, err := n.snapshotIndexes()
	if err != nil {
		return err
	}
	if n.trust, err = openLogTrust(n.cfg.Dir, n.cfg.Store.Meta().GetAppliedIndex(), snaps); err != nil {
		return err
	}
	if n.cfg.Archive.Dir == "" {
		return nil
	}
	n.ar, err = newArchiver(n)
	return err
}

func (n *Node) closeStores() {
	if n.ar != nil {
		n.ar.a.Close()
	}
	n.bolt.Close()
}

func (n *Node) raftConfig(hlog hclogLogger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 64
	rc.Logger = hlog.Named("raft")
	return rc
}

// skipRestore reports whether the ledger already holds the newest
// snapshot, so restoring it on start would only throw work away (and
// replay). It compares the ledger's applied index with the one inside the
// snapshot, not with Raft's index: when the snapshot's last entry is a
// barrier or a no-op (a linearizable read, a new leader), Raft's index is
// above anything the ledger will ever hold at that point. If Pebble is
// behind (lost, or older than the snapshot), Raft must restore.
func (n *Node) skipRestore() (bool, error) {
	info, err := n.LatestSnapshot()
	if errors.Is(err, ErrNoSnapshot) {
		return true, nil
	}
	if err != nil {
		// Raft tries it (and older ones) and says why it cannot.
		n.log.Warn("startup: cannot read the newest snapshot's header; letting Raft restore", "error", err)
		return false, nil
	}
	applied := n.cfg.Store.Meta().GetAppliedIndex()
	skip := applied >= info.LedgerIndex
	n.log.Info("startup", "ledger_applied_index", applied, "snapshot_ledger_index", info.LedgerIndex, "snapshot_raft_index", info.RaftIndex, "restore_snapshot", !skip)
	return skip, nil
}

// beforeRestore runs on the FSM goroutine before the ledger is replaced by
// a snapshot: the archive writes out its open segment and stops, and the
// log-trust record says "pending" (a crash during the restore is resolved
// conservatively on the next start).
func (n *Node) beforeRestore() (prev uint64, err error) {
	prev = n.trust.get()
	if n.ar != nil {
		n.ar.pause()
	}
	return prev, n.trust.set(trustPending)
}

// afterRestore runs after the restore: the log is this node's own only
// after the restored ledger and every snapshot on disk (entries below may
// be stale, or missing); on failure the old ledger stayed and so does the
// old record.
func (n *Node) afterRestore(restored bool, prev uint64) {
	from := prev
	if restored {
		snaps, err := n.snapshotIndexes()
		if err != nil {
			// Only the restored ledger's index is known: the log is
			// trusted after it (Raft's snapshot index, the first entry it
			// appends after the install, is not known here).
			n.log.Error("after restore: cannot list snapshots; trusting the log only after the restored ledger", "error", err)
		}
		from = afterRestore(n.cfg.Store.Meta().GetAppliedIndex(), snaps)
	}
	if err := n.trust.set(from); err != nil {
		// The file still says pending: the next start resolves it the
		// same way, conservatively.
		n.log.Error("after restore: record log trust", "error", err)
		n.trust.mu.Lock()
		n.trust.from = from
		n.trust.mu.Unlock()
	}
	if n.ar != nil {
		n.ar.resume(from)
	}
	n.log.Info("log trusted from", "index", from, "restored", restored)
}

// Bootstrap starts a brand-new network from its genesis members: voters as
// Raft voters, regulators as non-voters. Every genesis voter calls it with
// the same list, which Raft allows; a regulator (or a node with existing Raft
// state) does nothing and waits for the leader to replicate to it.
func (n *Node) Bootstrap(members []*statepb.Node) error {
	has, err := raft.HasExistingState(n.store, checkedStable{n.store}, n.snaps)
	if err != nil || has {
		return err
	}
	voter := false
	for _, m := range members {
		voter = voter || (m.GetName() == n.cfg.ID && m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER)
	}
	if !voter {
		return nil
	}
	conf, err := n.configurationFor(members)
	if err != nil {
		return err
	}
	err = n.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	return err
}

func (n *Node) configurationFor(members []*statepb.Node) (raft.Configuration, error) {
	return configurationOf(members, n.cfg.AddressOf)
}

// Submit proposes transactions and waits for their committed results, in
// order. Only the ready leader accepts proposals (ErrNotLeader otherwise).
func (n *Node) Submit(ctx context.Context, txs [][]byte) ([]*statepb.TxResult, error) {
	return n.prop.submit(ctx, txs)
}

// ReadIndex returns a ledger index such that once a node has applied it,
// its state reflects every write acknowledged before the call. Leader
// only: the leader confirms it still leads by a heartbeat round to a
// quorum (no log entry) and returns LedgerTarget of the commit index it
// had when the call arrived (readindex.go). Concurrent callers share one
// confirmation.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	return n.reads.readIndex(ctx)
}

// WaitApplied waits until the ledger holds log index i.
func (n *Node) WaitApplied(ctx context.Context, i uint64) error {
	for {
		cur, changed := n.fsm.applied()
		if cur >= i {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", i, cur, ctx.Err())
		case <-n.stop:
			return ErrStopped
		}
	}
}

// AppliedIndex is the last log index the ledger holds.
func (n *Node) AppliedIndex() uint64 {
	i, _ := n.fsm.applied()
	return i
}

// Status is a snapshot of this node's Raft view.
type Status struct {
	State       raft.RaftState
	LeaderID    string
	LeaderAddr  string
	Term        uint64
	CommitIndex uint64
	LastIndex   uint64
	Applied     uint64
	LastContact time.Time
	Ready       bool
}

// Status reports this node's Raft state.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{
		State: n.raft.State(), LeaderID: string(id), LeaderAddr: string(addr),
		CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
		Applied: n.AppliedIndex(), LastContact: n.raft.LastContact(), Ready: n.ready.Load(),
	}
	if t, err := parseUint(n.raft.Stats()["term"]); err == nil {
		st.Term = t
	}
	return st
}

// Leader returns the current leader's id and address, empty if none.
func (n *Node) Leader() (string, raft.ServerAddress) {
	addr, id := n.raft.LeaderWithID()
	return string(id), addr
}

// IsReadyLeader reports whether this node leads and may take proposals.
func (n *Node) IsReadyLeader() bool { return n.ready.Load() }

// Configuration returns Raft's latest membership configuration.
func (n *Node) Configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, err
	}
	return f.Configuration(), nil
}

// Snapshot asks Raft to take a snapshot now (operators, tests).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Raft exposes the underlying Raft for observers and tests.
func (n *Node) Raft() *raft.Raft { return n.raft }

// MembershipChanged tells the leader to make Raft's configuration follow
// the ledger's membership.
func (n *Node) MembershipChanged() {
	select {
	case n.reconcile <- struct{}{}:
	default:
	}
}

// Shutdown stops Raft and closes the log, within Config.ShutdownTimeout.
// The transport is closed first, so that no Raft goroutine waits out an
// RPC to a peer that has gone (each could take the transport's timeout,
// 10 s, and a heartbeat loop retried them: defect 4). If Raft still has
// not stopped by the deadline, Shutdown logs the goroutines it waits for
// and returns ErrShutdownTimeout without closing the log under them;
// nothing is lost (every entry was fsynced before it was acknowledged).
// Safe to call more than once and from several goroutines: every caller
// waits for the first. The ledger is the caller's to close.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.shutdownErr = n.shutdown()
		close(n.stopped)
	})
	<-n.stopped
	return n.shutdownErr
}

func (n *Node) shutdown() error {
	deadline := time.Now().Add(n.cfg.ShutdownTimeout)
	close(n.stop)
	n.ready.Store(false)
	if c, ok := n.cfg.Transport.(raft.WithClose); ok {
		if err := c.Close(); err != nil {
			n.log.Warn("shutdown: close the raft transport", "error", err)
		}
	}
	raftDone := make(chan error, 1)
	go func() { raftDone <- n.raft.Shutdown().Error() }()
	var err error
	select {
	case err = <-raftDone:
	case <-time.After(time.Until(deadline)):
		n.log.Error("shutdown: Raft did not stop in time; leaving the log open and giving up", "timeout", n.cfg.ShutdownTimeout, "waiting_for", WaitingFor("hashicorp/raft"))
		return fmt.Errorf("%w: Raft still running after %v", ErrShutdownTimeout, n.cfg.ShutdownTimeout)
	}
	ownDone := make(chan struct{})
	go func() { n.wg.Wait(); close(ownDone) }()
	select {
	case <-ownDone:
	case <-time.After(time.Until(deadline)):
		n.log.Error("shutdown: consensus goroutines did not stop in time; giving up", "timeout", n.cfg.ShutdownTimeout, "waiting_for", WaitingFor("dcep/dcep/consensus"))
		return fmt.Errorf("%w: consensus goroutines still running after %v", ErrShutdownTimeout, n.cfg.ShutdownTimeout)
	}
	n.prop.failAll(ErrStopped)
	if n.ar != nil {
		n.ar.a.Close()
	}
	if cerr := n.bolt.Close(); err == nil {
		err = cerr
	}
	return err
}

// WaitingFor summarises the goroutines whose stacks pass through pkg (a
// substring of a function's path): for each, its state and the first
// frame in pkg, what a stuck shutdown waits on; at most 32 of them.
func WaitingFor(pkg string) []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		if len(lines) < 2 || !strings.Contains(g, pkg) {
			continue
		}
		frame := ""
		for _, l := range lines[1:] {
			if strings.Contains(l, pkg) && !strings.HasPrefix(l, "\t") {
				frame = l
				break
			}
		}
		out = append(out, strings.TrimSuffix(lines[0], ":")+" at "+frame)
		if len(out) == 32 {
			break
		}
	}
	return out
}

func (n *Node) onApplied(last uint64, applied *state.Applied, elapsed time.Duration, txs int) {
	if applied.MembershipChanged {
		n.MembershipChanged()
	}
	if n.cfg.OnApplied != nil {
		n.cfg.OnApplied(ApplyInfo{LastIndex: last, Applied: applied, Elapsed: elapsed, Txs: txs})
	}
}
