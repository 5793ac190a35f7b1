package state

import (
	"fmt"

	"github.com/dcep/dcep/state/statepb"
)

// Yuan is 100 fen.
const Yuan = 100

// DefaultTiers are the PBoC caps of SPEC §2. Tier 2 and 3 have no yearly cap
// in the specification; tier 1 has no caps at all.
func DefaultTiers() []*statepb.TierLimits {
	return []*statepb.TierLimits{
		{Tier: 1},
		{Tier: 2, MaxBalanceFen: 500_000 * Yuan, MaxPaymentFen: 50_000 * Yuan, MaxDailyFen: 100_000 * Yuan},
		{Tier: 3, MaxBalanceFen: 500_000 * Yuan, MaxPaymentFen: 50_000 * Yuan, MaxDailyFen: 100_000 * Yuan},
		{Tier: 4, MaxBalanceFen: 10_000 * Yuan, MaxPaymentFen: 2_000 * Yuan, MaxDailyFen: 5_000 * Yuan, MaxYearlyFen: 50_000 * Yuan},
	}
}

// DefaultLargeValueThresholdFen is SPEC §6's reporting threshold, ¥50,000.
const DefaultLargeValueThresholdFen = 50_000 * Yuan

// ValidateGenesis checks a genesis completely. Every error wraps
// ErrInvalidGenesis and names the field.
func ValidateGenesis(g *statepb.Genesis) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidGenesis}, args...)...)
	}
	if n := len(g.GetChainId()); n == 0 || n > statepb.MaxChainIDBytes {
		return bad("chain_id: %d bytes (want 1..%d)", n, statepb.MaxChainIDBytes)
	}
	if g.GetGenesisTimeMs() < 0 {
		return bad("genesis_time_ms: negative")
	}
	cb := g.GetCentralBank()
	if err := statepb.ValidateID("central_bank.id", cb.GetId()); err != nil {
		return bad("%v", err)
	}
	if len(cb.GetPublicKey()) != statepb.PublicKeyBytes || !statepb.UsableKey(cb.GetPublicKey()) {
		return bad("central_bank.public_key: not a usable 32-byte Ed25519 key")
	}
	if len(g.GetBanks()) == 0 {
		return bad("banks: none")
	}
	ids := map[string]string{cb.GetId(): "central_bank.id"}
	claim := func(field, id string) error {
		if err := statepb.ValidateID(field, id); err != nil {
			return bad("%v", err)
		}
		if prev, dup := ids[id]; dup {
			return bad("%s: %q already used by %s", field, id, prev)
		}
		ids[id] = field
		return nil
	}
	for i, b := range g.GetBanks() {
		f := fmt.Sprintf("banks[%d]", i)
		if err := claim(f+".id", b.GetId()); err != nil {
			return err
		}
		if len(b.GetPublicKey()) != statepb.PublicKeyBytes || !statepb.UsableKey(b.GetPublicKey()) {
			return bad("%s.public_key: not a usable 32-byte Ed25519 key", f)
		}
		if len(b.GetName()) > statepb.MaxNameBytes {
			return bad("%s.name: too long", f)
		}
		if err := claim(f+".reserve_wallet_id", b.GetReserveWalletId()); err != nil {
			return err
		}
		if b.GetGuaranteeWalletId() != "" {
			if err := claim(f+".guarantee_wallet_id", b.GetGuaranteeWalletId()); err != nil {
				return err
			}
		}
	}
	if err := validateTiers(g.GetTiers()); err != nil {
		return bad("%v", err)
	}
	return validateNodes(g.GetNodes(), bad)
}

func validateTiers(tiers []*statepb.TierLimits) error {
	if len(tiers) != statepb.MaxTier {
		return fmt.Errorf("tiers: %d (want %d, tiers 1..%d in order)", len(tiers), statepb.MaxTier, statepb.MaxTier)
	}
	for i, t := range tiers {
		if t.GetTier() != uint32(i+1) {
			return fmt.Errorf("tiers[%d].tier: %d (want %d)", i, t.GetTier(), i+1)
		}
	}
	return nil
}

func validateNodes(nodes []*statepb.Node, bad func(string, ...any) error) error {
	names := map[string]bool{}
	keys := map[string]bool{}
	voters := 0
	for i, n := range nodes {
		if err := n.ValidateBasic(); err != nil {
			return bad("nodes[%d]: %v", i, err)
		}
		if names[n.GetName()] || keys[string(n.GetPublicKey())] {
			return bad("nodes[%d]: name or key repeats an earlier node", i)
		}
		names[n.GetName()], keys[string(n.GetPublicKey())] = true, true
		if n.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
			voters++
		}
	}
	if voters == 0 {
		return bad("nodes: no voter")
	}
	return nil
}

// tierTable indexes a validated genesis' tiers by tier number.
type tierTable [statepb.MaxTier + 1]*statepb.TierLimits

func newTierTable(g *statepb.Genesis) tierTable {
	var t tierTable
	for _, l := range g.GetTiers() {
		t[l.GetTier()] = l
	}
	return t
}

func (t *tierTable) get(tier uint32) *statepb.TierLimits {
	if tier < statepb.MinTier || tier > statepb.MaxTier {
		return &statepb.TierLimits{}
	}
	return t[tier]
}
