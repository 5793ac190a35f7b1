package p2p

import (
	"context"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestRolesOnEveryProtocol sends every protocol of the table from each
// role — a voter, a regulator, a member that was removed, a peer that was
// never a member — to a voter's host, with real libp2p hosts, and checks
// each is served or refused as Rules says: a regulator reaches the
// read-only protocols only, and removed members and outsiders nothing.
func TestRolesOnEveryProtocol(t *testing.T) {
	target := newNode(t, "target")
	voter, regulator, removed, outsider := newNode(t, "voter"), newNode(t, "regulator"), newNode(t, "removed"), newNode(t, "outsider")
	regulator.role = RoleRegulator
	all := []*testNode{target, voter, regulator, removed}
	members := make([]Member, len(all))
	for i, n := range all {
		members[i] = n.member(t)
	}
	for _, n := range all {
		if err := n.h.SetMembers(members); err != nil {
			t.Fatal(err)
		}
	}
	// The outsider lists the target, so its own gater lets it dial out.
	if err := outsider.h.SetMembers([]Member{target.member(t), outsider.member(t)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// removed was a member with a live connection, then the membership
	// dropped it.
	if _, err := removed.h.askSessionOf(ctx, target.h.ID()); err != nil {
		t.Fatalf("removed member before its removal: %v", err)
	}
	if err := target.h.SetMembers(slices.DeleteFunc(slices.Clone(members), func(m Member) bool { return m.Name == "removed" })); err != nil {
		t.Fatal(err)
	}

	served := map[protocol.ID]*atomic.Int64{}
	for _, r := range Rules {
		switch r.Protocol {
		case RaftProtocol, SessionProtocol, identifyProtocol, identifyPushProtocol:
			continue
		}
		served[r.Protocol] = new(atomic.Int64)
		target.h.Handle(r.Protocol, maxReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
			served[r.Protocol].Add(1)
			return append([]byte("ok:"), req...), nil
		})
	}
	sl, err := target.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptAll(t, sl)

	senders := []struct {
		n    *testNode
		role string
	}{{voter, "voter"}, {regulator, "regulator"}, {removed, "removed member"}, {outsider, "non-member"}}
	for _, s := range senders {
		for _, r := range Rules {
			allowed := (s.role == "voter" && r.OpenedBy&RoleVoter != 0) || (s.role == "regulator" && r.OpenedBy&RoleRegulator != 0)
			t.Run(s.role+" "+string(r.Protocol), func(t *testing.T) {
				switch r.Protocol {
				case RaftProtocol:
					got := openRaft(t, s.n, target, accepted)
					if got != allowed {
						t.Fatalf("raft stream from a %s: accepted=%v, want %v", s.role, got, allowed)
					}
				case SessionProtocol:
					_, err := s.n.h.askSessionOf(ctx, target.h.ID())
					if (err == nil) != allowed {
						t.Fatalf("session from a %s: err=%v, want allowed=%v", s.role, err, allowed)
					}
				case identifyProtocol, identifyPushProtocol:
					// libp2p runs identify on every connection it admits: the
					// gater is the check (members only), as the rest shows.
				default:
					before := served[r.Protocol].Load()
					resp, err := s.n.h.Request(ctx, target.h.ID(), r.Protocol, []byte("x"), maxReq)
					switch {
					case allowed && (err != nil || string(resp) != "ok:x"):
						t.Fatalf("%s from a %s: %q, %v; want served", r.Protocol, s.role, resp, err)
					case !allowed && err == nil:
						t.Fatalf("%s from a %s was served: %q", r.Protocol, s.role, resp)
					case !allowed && s.role == "regulator" && !errors.Is(err, ErrForbidden):
						t.Fatalf("%s from a regulator: %v, want ErrForbidden", r.Protocol, err)
					case !allowed && served[r.Protocol].Load() != before:
						t.Fatalf("%s from a %s reached the handler", r.Protocol, s.role)
					}
				}
			})
		}
	}
	refused := target.h.RoleRefusals()
	if refused[ForwardProtocol] == 0 || refused[RaftProtocol] == 0 {
		t.Fatalf("role refusals not counted: %v", refused)
	}
	if target.h.Refusals() == 0 {
		t.Fatal("removed member's and outsider's attempts not counted as refusals")
	}
	if !strings.Contains(target.logs.String(), "refused stream: the member's role may not open this protocol") {
		t.Fatalf("no role refusal logged:\n%s", target.logs.String())
	}
}

// openRaft dials a raft stream from s to target and reports whether the
// target's stream layer accepted it.
func openRaft(t *testing.T, s, target *testNode, accepted *atomic.Int64) bool {
	t.Helper()
	before := accepted.Load()
	sl, err := s.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	c, err := sl.Dial(raft.ServerAddress(target.h.ID().String()), 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	// The accepting side drains what it gets and sends nothing; a refused
	// stream is reset, which ends the read early.
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return false
	}
	ended := make(chan struct{})
	go func() {
		_, _ = c.Read(make([]byte, 1))
		close(ended)
	}()
	for {
		select {
		case <-ended:
			return accepted.Load() > before
		case <-time.After(10 * time.Millisecond):
			if accepted.Load() > before {
				return true
			}
		}
	}
}

// askSessionOf asks peer p for its session nonce over the host's connection
// to it (dialing if needed).
func (h *Host) askSessionOf(ctx context.Context, p peer.ID) (session, error) {
	if err := h.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		return session{}, err
	}
	conns := h.host.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		return session{}, errors.New("no connection")
	}
	return h.askSession(ctx, conns[0])
}

// TestHostServesOnlyTabledProtocols: every protocol a host serves — its own,
// libp2p's and the ones a node registers — has a row in Rules, so none
// escapes the table.
func TestHostServesOnlyTabledProtocols(t *testing.T) {
	n := newNode(t, "a")
	sl, err := n.h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	for _, r := range Rules {
		if r.Protocol == ForwardProtocol || r.Protocol == ReadIndexProtocol || r.Protocol == StatusProtocol || r.Protocol == StateHashProtocol || r.Protocol == ArchiveProtocol {
			n.h.Handle(r.Protocol, 1, func(context.Context, peer.ID, []byte) ([]byte, error) { return nil, nil })
		}
	}
	rs, err := newRuleSet(Rules)
	if err != nil {
		t.Fatal(err)
	}
	served := n.h.host.Mux().Protocols()
	for _, p := range served {
		if _, ok := rs[p]; !ok {
			t.Errorf("the host serves %s, which has no row in Rules", p)
		}
	}
	if len(served) != len(Rules) {
		t.Errorf("the host serves %d protocols %v; Rules has %d rows", len(served), served, len(Rules))
	}
}

// TestRulesMatchDesign: DESIGN.md's table of who may open which protocol is
// the code's table, row for row.
func TestRulesMatchDesign(t *testing.T) {
	raw, err := os.ReadFile("DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(/[^`]+)` \\| ([a-z|, ]+) \\|")
	var doc []string
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		doc = append(doc, m[1]+" "+strings.TrimSpace(m[2]))
	}
	var code []string
	for _, r := range Rules {
		code = append(code, string(r.Protocol)+" "+strings.ReplaceAll(r.OpenedBy.String(), "|", ", "))
	}
	if !slices.Equal(doc, code) {
		t.Fatalf("p2p/DESIGN.md's protocol table:\n  %s\nRules in protocols.go:\n  %s", strings.Join(doc, "\n  "), strings.Join(code, "\n  "))
	}
}
