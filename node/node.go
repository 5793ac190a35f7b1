// Package node is a running dcep node: it wires the ledger (state), Raft
// (consensus) and libp2p (p2p) together, serves the client API, metrics and
// health, and enforces the node's role. See DESIGN.md.
package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/p2p"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Version is reported in status.
var Version = "0.1.0-dev"

var (
	// ErrShutdownTimeout: Close gave up after ShutdownTimeout (what it
	// waited for is logged). Nothing is lost: every write was durable when
	// it was acknowledged; the process should exit non-zero.
	ErrShutdownTimeout = errors.New("node did not stop in time")
	// ErrRemoved: a committed membership change removed this node, or
	// gave its name another key; it stops (Fatal) and the process exits
	// cleanly: it is no longer a member, and restarting it would not make
	// it one.
	ErrRemoved = errors.New("this node was removed from the network's membership")
	// ErrAccessLog: an access could not be put on record (the access log's
	// write or fsync failed); the read it was for must be refused.
	ErrAccessLog = errors.New("access not recorded")
)

// Shutdown bounds (docs/operations.md, "Stopping a node"): Close returns
// within ShutdownTimeout, of which draining the API takes at most
// apiDrainTimeout and stopping consensus at most consensusStopTimeout.
const (
	ShutdownTimeout      = 15 * time.Second
	apiDrainTimeout      = 4 * time.Second
	consensusStopTimeout = 8 * time.Second
)

// Options are what a Node needs beyond its config file.
type Options struct {
	// Key is the node's identity key (its libp2p peer id): an
	// ed25519.PrivateKey, or a key in a hardware token
	// (pkcs11key.Signer; config node_key = "pkcs11:...").
	Key crypto.Signer
	// Genesis, if set, is used instead of reading cfg.Genesis.
	Genesis *statepb.Genesis
	Logger  *slog.Logger
	// Now is this node's clock (default time.Now), shifted by the config's
	// debug.clock_offset_ms: what it reports to its peers and, as leader,
	// counts among the voters' clocks ledger time is stamped from.
	Now func() time.Time
	// MaxLedgerVersion is the highest ledger version this build runs
	// (default state.LedgerVersion); dcepd takes it from
	// $DCEP_LEDGER_VERSION_MAX, which stands for a newer build in upgrade
	// tests (docs/operations.md, "Rolling upgrade").
	MaxLedgerVersion uint32
}

// Node is one running dcep node.
type Node struct {
	cfg     *Config
	log     *slog.Logger
	key     crypto.Signer
	genesis *statepb.Genesis

	store *state.Store
	// maxLedgerVersion is the highest ledger version this build runs
	// (Options.MaxLedgerVersion, else state.LedgerVersion), for Status.
	maxLedgerVersion uint32
	host             *p2p.Host
	stream           *p2p.StreamLayer
	trans            *raft.NetworkTransport
	cons             *consensus.Node

	members *memberTable
	fwd     *forwarder
	// leaders wakes forwards and submit retries on a leader change.
	leaders *leaderWatch
	// now is this node's clock (Options.Now plus debug.clock_offset_ms).
	now func() time.Time
	// clock is what the clock check last found (clock.go).
	clock   clockCheck
	metrics *metrics
	hub     *hub
	limits  *limiter
	// unauthLog bounds the access-log records of 401 refusals per client
	// address (logUnauthenticated).
	unauthLog *rateTable
	// decoySecret derives GetWalletKey's decoy keys (walletkey.go).
	decoySecret []byte
	// audit is the regulators' side: AuditService, divergence, replay
	// (audit.go).
	audit *auditor
	// archive serves archive segments to members and fills this node's
	// holes from them (archive.go).
	archive *archiveSync
	// access is the access log, data_dir/access (accesslog.go).
	access *accesslog.Log

	httpSrv  *http.Server
	listener net.Listener
	// adminSrv serves the operator's admin socket (backup.go).
	adminSrv *http.Server
	cert     apiCert // the API's TLS certificate (reload.go)
	// unlock releases the data directory's lock (startup.go).
	unlock func()

	startedAt time.Time
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	// fatal is closed when the node found damage it must not run on
	// (fatalErr says what): its consensus has stopped; the process should
	// Close it and exit non-zero.
	fatal     chan struct{}
	fatalOnce sync.Once
	fatalErr  error
}

