package p2p

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestStreamLayerCloseEndsRaftStreams (defect 4): closing the raft stream
// layer fails a raft stream in flight at once, both the one this node
// dialled and the one it accepted, and refuses new dials, so no raft
// goroutine waits out an RPC timeout while the node stops. Before, the
// streams stayed open and a read waited for its deadline (10 s in
// production).
func TestStreamLayerCloseEndsRaftStreams(t *testing.T) {
	nodes := newCluster(t, 2)
	a, err := nodes[0].h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := nodes[1].h.RaftStreamLayer()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out, err := a.Dial(raft.ServerAddress(nodes[1].h.ID().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("x")); err != nil { // the stream opens on first write
		t.Fatal(err)
	}
	in, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	read := func(c net.Conn) <-chan error {
		ch := make(chan error, 1)
		go func() {
			buf := make([]byte, 8)
			for {
				if _, err := c.Read(buf); err != nil {
					ch <- err
					return
				}
			}
		}()
		return ch
	}
	outRead, inRead := read(out), read(in)
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan error{"dialled": outRead, "accepted (peer's side)": inRead} {
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
			t.Fatalf("the %s stream still open 2 s after Close", name)
		}
	}
	t.Logf("both ends failed within %v of Close", time.Since(start).Round(time.Millisecond))
	if _, err := a.Dial(raft.ServerAddress(nodes[1].h.ID().String()), 5*time.Second); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("dial after Close: %v, want net.ErrClosed", err)
	}
}
