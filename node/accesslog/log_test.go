package accesslog_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dcep/dcep/node/accesslog"
)

func rec(i int, who, wallet string, allowed bool) accesslog.Record {
	r := accesslog.Record{
		Time: time.UnixMilli(1_765_000_000_000 + int64(i)), Identity: who, Role: "holder",
		Procedure: "/dcep.node.v1.QueryService/History", Wallet: wallet, Addr: "10.0.0.7:51234", Allowed: allowed,
	}
	if !allowed {
		r.Role, r.Code = "anonymous", "PERMISSION_DENIED"
	}
	if i%3 == 0 {
		r.TxID = []byte{byte(i), 0xAA, 0xBB}
	}
	return r
}

func open(t *testing.T, dir string, o accesslog.Options) *accesslog.Log {
	t.Helper()
	l, err := accesslog.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestExactRecords appends a sequence and reads back exactly it, through
// each filter, before and after a reopen.
func TestExactRecords(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, accesslog.Options{})
	var all []accesslog.Record
	for i := range 30 {
		who, wallet := "alice", "alice"
		switch i % 3 {
		case 1:
			who, wallet = "icbc", "bob"
		case 2:
			who, wallet = "", "alice"
		}
		r := rec(i, who, wallet, i%3 != 2)
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	pick := func(keep func(accesslog.Record) bool) []accesslog.Record {
		var out []accesslog.Record
		for _, r := range all {
			if keep(r) {
				out = append(out, r)
			}
		}
		return out
	}
	cases := []struct {
		name string
		f    accesslog.Filter
		want []accesslog.Record
	}{
		{"all", accesslog.Filter{}, all},
		{"wallet alice", accesslog.Filter{Wallet: "alice"}, pick(func(r accesslog.Record) bool { return r.Wallet == "alice" })},
		{"by icbc", accesslog.Filter{By: "icbc"}, pick(func(r accesslog.Record) bool { return r.Identity == "icbc" })},
		{"by icbc wallet alice", accesslog.Filter{By: "icbc", Wallet: "alice"}, nil},
		{"since", accesslog.Filter{Since: all[20].Time}, all[20:]},
		{"limit keeps newest", accesslog.Filter{Limit: 4}, all[26:]},
	}
	check := func(l *accesslog.Log) {
		for _, c := range cases {
			got, err := l.Query(c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !equal(got, c.want) {
				t.Errorf("%s: got %d records, want %d\n got %+v\nwant %+v", c.name, len(got), len(c.want), got, c.want)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(all[0]); !errors.Is(err, accesslog.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	l = open(t, dir, accesslog.Options{})
	defer l.Close()
	if l.Truncated() != 0 {
		t.Fatalf("clean reopen truncated %d bytes", l.Truncated())
	}
	check(l)
}

func equal(a, b []accesslog.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Time.Equal(y.Time) || !bytes.Equal(x.TxID, y.TxID) {
			return false
		}
		x.Time, y.Time, x.TxID, y.TxID = time.Time{}, time.Time{}, nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// TestLongFieldsAreCut: fields beyond the limits are cut at Append, never
// refused or written unbounded.
func TestLongFieldsAreCut(t *testing.T) {
	l := open(t, t.TempDir(), accesslog.Options{})
	defer l.Close()
	long := strings.Repeat("é", accesslog.MaxFieldBytes) // 2 bytes a rune
	if err := l.Append(accesslog.Record{Time: time.UnixMilli(1), Identity: long, TxID: make([]byte, 200), Allowed: true}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Query(accesslog.Filter{})
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if len(got[0].Identity) != accesslog.MaxFieldBytes || got[0].Identity != long[:accesslog.MaxFieldBytes] || len(got[0].TxID) != accesslog.MaxTxIDBytes {
		t.Fatalf("identity %d bytes, tx id %d bytes", len(got[0].Identity), len(got[0].TxID))
	}
}

// TestConcurrentAppends: appenders sharing fsyncs each get their record in.
func TestConcurrentAppends(t *testing.T) {
	l := open(t, t.TempDir(), accesslog.Options{})
	defer l.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := l.Append(rec(i, fmt.Sprintf("g%d", g), "w", true)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for g := range 8 {
		got, err := l.Query(accesslog.Filter{By: fmt.Sprintf("g%d", g)})
		if err != nil || len(got) != 50 {
			t.Fatalf("g%d: %d records, %v", g, len(got), err)
		}
	}
}

// TestTornTailCutAtOpen: half a frame at the end of the newest file (what
// kill -9 in the middle of a write leaves) is cut off at Open; the records
// before it stay and new ones follow them.
func TestTornTailCutAtOpen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, accesslog.Options{})
	for i := range 5 {
		if err := l.Append(rec(i, "alice", "alice", true)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "access-*.log"))
	if len(files) != 1 {
		t.Fatal(files)
	}
	raw, _ := os.ReadFile(files[0])
	one := len(raw) / 5
	torn := append(raw, raw[:one/2]...)
	flipped := append(append([]byte(nil), raw...), raw[:one]...)
	flipped[len(raw)+one-1] ^= 0x40 // CRC no longer matches
	for name, content := range map[string][]byte{"torn": torn, "bad crc": flipped} {
		if err := os.WriteFile(files[0], content, 0o600); err != nil {
			t.Fatal(err)
		}
		l = open(t, dir, accesslog.Options{})
		if got := l.Truncated(); got != int64(len(content)-len(raw)) {
			t.Fatalf("%s: truncated %d bytes, want %d", name, got, len(content)-len(raw))
		}
		if err := l.Append(rec(5, "bob", "bob", true)); err != nil {
			t.Fatal(err)
		}
		got, err := l.Query(accesslog.Filter{})
		if err != nil || len(got) != 6 || got[5].Identity != "bob" {
			t.Fatalf("%s: %d records, %v", name, len(got), err)
		}
		l.Close()
		if err := os.WriteFile(files[0], raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDamagedRotatedFileIsAnError: damage that is not a torn tail (inside
// a closed file) is reported by Query, naming the file, never skipped.
func TestDamagedRotatedFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, accesslog.Options{MaxFileBytes: accesslog.MinMaxFileBytes})
	defer l.Close()
	for i := 0; ; i++ {
		if err := l.Append(rec(i, "alice", "alice", true)); err != nil {
			t.Fatal(err)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "access-*.log")); len(files) == 2 {
			break
		}
	}
	first := filepath.Join(dir, "access-00000001.log")
	raw, _ := os.ReadFile(first)
	raw[20] ^= 1
	if err := os.WriteFile(first, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := l.Query(accesslog.Filter{})
	if !errors.Is(err, accesslog.ErrCorrupt) || !strings.Contains(err.Error(), "access-00000001.log at offset 0") {
		t.Fatalf("query over a damaged file: %v", err)
	}
}

// TestRotation: no file grows past MaxFileBytes, no more than KeepFiles are
// kept, and what is kept is the newest records without a gap.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	o := accesslog.Options{MaxFileBytes: accesslog.MinMaxFileBytes, KeepFiles: 3}
	l := open(t, dir, o)
	const n = 2000
	for i := range n {
		if err := l.Append(rec(i, "alice", "alice", true)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "access-*.log"))
	if len(files) != o.KeepFiles {
		t.Fatalf("%d files kept, want %d: %v", len(files), o.KeepFiles, files)
	}
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > o.MaxFileBytes {
			t.Fatalf("%s is %d bytes, bound %d", f, st.Size(), o.MaxFileBytes)
		}
		total += st.Size()
	}
	got, err := l.Query(accesslog.Filter{Limit: accesslog.MaxQueryLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) == n || !got[len(got)-1].Time.Equal(rec(n-1, "", "", true).Time) {
		t.Fatalf("kept %d of %d records", len(got), n)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.UnixMilli() != got[i-1].Time.UnixMilli()+1 {
			t.Fatalf("gap between records %d and %d", i-1, i)
		}
	}
	t.Logf("%d records kept in %d files, %d bytes (bound %d)", len(got), len(files), total, int64(o.KeepFiles)*o.MaxFileBytes)
	l.Close()
	// Rotation carries on from the newest file after a reopen.
	l = open(t, dir, o)
	defer l.Close()
	for i := range 400 {
		if err := l.Append(rec(n+i, "bob", "bob", true)); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ = filepath.Glob(filepath.Join(dir, "access-*.log")); len(files) != o.KeepFiles {
		t.Fatalf("after reopen: %d files", len(files))
	}
}

func TestOptionsBounds(t *testing.T) {
	for _, o := range []accesslog.Options{{MaxFileBytes: 100}, {KeepFiles: -1}} {
		if _, err := accesslog.Open(t.TempDir(), o); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
}

const childEnv = "ACCESSLOG_KILL_CHILD_DIR"

// TestKill9LosesNothingAcknowledged re-executes the test binary as a child
// that appends as fast as it can and prints each record's number once
// Append returned; the parent kills it with SIGKILL mid-stream, reopens the
// log and finds every acknowledged record.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		appendForever(dir)
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNothingAcknowledged$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]bool{}
		sc := bufio.NewScanner(out)
		for len(acked) < 300 && sc.Scan() {
			acked["p"+sc.Text()] = true
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for sc.Scan() { // acknowledged before the kill, still in the pipe
			acked["p"+sc.Text()] = true
		}
		_ = cmd.Wait()
		if len(acked) < 300 {
			t.Fatalf("child acknowledged only %d records", len(acked))
		}
		l := open(t, dir, accesslog.Options{})
		got, err := l.Query(accesslog.Filter{By: fmt.Sprintf("round%d", round), Limit: accesslog.MaxQueryLimit})
		cut := l.Truncated()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, r := range got {
			found[r.Procedure] = true
		}
		for p := range acked {
			if !found[p] {
				t.Fatalf("round %d: acknowledged record %s lost after kill -9 (%d acknowledged, %d found)", round, p, len(acked), len(got))
			}
		}
		t.Logf("round %d: %d acknowledged, %d found, %d torn bytes cut", round, len(acked), len(got), cut)
	}
}

// appendForever is the child: it appends until killed.
func appendForever(dir string) {
	l, err := accesslog.Open(dir, accesslog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	round := 0
	for {
		if got, _ := l.Query(accesslog.Filter{By: fmt.Sprintf("round%d", round), Limit: 1}); len(got) == 0 {
			break
		}
		round++
	}
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	next := 0
	for range 4 {
		go func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				r := accesslog.Record{Time: time.Now(), Identity: fmt.Sprintf("round%d", round), Role: "regulator", Procedure: fmt.Sprint("p", i), Allowed: true}
				if err := l.Append(r); err != nil {
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintln(w, i)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}