// Start opens the node's state and log, joins the network and serves the
// API. It returns once the API listens; consensus settles in the background.
func Start(cfg *Config, opts Options) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkIdentityKey(opts.Key); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	n = &Node{cfg: cfg, key: opts.Key, log: log.With("node", cfg.Name), stop: make(chan struct{}), fatal: make(chan struct{}), startedAt: time.Now()}
	// The returns below set n to nil: the cleanup holds its own reference.
	started := n
	defer func() {
		if err != nil {
			started.closeAll()
		}
	}()
	// The data directory's lock first, then the API port: a node already
	// running, or a port taken, is refused before anything is opened.
	if n.unlock, err = LockDataDir(cfg.Path(cfg.DataDir)); err != nil {
		return nil, err
	}
	if n.listener, err = listenAPI(cfg.APIListen); err != nil {
		return nil, err
	}
	if n.genesis = opts.Genesis; n.genesis == nil {
		if n.genesis, err = LoadGenesis(cfg.Path(cfg.Genesis)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, startupErr(ErrGenesisMissing, err, "point genesis in the config at the network's genesis.json (dcepd testnet writes it)",
					"genesis %s does not exist", cfg.Path(cfg.Genesis))
			}
			return nil, startupErr(ErrBadConfig, err, "use the network's genesis.json as dcepd testnet wrote it", "%v", err)
		}
	}
	n.maxLedgerVersion = cmp.Or(opts.MaxLedgerVersion, uint32(state.LedgerVersion))
	if err = n.openState(opts.MaxLedgerVersion); err != nil {
		return nil, err
	}
	if err = n.joinNetwork(); err != nil {
		return nil, err
	}
	n.now = nodeClock(opts.Now, cfg.Debug.ClockOffsetMs)
	if cfg.Debug.ClockOffsetMs != 0 {
		n.log.Warn("debug.clock_offset_ms is set: this node's clock is shifted (fault testing only)", "clock_offset_ms", cfg.Debug.ClockOffsetMs)
	}
	if err = n.startConsensus(n.now); err != nil {
		return nil, err
	}
	// Only now: the handlers use consensus, and a peer may ask as soon as
	// the host listens (a restart with a large ledger spends a while in
	// startConsensus).
	n.registerProtocols()
	n.registerArchive()
	n.fwd = newForwarder(n)
	n.leaders = newLeaderWatch()
	if err = n.serve(); err != nil {
		return nil, err
	}
	n.serveAdmin()
	n.wg.Add(4)
	n.leaders.start(n.cons.Raft(), n.stop, n.wg.Done)
	go n.followMembership()
	go n.pollPeers()
	go n.fwd.run()
	n.startAudit()
	n.log.Info("node started", "role", n.role().String(), "api", n.APIAddr(), "peer_id", n.host.ID().String())
	return n, nil
}

// LoadGenesis reads a genesis file (protobuf JSON) and validates it.
func LoadGenesis(path string) (*statepb.Genesis, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read genesis: %w", err)
	}
	var g statepb.Genesis
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	if err := state.ValidateGenesis(&g); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	return &g, nil
}

func (n *Node) openState(maxVersion uint32) error {
	var err error
	// Ledger commits are fsynced (consensus/DESIGN.md, "fsync points"), so a
	// restart, even after kill -9, never re-applies what the ledger holds.
	n.store, err = state.Open(filepath.Join(n.cfg.Path(n.cfg.DataDir), "state"), state.Options{Logger: n.log, CacheBytes: int64(n.cfg.StateCacheMB) << 20, MemTableBytes: int64(n.cfg.StateMemtableMB) << 20, OnCorrupt: n.fail, MaxLedgerVersion: maxVersion})
	if err != nil {
		return err
	}
	if err := checkLedgerVersion(n.store, maxVersion); err != nil {
		return err
	}
	if err := n.store.InitGenesis(n.genesis); err != nil {
		return err
	}
	members, err := n.store.Members()
	if err != nil {
		return err
	}
	n.members = newMemberTable()
	if err := n.members.set(members); err != nil {
		return err
	}
	if n.self() == nil {
		// A node added by a later membership change starts from genesis,
		// where it is not listed yet: it stays read-only and waits for the
		// leader to replicate to it.
		n.log.Warn("not (yet) a member of this network; waiting to be added by a committed membership change", "node", n.cfg.Name)
	} else if !bytes.Equal(n.self().GetPublicKey(), n.key.Public().(ed25519.PublicKey)) {
		return startupErr(ErrNodeKeyMismatch, nil,
			fmt.Sprintf("set node_key to the key generated for %q (dcepd testnet: nodes/%s/keys/node.key), or name to the member this key belongs to", n.cfg.Name, n.cfg.Name),
			"node_key %s is not member %q's key in the ledger", n.cfg.Path(n.cfg.NodeKey), n.cfg.Name)
	}
	n.metrics = newMetrics(n)
	n.hub = newHub()
	n.limits = newLimiter(n.cfg.Limits)
	n.unauthLog = newRateTable(unauthLogRate, unauthLogBurst)
	if n.decoySecret, err = decoySecret(n.key, n.genesis.GetChainId()); err != nil {
		return err
	}
	n.audit = newAuditor(n)
	n.archive = newArchiveSync(n)
	return n.openAccessLog()
}

