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
	logf, err := os.OpenFile(filepath.Join(n.Dir, "logs", name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.Bin, "run", "--config", nn.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
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
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !n.Running(name) {
			return fmt.Errorf("node %s exited; see %s", name, filepath.Join(n.Dir, "logs", name+".log"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
