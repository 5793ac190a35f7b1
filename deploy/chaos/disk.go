package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Storage faults: clock skew (a restart with an offset clock), a full data
// filesystem, and files corrupted while the node is down.

// setClockOffset is the one place that knows how a node's wall clock is
// offset: the config key [debug] clock_offset_ms (int64 ms added to the
// node's wall clock). It rewrites the key in place if the file has a
// [debug] table, else appends one. The node reads it at start.
func setClockOffset(configPath string, offsetMs int64) error {
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("clock_offset_ms = %d", offsetMs)
	lines := strings.Split(string(raw), "\n")
	inDebug, done := false, false
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			if inDebug && !done { // [debug] without the key: add it at its end
				lines = slices.Insert(lines, i, line)
				done = true
				break
			}
			inDebug = t == "[debug]"
			continue
		}
		if inDebug && strings.HasPrefix(t, "clock_offset_ms") {
			lines[i], done = line, true
			break
		}
	}
	if !done {
		if inDebug {
			lines = append(lines, line)
		} else {
			lines = append(lines, "", "[debug]", line)
		}
	}
	return os.WriteFile(configPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// probeClockOffset reports whether this dcepd knows [debug]
// clock_offset_ms: it runs `dcepd run` on a copy of a node's config with
// the key and a node key that does not exist, so a dcepd that knows the
// key fails on the key file and one that does not fails on the unknown key.
func probeClockOffset(bin, configPath string) (bool, error) {
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return false, err
	}
	probe := filepath.Join(filepath.Dir(configPath), "clock-probe.toml")
	defer os.Remove(probe)
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "node_key") {
			lines[i] = "node_key = 'keys/no-such.key'"
		}
	}
	raw = []byte(strings.Join(lines, "\n"))
	if err := os.WriteFile(probe, raw, 0o600); err != nil {
		return false, err
	}
	if err := setClockOffset(probe, 0); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "run", "--config", probe).CombinedOutput()
	if bytes.Contains(out, []byte("unknown key")) {
		return false, nil
	}
	if !bytes.Contains(out, []byte("no-such.key")) {
		return false, fmt.Errorf("clock offset probe: unexpected output: %s", tailLines(out, 5))
	}
	return true, nil
}

func (c *Campaign) clockSkew(rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	if !c.clockOffset {
		return nil, errSkip{"dcepd has no [debug] clock_offset_ms yet (the trust branch adds it)"}
	}
	t := pick(rng, c.nodes)
	offsets := []int64{-600_000, -30_000, -2_000, 2_000, 30_000, 600_000}
	off := offsets[rng.IntN(len(offsets))]
	rec.Targets, rec.Detail = []string{t}, fmt.Sprintf("clock offset %+d ms", off)
	c.mark(rec)
	restart := func(ms int64) error {
		if err := c.net.Stop(t); err != nil {
			return err
		}
		nn, _ := c.net.Node(t)
		if err := setClockOffset(nn.Config, ms); err != nil {
			return err
		}
		return c.net.Start(t)
	}
	if err := restart(off); err != nil {
		return nil, err
	}
	return func() error { return restart(0) }, nil
}

const ballastName = "chaos-ballast"

// diskFull fills the target's data filesystem (its own tmpfs) until a
// write fails with ENOSPC, and frees it at heal. The node must keep running
// without accepting writes, or stop; never corrupt; and recover.
func (c *Campaign) diskFull(rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	if !c.tmpfs {
		return nil, errSkip{"a full disk needs a tmpfs per node (root)"}
	}
	t := pick(rng, c.nodes)
	rec.Targets = []string{t}
	ballast := filepath.Join(c.net.DataDir(t), ballastName)
	c.mark(rec)
	n, err := fill(ballast)
	if err != nil {
		return nil, err
	}
	rec.Detail = fmt.Sprintf("ballast %d MiB until ENOSPC", n>>20)
	return func() error {
		exited, exitErr := c.net.Exited(t)
		ready := c.readyNow(t)
		switch {
		case exited:
			rec.Outcome = fmt.Sprintf("stopped (%v): %s", exitErr, c.lastError(t, 0))
			c.findPanic(rec, t, 0)
		case ready:
			rec.Outcome = "kept running and ready"
		default:
			rec.Outcome = "kept running, not ready"
		}
		if err := os.Remove(ballast); err != nil {
			return err
		}
		if exited {
			return c.net.Start(t)
		}
		return nil
	}, nil
}

// fill writes path until the filesystem is full, returning bytes written.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if n > 8<<30 {
			return n, errors.New("filled 8 GiB without ENOSPC: not a bounded filesystem")
		}
	}
}

// corrupt kills a node, flips bytes in one of its files and starts it
// again; then waits to see whether the node refuses (a clear error) or
// runs. A refusing node is repaired as an operator would: its data
// directory emptied, so it is restored from the leader.
func (c *Campaign) corrupt(k Kind, rec *FaultRecord, rng *mrand.Rand) (heal, error) {
	t, file, err := c.corruptTarget(k, rng)
	if err != nil {
		return nil, err
	}
	rec.Targets = []string{t}
	c.mark(rec)
	if err := c.net.Kill(t); err != nil {
		return nil, err
	}
	if k == CorruptSnap {
		if file, err = newestSnapshot(c.net.DataDir(t)); err != nil { // after the kill: it may have written a newer one
			return nil, err
		}
		// Without its ledger the node must restore the snapshot on start.
		if err := os.RemoveAll(filepath.Join(c.net.DataDir(t), "state")); err != nil {
			return nil, err
		}
	}
	files := []string{file}
	// The first corrupt-snap of a campaign damages every kept snapshot, so
	// there is none to fall back to; later ones, half the time.
	if k == CorruptSnap && (rng.IntN(2) == 0 || c.played(CorruptSnap) == 1) {
		files, _ = filepath.Glob(filepath.Join(c.net.DataDir(t), "raft", "snapshots", "*", "state.bin"))
	}
	for _, file := range files {
		flips, err := flipBytes(file, rng, 16)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(c.net.DataDir(t), file)
		rec.Detail += fmt.Sprintf("%d bytes flipped in data/%s at %v; ", len(flips), rel, flips)
	}
	if k == CorruptSnap {
		rec.Detail += "ledger removed, so the restart must restore a snapshot"
	}
	return func() error { return c.restartCorrupted(rec, t) }, nil
}

