package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is one node's configuration file (TOML). Relative paths are
// relative to the file's directory. docs/operations.md documents every key.
type Config struct {
	// Name is this node's name in the genesis membership.
	Name string `toml:"name"`
	// DataDir holds state/ (Pebble) and raft/ (log, snapshots).
	DataDir string `toml:"data_dir"`
	// Genesis is the genesis file (protobuf JSON).
	Genesis string `toml:"genesis"`
	// NodeKey is the node's identity key: a keystore file, or a pkcs11: URI
	// naming a key in a hardware token (cmd/dcepd loadNodeKey).
	NodeKey string `toml:"node_key"`
	// NodeKeyCheckPerms (default true) refuses a node_key file that group
	// or others may access. false is for a Kubernetes Secret volume, where
	// the kubelet sets the modes (root's file, group fsGroup, 0440, in a
	// world-writable tmpfs) and the pod's one user is the only reader.
	NodeKeyCheckPerms *bool `toml:"node_key_check_perms,omitempty"`
	// P2PListen are libp2p multiaddrs to listen on.
	P2PListen []string `toml:"p2p_listen"`
	// APIListen is host:port for the client API, /metrics and health.
	APIListen string `toml:"api_listen"`
	// TLSCert and TLSKey, if set, serve the API over TLS.
	TLSCert string `toml:"tls_cert,omitempty"`
	TLSKey  string `toml:"tls_key,omitempty"`
	// Console serves the read-only web console at /console (on by default
	// for regulators).
	Console *bool `toml:"console,omitempty"`
	// StateCacheMB is the ledger store's block cache (0: the store's
	// default, 512 MiB). Every payment reads its inputs and wallets; a
	// cache that holds the working set keeps those reads off the disk.
	StateCacheMB int `toml:"state_cache_mb,omitempty"`
	// StateMemtableMB is the ledger store's memtable size (0: the store's
	// default).
	StateMemtableMB int `toml:"state_memtable_mb,omitempty"`

	Raft    RaftConfig    `toml:"raft"`
	Batch   BatchConfig   `toml:"batch"`
	Limits  LimitsConfig  `toml:"limits"`
	Log     LogConfig     `toml:"log"`
	Archive ArchiveConfig `toml:"archive"`
	// AccessLog bounds the access log in data_dir/access (node/accesslog).
	AccessLog AccessLogConfig `toml:"access_log"`
	Debug     DebugConfig     `toml:"debug,omitempty"`

	// dir is the directory of the config file.
	dir string
}

// RaftConfig tunes consensus; zero values take consensus defaults, which
// suit bank data centres tens of milliseconds apart.
type RaftConfig struct {
	HeartbeatMs       int    `toml:"heartbeat_ms"`
	ElectionMs        int    `toml:"election_ms"`
	LeaderLeaseMs     int    `toml:"leader_lease_ms"`
	CommitMs          int    `toml:"commit_ms"`
	SnapshotThreshold uint64 `toml:"snapshot_threshold"`
	TrailingLogs      uint64 `toml:"trailing_logs"`
	SnapshotIntervalS int    `toml:"snapshot_interval_s"`
}

// BatchConfig bounds how the leader groups transactions into log entries.
type BatchConfig struct {
	MaxTxs     int `toml:"max_txs"`
	MaxBytes   int `toml:"max_bytes"`
	MaxDelayUs int `toml:"max_delay_us"`
	// MaxInflight bounds entries proposed but not yet applied: while that
	// many are in flight, arrivals wait and go out together in the next.
	MaxInflight int `toml:"max_inflight"`
}

