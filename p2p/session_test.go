package p2p

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDuplicateIdentityRefused: b is a member connected to a; a second
// process with b's key (b2, another address) connects to a while b lives.
// a refuses b2's connection, raises the alarm (counted, logged, listed)
// and keeps serving b. Once b is gone, b2 is b's restart and is admitted.
func TestDuplicateIdentityRefused(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	b2 := newNodeWithKey(t, "b", b.key)
	if err := a.h.SetMembers([]Member{a.member(t), b.member(t)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testNode{b, b2} {
		if err := n.h.SetMembers([]Member{a.member(t), b.member(t)}); err != nil {
			t.Fatal(err)
		}
	}
	a.h.Handle(echoProto, maxReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) { return req, nil })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	if _, err := b.h.Request(ctx, a.h.ID(), echoProto, []byte("b"), maxReq); err != nil {
		t.Fatalf("b: %v", err)
	}
	if got := a.h.DuplicateRefusals(); got != 0 {
		t.Fatalf("refusals before any duplicate: %d", got)
	}
	_, err := b2.h.Request(ctx, a.h.ID(), echoProto, []byte("b2"), maxReq)
	if err == nil {
		t.Fatal("a second process with b's key was served while b is connected")
	}
	t.Logf("b2 refused: %v", err)
	eventually(t, 10*time.Second, func() bool { return a.h.DuplicateRefusals() >= 1 }, "duplicate refusal counted")
	alarms := a.h.DuplicateAlarms()
	if len(alarms) != 1 || alarms[0].Peer != b.h.ID() || alarms[0].Name != "b" || alarms[0].Refused < 1 ||
		alarms[0].KeptAddr == alarms[0].RefusedAddr || alarms[0].LastAt.IsZero() {
		t.Fatalf("alarms: %+v", alarms)
	}
	if !containsAll(a.logs.String(), "DUPLICATE IDENTITY", "name=b", "kept_addr=", "refused_addr=") {
		t.Fatalf("no duplicate identity log line:\n%s", a.logs.String())
	}
	// The first process is untouched.
	if _, err := b.h.Request(ctx, a.h.ID(), echoProto, []byte("b again"), maxReq); err != nil {
		t.Fatalf("b after the duplicate was refused: %v", err)
	}
	if len(a.h.host.Network().ConnsToPeer(b.h.ID())) == 0 {
		t.Fatal("a has no connection to b left")
	}

	// b stops: b2 is now b's restart, and is admitted.
	if err := b.h.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		_, err := b2.h.Request(ctx, a.h.ID(), echoProto, []byte("restart"), maxReq)
		return err == nil
	}, "b's restart to be admitted")
	if got := a.h.DuplicateAlarms()[0].Refused; got > alarms[0].Refused+2 {
		t.Logf("%d more refusals while b shut down", got-alarms[0].Refused)
	}
}

// TestSecondConnectionOfOneProcessIsNotADuplicate: two connections of
// one peer from the same process (a simultaneous dial; or several at once)
// carry the same session nonce, and both are kept. libp2p reuses a live
// connection when dialing, so the test makes the second connection from a
// second host given the first's key and nonce: to a, that is exactly one
// process with two connections.
func TestSecondConnectionOfOneProcessIsNotADuplicate(t *testing.T) {
	a, b := newNode(t, "a"), newNode(t, "b")
	bAgain := newNodeWithKey(t, "b", b.key)
	bAgain.h.sess.self = b.h.sess.self
	for _, n := range []*testNode{a, b, bAgain} {
		if err := n.h.SetMembers([]Member{a.member(t), b.member(t)}); err != nil {
			t.Fatal(err)
		}
	}
	a.h.Handle(echoProto, maxReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) { return req, nil })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, n := range []*testNode{b, bAgain, b} {
		if _, err := n.h.Request(ctx, a.h.ID(), echoProto, []byte("hi"), maxReq); err != nil {
			t.Fatalf("%s: %v", n.h.host.Addrs(), err)
		}
	}
	conns := a.h.host.Network().ConnsToPeer(b.h.ID())
	if len(conns) != 2 {
		t.Fatalf("a has %d connections to b, want 2", len(conns))
	}
	for _, c := range conns {
		if err := a.h.connAdmitted(ctx, c); err != nil {
			t.Fatalf("connection from %s refused: %v", c.RemoteMultiaddr(), err)
		}
	}
	if a.h.DuplicateRefusals() != 0 || strings.Contains(a.logs.String(), "DUPLICATE") {
		t.Fatal("a second connection of the same process was taken for a duplicate identity")
	}
}
