package consensus

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// pipelineStall is how long one pipelined AppendEntries may wait for room
// among the requests in flight before the pipeline is closed.
//
// hashicorp/raft's netPipeline blocks a send while 128 requests await
// their responses, and a send blocked there is released only by the
// pipeline's Close, which raft calls after the send returns. When raft's
// response reader for that pipeline has stopped (it returns on the first
// refused append, e.g. a follower whose disk is full), the responses fill
// its queue, the send never returns, and replication to that follower stops
// for good, while the same replication's heartbeats go on telling the
// follower the leader is alive, so it never calls an election either:
// chaos seed 106 (4 Dec), a follower left 2,700 entries behind for eight
// minutes after its disk had space again, with the leader's sender and the
// pipeline's reader stuck ten minutes in netPipeline.AppendEntries and
// decodeResponses. Closing the pipeline makes the send fail; raft then
// drops back to plain AppendEntries for that follower (and starts a new
// pipeline once one succeeds). A healthy pipeline never waits this long:
// each response read has the transport's 10 s deadline, and a slow
// follower that still answers frees a slot per answer.
var pipelineStall = 15 * time.Second

// watchedPipeline is an AppendPipeline whose AppendEntries cannot block
// longer than pipelineStall.
type watchedPipeline struct {
	raft.AppendPipeline
	peer raft.ServerID
	log  *slog.Logger
}

func (t *retryTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &watchedPipeline{AppendPipeline: p, peer: id, log: t.log}, nil
}

func (w *watchedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	stall := pipelineStall
	timer := time.AfterFunc(stall, func() {
		w.log.Warn("raft pipeline stalled: no room among the requests in flight; closing it (replication falls back to plain AppendEntries)",
			"peer", string(w.peer), "stall_ms", stall.Milliseconds())
		_ = w.AppendPipeline.Close()
	})
	defer timer.Stop()
	return w.AppendPipeline.AppendEntries(args, resp)
}
