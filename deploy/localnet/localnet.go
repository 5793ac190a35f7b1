// Package localnet runs a generated dcep network as separate `dcepd run`
// processes on one machine: what a multi-host deployment does, with each
// node a real OS process that can be stopped, killed with SIGKILL and
// restarted. The process-level fault tests and `go run ./deploy/localnet`
// use it (deploy/README.md).
package localnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
)

// Network is a generated network and its running processes.
type Network struct {
	Dir  string
	Bin  string // path to the dcepd binary
	Info *netgen.Network

	// Wrap, if set, returns the command prefix a node runs under, e.g.
	// ["ip", "netns", "exec", "ns1"] to run it in a network namespace; the
	// prefix must exec the node in place (same pid), so that signals reach
	// it. deploy/chaos uses it.
	Wrap func(name string) []string
	// HTTP is the client WaitReady uses (default http.DefaultClient); a
	// harness whose nodes live in namespaces sets one that dials into them.
	HTTP *http.Client
	// Env, if set, gives a node extra environment variables (NAME=value)
	// for its next Start, e.g. DCEP_LEDGER_VERSION_MAX to stand for a newer
	// build in a rolling upgrade.
	Env map[string][]string

	mu    sync.Mutex
	procs map[string]*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Options shape a generated local network.
type Options struct {
	ChainID    string
	Regulators int
	// P2PPort and APIPort are the first ports; node i uses port+i.
	P2PPort, APIPort int
	Raft             node.RaftConfig
	Limits           node.LimitsConfig
}

// Create generates a network in dir (which must not hold one) and returns
// it, not yet running.
func Create(dir, bin string, o Options) (*Network, error) {
	info, err := netgen.Generate(dir, netgen.Options{
		ChainID: o.ChainID, Regulators: o.Regulators, P2PPort: o.P2PPort, APIPort: o.APIPort,
		Raft: o.Raft, Limits: o.Limits,
	})
	if err != nil {
		return nil, err
	}
	return &Network{Dir: dir, Bin: bin, Info: info, procs: map[string]*proc{}}, nil
}

// Open returns an existing generated network in dir.
func Open(dir, bin string) (*Network, error) {
	info, err := netgen.Load(dir)
	if err != nil {
		return nil, err
	}
	return &Network{Dir: dir, Bin: bin, Info: info, procs: map[string]*proc{}}, nil
}

// Node returns a node's entry in network.json.
func (n *Network) Node(name string) (netgen.NetworkNode, bool) {
	for _, nn := range n.Info.Nodes {
		if nn.Name == name {
			return nn, true
		}
	}
	return netgen.NetworkNode{}, false
}

// Start launches `dcepd run` for one node; its output goes to
// logs/<name>.log, appended across restarts.
func (n *Network) Start(name string) error {
	nn, ok := n.Node(name)
	if !ok {
		return fmt.Errorf("no node %q", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[name]; p != nil && !p.exited() {
		return fmt.Errorf("node %s already running", name)
	}
	if err := os.MkdirAll(filepath.Join(n.Dir, "logs"), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.LogPath(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	argv := []string{n.Bin, "run", "--config", nn.Config}
	if n.Wrap != nil {
		argv = append(append([]string{}, n.Wrap(name)...), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if env := n.Env[name]; len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// Own process group: a signal to the launcher does not reach nodes
	// unless the launcher sends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	n.procs[name] = p
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartAll launches every node.
func (n *Network) StartAll() error {
	for _, nn := range n.Info.Nodes {
		if err := n.Start(nn.Name); err != nil {
			return err
		}
	}
	return nil
}

// Kill sends SIGKILL to a node and waits for it to die: no shutdown code
// runs, as in a power cut of that process.
func (n *Network) Kill(name string) error { return n.signal(name, syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits up to 30 s for a clean shutdown.
func (n *Network) Stop(name string) error { return n.signal(name, syscall.SIGTERM, 30*time.Second) }

func (n *Network) signal(name string, sig syscall.Signal, wait time.Duration) error {
	n.mu.Lock()
	p := n.procs[name]
	n.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	// A paused (SIGSTOP) node acts on no signal but SIGKILL until it is
	// continued.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("node %s did not exit within %v after %v; killed", name, wait, sig)
	}
}

// StopAll stops every running node (SIGTERM, in parallel).
func (n *Network) StopAll() error {
	var wg sync.WaitGroup
	errs := make([]error, len(n.Info.Nodes))
	for i, nn := range n.Info.Nodes {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			errs[i] = n.Stop(name)
		}(i, nn.Name)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Pause stops a node's process with SIGSTOP: it holds its sockets and
// state but runs nothing, as a node stalled by its host would.
func (n *Network) Pause(name string) error { return n.send(name, syscall.SIGSTOP) }

// Resume continues a paused node (SIGCONT).
func (n *Network) Resume(name string) error { return n.send(name, syscall.SIGCONT) }

func (n *Network) send(name string, sig syscall.Signal) error {
	n.mu.Lock()
	p := n.procs[name]
	n.mu.Unlock()
	if p == nil || p.exited() {
		return fmt.Errorf("node %s is not running", name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%v to %s: %w", sig, name, err)
	}
	return nil
}

// Pid is the running node's process id (0 if it is not running).
func (n *Network) Pid(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[name]; p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Exited reports whether a started node's process has ended, and how (nil:
// exit status 0; an *exec.ExitError otherwise). A node never started has
// not exited.
func (n *Network) Exited(name string) (bool, error) {
	n.mu.Lock()
	p := n.procs[name]
	n.mu.Unlock()
	if p == nil || !p.exited() {
		return false, nil
	}
	return true, p.err
}

// LogPath is where a node's output goes (appended across restarts).
func (n *Network) LogPath(name string) string { return filepath.Join(n.Dir, "logs", name+".log") }

// DataDir is a node's data directory (netgen's layout: data/ beside its
// config).
func (n *Network) DataDir(name string) string { return filepath.Join(n.Dir, "nodes", name, "data") }

// Running reports whether a node's process is alive.
func (n *Network) Running(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.procs[name]
	return p != nil && !p.exited()
}

// WaitReady waits until the node's /readyz answers 200.
func (n *Network) WaitReady(ctx context.Context, name string) error {
	nn, ok := n.Node(name)
	if !ok {
		return fmt.Errorf("no node %q", name)
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nn.API+"/readyz", nil)
		hc := n.HTTP
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !n.Running(name) {
			return fmt.Errorf("node %s exited; see %s", name, n.LogPath(name))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