// checkLedgerVersion refuses to start a build that cannot run the ledger
// version the network has already activated.
func checkLedgerVersion(st *state.Store, maxVersion uint32) error {
	if maxVersion == 0 {
		maxVersion = state.LedgerVersion
	}
	v, err := st.LedgerVersionSchedule()
	if err != nil {
		return err
	}
	if v.GetActive() > maxVersion {
		return fmt.Errorf("%w: the network runs ledger version %d; this build runs versions up to %d: install a build that runs version %d", state.ErrLedgerVersion, v.GetActive(), maxVersion, v.GetActive())
	}
	return nil
}

// archiveDir is where the node keeps its archive of committed entries, or
// "" for none: regulators always keep one (they re-validate history), and
// so does a node not yet a member (it may become one); a bank keeps one
// unless its config turns it off.
func (n *Node) archiveDir() string {
	if e := n.cfg.Archive.Enabled; e != nil && !*e {
		if n.role() == statepb.NodeRole_NODE_ROLE_VOTER {
			return ""
		}
		n.log.Warn("archive.enabled = false ignored: only a bank (voter) node may run without an archive", "role", n.role().String())
	}
	return filepath.Join(n.cfg.Path(n.cfg.DataDir), "archive")
}

// self is this node's member record.
func (n *Node) self() *memberInfo { return n.members.byName(n.cfg.Name) }

// role is this node's role in the current membership (unspecified while it
// is not a member).
func (n *Node) role() statepb.NodeRole {
	if m := n.self(); m != nil {
		return m.GetRole()
	}
	return statepb.NodeRole_NODE_ROLE_UNSPECIFIED
}

func (n *Node) joinNetwork() error {
	members, err := n.members.p2pMembers()
	if err != nil {
		return err
	}
	n.host, err = p2p.New(p2p.Config{
		PrivateKey: seedKey(n.key), Signer: tokenKey(n.key), ListenAddrs: n.cfg.P2PListen, Members: members, Logger: n.log,
	})
	if err != nil {
		return p2pStartErr(n.cfg.P2PListen, err)
	}
	if n.stream, err = n.host.RaftStreamLayer(); err != nil {
		return err
	}
	n.trans = consensus.NewTransport(n.stream, n.log)
	return nil
}

func (n *Node) startConsensus(now func() time.Time) error {
	r, b := n.cfg.Raft, n.cfg.Batch
	var err error
	n.cons, err = consensus.New(consensus.Config{
		Dir: filepath.Join(n.cfg.Path(n.cfg.DataDir), "raft"), ID: n.cfg.Name, Store: n.store, Transport: n.trans,
		AddressOf: raftAddress, Logger: n.log, Now: now, SampleClocks: n.sampleClocks,
		HeartbeatTimeout: ms(r.HeartbeatMs), ElectionTimeout: ms(r.ElectionMs), LeaderLeaseTimeout: ms(r.LeaderLeaseMs),
		CommitTimeout: ms(r.CommitMs), SnapshotThreshold: r.SnapshotThreshold, TrailingLogs: r.TrailingLogs,
		SnapshotInterval: time.Duration(r.SnapshotIntervalS) * time.Second,
		Batch: consensus.BatchConfig{
			MaxTxs: b.MaxTxs, MaxBytes: b.MaxBytes, MaxDelay: time.Duration(b.MaxDelayUs) * time.Microsecond,
			MaxInflight: b.MaxInflight,
		},
		OnApplied: n.onApplied, OnFatal: n.fail, ShutdownTimeout: consensusStopTimeout,
		ConfirmSnapshot: n.confirmSnapshot,
		Archive:         consensus.ArchiveConfig{Dir: n.archiveDir(), SegmentBytes: n.cfg.Archive.SegmentKB << 10},
	})
	if err != nil {
		return err
	}
	return n.cons.Bootstrap(n.genesis.GetNodes())
}

