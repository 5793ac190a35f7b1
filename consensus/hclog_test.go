package consensus_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcep/dcep/consensus"
)

// lockedBuffer is a log sink several goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStoppedPeerLogsQuietly (issue 16, defect 5: a stopped peer gave the
// leader 76 ERROR lines in 30 s naming it by address, and lines repeated
// the "node" key): with one follower stopped for 4 s the leader logs no
// ERROR, each of Raft's per-attempt messages about it at most once (the
// rest counted, rate-limited per 30 s), names it by node name, and every
// JSON line has each key once.
func TestStoppedPeerLogsQuietly(t *testing.T) {
	c := newCluster(t, 3, 0)
	logs := map[string]*lockedBuffer{}
	c.tweak = func(name, _ string, cfg *consensus.Config) {
		logs[name] = &lockedBuffer{}
		cfg.Logger = slog.New(slog.NewJSONHandler(logs[name], nil)).With("node", name)
	}
	c.startAll()
	leader := c.leader()
	var stopped string
	for _, n := range []string{"v0", "v1", "v2"} {
		if n != leader.name {
			stopped = n
			break
		}
	}
	from := len(logs[leader.name].String())
	c.stop(stopped)
	time.Sleep(4 * time.Second)
	text := logs[leader.name].String()[from:]

	perMessage := map[string]int{}
	about := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if err := checkUniqueKeys(line); err != nil {
			t.Errorf("%v: %s", err, line)
		}
		var rec map[string]any
		_ = json.Unmarshal([]byte(line), &rec)
		msg, _ := rec["msg"].(string)
		if rec["level"] == "ERROR" {
			t.Errorf("ERROR about a stopped peer: %s", line)
		}
		if !strings.Contains(msg, "failed to") {
			continue
		}
		about++
		perMessage[msg]++
		if !strings.Contains(line, `"`+stopped+`"`) {
			t.Errorf("line about %s does not name it: %s", stopped, line)
		}
	}
	if about == 0 {
		t.Fatalf("the leader logged nothing about stopped %s in 4 s:\n%s", stopped, text)
	}
	for msg, n := range perMessage {
		if n > 1 {
			t.Errorf("%q logged %d times in 4 s (want once per 30 s)", msg, n)
		}
	}
}

// checkUniqueKeys reports a JSON object (at any depth) with a key twice.
func checkUniqueKeys(line string) error {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q twice", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	return walk()
}
