package nodetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

// childEnv names the config file a child process runs (see Main).
const childEnv = "DCEP_NODETEST_CHILD_CONFIG"

// Main runs a test package's tests, or, in a process started by
// StartProcess, one node until SIGTERM (or SIGKILL). A package that uses
// StartProcess calls it from TestMain:
//
//	func TestMain(m *testing.M) { nodetest.Main(m) }
func Main(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		if err := runChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "nodetest child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is what `dcepd run --config path` does, without the CLI.
func runChild(path string) error {
	cfg, err := node.LoadConfig(path)
	if err != nil {
		return err
	}
	key, err := netgen.LoadNodeKey(cfg.Path(cfg.NodeKey))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	n, err := node.Start(cfg, node.Options{Key: key, Logger: log})
	if err != nil {
		return err
	}
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Close(ctx)
}

// process is a node running as a child process of the test binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess runs a node as a separate OS process (the test binary
// re-executed; the package's TestMain must call Main), on the same data
// directory, ports and key as Start would use, so the node can be killed
// with SIGKILL and later started again in-process or as a process. Its log
// is Dir/logs/<name>.log.
func (c *Cluster) StartProcess(name string) {
	c.T.Helper()
	if c.Node(name) != nil || c.procs[name] != nil {
		c.T.Fatalf("start process %s: already running", name)
	}
	path, err := c.writeChildConfig(name)
	if err != nil {
		c.T.Fatalf("start process %s: %v", name, err)
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "logs", name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		c.T.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a test that dies (panic, timeout) takes its nodes along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.T.Fatalf("start process %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	logPath := logf.Name()
	c.T.Cleanup(func() {
		// A failed test shows what its child processes said: their logs
		// live in the test's temporary directory, which is removed.
		if !c.T.Failed() {
			return
		}
		if b, err := os.ReadFile(logPath); err == nil {
			const tail = 8 << 10
			c.T.Logf("log of process %s (last %d bytes):\n%s", name, min(len(b), tail), b[max(0, len(b)-tail):])
		}
	})
}

// Kill sends SIGKILL to a node started with StartProcess and waits for it
// to die: no shutdown code runs.
func (c *Cluster) Kill(name string) {
	c.T.Helper()
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		c.T.Fatalf("kill %s: not running as a process", name)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.T.Fatalf("kill %s: %v", name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		c.T.Fatalf("kill %s: process did not die", name)
	}
}

// ProcessRunning reports whether a node started with StartProcess is alive.
func (c *Cluster) ProcessRunning(name string) bool {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) killProcesses() {
	c.mu.Lock()
	procs := c.procs
	c.procs = map[string]*process{}
	c.mu.Unlock()
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// writeChildConfig writes what a child needs: genesis, the node's key in
// keystore format and its config file with absolute paths.
func (c *Cluster) writeChildConfig(name string) (string, error) {
	dir := filepath.Join(c.Dir, "proc", name)
	if err := os.MkdirAll(filepath.Join(c.Dir, "logs"), 0o700); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	genesis := filepath.Join(c.Dir, "proc", "genesis.json")
	raw, err := protojson.Marshal(c.Net.Genesis)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(genesis, raw, 0o600); err != nil {
		return "", err
	}
	keys, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		return "", err
	}
	if _, err := keys.Get("node"); errors.Is(err, keystore.ErrNotFound) {
		if _, err := keys.Import(keystore.Key{Name: "node", Kind: keystore.KindNode, Private: c.Key(name)}); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	cfg := *c.Configs[name]
	cfg.Genesis, cfg.NodeKey = genesis, keys.Path("node")
	if !filepath.IsAbs(cfg.DataDir) {
		return "", fmt.Errorf("data dir %q is not absolute", cfg.DataDir)
	}
	out, err := cfg.Marshal()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.toml")
	return path, os.WriteFile(path, out, 0o600)
}