// raftAddress is a member's Raft address: its libp2p peer id.
func raftAddress(m *statepb.Node) (raft.ServerAddress, error) {
	id, err := p2p.PeerIDFromPublicKey(m.GetPublicKey())
	if err != nil {
		return "", err
	}
	return raft.ServerAddress(id.String()), nil
}

func (n *Node) onApplied(info consensus.ApplyInfo) {
	n.metrics.observeApply(info)
	n.hub.publish(info.LastIndex)
	n.audit.observeApply(info)
}

// followMembership makes the libp2p allowlist follow committed membership
// changes (consensus makes Raft's configuration follow them).
func (n *Node) followMembership() {
	defer n.wg.Done()
	seen := n.store.MembershipVersion()
	var linger lingerSet
	if cur, err := n.members.p2pMembers(); err == nil {
		linger.prev = cur
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		v := n.store.MembershipVersion()
		if v == seen {
			if linger.expire(time.Now()) {
				if err := n.host.SetMembers(linger.allowlist(time.Now())); err != nil {
					n.log.Error("membership update", "error", err)
				}
			}
			continue
		}
		wasMember := n.self() != nil
		members, err := n.store.Members()
		if err == nil {
			err = n.members.set(members)
		}
		if err == nil && wasMember {
			n.checkStillMember()
		}
		var p2pMembers []p2p.Member
		if err == nil {
			p2pMembers, err = n.members.p2pMembers()
		}
		if err == nil {
			err = n.host.SetMembers(linger.update(p2pMembers, time.Now()))
		}
		if err != nil {
			n.log.Error("membership update", "error", err)
			continue
		}
		seen = v
		n.log.Info("membership updated", "members", len(members))
	}
}

// APIAddr is the address the API listens on.
func (n *Node) APIAddr() string {
	if n.listener == nil {
		return ""
	}
	return n.listener.Addr().String()
}

// PeerID is the node's libp2p identity.
func (n *Node) PeerID() peer.ID { return n.host.ID() }

// Store is the node's ledger (read-only use: queries, tests).
func (n *Node) Store() *state.Store { return n.store }

// Consensus is the node's Raft member (tests, operator tools).
func (n *Node) Consensus() *consensus.Node { return n.cons }

// Close shuts the node down: the API stops taking requests and drains
// (apiDrainTimeout at most, then open requests are cut), then consensus,
// libp2p and the ledger close. It returns within ShutdownTimeout (or
// ctx's deadline, if sooner): past it, it logs the goroutines it waits for
// and returns ErrShutdownTimeout, leaving what is still in use open (the
// ledger and the log are durable at every moment; the process exits).
// It also returns the failure that stopped the node, if one did (Fatal).
// Safe to call more than once.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- n.shutdown(ctx) }()
		select {
		case err := <-done:
			n.closeErr = err
			n.log.Info("node stopped")
		case <-ctx.Done():
			n.log.Error("shutdown did not finish in time; exiting without it", "timeout", ShutdownTimeout,
				"waiting_for", consensus.WaitingFor("github.com/dcep/dcep/"))
			n.closeErr = fmt.Errorf("%w (%v)", ErrShutdownTimeout, ShutdownTimeout)
		}
		if fe := n.FatalErr(); fe != nil {
			n.closeErr = errors.Join(fe, n.closeErr)
		}
	})
	return n.closeErr
}

// shutdown is Close's work, in order.
func (n *Node) shutdown(ctx context.Context) error {
	n.handOverLeadership()
	close(n.stop)
	if n.httpSrv != nil {
		drain, cancel := context.WithTimeout(ctx, apiDrainTimeout)
		err := n.httpSrv.Shutdown(drain)
		cancel()
		if err != nil {
			// Requests still open (a submit waiting for a commit that
			// will not come) are cut: their clients resubmit the same
			// bytes elsewhere, which is safe.
			n.log.Warn("api did not drain in time; closing open requests", "timeout", apiDrainTimeout, "error", err)
			_ = n.httpSrv.Close()
		}
	}
	n.wg.Wait()
	return n.closeAll()
}

// leadershipTransferTimeout bounds the hand-over on a graceful stop.
const leadershipTransferTimeout = 3 * time.Second

