// Package chaos is dcep's fault campaign: it runs every node of a `dcepd
// testnet` network as its own `dcepd run` process in its own network
// namespace (deploy/localnet does the processes), injects faults scheduled
// from a seed while clients transfer money between wallets through the SDK,
// and afterwards checks the history with porcupine and the ledger's
// invariants on every node. docs/RELIABILITY.md says how to run it and what
// it found; DESIGN.md how it works.
package chaos

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

// Config is one campaign.
type Config struct {
	// Seed draws the schedule, the targets and the workload's choices.
	Seed int64
	// Faults is how many faults to inject (0: one of each kind in Kinds).
	Faults int
	// Duration, if set, stops injecting once it has passed (the campaign
	// then heals and checks as usual).
	Duration time.Duration
	// Kinds restricts the fault kinds (nil: all).
	Kinds []Kind
	// Fabric is "auto" (namespaces if permitted, else loopback), "netns"
	// or "loopback".
	Fabric string
	// Dir is the run directory (default: a new temp dir); Keep keeps it
	// after a passing run (a failing run always keeps it).
	Dir  string
	Keep bool
	// Dcepd is the node binary (default: built from this module).
	Dcepd string
	// Cells, WorkersPerCell and PaceMs shape the workload: cells of four
	// wallets, clients per cell, mean pause between a client's operations.
	Cells, WorkersPerCell, PaceMs int
	// OpBudget bounds one transfer, all attempts at all nodes together.
	OpBudget time.Duration
	// RecoverTimeout bounds the wait for every node to be ready after a
	// heal.
	RecoverTimeout time.Duration
	// Replay runs the re-validation audit on every node at the end.
	Replay bool
	// Log receives the timestamped fault log (default os.Stderr).
	Log io.Writer
}

func (cfg *Config) defaults() {
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = append([]Kind(nil), Kinds...)
	}
	if cfg.Faults == 0 {
		cfg.Faults = len(cfg.Kinds)
	}
	if cfg.Fabric == "" {
		cfg.Fabric = "auto"
	}
	if cfg.Cells == 0 {
		cfg.Cells = 6
	}
	if cfg.WorkersPerCell == 0 {
		cfg.WorkersPerCell = 2
	}
	if cfg.PaceMs == 0 {
		cfg.PaceMs = 150
	}
	if cfg.OpBudget == 0 {
		cfg.OpBudget = 45 * time.Second
	}
	if cfg.RecoverTimeout == 0 {
		cfg.RecoverTimeout = 120 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = os.Stderr
	}
}

// Campaign is one run.
type Campaign struct {
	cfg    Config
	began  time.Time
	logMu  sync.Mutex
	fabric Fabric
	net    *localnet.Network
	dir    string

	nodes     []string // netgen order: pboc, the banks, the regulator
	voters    []string
	regulator string
	clients   map[string]*client.Client
	builder   *client.Builder
	cbKey     ed25519.PrivateKey
	bankKeys  map[string]ed25519.PrivateKey

	logSeen     map[string]int64 // log bytes already searched for a crash
	revived     map[string]int   // restarts after unexpected exits since the last repair
	tmpfs       bool             // every node's data dir is its own tmpfs
	clockOffset bool             // dcepd knows [debug] clock_offset_ms
	wl          *workload
	records     []*FaultRecord
	notes       []string
}

// Run plays a campaign and returns its report; err is a failure to run it
// (setup, teardown), not a violation: those are in the report
// (Report.Failed).
func Run(cfg Config) (rep *Report, err error) {
	cfg.defaults()
	c := &Campaign{cfg: cfg, began: time.Now(), clients: map[string]*client.Client{}, bankKeys: map[string]ed25519.PrivateKey{},
		logSeen: map[string]int64{}, revived: map[string]int{}}
	unlock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := Cleanup(); err != nil {
		c.logf("cleanup of an earlier run: %v", err)
	}
	defer func() {
		if terr := c.teardown(rep); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := c.setup(); err != nil {
		return nil, err
	}
	return c.play()
}

// lockMachine takes a machine-wide lock: namespace names and the nft table
// are global, so one campaign runs at a time.
func lockMachine() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), Prefix+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another chaos campaign is running on this machine (%s held)", f.Name())
	}
	return func() { f.Close() }, nil
}

