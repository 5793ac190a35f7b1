package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix names everything the harness creates outside its run directory:
// network namespaces, tmpfs mounts (their source), the nftables table. Cleanup
// removes whatever carries it, so a crashed run leaves nothing behind the
// next one does not clear.
const Prefix = "dcepchaos"

// Addresses live in 198.18.0.0/24 (RFC 2544's benchmarking range) and only
// inside the namespaces the harness creates: the bridge sits in its own hub
// namespace, no namespace has a default route, and the root namespace never
// holds one of these addresses, so nothing can leave the machine.
const (
	subnet     = "198.18.0"
	clientHost = subnet + ".2"
	// P2PPort and APIPort are every node's ports in namespace mode (each
	// node has its own address).
	P2PPort = 7101
	APIPort = 8101
)

// Fabric is where the nodes run and what can be done to the network
// between them: a namespace per node on a bridge, or loopback with port
// rules where namespaces are not permitted.
type Fabric interface {
	// Mode is "netns" or "loopback".
	Mode() string
	// Hosts are the node addresses, in node order, for netgen.
	Hosts() []string
	// Ports are the first p2p and API ports for netgen (loopback: node i
	// uses port+i; netns: every node the same port).
	Ports() (p2p, api int)
	// Wrap is the command prefix node i runs under (nil: none).
	Wrap(i int) []string
	// HTTP dials the nodes' APIs.
	HTTP() *http.Client
	// Block replaces the packet filter: every (from, to) pair drops the
	// packets node from sends node to (nodes' p2p traffic; clients still
	// reach every API). Nil heals.
	Block(pairs [][2]int) error
	// Shape degrades (s non-zero) or restores node i's traffic, returning
	// what it did; ErrUnsupported in loopback mode.
	Shape(i int, s Shape) (string, error)
	// Teardown removes what the fabric created.
	Teardown() error
}

var (
	// ErrUnsupported marks a fault the fabric cannot inject; the campaign
	// skips it and says so in the report.
	ErrUnsupported = errors.New("not supported by this fabric")
)

// run runs a command, returning its combined output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runIn runs a command inside namespace ns.
func runIn(ns, name string, args ...string) error {
	return run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// nftIn loads an nftables script inside namespace ns ("" = here).
func nftIn(ns, script string) error {
	argv := []string{"nft", "-f", "-"}
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s\nscript:\n%s", err, strings.TrimSpace(string(out)), script)
	}
	return nil
}

// netnsFabric: namespaces <Prefix>-hub (a bridge), <Prefix>-cli (the
// harness's clients) and <Prefix>-n<i> per node, each joined to the bridge
// by a veth pair created directly in the two namespaces.
type netnsFabric struct {
	nodes int
	http  *http.Client
	netem bool // the kernel has sch_netem
}

func nsName(i int) string { return fmt.Sprintf("%s-n%d", Prefix, i) }

const (
	hubNS = Prefix + "-hub"
	cliNS = Prefix + "-cli"
)

func nodeHost(i int) string { return fmt.Sprintf("%s.%d", subnet, 10+i) }

