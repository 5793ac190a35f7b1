package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Recovery from the loss of a quorum (docs/operations.md, "A quorum lost
// for good"). The central bank signs, with its ledger key, one
// ChangeMembership REMOVE per lost member (`dcep recovery order`); the
// order file carries those signed transactions. `dcepd recover` verifies
// them against the survivor's own ledger before it changes anything, then
// forces the configuration the removals leave (consensus.ForceConfiguration).

// ErrRecoveryOrder: the recovery order is not one this node may act on
// (not the central bank's signature, not of this network, not removals of
// members, or it would remove this node).
var ErrRecoveryOrder = errors.New("recovery order refused")

// RecoveryOrder is the file the central bank signs off a forced
// configuration with.
type RecoveryOrder struct {
	ChainID string   `json:"chain_id"`
	Remove  []string `json:"remove"`
	// Txs are serialized statepb.SignedTx: ChangeMembership REMOVE of each
	// member in Remove, signed by the central bank.
	Txs [][]byte `json:"txs"`
}

// ReadRecoveryOrder reads an order file (JSON, at most 1 MiB).
func ReadRecoveryOrder(path string) (*RecoveryOrder, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recovery order: %w", err)
	}
	if len(raw) > 1<<20 {
		return nil, fmt.Errorf("%w: %s is %d bytes (max 1 MiB)", ErrRecoveryOrder, path, len(raw))
	}
	var o RecoveryOrder
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRecoveryOrder, path, err)
	}
	return &o, nil
}

// RecoveryResult is what Recover did.
type RecoveryResult struct {
	Removed  []string
	Voters   []string
	Index    uint64 // of the forced configuration entry
	LedgerAt uint64
	Position consensus.LogPosition
	ChainID  string
}

// InspectSurvivor says where a stopped survivor stands: its ledger's
// applied index and its log's end (compare every survivor's and recover
// the one with the latest log).
func InspectSurvivor(cfg *Config) (uint64, consensus.LogPosition, error) {
	st, err := openStoppedLedger(cfg)
	if err != nil {
		return 0, consensus.LogPosition{}, err
	}
	applied := st.Meta().GetAppliedIndex()
	st.Close()
	p, err := consensus.InspectLog(filepath.Join(cfg.Path(cfg.DataDir), "raft"), slog.New(slog.DiscardHandler))
	return applied, p, err
}

func openStoppedLedger(cfg *Config) (*state.Store, error) {
	st, err := state.Open(filepath.Join(cfg.Path(cfg.DataDir), "state"), state.Options{Logger: slog.New(slog.DiscardHandler), CacheBytes: 32 << 20})
	if err != nil {
		return nil, fmt.Errorf("open the stopped node's ledger (stop the node first): %w", err)
	}
	if st.Genesis() == nil {
		st.Close()
		return nil, fmt.Errorf("%w: this node's ledger is empty", ErrRecoveryOrder)
	}
	return st, nil
}

// Recover verifies order against cfg's stopped node and forces the
// configuration it leaves: every member of the ledger except those
// removed.
func Recover(cfg *Config, order *RecoveryOrder) (*RecoveryResult, error) {
	st, err := openStoppedLedger(cfg)
	if err != nil {
		return nil, err
	}
	members, err := verifyOrder(st, cfg.Name, order)
	res := &RecoveryResult{LedgerAt: st.Meta().GetAppliedIndex(), ChainID: st.Genesis().GetChainId(), Removed: order.Remove}
	st.Close()
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
			res.Voters = append(res.Voters, m.GetName())
		}
	}
	dir := filepath.Join(cfg.Path(cfg.DataDir), "raft")
	log := slog.New(slog.DiscardHandler)
	if res.Position, err = consensus.InspectLog(dir, log); err != nil {
		return nil, err
	}
	if res.Index, err = consensus.ForceConfiguration(dir, log, order.Txs, members, raftAddress); err != nil {
		return nil, err
	}
	return res, nil
}

// verifyOrder checks every transaction of the order — a well-formed,
// correctly signed ChangeMembership REMOVE of this network (Precheck), by
// the central bank's key in this ledger, of a member that is not this
// node — and returns the membership that remains.
func verifyOrder(st *state.Store, self string, order *RecoveryOrder) ([]*statepb.Node, error) {
	g := st.Genesis()
	if order.ChainID != g.GetChainId() {
		return nil, fmt.Errorf("%w: chain_id %q, this node's network is %q", ErrRecoveryOrder, order.ChainID, g.GetChainId())
	}
	if len(order.Txs) == 0 || len(order.Txs) != len(order.Remove) || len(order.Txs) > 64 {
		return nil, fmt.Errorf("%w: txs: want one signed removal per name in remove (1..64)", ErrRecoveryOrder)
	}
	members, err := st.Members()
	if err != nil {
		return nil, err
	}
	for i, raw := range order.Txs {
		if _, rej := st.Precheck(raw); rej != nil {
			return nil, fmt.Errorf("%w: txs[%d]: %w", ErrRecoveryOrder, i, rej)
		}
		var stx statepb.SignedTx
		var body statepb.Tx
		if proto.Unmarshal(raw, &stx) != nil || proto.Unmarshal(stx.GetBody(), &body) != nil {
			return nil, fmt.Errorf("%w: txs[%d]: does not decode", ErrRecoveryOrder, i)
		}
		cm := body.GetChangeMembership()
		if cm.GetAction() != statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE || cm.GetNode().GetName() != order.Remove[i] {
			return nil, fmt.Errorf("%w: txs[%d]: not the removal of %q", ErrRecoveryOrder, i, order.Remove[i])
		}
		if len(stx.GetSignatures()) != 1 || !bytes.Equal(stx.GetSignatures()[0].GetPublicKey(), g.GetCentralBank().GetPublicKey()) {
			return nil, fmt.Errorf("%w: txs[%d]: not signed by the central bank's key", ErrRecoveryOrder, i)
		}
		name := order.Remove[i]
		if name == self {
			return nil, fmt.Errorf("%w: it removes this node (%s): run it on a survivor", ErrRecoveryOrder, self)
		}
		j := slices.IndexFunc(members, func(m *statepb.Node) bool { return m.GetName() == name })
		if j < 0 {
			return nil, fmt.Errorf("%w: remove: %q is not a member in this node's ledger", ErrRecoveryOrder, name)
		}
		members = slices.Delete(members, j, j+1)
	}
	if !slices.ContainsFunc(members, func(m *statepb.Node) bool {
		return m.GetName() == self && m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER
	}) {
		return nil, fmt.Errorf("%w: this node (%s) is not a voter of the membership left", ErrRecoveryOrder, self)
	}
	return members, nil
}
