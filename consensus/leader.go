package consensus

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// watchLeadership keeps ready in step with leadership. A new leader first
// commits a barrier: once it has applied everything committed before its
// term, its ledger time and reads are current, and only then does it take
// proposals and answer read-index requests.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case leader := <-n.raft.LeaderCh():
			n.ready.Store(false)
			if leader {
				n.becomeReady()
			} else {
				n.log.Info("lost leadership")
			}
		case <-n.stop:
			n.ready.Store(false)
			return
		}
	}
}

func (n *Node) becomeReady() {
	for n.raft.State() == raft.Leader {
		err := n.await(n.raft.Barrier(n.cfg.ElectionTimeout * 5))
		if errors.Is(err, ErrStopped) {
			return
		}
		if err == nil {
			n.ready.Store(true)
			n.log.Info("leading", "applied_index", n.AppliedIndex(), "ledger_time_ms", n.cfg.Store.Meta().GetLedgerTimeMs())
			n.MembershipChanged()
			return
		}
		n.log.Warn("leader barrier failed", "error", err)
		select {
		case <-n.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// await waits for a Raft future, or for Shutdown. With BatchApplyCh a
// future still in Raft's apply buffer when Raft shuts down is never
// answered; waiting for it alone would hold Shutdown for ever.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.stop:
		return ErrStopped
	}
}

// reconcileLoop makes the Raft configuration follow the ledger's committed
// membership, when this node is the ready leader: on every membership
// change, on election, and every 30 s as a safety net.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.reconcile:
		case <-tick.C:
		case <-n.stop:
			return
		}
		if n.ready.Load() {
			if err := n.reconcileMembership(); err != nil {
				n.log.Warn("membership reconcile", "error", err)
			}
		}
	}
}

func (n *Node) reconcileMembership() error {
	members, err := n.cfg.Store.Members()
	if err != nil {
		return err
	}
	want, err := n.configurationFor(members)
	if err != nil {
		return err
	}
	have, err := n.Configuration()
	if err != nil {
		return err
	}
	current := map[raft.ServerID]raft.Server{}
	for _, s := range have.Servers {
		current[s.ID] = s
	}
	wanted := map[raft.ServerID]bool{}
	var errs []error
	for _, s := range want.Servers {
		wanted[s.ID] = true
		if cur, ok := current[s.ID]; ok && cur.Suffrage == s.Suffrage && cur.Address == s.Address {
			continue
		}
		var f raft.IndexFuture
		if s.Suffrage == raft.Voter {
			f = n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.ElectionTimeout*5)
		} else {
			f = n.raft.AddNonvoter(s.ID, s.Address, 0, n.cfg.ElectionTimeout*5)
		}
		n.log.Info("raft membership: adding", "id", s.ID, "suffrage", s.Suffrage.String())
		errs = append(errs, n.await(f))
	}
	for _, s := range have.Servers {
		if !wanted[s.ID] {
			n.log.Info("raft membership: removing", "id", s.ID)
			errs = append(errs, n.await(n.raft.RemoveServer(s.ID, 0, n.cfg.ElectionTimeout*5)))
		}
	}
	return errors.Join(errs...)
}

func parseUint(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", s, err)
	}
	return v, nil
}