// LimitsConfig bounds what clients may ask of the node.
type LimitsConfig struct {
	// MaxRequestBytes bounds one API request body (default 256 KiB; a
	// transaction is at most 64 KiB).
	MaxRequestBytes int `toml:"max_request_bytes"`
	// RatePerSec and Burst bound requests per client IP (default 10,000/s,
	// burst 20,000). 0 keeps the default; -1 disables the limit.
	RatePerSec int `toml:"rate_per_sec"`
	Burst      int `toml:"burst"`
	// IdentityRatePerSec and IdentityBurst bound Submit per identity: the
	// signed-in caller and each key that signed the transaction
	// (ratelimit.go), so one identity spread over many addresses cannot
	// flood (default 1,000/s, burst 2,000; -1 disables; when rate_per_sec
	// is -1 the default is -1 too).
	IdentityRatePerSec int `toml:"identity_rate_per_sec"`
	IdentityBurst      int `toml:"identity_burst"`
	// WalletKeyRatePerSec and WalletKeyBurst bound GetWalletKey per
	// signed-in identity (walletkey.go), so that no identity sweeps wallet
	// ids for keys (default 10/s, burst 50; -1 disables; when
	// rate_per_sec is -1 the default is -1 too).
	WalletKeyRatePerSec int `toml:"wallet_key_rate_per_sec"`
	WalletKeyBurst      int `toml:"wallet_key_burst"`
	// SubmitTimeoutMs bounds how long Submit waits for a commit (default
	// 10 s).
	SubmitTimeoutMs int `toml:"submit_timeout_ms"`
	// MaxStreams bounds concurrent outcome streams (default 256).
	MaxStreams int `toml:"max_streams"`
	// MaxStreamsPerIP bounds one client address's share of them (default
	// 16), so one address cannot take every slot.
	MaxStreamsPerIP int `toml:"max_streams_per_ip"`
	// MaxInflightSubmits bounds submits being processed at once (default
	// 20,000); beyond it, Submit answers OVERLOADED.
	MaxInflightSubmits int `toml:"max_inflight_submits"`
}

// DebugConfig is for fault testing only; a production node leaves it out.
type DebugConfig struct {
	// ClockOffsetMs shifts this node's clock (what it reports to peers and,
	// as leader, counts among the voters' clocks ledger time is stamped
	// from) by this many milliseconds, ± 100 years: how a fault campaign
	// skews one node's clock. The node logs a warning at start when set.
	ClockOffsetMs int64 `toml:"clock_offset_ms,omitempty"`
}

// ArchiveConfig is the archive of committed log entries
// (consensus/DESIGN.md, "Archive"), in data_dir/archive.
type ArchiveConfig struct {
	// Enabled keeps the archive on a bank (voter) node; default true. A
	// regulator, or a node not yet a member, always keeps one.
	Enabled *bool `toml:"enabled,omitempty"`
	// SegmentKB is how many KiB of entries a segment holds before it is
	// closed (default 4096).
	SegmentKB int `toml:"segment_kb"`
}

// AccessLogConfig bounds the node's access log (who read what), kept in
// data_dir/access: at most KeepFiles files of MaxFileMB each.
type AccessLogConfig struct {
	// MaxFileMB: the active file is rotated before it would pass this
	// (default 64).
	MaxFileMB int `toml:"max_file_mb"`
	// KeepFiles: how many files are kept, the active one included; older
	// ones are deleted at rotation (default 8, so 512 MiB at most).
	KeepFiles int `toml:"keep_files"`
}

// LogConfig chooses log level ("debug", "info", "warn", "error") and format
// ("text" or "json").
type LogConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// LoadConfig reads and validates a config file. Unknown keys are errors: a
// misspelt setting must not be silently ignored.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, startupErr(ErrBadConfig, err, "pass --config the node's config.toml (dcepd testnet writes nodes/NAME/config.toml)", "read config: %v", err)
	}
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeErr(path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(abs)
	if err := c.Validate(); err != nil {
		var se *StartupError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, startupErr(ErrBadConfig, err, "correct that key in "+path+" (docs/operations.md lists every key)", "%v", err)
	}
	return &c, nil
}