// newNetns builds the namespaces for n nodes. It fails (and removes what it
// made) where namespaces are not permitted.
func newNetns(n int) (*netnsFabric, error) {
	f := &netnsFabric{nodes: n}
	if err := f.build(); err != nil {
		_ = f.Teardown()
		return nil, err
	}
	// Some kernels are built without sch_netem: then Shape emulates it.
	f.netem = runIn(cliNS, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms") == nil
	f.http = &http.Client{Transport: &http.Transport{
		DialContext: nsDialer("/run/netns/" + cliNS), MaxIdleConns: 256, MaxIdleConnsPerHost: 32,
		IdleConnTimeout: 30 * time.Second,
	}}
	return f, nil
}

func (f *netnsFabric) build() error {
	steps := [][]string{
		{"ip", "netns", "add", hubNS},
		{"ip", "-n", hubNS, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", hubNS, "link", "set", "br0", "up"},
		{"ip", "-n", hubNS, "link", "set", "lo", "up"},
	}
	attach := func(ns, veth, addr string) {
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "netns", hubNS, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", hubNS, "link", "set", veth, "master", "br0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
	}
	attach(cliNS, "dcx-cli", clientHost)
	for i := range f.nodes {
		attach(nsName(i), fmt.Sprintf("dcx-n%d", i), nodeHost(i))
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func (f *netnsFabric) Mode() string { return "netns" }

func (f *netnsFabric) Hosts() []string {
	h := make([]string, f.nodes)
	for i := range h {
		h[i] = nodeHost(i)
	}
	return h
}

func (f *netnsFabric) Ports() (int, int)   { return P2PPort, APIPort }
func (f *netnsFabric) Wrap(i int) []string { return []string{"ip", "netns", "exec", nsName(i)} }
func (f *netnsFabric) HTTP() *http.Client  { return f.http }

// Block writes each node's filter: its input chain drops packets from the
// nodes that may not reach it.
func (f *netnsFabric) Block(pairs [][2]int) error {
	from := make([][]string, f.nodes)
	for _, p := range pairs {
		from[p[1]] = append(from[p[1]], nodeHost(p[0]))
	}
	var errs []error
	for i := range f.nodes {
		script := fmt.Sprintf("table inet %s\ndelete table inet %s\n", Prefix, Prefix)
		if len(from[i]) > 0 {
			script += fmt.Sprintf("table inet %s {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr { %s } drop\n }\n}\n",
				Prefix, strings.Join(from[i], ", "))
		}
		if err := nftIn(nsName(i), script); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f *netnsFabric) Teardown() error { return cleanupNetns() }

// nsDialer dials from inside the namespace at nsPath. A socket belongs to
// the namespace it was created in, so the connection works from any thread.
func nsDialer(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
		if nerr := inNamespace(nsPath, func() { c, err = d.DialContext(ctx, network, addr) }); nerr != nil {
			return nil, nerr
		}
		return c, err
	}
}

// inNamespace runs fn on an OS thread that has entered the network
// namespace at nsPath, on a goroutine locked to that thread; the thread
// then returns to its own namespace. A thread that cannot return stays
// locked and dies with its goroutine, so no other goroutine ever runs in
// the wrong namespace. fn must not start goroutines that make sockets.
func inNamespace(nsPath string, fn func()) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := enter(nsPath, fn)
		if back {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

func enter(nsPath string, fn func()) (back bool, err error) {
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return true, err
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return true, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("setns %s: %w", nsPath, err)
	}
	fn()
	return unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil, nil
}

// Cleanup removes everything a harness run (this one or one that crashed)
// left: processes in its namespaces, the namespaces, its tmpfs mounts, its
// nftables table on loopback, and dcepd processes started from a run
// directory named after Prefix. It is idempotent and quiet about what is
// not there.
func Cleanup() error {
	var errs []error
	errs = append(errs, cleanupNetns())
	killStrays()
	errs = append(errs, unmountAll())
	if _, err := exec.LookPath("nft"); err == nil {
		_ = nftIn("", fmt.Sprintf("table inet %s\ndelete table inet %s\n", Prefix, Prefix))
	}
	return errors.Join(errs...)
}

// cleanupNetns kills every process in a namespace named after Prefix and
// deletes the namespaces (their veths go with them).
func cleanupNetns() error {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil // no namespaces at all
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), Prefix+"-") {
			continue
		}
		if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := run("ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killStrays SIGKILLs dcepd processes whose command line names a run
// directory of this harness (loopback mode has no namespace to find them
// by).
func killStrays() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) < 3 || filepath.Base(args[0]) != "dcepd" || args[1] != "run" {
			continue
		}
		if strings.Contains(strings.Join(args, " "), "/"+Prefix+"-run-") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountAll unmounts every tmpfs whose source is named after Prefix,
// deepest first.
func unmountAll() error {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && strings.HasPrefix(fields[0], Prefix+"-") {
			points = append(points, fields[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("umount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
