package main

// Test harness: the tests in this package build the real dcepd and dcep
// binaries and run `dcepd dev` as a separate process, then drive it with
// the dcep binary, as a user would.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dcep/dcep/internal/testports"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string // holds the built dcepd and dcep
	buildErr  error

	sharedMu  sync.Mutex
	sharedNet *devNet // one network for the tests that do not need a fresh one
	sharedErr error
	// sharedUsers are the tests that used sharedNet; the same test run
	// again (go test -count=N) gets a fresh network, since its wallet names
	// are taken in the old one.
	sharedUsers = map[string]testing.TB{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	if sharedNet != nil {
		if err := sharedNet.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the shared dev network:", err)
			code = 1
		}
		_ = os.RemoveAll(sharedNet.home)
	}
	sharedMu.Unlock()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the module's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

// goTool is the go command running these tests: the one on PATH, which is
// the one `go test` was started with.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// binaries builds dcepd and dcep once per test binary and returns their
// directory.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		defer func() { t.Logf("built dcepd and dcep in %v", time.Since(start).Round(time.Millisecond)) }()
		binDir, buildErr = os.MkdirTemp("", "dcep-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command(goTool(), "build", "-o", binDir+string(filepath.Separator), "./cmd/dcepd", "./cmd/dcep")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// devNet is a `dcepd dev` process whose network lives in home/.dcep/dev,
// exactly where a user's would (HOME is home for it and for the CLI).
type devNet struct {
	t       testing.TB
	home    string
	dir     string // home/.dcep/dev
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	// logStart is the size of the log when the process started: its
	// "network ready" line (printed once dcepd dev has also funded the
	// banks' offline guarantees) is looked for after it.
	logStart int64
}

// env is the environment of every process the tests start: HOME is the
// network's home, and no DCEP_* variable of the caller leaks in.
func (d *devNet) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DCEP_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "HOME="+d.home), extra...)
}

// startDev starts `dcepd dev` in a new home (free ports), with the extra
// flags given, and waits until every node is ready.
func startDev(t testing.TB, home string, extra ...string) (*devNet, error) {
	bin := binaries(t)
	d := &devNet{t: t, home: home, dir: filepath.Join(home, ".dcep", "dev")}
	var lastErr error
	for range 5 {
		api, p2p := freePortRange(8), freePortRange(8)
		if api == 0 || p2p == 0 {
			continue
		}
		if err := d.start(bin, append([]string{"--api-port", fmt.Sprint(api), "--p2p-port", fmt.Sprint(p2p)}, extra...)...); err != nil {
			return nil, err
		}
		start := time.Now()
		if lastErr = d.waitReady(60 * time.Second); lastErr == nil {
			t.Logf("dcepd dev ready in %v", time.Since(start).Round(time.Millisecond))
			return d, nil
		}
		// A port may have been taken meanwhile: start over elsewhere.
		_ = d.stop()
		_ = os.RemoveAll(d.dir)
	}
	return nil, fmt.Errorf("dcepd dev did not start: %v\n%s", lastErr, d.logTail())
}

// restart stops the network (SIGINT) and starts it again on the same
// directory.
func (d *devNet) restart() error {
	if err := d.stop(); err != nil {
		return err
	}
	if err := d.start(binaries(d.t)); err != nil {
		return err
	}
	if err := d.waitReady(60 * time.Second); err != nil {
		return fmt.Errorf("after restart: %v\n%s", err, d.logTail())
	}
	return nil
}

func (d *devNet) start(bin string, args ...string) error {
	if err := os.MkdirAll(d.home, 0o700); err != nil {
		return err
	}
	d.logPath = filepath.Join(d.home, "dcepd-dev.log")
	logf, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if fi, err := logf.Stat(); err == nil {
		d.logStart = fi.Size()
	}
	d.cmd = exec.Command(filepath.Join(bin, "dcepd"), append([]string{"dev"}, args...)...)
	d.cmd.Env = d.env()
	d.cmd.Dir = d.home
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		d.exitErr = cmd.Wait()
		logf.Close()
		close(done)
	}(d.cmd, d.done)
	return nil
}

// stop sends SIGINT (Ctrl-C) and waits for a clean exit.
func (d *devNet) stop() error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.done:
		return fmt.Errorf("dcepd dev had already exited: %v", d.exitErr)
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
		if d.exitErr != nil {
			return fmt.Errorf("dcepd dev exited with %v after SIGINT\n%s", d.exitErr, d.logTail())
		}
		return nil
	case <-time.After(40 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		return fmt.Errorf("dcepd dev did not stop within 40s of SIGINT")
	}
}

