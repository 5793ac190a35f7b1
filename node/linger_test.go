package node

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/dcep/dcep/p2p"
)

func TestLingerSetKeepsARemovedPeerForItsWindow(t *testing.T) {
	member := func(name string, seed byte) p2p.Member {
		s := make([]byte, 32)
		s[0] = seed
		k := ed25519.NewKeyFromSeed(s)
		return p2p.Member{Name: name, PublicKey: k.Public().(ed25519.PublicKey), Role: p2p.RoleVoter}
	}
	a, b, c := member("a", 1), member("b", 2), member("c", 3)
	names := func(ms []p2p.Member) (out []string) {
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	t0 := time.Unix(1000, 0)
	var l lingerSet
	if got := names(l.update([]p2p.Member{a, b, c}, t0)); len(got) != 3 {
		t.Fatalf("first set: %v", got)
	}
	if got := names(l.update([]p2p.Member{a, b}, t0)); len(got) != 3 || got[2] != "c" {
		t.Fatalf("c removed: allowlist %v, want c still on it", got)
	}
	if l.expire(t0.Add(removedLingerMs*time.Millisecond - time.Millisecond)) {
		t.Fatal("c dropped before its window ended")
	}
	if !l.expire(t0.Add(removedLingerMs * time.Millisecond)) {
		t.Fatal("c not dropped when its window ended")
	}
	if got := names(l.allowlist(t0.Add(removedLingerMs * time.Millisecond))); len(got) != 2 {
		t.Fatalf("after the window: %v", got)
	}
	// Removed and re-added within the window: no linger entry survives.
	l.update([]p2p.Member{a}, t0)
	l.update([]p2p.Member{a, b}, t0)
	if got := names(l.allowlist(t0)); len(got) != 2 || l.expire(t0.Add(time.Hour)) {
		t.Fatalf("re-added b: %v", got)
	}
}
