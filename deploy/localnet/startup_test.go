package localnet_test

// Start-up errors (issue 16, defect 2): the real dcepd binary started with
// each bad configuration prints one line naming the cause and the fix,
// exits 1 without a panic, and leaves no half-started node behind.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/deploy/localnet"
)

// startupCase edits icbc's generated config.toml and says what the one
// error line must contain.
type startupCase struct {
	name string
	edit func(cfg string) string
	want string
}

// setKey replaces a top-level key's line in a TOML config.
func setKey(cfg, key, value string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` = .*$`)
	if !re.MatchString(cfg) {
		panic("no key " + key)
	}
	return re.ReplaceAllLiteralString(cfg, key+" = "+value)
}

func TestStartupErrors(t *testing.T) {
	bin := dcepd(t)
	dir := t.TempDir()
	ln, err := localnet.Create(dir, bin, localnet.Options{ChainID: "dcep-startup", Regulators: 1,
		P2PPort: freePorts(t, 8), APIPort: freePorts(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Kill("icbc") })
	// icbc runs: the cases below collide with it.
	if err := ln.Start("icbc"); err != nil {
		t.Fatal(err)
	}
	nn, _ := ln.Node("icbc")
	waitHealthy(t, nn.API)
	raw, err := os.ReadFile(nn.Config)
	if err != nil {
		t.Fatal(err)
	}
	base := string(raw)
	running := ln.Info.Nodes[1]
	// own gives a case its own data_dir and ports, so that only its fault
	// is in it.
	own := func(cfg, name string) string {
		cfg = setKey(cfg, "data_dir", fmt.Sprintf("'data-%s'", name))
		cfg = setKey(cfg, "api_listen", fmt.Sprintf("'127.0.0.1:%d'", freePorts(t, 1)))
		return setKey(cfg, "p2p_listen", fmt.Sprintf("['/ip4/127.0.0.1/tcp/%d']", freePorts(t, 1)))
	}
	cases := []startupCase{
		{"node already running", func(c string) string { return c }, "is in use by another process (pid"},
		{"api port in use", func(c string) string {
			return setKey(own(c, "api"), "api_listen", "'"+strings.TrimPrefix(running.API, "http://")+"'")
		}, "api_listen 127.0.0.1:"},
		{"p2p port in use", func(c string) string {
			addr, _, _ := strings.Cut(running.P2P, "/p2p/")
			return setKey(own(c, "p2p"), "p2p_listen", "['"+addr+"']")
		}, "p2p_listen /ip4/127.0.0.1/tcp/"},
		{"genesis missing", func(c string) string { return setKey(own(c, "genesis"), "genesis", "'no-such-genesis.json'") },
			"no-such-genesis.json does not exist"},
		{"node key of another node", func(c string) string { return setKey(own(c, "key"), "node_key", "'../abc/keys/node.key'") },
			`is not member "icbc"'s key`},
		{"node key missing", func(c string) string { return setKey(own(c, "nokey"), "node_key", "'keys/none.key'") },
			"node_key "},
		{"api_listen without port", func(c string) string { return setKey(own(c, "localhost"), "api_listen", "'localhost'") },
			`api_listen "localhost" is not HOST:PORT`},
		{"election below heartbeat", func(c string) string { return setKey(own(c, "election"), "election_ms", "100") },
			"raft.election_ms 100 is below raft.heartbeat_ms 1000"},
		{"tls_cert missing", func(c string) string {
			return setKey(own(c, "tls"), "node_key", "'keys/node.key'\ntls_cert = 'no-cert.pem'\ntls_key = 'no-key.pem'")
		}, "tls_cert "},
		{"unknown key", func(c string) string { return own(c, "unknown") + "\n[raft2]\nx = 1\n" }, "unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(filepath.Dir(nn.Config), "bad-"+strings.ReplaceAll(tc.name, " ", "-")+".toml")
			if err := os.WriteFile(path, []byte(tc.edit(base)), 0o600); err != nil {
				t.Fatal(err)
			}
			checkStartupFailure(t, exec.Command(bin, "run", "--config", path), tc.want)
		})
	}
	// The running node was not disturbed by any of them.
	waitHealthy(t, nn.API)
}

// TestDevStartupErrors: a second `dcepd dev` on the same --dir, and one on
// another --dir with the same ports, are refused in one line each.
func TestDevStartupErrors(t *testing.T) {
	bin := dcepd(t)
	dir := filepath.Join(t.TempDir(), "dev")
	p2p, api := freePorts(t, 8), freePorts(t, 8)
	args := []string{"dev", "--dir", dir, "--p2p-port", fmt.Sprint(p2p), "--api-port", fmt.Sprint(api), "--guarantee", "0"}
	first := exec.Command(bin, args...)
	outPath := filepath.Join(t.TempDir(), "first.out")
	outf, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	first.Stdout, first.Stderr = outf, outf
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := os.ReadFile(outPath)
		if bytes.Contains(out, []byte("nodes (API addresses)")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first dcepd dev did not start:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Run("same dir", func(t *testing.T) {
		checkStartupFailure(t, exec.Command(bin, args...), "a dcepd dev already runs on "+dir)
	})
	t.Run("same ports", func(t *testing.T) {
		other := append([]string{}, args...)
		other[2] = filepath.Join(t.TempDir(), "dev2")
		checkStartupFailure(t, exec.Command(bin, other...), "port already in use")
	})
}

// checkStartupFailure runs cmd, which must exit 1 within 20 s, printing
// exactly one "dcepd: " line that contains want and a fix, no panic and
// no ERROR log line.
func checkStartupFailure(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	var stderr, stdout bytes.Buffer
	c.Stderr, c.Stdout = &stderr, &stdout
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("still running after 20 s (a half-started node); stderr:\n%s", stderr.String())
	}
	if c.ProcessState.ExitCode() != 1 {
		t.Errorf("exit code %d (%v), want 1", c.ProcessState.ExitCode(), err)
	}
	all := stderr.String() + stdout.String()
	for _, bad := range []string{"panic", "goroutine ", "level=ERROR", "level=error"} {
		if strings.Contains(all, bad) {
			t.Errorf("output has %q:\n%s", bad, all)
		}
	}
	var lines []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "dcepd: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one \"dcepd: \" line, got %d:\n%s", len(lines), all)
	}
	if !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "(fix: ") {
		t.Errorf("error line %q: want it to contain %q and a fix", lines[0], want)
	}
	t.Logf("%s", lines[0])
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// waitHealthy waits until api answers /healthz.
func waitHealthy(t *testing.T, api string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := httpClient.Get(api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy: %v", api, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