func (c *Campaign) now() int64 { return time.Since(c.began).Nanoseconds() }

// logf writes one timestamped line of the fault log.
func (c *Campaign) logf(format string, args ...any) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	fmt.Fprintf(c.cfg.Log, "%s +%7.2fs  %s\n", time.Now().UTC().Format("15:04:05.000"), time.Since(c.began).Seconds(), fmt.Sprintf(format, args...))
}

func (c *Campaign) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	c.notes = append(c.notes, s)
	c.logf("note: %s", s)
}

func (c *Campaign) client(name string) *client.Client { return c.clients[name] }

func (c *Campaign) index(name string) int {
	for i, n := range c.nodes {
		if n == name {
			return i
		}
	}
	panic("chaos: no node " + name) // names come from network.json only
}

func (c *Campaign) bankIDs() []string {
	ids := make([]string, len(netgen.Banks))
	for i, b := range netgen.Banks {
		ids[i] = b.ID
	}
	return ids
}

// setup builds the fabric, generates the network with `dcepd testnet`,
// starts every node and funds the workload's wallets.
func (c *Campaign) setup() error {
	var err error
	if c.dir = c.cfg.Dir; c.dir == "" {
		if c.dir, err = os.MkdirTemp("", Prefix+"-run-"); err != nil {
			return err
		}
	}
	const nodes = 8 // 7 voters (pboc and six banks) + 1 regulator
	if err := c.buildFabric(nodes); err != nil {
		return err
	}
	c.logf("fabric: %s; run directory %s", c.fabric.Mode(), c.dir)
	bin, err := c.dcepd()
	if err != nil {
		return err
	}
	netDir := filepath.Join(c.dir, "net")
	p2p, api := c.fabric.Ports()
	out, err := exec.Command(bin, "testnet", "--out", netDir, "--chain-id", "dcep-chaos", "--hosts", strings.Join(c.fabric.Hosts(), ","),
		"--p2p-port", fmt.Sprint(p2p), "--api-port", fmt.Sprint(api)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dcepd testnet: %v: %s", err, out)
	}
	if c.net, err = localnet.Open(netDir, bin); err != nil {
		return err
	}
	c.net.HTTP = c.fabric.HTTP()
	c.net.Wrap = func(name string) []string { return c.fabric.Wrap(c.index(name)) }
	for _, nn := range c.net.Info.Nodes {
		c.nodes = append(c.nodes, nn.Name)
		if nn.Role == "voter" {
			c.voters = append(c.voters, nn.Name)
		} else {
			c.regulator = nn.Name
		}
		if err := tuneConfig(nn.Config); err != nil {
			return err
		}
	}
	if c.clockOffset, err = probeClockOffset(bin, c.net.Info.Nodes[0].Config); err != nil {
		return err
	}
	if !c.clockOffset {
		c.note("clock-skew skipped: this dcepd does not know [debug] clock_offset_ms (unknown key); setClockOffset in deploy/chaos/disk.go is the one place to adapt")
	}
	if err := c.mountData(); err != nil {
		return err
	}
	return c.startNetwork()
}

func (c *Campaign) buildFabric(n int) error {
	var err error
	switch c.cfg.Fabric {
	case "netns", "auto":
		var f *netnsFabric
		if f, err = newNetns(n); err == nil {
			c.fabric = f
			return nil
		}
		if c.cfg.Fabric == "netns" {
			return fmt.Errorf("network namespaces: %w", err)
		}
		c.note("network namespaces not permitted (%v): running on loopback with port rules", err)
		fallthrough
	case "loopback":
		var f *loopbackFabric
		if f, err = newLoopback(n); err != nil {
			return err
		}
		c.fabric = f
		return nil
	}
	return fmt.Errorf("fabric %q: want auto, netns or loopback", c.cfg.Fabric)
}

