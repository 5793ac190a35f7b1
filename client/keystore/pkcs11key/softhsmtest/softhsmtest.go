// Package softhsmtest gives tests a real SoftHSM2 token: a token directory
// of its own, initialized with softhsm2-util, and pkcs11: URIs for keys in
// it. SoftHSM2 reads its configuration ($SOFTHSM2_CONF) once per process,
// at C_Initialize, so a test process has one token, shared by its tests;
// tests keep apart by object label.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Token is the process's SoftHSM2 token.
type Token struct {
	Conf   string // the softhsm2.conf to give child processes as $SOFTHSM2_CONF
	Module string // libsofthsm2.so
	Label  string
	PIN    string
}

// modulePaths are where Debian and others put the library.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

var (
	once  sync.Once
	token *Token
	err   error
)

// New returns the process's token, making it on first use. It skips the
// test when softhsm2-util is missing, unless DCEP_REQUIRE_TOOLS is set
// (scripts/test.sh installs softhsm2 and sets it).
func New(t testing.TB) *Token {
	t.Helper()
	util, lookErr := exec.LookPath("softhsm2-util")
	module := ""
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			module = p
			break
		}
	}
	if lookErr != nil || module == "" {
		if os.Getenv("DCEP_REQUIRE_TOOLS") != "" {
			t.Fatal("softhsm2 not installed (Debian package softhsm2) and DCEP_REQUIRE_TOOLS is set")
		}
		t.Skip("softhsm2 not installed (Debian package softhsm2)")
	}
	once.Do(func() { token, err = create(util, module) })
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func create(util, module string) (*Token, error) {
	dir, err := os.MkdirTemp("", "dcep-softhsm-")
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	tk := &Token{Conf: conf, Module: module, Label: "dcep-test", PIN: "1234"}
	cmd := exec.Command(util, "--init-token", "--free", "--label", tk.Label, "--pin", tk.PIN, "--so-pin", "5678")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %w\n%s", err, out)
	}
	// This process's library reads it at C_Initialize.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return nil, err
	}
	return tk, nil
}

// URI names the key labelled object in the token, PIN included.
func (tk *Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", tk.Label, object, tk.Module, tk.PIN)
}

// Env is what a child process (a dcepd) needs to see the token.
func (tk *Token) Env() []string { return []string{"SOFTHSM2_CONF=" + tk.Conf} }

// Version is softhsm2-util --version, for test logs.
func Version() string {
	out, err := exec.Command("softhsm2-util", "--version").Output()
	if err != nil {
		return "unknown"
	}
	return string(out)
}
