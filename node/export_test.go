package node

import (
	"time"

	"github.com/dcep/dcep/node/accesslog"
)

// ConfirmSnapshot is the check a node runs before it swaps in a snapshot
// the leader sent (snapshot_confirm.go), for tests.
func ConfirmSnapshot(n *Node, index uint64, stateHash []byte) error {
	return n.confirmSnapshot(index, stateHash)
}

// SetConfirmSnapshotTimeout shortens how long ConfirmSnapshot waits for a
// quorum, for tests; it returns the previous value.
func SetConfirmSnapshotTimeout(d time.Duration) time.Duration {
	prev := confirmSnapshotTimeout
	confirmSnapshotTimeout = d
	return prev
}

// AccessRecords queries a node's access log, for tests.
func AccessRecords(n *Node, f accesslog.Filter) ([]accesslog.Record, error) {
	return n.access.Query(f)
}