// dcepd is the node binary: the configured one or one built now.
func (c *Campaign) dcepd() (string, error) {
	if c.cfg.Dcepd != "" {
		return filepath.Abs(c.cfg.Dcepd)
	}
	bin := filepath.Join(c.dir, "bin", "dcepd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/dcep/dcep/cmd/dcepd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build dcepd: %v: %s", err, out)
	}
	return bin, nil
}

// tuneConfig sets what a campaign on a loaded 2-core machine needs: Raft
// timeouts that survive netem without flapping, frequent snapshots (so the
// snapshot faults have something to corrupt), a small memtable (so the
// ledger has sstables), no per-IP rate limit (every client comes from one
// address), and submits that give up within the clients' attempts.
func tuneConfig(path string) error {
	cfg, err := node.LoadConfig(path)
	if err != nil {
		return err
	}
	cfg.Raft.HeartbeatMs, cfg.Raft.ElectionMs, cfg.Raft.LeaderLeaseMs, cfg.Raft.CommitMs = 500, 1000, 400, 20
	cfg.Raft.SnapshotThreshold, cfg.Raft.TrailingLogs, cfg.Raft.SnapshotIntervalS = 400, 800, 5
	cfg.StateMemtableMB = 1
	cfg.Limits.RatePerSec, cfg.Limits.SubmitTimeoutMs = -1, 5000
	raw, err := cfg.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

// mountData gives every node a tmpfs of its own as its data directory (as
// root), so one node's disk can be filled without touching the others'.
func (c *Campaign) mountData() error {
	if os.Geteuid() != 0 {
		c.note("not root: data directories on the shared disk; disk-full skipped")
		return nil
	}
	for _, n := range c.nodes {
		dir := c.net.DataDir(n)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := unix.Mount(Prefix+"-"+n, dir, "tmpfs", 0, "size=192m,mode=0700"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
	}
	c.tmpfs = true
	return nil
}

func (c *Campaign) startNetwork() error {
	if err := c.net.StartAll(); err != nil {
		return err
	}
	if err := c.waitAllReady(90 * time.Second); err != nil {
		return err
	}
	// The harness reads everything, as a regulator: it signs in with the
	// regulator's operator key netgen wrote to the keystore.
	reg, err := regulatorIdentity(filepath.Join(c.net.Dir, "keys"))
	if err != nil {
		return err
	}
	for _, nn := range c.net.Info.Nodes {
		cl, err := client.New(nn.API, client.As(reg), client.WithHTTPClient(c.fabric.HTTP()), client.WithRetry(client.RetryPolicy{
			MaxAttempts: 3, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
			AttemptTimeout: 8 * time.Second, Deadline: 20 * time.Second,
		}), client.WithTimeout(8*time.Second))
		if err != nil {
			return err
		}
		c.clients[nn.Name] = cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.builder, err = c.client(c.voters[0]).Builder(ctx); err != nil {
		return err
	}
	keys, err := keystore.Open(filepath.Join(c.net.Dir, "keys"))
	if err != nil {
		return err
	}
	cb, err := keys.CentralBank()
	if err != nil {
		return err
	}
	c.cbKey = cb.Private
	for _, b := range netgen.Banks {
		k, err := keys.Bank(b.ID)
		if err != nil {
			return err
		}
		c.bankKeys[b.ID] = k.Private
	}
	return nil
}

// waitAllReady waits until every node answers /readyz 200.
func (c *Campaign) waitAllReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.net.WaitReady(ctx, n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readyNow asks one node's /readyz once.
func (c *Campaign) readyNow(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.net.WaitReady(ctx, name) == nil
}

// leader is the leader most running voters name, "" if none within
// timeout.
func (c *Campaign) leader(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		votes := map[string]int{}
		for _, v := range c.voters {
			if !c.net.Running(v) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.client(v).API().Status(ctx, connectReq())
			cancel()
			if err == nil {
				if l := st.Msg.GetNode().GetLeader(); l != "" && c.net.Running(l) {
					votes[l]++
				}
			}
		}
		best, n := "", 0
		for l, k := range votes {
			if k > n || (k == n && l < best) {
				best, n = l, k
			}
		}
		if best != "" {
			return best
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}

// play runs the workload, the faults, the heal and the checks.
func (c *Campaign) play() (*Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cells, err := c.setupCells(ctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("workload setup: %w", err)
	}
	c.wl = &workload{c: c, cells: cells, stop: make(chan struct{})}
	c.logf("workload: %d cells × %d clients; %d faults from seed %d", len(cells), c.cfg.WorkersPerCell, c.cfg.Faults, c.cfg.Seed)
	c.wl.start()
	time.Sleep(3 * time.Second) // a clean stretch first
	for _, f := range Schedule(c.cfg.Seed, c.cfg.Faults, c.cfg.Kinds) {
		if c.cfg.Duration > 0 && time.Since(c.began) > c.cfg.Duration {
			c.note("duration %v reached after %d faults", c.cfg.Duration, len(c.records))
			break
		}
		if c.runFault(f) {
			time.Sleep(f.Gap)
		}
	}
	c.logf("faults done; healing everything and stopping the workload")
	c.healAll()
	c.wl.finish()
	return c.check(), nil
}

// played counts the faults of kind k so far, the current one included.
func (c *Campaign) played(k Kind) int {
	n := 0
	for _, r := range c.records {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// runFault injects, holds, heals and waits for recovery; false if the
// fault was skipped.
func (c *Campaign) runFault(f Fault) bool {
	rec := &FaultRecord{Seq: f.Seq, Kind: f.Kind, FirstCommit: -1, ReadyAfter: -1}
	c.records = append(c.records, rec)
	rng := rngFor(c.cfg.Seed, f.Seq)
	rec.At = time.Duration(c.now())
	h, err := c.inject(f, rec, rng)
	var skip errSkip
	switch {
	case errors.As(err, &skip):
		rec.Skipped = skip.why
		c.logf("#%d %s skipped: %s", f.Seq, f.Kind, skip.why)
		return false
	case err != nil:
		rec.InjectFailed = err.Error()
		rec.Findings = append(rec.Findings, fmt.Sprintf("inject: %v", err))
		c.logf("#%d %s inject failed: %v", f.Seq, f.Kind, err)
	default:
		c.logf("#%d %s injected: targets %v %s", f.Seq, f.Kind, rec.Targets, rec.Detail)
	}
	time.Sleep(f.Hold)
	healStart := time.Duration(c.now())
	if h != nil {
		if err := h(); err != nil {
			rec.Findings = append(rec.Findings, fmt.Sprintf("heal: %v", err))
		}
	}
	rec.Healed = time.Duration(c.now())
	c.logf("#%d %s healed %s", f.Seq, f.Kind, rec.Outcome)
	rec.Recovered = c.recover(rec)
	rec.Ready = time.Duration(c.now())
	rec.ReadyAfter = rec.Ready - healStart
	c.logf("#%d %s: every node ready %.2fs after heal (recovered %v)", f.Seq, f.Kind, rec.ReadyAfter.Seconds(), rec.Recovered)
	return true
}

// recover waits for every node to be ready, reviving any that exited.
func (c *Campaign) recover(rec *FaultRecord) bool {
	deadline := time.Now().Add(c.cfg.RecoverTimeout)
	for time.Now().Before(deadline) {
		all := true
		for _, n := range c.nodes {
			if c.revive(rec, n) || !c.readyNow(n) {
				all = false
			}
		}
		if all {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range c.nodes {
		if c.net.Running(n) && !c.readyNow(n) {
			why := c.notReady(n)
			rec.Findings = append(rec.Findings, fmt.Sprintf("%s not ready %v after heal: %s", n, c.cfg.RecoverTimeout, why))
			c.logf("#%d %s: %s not ready: %s", rec.Seq, rec.Kind, n, why)
		}
	}
	return false
}

// revive starts a node that exited when no fault held it down, recording
// how it died; a node that dies a second time is repaired from the leader
// (data directory emptied), as an operator would. It reports whether the
// node had exited.
func (c *Campaign) revive(rec *FaultRecord, n string) bool {
	exited, exitErr := c.net.Exited(n)
	if !exited && c.net.Running(n) {
		return false
	}
	off := c.logSeen[n]
	c.findPanic(rec, n, off)
	rec.Findings = append(rec.Findings, fmt.Sprintf("%s exited (%v) with no fault on it: %s", n, exitErr, c.lastError(n, off)))
	c.logSeen[n] = logSize(c.net.LogPath(n))
	c.revived[n]++
	if c.revived[n] > 1 {
		_ = wipe(c.net.DataDir(n))
		rec.Findings = append(rec.Findings, fmt.Sprintf("%s repaired: data directory emptied (exit %d)", n, c.revived[n]))
		c.revived[n] = 0
	}
	if err := c.net.Start(n); err != nil {
		rec.Findings = append(rec.Findings, fmt.Sprintf("restart %s: %v", n, err))
	}
	return true
}

// healAll undoes every fault that can linger (for a run cut short) and
// waits for the network.
func (c *Campaign) healAll() {
	_ = c.fabric.Block(nil)
	for i, n := range c.nodes {
		_, _ = c.fabric.Shape(i, Shape{})
		if c.net.Running(n) {
			_ = c.net.Resume(n)
		}
		_ = os.Remove(filepath.Join(c.net.DataDir(n), ballastName))
	}
	rec := &FaultRecord{}
	if !c.recover(rec) {
		c.note("the network did not recover after the final heal within %v", c.cfg.RecoverTimeout)
	}
	c.notes = append(c.notes, rec.Findings...)
}

// teardown stops every node (cleanly, which is itself checked), removes the
// fabric and, for a passing run, the run directory.
func (c *Campaign) teardown(rep *Report) error {
	var errs []error
	if c.net != nil {
		if err := c.net.StopAll(); err != nil {
			if rep != nil {
				rep.Findings = append(rep.Findings, fmt.Sprintf("clean shutdown: %v", err))
			}
			for _, n := range c.nodes {
				_ = c.net.Kill(n)
			}
		}
	}
	if rep != nil {
		rep.Dir = c.dir
		c.saveReport(rep)
	}
	if c.tmpfs && (rep == nil || rep.Failed() || len(rep.Findings) > 0) {
		// Keep the evidence: the tmpfs data directories go with the mounts.
		for _, n := range c.nodes {
			dir := c.net.DataDir(n)
			if out, err := exec.Command("cp", "-a", dir, dir+"-kept").CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("keep %s: %v: %s", dir, err, out))
			}
		}
	}
	if c.fabric != nil {
		errs = append(errs, c.fabric.Teardown())
	}
	errs = append(errs, unmountAll())
	// A run with findings keeps its directory too: the logs are the
	// evidence (panics, stacks) the report points to.
	if rep != nil && !rep.Failed() && len(rep.Findings) == 0 && !c.cfg.Keep && c.cfg.Dir == "" {
		errs = append(errs, os.RemoveAll(c.dir))
		rep.Dir = ""
	}
	return errors.Join(errs...)
}

// regulatorIdentity is the identity of the first regulator operator key in
// the keystore at dir.
func regulatorIdentity(dir string) (client.Identity, error) {
	keys, err := keystore.Open(dir)
	if err != nil {
		return client.Identity{}, err
	}
	k, err := keys.Find("regulator key", func(k *keystore.Key) bool { return k.Kind == keystore.KindRegulator })
	if err != nil {
		return client.Identity{}, fmt.Errorf("chaos: the harness reads as a regulator: %w", err)
	}
	return client.Identity{Subject: token.Subject{Kind: token.KindRegulator, ID: k.Name}, Key: k.Private}, nil
}
