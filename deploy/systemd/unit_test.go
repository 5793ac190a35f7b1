package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcep/dcep/node"
)

// unit is a parsed unit file: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestUnitFields checks the hardening and lifecycle settings the unit must
// keep, on every machine.
func TestUnitFields(t *testing.T) {
	u := parseUnit(t, "dcepd.service")
	want := map[string]string{
		"User": "dcep", "Group": "dcep",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "StateDirectory": "dcep",
		"Restart": "on-failure", "LimitNOFILE": "65536", "KillSignal": "SIGTERM",
		"MemoryDenyWriteExecute": "yes", "UMask": "0077",
	}
	for k, v := range want {
		if _, ok := u["Service"][k]; !ok {
			t.Errorf("[Service] %s missing (want %q)", k, v)
		} else if got := u.get("Service", k); got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if got := u.get("Service", "ExecStart"); !strings.Contains(got, "dcepd run --config /etc/dcep/config.toml") {
		t.Errorf("ExecStart=%q does not run the node", got)
	}
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	// systemd must wait out the node's own bounded shutdown, and not much
	// longer: a hung node is killed (which loses nothing) rather than kept.
	if stop <= node.ShutdownTimeout || stop > node.ShutdownTimeout+10*time.Second {
		t.Errorf("TimeoutStopSec=%v, want just above node.ShutdownTimeout (%v)", stop, node.ShutdownTimeout)
	}
	if u.get("Unit", "StartLimitBurst") == "" || u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("StartLimitBurst or WantedBy=multi-user.target missing")
	}
	sys, err := os.ReadFile("dcepd.sysusers")
	if err != nil || !strings.Contains(string(sys), "u dcep ") {
		t.Errorf("dcepd.sysusers does not create the user dcep: %v", err)
	}
}

// TestUnitVerify runs systemd-analyze verify (and its offline security
// score) on the unit, with ExecStart pointing at a dcepd built from this
// tree, so that systemd itself checks every key and the command. It needs no
// running systemd, only the binary.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("DCEP_REQUIRE_TOOLS") != "" {
			t.Fatal("systemd-analyze not installed and DCEP_REQUIRE_TOOLS is set")
		}
		t.Skip("systemd-analyze not installed; TestUnitFields checks the fields")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dcepd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dcep/dcep/cmd/dcepd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src, err := os.ReadFile("dcepd.service")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dcepd.service")
	text := strings.ReplaceAll(string(src), "/usr/local/bin/dcepd", bin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: the Documentation= man page is installed with the binary,
	// not on the CI machine.
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure score 0 (locked down) .. 100; the unit scores 15 (1.5).
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=25", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.5: %v\n%s", err, out)
	}
	t.Logf("%s", lastLine(string(out)))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