// decodeErr is a config file TOML could not decode, in one line naming
// the keys and lines.
func decodeErr(path string, err error) error {
	const fix = "correct or remove that key (docs/operations.md lists every key)"
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var keys []string
		for _, e := range sm.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
		}
		return startupErr(ErrBadConfig, err, fix, "config %s: unknown key(s) %s", path, strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return startupErr(ErrBadConfig, err, fix, "config %s:%d:%d: %s: %v", path, row, col, strings.Join(k, "."), de)
		}
		return startupErr(ErrBadConfig, err, "correct the TOML syntax there", "config %s:%d:%d: %v", path, row, col, de)
	}
	return startupErr(ErrBadConfig, err, fix, "config %s: %v", path, err)
}

// Marshal renders the config as TOML.
func (c *Config) Marshal() ([]byte, error) { return toml.Marshal(c) }

// Validate checks required keys and fills defaults.
func (c *Config) Validate() error {
	for _, f := range []struct{ key, v string }{
		{"name", c.Name}, {"data_dir", c.DataDir}, {"genesis", c.Genesis}, {"node_key", c.NodeKey}, {"api_listen", c.APIListen},
	} {
		if f.v == "" {
			return fmt.Errorf("config: %s is required", f.key)
		}
	}
	if len(c.P2PListen) == 0 {
		return errors.New("config: p2p_listen is required")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: tls_cert and tls_key go together")
	}
	r := &c.Raft
	defInt(&r.HeartbeatMs, 1000)
	defInt(&r.ElectionMs, 1000)
	defInt(&r.LeaderLeaseMs, 500)
	defInt(&r.CommitMs, 10)
	defInt(&r.SnapshotIntervalS, 120)
	if r.SnapshotThreshold == 0 {
		r.SnapshotThreshold = 8192
	}
	if r.TrailingLogs == 0 {
		r.TrailingLogs = 10240
	}
	b := &c.Batch
	defInt(&b.MaxTxs, 2000)
	defInt(&b.MaxBytes, 1<<20)
	defInt(&b.MaxDelayUs, 2000)
	defInt(&b.MaxInflight, 32)
	l := &c.Limits
	defInt(&l.MaxRequestBytes, 256<<10)
	defInt(&l.RatePerSec, 10_000)
	defInt(&l.Burst, max(1, 2*l.RatePerSec)) // 1 when unlimited (-1): unused
	if l.RatePerSec == -1 {
		defInt(&l.IdentityRatePerSec, -1) // a "no limits" node (tests, bench clusters)
	}
	defInt(&l.IdentityRatePerSec, 1_000)
	defInt(&l.IdentityBurst, max(1, 2*l.IdentityRatePerSec))
	if l.RatePerSec == -1 {
		defInt(&l.WalletKeyRatePerSec, -1)
	}
	defInt(&l.WalletKeyRatePerSec, 10)
	defInt(&l.WalletKeyBurst, max(1, 5*l.WalletKeyRatePerSec))
	defInt(&l.SubmitTimeoutMs, 10_000)
	defInt(&l.MaxStreams, 256)
	defInt(&l.MaxStreamsPerIP, min(16, l.MaxStreams))
	defInt(&l.MaxInflightSubmits, 20_000)
	defInt(&c.Archive.SegmentKB, 4096)
	defInt(&c.AccessLog.MaxFileMB, 64)
	defInt(&c.AccessLog.KeepFiles, 8)
	if err := c.checkRanges(); err != nil {
		return err
	}
	// Cross-checks: what would otherwise fail half-way through Start.
	if err := c.checkTimeouts(); err != nil {
		return err
	}
	if err := checkAPIListen(c.APIListen); err != nil {
		return err
	}
	if err := c.checkTLSFiles(); err != nil {
		return err
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	return nil
}

// checkRanges bounds every number an operator sets (after defaults): a
// typo such as a negative timeout or a 10 GiB batch is refused at start,
// naming the key, rather than silently replaced or obeyed.
func (c *Config) checkRanges() error {
	r, b, l := &c.Raft, &c.Batch, &c.Limits
	for _, f := range []struct {
		key       string
		v, lo, hi int64
	}{
		{"state_cache_mb", int64(c.StateCacheMB), 0, 1 << 20},
		{"state_memtable_mb", int64(c.StateMemtableMB), 0, 1 << 10},
		{"raft.heartbeat_ms", int64(r.HeartbeatMs), 10, 60_000},
		{"raft.election_ms", int64(r.ElectionMs), 10, 60_000},
		{"raft.leader_lease_ms", int64(r.LeaderLeaseMs), 5, 60_000},
		{"raft.commit_ms", int64(r.CommitMs), 1, 10_000},
		{"raft.snapshot_threshold", int64(min(r.SnapshotThreshold, 1<<62)), 1, 1 << 30},
		{"raft.trailing_logs", int64(min(r.TrailingLogs, 1<<62)), 1, 1 << 30},
		{"raft.snapshot_interval_s", int64(r.SnapshotIntervalS), 1, 86_400},
		{"batch.max_txs", int64(b.MaxTxs), 1, 100_000},
		{"batch.max_bytes", int64(b.MaxBytes), 64 << 10, maxForwardBytes / 2},
		{"batch.max_delay_us", int64(b.MaxDelayUs), 1, 1_000_000},
		{"batch.max_inflight", int64(b.MaxInflight), 1, 1024},
		{"limits.max_request_bytes", int64(l.MaxRequestBytes), 64 << 10, 64 << 20},
		{"limits.burst", int64(l.Burst), 1, 100_000_000},
		{"limits.identity_burst", int64(l.IdentityBurst), 1, 100_000_000},
		{"limits.wallet_key_burst", int64(l.WalletKeyBurst), 1, 100_000_000},
		{"limits.submit_timeout_ms", int64(l.SubmitTimeoutMs), 100, 600_000},
		{"limits.max_streams", int64(l.MaxStreams), 1, 100_000},
		{"limits.max_streams_per_ip", int64(l.MaxStreamsPerIP), 1, int64(l.MaxStreams)},
		{"debug.clock_offset_ms", c.Debug.ClockOffsetMs, -maxClockOffsetMs, maxClockOffsetMs},
		{"limits.max_inflight_submits", int64(l.MaxInflightSubmits), 1, 1_000_000},
		{"archive.segment_kb", int64(c.Archive.SegmentKB), 4, 8192},
		{"access_log.max_file_mb", int64(c.AccessLog.MaxFileMB), 1, 4096},
		{"access_log.keep_files", int64(c.AccessLog.KeepFiles), 1, 1000},
	} {
		if f.v < f.lo || f.v > f.hi {
			return fmt.Errorf("config: %s %d is outside %d..%d", f.key, f.v, f.lo, f.hi)
		}
	}
	if l.RatePerSec != -1 && (l.RatePerSec < 1 || l.RatePerSec > 100_000_000) {
		return fmt.Errorf("config: limits.rate_per_sec %d is outside 1..100000000 (or -1: no limit)", l.RatePerSec)
	}
	if l.IdentityRatePerSec != -1 && (l.IdentityRatePerSec < 1 || l.IdentityRatePerSec > 100_000_000) {
		return fmt.Errorf("config: limits.identity_rate_per_sec %d is outside 1..100000000 (or -1: no limit)", l.IdentityRatePerSec)
	}
	if l.WalletKeyRatePerSec != -1 && (l.WalletKeyRatePerSec < 1 || l.WalletKeyRatePerSec > 100_000_000) {
		return fmt.Errorf("config: limits.wallet_key_rate_per_sec %d is outside 1..100000000 (or -1: no limit)", l.WalletKeyRatePerSec)
	}
	return nil
}

// maxClockOffsetMs bounds debug.clock_offset_ms: 100 years.
const maxClockOffsetMs = 100 * 366 * 24 * 3600 * 1000

func defInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

// Path resolves a path from the config relative to the config's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// SetDir sets the directory relative paths resolve against (for configs
// built in code).
func (c *Config) SetDir(dir string) { c.dir = dir }

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }
