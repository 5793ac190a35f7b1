package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Start-up failures (docs/operations.md, "Start-up errors"). Each is
// returned wrapped in a StartupError, whose one-line message names the
// cause and the fix; errors.Is finds the sentinel.
var (
	// ErrDataDirInUse: another process (a node already running, a second
	// `dcepd dev`) holds the data directory's lock.
	ErrDataDirInUse = errors.New("data directory in use")
	// ErrPortInUse: api_listen or a p2p_listen port is taken.
	ErrPortInUse = errors.New("port in use")
	// ErrGenesisMissing: the genesis file cannot be read.
	ErrGenesisMissing = errors.New("genesis file missing")
	// ErrNodeKeyMismatch: node_key is not the key genesis lists for name.
	ErrNodeKeyMismatch = errors.New("node key does not match the node's name")
	// ErrBadConfig: a config value, or a combination, cannot work.
	ErrBadConfig = errors.New("bad config")
)

// StartupError is why a node did not start and what the operator does
// about it. Its message is one line: "CAUSE (fix: FIX)".
type StartupError struct {
	Kind  error // one of the sentinels above
	Cause string
	Fix   string
	Err   error // the underlying error, if any
}

func (e *StartupError) Error() string {
	return oneLine(e.Cause) + " (fix: " + e.Fix + ")"
}

// Unwrap lets errors.Is find both the sentinel and the underlying error.
func (e *StartupError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func startupErr(kind, err error, fix, format string, args ...any) *StartupError {
	return &StartupError{Kind: kind, Err: err, Fix: fix, Cause: fmt.Sprintf(format, args...)}
}

// oneLine folds a multi-line library message (libp2p lists every address
// it tried on its own line) into one.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// lockFile is the data directory's lock: held (flock) for the node's
// life; it holds the holder's pid, for the message a second process gets.
const lockFile = "LOCK"

// LockDataDir takes dir's exclusive lock (creating dir), so that two
// processes never open one node's ledger and log: a second `dcepd run` or
// `dcepd dev` on the same directory gets ErrDataDirInUse naming the pid
// holding it. The kernel drops the lock when the process dies, even on
// kill -9, so a crash leaves nothing to clean up. unlock releases it.
func LockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, startupErr(ErrBadConfig, err, "check data_dir and its permissions", "data_dir %s: %v", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, startupErr(ErrBadConfig, err, "check data_dir and its permissions", "data_dir %s: %v", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if raw, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(raw))); perr == nil && pid > 0 {
				holder = fmt.Sprintf("another process (pid %d)", pid)
			}
		}
		f.Close()
		return nil, startupErr(ErrDataDirInUse, err,
			"this node is already running: stop it first, or give this config its own data_dir",
			"data_dir %s is in use by %s", dir, holder)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// listenAPI binds api_listen before anything else is opened, so a port in
// use is reported before the node touches its ledger or joins the network.
func listenAPI(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		return l, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, startupErr(ErrPortInUse, err,
			"stop what listens there (another node?) or choose another port in api_listen",
			"api_listen %s: port already in use", addr)
	}
	return nil, startupErr(ErrBadConfig, err, "set api_listen to HOST:PORT on an address of this machine",
		"api_listen %s: %v", addr, err)
}

// p2pStartErr names the likely cause of a libp2p host that did not start.
func p2pStartErr(listen []string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return startupErr(ErrPortInUse, err,
			"stop what listens there (another node?) or choose another port in p2p_listen",
			"p2p_listen %s: port already in use", strings.Join(listen, ","))
	}
	return startupErr(ErrBadConfig, err, "set p2p_listen to multiaddrs such as /ip4/127.0.0.1/tcp/7101 on an address of this machine",
		"p2p_listen %s: %v", strings.Join(listen, ","), err)
}

// checkAPIListen refuses an api_listen that net.Listen would refuse or
// read differently: it must be HOST:PORT with a numeric port.
func checkAPIListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var p int
		if p, err = strconv.Atoi(port); err == nil && (p < 0 || p > 65535) {
			err = fmt.Errorf("port %d is outside 0..65535", p)
		}
	}
	if err != nil {
		return startupErr(ErrBadConfig, err, "write api_listen as HOST:PORT, e.g. '127.0.0.1:8101'",
			"config: api_listen %q is not HOST:PORT (%v)", addr, err)
	}
	return nil
}

// checkTLSFiles loads the API's certificate and key at config load, so a
// missing or unreadable file stops the node before it starts rather than
// leaving it running with no API.
func (c *Config) checkTLSFiles() error {
	if c.TLSCert == "" {
		return nil
	}
	cert, key := c.Path(c.TLSCert), c.Path(c.TLSKey)
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return startupErr(ErrBadConfig, err, "point tls_cert and tls_key at a readable PEM certificate and its private key",
			"config: tls_cert %s / tls_key %s: %v", cert, key, err)
	}
	return nil
}

// checkTimeouts is Raft's own rule made a config error: election_ms ≥
// heartbeat_ms ≥ leader_lease_ms (hashicorp/raft refuses the rest only
// once the node is half started).
func (c *Config) checkTimeouts() error {
	r := &c.Raft
	if r.ElectionMs < r.HeartbeatMs {
		return startupErr(ErrBadConfig, nil, "set raft.election_ms ≥ raft.heartbeat_ms ≥ raft.leader_lease_ms",
			"config: raft.election_ms %d is below raft.heartbeat_ms %d", r.ElectionMs, r.HeartbeatMs)
	}
	if r.LeaderLeaseMs > r.HeartbeatMs {
		return startupErr(ErrBadConfig, nil, "set raft.election_ms ≥ raft.heartbeat_ms ≥ raft.leader_lease_ms",
			"config: raft.leader_lease_ms %d exceeds raft.heartbeat_ms %d", r.LeaderLeaseMs, r.HeartbeatMs)
	}
	return nil
}