// restartCorrupted starts a node whose file was corrupted and classifies
// what it does: refuse (exit with an error: then it is repaired from the
// leader), or run, with or without saying it found the damage.
func (c *Campaign) restartCorrupted(rec *FaultRecord, t string) error {
	logOff := logSize(c.net.LogPath(t))
	if err := c.net.Start(t); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	err := c.net.WaitReady(ctx, t)
	cancel()
	if err == nil {
		rec.Outcome = "started and ready"
		if d := detected(c.logSince(t, logOff)); d != "" {
			rec.Outcome += ", having detected it: " + d
		} else {
			rec.Outcome += ", corruption not detected at start (the final checks show whether its state differs)"
		}
		return nil
	}
	exited, exitErr := c.net.Exited(t)
	if !exited {
		_ = c.net.Kill(t)
		rec.Outcome = "neither ready nor stopped within 45 s: killed; "
	}
	rec.Outcome += fmt.Sprintf("refused (%v): %s", exitErr, c.lastError(t, logOff))
	c.findPanic(rec, t, logOff)
	if err := wipe(c.net.DataDir(t)); err != nil {
		return err
	}
	rec.Outcome += "; repaired: data directory emptied, restored from the leader"
	return c.net.Start(t)
}

// detected is the first log line saying a node found damage.
func detected(log []byte) string {
	for _, l := range strings.Split(string(log), "\n") {
		low := strings.ToLower(l)
		if strings.Contains(l, "level=ERROR") && (strings.Contains(low, "checksum") || strings.Contains(low, "crc") || strings.Contains(low, "corrupt")) {
			if k := strings.Index(l, "msg="); k >= 0 {
				return l[k:]
			}
			return l
		}
	}
	return ""
}

// corruptTarget picks a node and the file to corrupt.
func (c *Campaign) corruptTarget(k Kind, rng *mrand.Rand) (string, string, error) {
	for _, t := range shuffled(rng, c.nodes) {
		dir := c.net.DataDir(t)
		switch k {
		case CorruptPebble:
			var ssts []string
			_ = filepath.WalkDir(filepath.Join(dir, "state"), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sst") {
					ssts = append(ssts, p)
				}
				return nil
			})
			if len(ssts) > 0 {
				slices.Sort(ssts)
				return t, ssts[rng.IntN(len(ssts))], nil
			}
		case CorruptRaft:
			p := filepath.Join(dir, "raft", "raft.db")
			if _, err := os.Stat(p); err == nil {
				return t, p, nil
			}
		case CorruptSnap:
			if p, err := newestSnapshot(dir); err == nil {
				return t, p, nil
			}
		}
	}
	return "", "", errSkip{fmt.Sprintf("no node has a file for %s yet", k)}
}

// newestSnapshot is the state file of the newest Raft snapshot in a data
// directory (hashicorp/raft names snapshot directories term-index-time).
func newestSnapshot(dataDir string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "state.bin"))
	if len(dirs) == 0 {
		return "", errSkip{"no snapshot yet"}
	}
	slices.SortFunc(dirs, func(a, b string) int { return snapOrder(a) - snapOrder(b) })
	return dirs[len(dirs)-1], nil
}

func snapOrder(p string) int {
	parts := strings.Split(filepath.Base(filepath.Dir(p)), "-")
	if len(parts) < 2 {
		return 0
	}
	i, _ := strconv.Atoi(parts[1])
	return i
}

// flipBytes XORs n random bytes of a file with random non-zero values.
func flipBytes(path string, rng *mrand.Rand, n int) ([]int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, errSkip{path + " is empty"}
	}
	var offs []int64
	b := make([]byte, 1)
	for range n {
		off := rng.Int64N(st.Size())
		if _, err := f.ReadAt(b, off); err != nil {
			return nil, err
		}
		b[0] ^= byte(1 + rng.IntN(255))
		if _, err := f.WriteAt(b, off); err != nil {
			return nil, err
		}
		offs = append(offs, off)
	}
	slices.Sort(offs)
	return offs, f.Sync()
}

// wipe empties a directory (a mount point stays).
func wipe(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logSince is a node's log from byte off on.
func (c *Campaign) logSince(t string, off int64) []byte {
	raw, _ := os.ReadFile(c.net.LogPath(t))
	if off > int64(len(raw)) {
		off = 0
	}
	return raw[off:]
}

// lastError is the clearest error line a node printed since off: dcepd's
// own exit line, else a panic's first line, else the last ERROR record.
func (c *Campaign) lastError(t string, off int64) string {
	out := c.logSince(t, off)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "dcepd: ") {
			return lines[i]
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return l
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "level=ERROR") {
			return lines[i]
		}
	}
	return string(tailLines(out, 1))
}

// findPanic records a finding if the node died of a panic rather than an
// error: a refusal must be a clear error, not a crash.
func (c *Campaign) findPanic(rec *FaultRecord, t string, off int64) {
	out := c.logSince(t, off)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			rec.Findings = append(rec.Findings, fmt.Sprintf("%s crashed (%s) instead of refusing with an error; log %s", t, strings.TrimSpace(l), c.net.LogPath(t)))
			return
		}
	}
}

func tailLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}