// nodes reads network.json.
func (d *devNet) nodes() ([]devNode, error) {
	raw, err := os.ReadFile(filepath.Join(d.dir, "network.json"))
	if err != nil {
		return nil, err
	}
	var n struct {
		Nodes []devNode `json:"nodes"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	return n.Nodes, nil
}

// url is the API URL of a node by name.
func (d *devNet) url(name string) string {
	nodes, _ := d.nodes()
	for _, n := range nodes {
		if n.Name == name {
			return n.API
		}
	}
	d.t.Fatalf("no node %s in network.json", name)
	return ""
}

// waitReady polls every node's /readyz, then the first node's /status
// until it shows a leader and every peer ready: what `dcep status` shows.
func (d *devNet) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("dcepd dev exited: %v", d.exitErr)
		default:
		}
		if last = d.readyOnce(hc); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v: %v", timeout, last)
}

func (d *devNet) readyOnce(hc *http.Client) error {
	if raw, err := os.ReadFile(d.logPath); err != nil || int64(len(raw)) < d.logStart || !bytes.Contains(raw[d.logStart:], []byte("network ready")) {
		return fmt.Errorf("dcepd dev has not printed \"network ready\" yet")
	}
	nodes, err := d.nodes()
	if err != nil {
		return err
	}
	if len(nodes) != 8 {
		return fmt.Errorf("%d nodes in network.json", len(nodes))
	}
	for _, n := range nodes {
		resp, err := hc.Get(n.API + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: /readyz %s", n.Name, resp.Status)
		}
	}
	resp, err := hc.Get(nodes[0].API + "/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	type nodeStatus struct {
		Name   string `json:"name"`
		Leader string `json:"leader"`
		Ready  bool   `json:"ready"`
	}
	var st struct {
		Node  nodeStatus `json:"node"`
		Peers []struct {
			Name   string      `json:"name"`
			Status *nodeStatus `json:"status"`
		} `json:"peers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("/status: %v", err)
	}
	if !st.Node.Ready || st.Node.Leader == "" || len(st.Peers) != len(nodes)-1 {
		return fmt.Errorf("%s: ready %v, leader %q, %d peers", st.Node.Name, st.Node.Ready, st.Node.Leader, len(st.Peers))
	}
	for _, p := range st.Peers {
		if p.Status == nil || !p.Status.Ready || p.Status.Leader != st.Node.Leader {
			return fmt.Errorf("%s's view of %s: %+v", st.Node.Name, p.Name, p.Status)
		}
	}
	return nil
}

func (d *devNet) logTail() string {
	raw, _ := os.ReadFile(d.logPath)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// freePortRange reserves n consecutive free loopback TCP ports for this
// test process (internal/testports) and returns the first (0 if none).
func freePortRange(n int) int {
	base, err := testports.Range(n)
	if err != nil {
		return 0
	}
	return base
}

// shared returns the network shared by the tests that only need a
// running network (each uses its own wallet names).
func shared(t testing.TB) *devNet {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if prev, ok := sharedUsers[t.Name()]; sharedNet != nil && ok && prev != t {
		if err := sharedNet.stop(); err != nil {
			t.Fatalf("stopping the shared dev network: %v", err)
		}
		_ = os.RemoveAll(sharedNet.home)
		sharedNet, sharedUsers = nil, map[string]testing.TB{}
	}
	sharedUsers[t.Name()] = t
	if sharedNet == nil && sharedErr == nil {
		home, err := os.MkdirTemp("", "dcep-shared-")
		if err == nil {
			sharedNet, err = startDev(t, home)
		}
		sharedErr = err
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	sharedNet.t = t
	return sharedNet
}

// result is one dcep run.
type result struct {
	args           []string
	stdout, stderr string
	exit           int
}

func (r result) String() string {
	return fmt.Sprintf("dcep %s → exit %d\nstdout:\n%sstderr:\n%s", strings.Join(r.args, " "), r.exit, r.stdout, r.stderr)
}

// dcep runs the built dcep against the network, with no flags but what is
// given, as a user next to `dcepd dev` would.
func (d *devNet) dcep(t testing.TB, args ...string) result {
	t.Helper()
	return runDcep(t, d.env(), d.home, args...)
}

func runDcep(t testing.TB, env []string, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(binaries(t), "dcep"), args...)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("dcep %v: %v", args, err)
	}
	return r
}

// ok runs dcep and fails the test unless it exits 0.
func (d *devNet) ok(t testing.TB, args ...string) result {
	t.Helper()
	r := d.dcep(t, args...)
	if r.exit != 0 {
		t.Fatalf("want success:\n%v", r)
	}
	return r
}

// okJSON runs dcep --json and decodes its output into v.
func (d *devNet) okJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	r := d.ok(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("decode %v: %v\n%s", args, err, r.stdout)
	}
}

// refused runs dcep and checks that it fails with the exit status and
// that stderr's first line is "error CODE: ..." containing every want.
func (d *devNet) refused(t testing.TB, exit int, code string, args []string, want ...string) result {
	t.Helper()
	return checkRefused(t, d.dcep(t, args...), exit, code, want...)
}

func checkRefused(t testing.TB, r result, exit int, code string, want ...string) result {
	t.Helper()
	first, _, _ := strings.Cut(r.stderr, "\n")
	if r.exit != exit || !strings.HasPrefix(first, "error "+code+": ") {
		t.Fatalf("want exit %d and \"error %s: ...\":\n%v", exit, code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("stderr lacks %q:\n%v", w, r)
		}
	}
	if r.stdout != "" {
		t.Fatalf("a failure printed to stdout:\n%v", r)
	}
	return r
}
