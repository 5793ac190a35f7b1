package consensus

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPipelineStallIsBroken replays what raft's replication does when a
// follower refuses a pipelined append (chaos seed 106: its disk was full):
// raft's reader of the pipeline's responses returns at the first refusal,
// and its sender, before it notices, sends again. With hashicorp/raft's
// default window (MaxRPCsInFlight 2: no buffer between the sender, the
// pipeline's response decoder and raft's reader) the decoder then blocks
// handing over the next response and the send after it blocks forever;
// replication to that follower stopped for good. The watched pipeline must
// make that send fail (ErrPipelineShutdown) within pipelineStall.
// Real transports on loopback TCP.
func TestPipelineStallIsBroken(t *testing.T) {
	defer func(old time.Duration) { pipelineStall = old }(pipelineStall)
	pipelineStall = 300 * time.Millisecond

	follower, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	go func() { // a follower whose log cannot take the entries
		for rpc := range follower.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: 1, Success: false}, nil)
		}
	}()
	nt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	tr := wrapTransport(nt, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p, err := tr.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := func(i int) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: 1, PrevLogEntry: uint64(i)}
	}
	if _, err := p.AppendEntries(req(0), new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	first := <-p.Consumer() // raft's reader sees the refusal and stops reading
	if first.Error() != nil || first.Response().Success {
		t.Fatalf("first response: %v, success %v", first.Error(), first.Response().Success)
	}

	done := make(chan error, 1)
	sent := 0
	go func() {
		for i := 1; i < 100; i++ {
			if _, err := p.AppendEntries(req(i), new(raft.AppendEntriesResponse)); err != nil {
				done <- err
				return
			}
			sent++
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrPipelineShutdown) {
			t.Fatalf("after %d more sends: %v, want ErrPipelineShutdown", sent, err)
		}
		t.Logf("the send after %d more requests failed: %v", sent, err)
	case <-time.After(10 * pipelineStall):
		t.Fatalf("a pipelined send still blocked %v after raft stopped reading (%d more sent)", 10*pipelineStall, sent)
	}
}