// handOverLeadership: a leader that stops gracefully first hands its
// leadership to the most up-to-date voter (raft LeadershipTransfer), so the
// network has a leader again within a round trip instead of an election
// timeout after the leader goes quiet. Best effort, bounded.
func (n *Node) handOverLeadership() {
	if n.cons == nil || !n.cons.IsReadyLeader() {
		return
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- n.cons.Raft().LeadershipTransfer().Error() }()
	select {
	case err := <-done:
		if err != nil {
			n.log.Warn("leadership transfer before stopping failed; the others will elect a leader", "error", err)
			return
		}
		id, _ := n.cons.Leader()
		n.log.Info("leadership transferred before stopping", "to", id, "ms", time.Since(start).Milliseconds())
	case <-time.After(leadershipTransferTimeout):
		n.log.Warn("leadership transfer before stopping did not finish in time", "timeout", leadershipTransferTimeout)
	}
}

// fail is how the ledger (state.Options.OnCorrupt) and consensus
// (consensus.Config.OnFatal) report damage the node must not run on. The
// node stops serving at once (consensus has already stopped itself);
// Fatal tells the process, which Closes the node and exits non-zero.
func (n *Node) fail(err error) {
	n.fatalOnce.Do(func() {
		n.fatalErr = err
		n.log.Error("FATAL: this node stops", "error", err)
		close(n.fatal)
	})
}

// checkStillMember stops a node that a committed membership change
// removed (or whose member record now names another key: its key was
// rotated): it logs why and stops serving, instead of running on as a
// node nobody talks to ("no leader known").
func (n *Node) checkStillMember() {
	m := n.self()
	why := ""
	switch {
	case m == nil:
		why = "its member record was deleted by a committed ChangeMembership"
	case !bytes.Equal(m.GetPublicKey(), n.key.Public().(ed25519.PublicKey)):
		why = "its member record now names another node key (the key was rotated)"
	default:
		return
	}
	n.fatalOnce.Do(func() {
		n.fatalErr = fmt.Errorf("%w: %s (ledger index %d)", ErrRemoved, why, n.store.Meta().GetAppliedIndex())
		n.log.Warn("REMOVED: this node is no longer a member of the network; it stops serving", "reason", why, "applied_index", n.store.Meta().GetAppliedIndex())
		close(n.fatal)
	})
}

// Fatal is closed when the node hit a failure it cannot run on (FatalErr
// says which): the process should Close it and exit non-zero.
func (n *Node) Fatal() <-chan struct{} { return n.fatal }

// FatalErr is the failure that stopped the node, nil if none.
func (n *Node) FatalErr() error {
	select {
	case <-n.fatal:
		return n.fatalErr
	default:
		return nil
	}
}

func (n *Node) closeAll() error {
	var errs []error
	if n.adminSrv != nil {
		_ = n.adminSrv.Close()
	}
	if n.cons != nil {
		if err := n.cons.Shutdown(); errors.Is(err, consensus.ErrShutdownTimeout) {
			// Raft may still apply to the ledger: closing it under the
			// FSM would turn a slow stop into a crash. The process exits.
			return err
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.access != nil {
		errs = append(errs, n.access.Close())
	}
	if n.listener != nil && n.httpSrv == nil {
		// Bound at start but never served: a start that failed.
		_ = n.listener.Close()
	}
	if n.unlock != nil {
		n.unlock()
	}
	return errors.Join(errs...)
}

// Ready reports whether the node knows a leader and has applied what it
// knows is committed (what /readyz answers).
func (n *Node) Ready() bool { return n.ready() }

// checkIdentityKey refuses a missing key and one that is not Ed25519.
func checkIdentityKey(k crypto.Signer) error {
	if sk, ok := k.(ed25519.PrivateKey); k == nil || (ok && len(sk) != ed25519.PrivateKeySize) {
		return errors.New("node: identity key missing")
	}
	if pub, ok := k.Public().(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("node: identity key is %T, want Ed25519", k.Public())
	}
	return nil
}

// seedKey and tokenKey split the identity for p2p.Config: a key held in
// memory goes as PrivateKey, one in a token as Signer.
func seedKey(k crypto.Signer) ed25519.PrivateKey {
	sk, _ := k.(ed25519.PrivateKey)
	return sk
}

func tokenKey(k crypto.Signer) crypto.Signer {
	if _, ok := k.(ed25519.PrivateKey); ok {
		return nil
	}
	return k
}
