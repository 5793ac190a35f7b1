package localnet_test

// Process habits (issue 16, defect 5), on real `dcepd run` processes:
// SIGHUP reloads the log level and never stops the node; a leader stopped
// with SIGTERM hands its leadership over first and logs no ERROR; libp2p
// listens on the generated host (loopback), not on every interface.

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcessHabits(t *testing.T) {
	tn := startNet(t)
	leader := tn.leader(10*time.Second, "")
	var follower string
	for _, v := range tn.voters {
		if v != leader {
			follower = v
			break
		}
	}
	// Generated on loopback, libp2p listens on loopback only.
	for _, nn := range tn.ln.Info.Nodes {
		raw, err := os.ReadFile(nn.Config)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`p2p_listen = \['/ip4/127\.0\.0\.1/tcp/\d+'\]`).Match(raw) {
			t.Fatalf("%s: p2p_listen not on loopback:\n%s", nn.Name, raw)
		}
	}

	// SIGHUP with log.level = debug in the file: the node stays up and
	// logs at debug from then on.
	nn, _ := tn.ln.Node(follower)
	raw, err := os.ReadFile(nn.Config)
	if err != nil {
		t.Fatal(err)
	}
	debug := regexp.MustCompile(`(?m)^level = .*$`).ReplaceAll(raw, []byte("level = 'debug'"))
	if err := os.WriteFile(nn.Config, debug, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(tn.ln.Pid(follower), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if !tn.ln.Running(follower) {
		t.Fatalf("%s stopped on SIGHUP", follower)
	}
	logText := func(name string) string {
		b, _ := os.ReadFile(tn.ln.LogPath(name))
		return string(b)
	}
	if l := logText(follower); !strings.Contains(l, `msg="SIGHUP: log level set" node=`) && !strings.Contains(l, "SIGHUP: log level set") ||
		!strings.Contains(l, "level=DEBUG") {
		t.Fatalf("%s after SIGHUP: no 'log level set' or no DEBUG line:\n%s", follower, l[max(0, len(l)-3000):])
	}
	if _, err := tn.statusJSON(follower); err != nil {
		t.Fatalf("%s API after SIGHUP: %v", follower, err)
	}

	// SIGTERM to the leader: it hands over leadership before it stops, so
	// a new leader is known by the time it has exited, and it logs no
	// ERROR while stopping.
	before := len(logText(leader))
	start := time.Now()
	if err := tn.ln.Stop(leader); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(start)
	st, err := tn.statusJSON(follower)
	if err != nil {
		t.Fatal(err)
	}
	if l := st.GetNode().GetLeader(); l == "" || l == leader {
		t.Fatalf("right after the leader %s stopped (in %v), %s knows leader %q: no hand-over", leader, stopped, follower, l)
	}
	tail := logText(leader)[before:]
	if !strings.Contains(tail, "leadership transferred before stopping") {
		t.Fatalf("leader's log on SIGTERM lacks the hand-over:\n%s", tail)
	}
	for _, line := range strings.Split(tail, "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("ERROR on a clean SIGTERM: %s", line)
		}
	}
	t.Logf("leader %s stopped in %v, leadership handed to %s", leader, stopped.Round(time.Millisecond), st.GetNode().GetLeader())
}
