package netgen

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/token"
)

// DevGuaranteeFen is what `dcepd dev` puts in each bank's offline
// guarantee: ¥10,000, which at the 10% cover ratio lets a bank's wallets
// hold ¥100,000 in purses at once (20 of the largest, ¥5,000), and pays
// fifty ¥200 double spends of payers with nothing online before the bank's
// reserve is touched.
const DevGuaranteeFen = 10_000 * 100

// Funded is one bank's guarantee funding.
type Funded struct {
	Bank, Wallet string
	// Fen is what was moved in (0: the guarantee had been funded before).
	Fen uint64
}

// FundGuarantees funds the offline guarantee wallet of every bank whose
// guarantee has never received anything: the central bank issues fen into
// the bank's reserve, and the bank moves it into its guarantee (an
// exchange), with the keys in the network directory dir (keys/). node is
// a voter's API address. It is idempotent: a guarantee that was funded
// once, or drained by payouts since, is left alone.
func FundGuarantees(ctx context.Context, dir, node string, fen uint64) ([]Funded, error) {
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		return nil, err
	}
	cb, err := ks.CentralBank()
	if err != nil {
		return nil, err
	}
	cl, err := client.New(node)
	if err != nil {
		return nil, err
	}
	b, err := cl.Builder(ctx)
	if err != nil {
		return nil, err
	}
	var out []Funded
	for _, bank := range b.Genesis().GetBanks() {
		gid := bank.GetGuaranteeWalletId()
		if gid == "" {
			continue
		}
		bk, err := ks.Bank(bank.GetId())
		if err != nil {
			return out, err
		}
		// The guarantee wallet is the bank's: read it signed in as the bank.
		bcl, err := client.New(node, client.As(client.Identity{Subject: token.Subject{Kind: token.KindBank, ID: bank.GetId()}, Key: bk.Private}))
		if err != nil {
			return out, err
		}
		w, err := bcl.Wallet(ctx, gid)
		if err != nil {
			return out, fmt.Errorf("guarantee wallet %s: %w", gid, err)
		}
		f := Funded{Bank: bank.GetId(), Wallet: gid}
		if w.GetWallet().GetHistoryLen() == 0 {
			if _, err := cl.Issue(ctx, cb.Private, bank.GetId(), fen); err != nil {
				return out, fmt.Errorf("issue to %s: %w", bank.GetId(), err)
			}
			if _, err := bcl.Exchange(ctx, bk.Private, bank.GetId(), gid, fen); err != nil {
				return out, fmt.Errorf("fund %s: %w", gid, err)
			}
			f.Fen = fen
		}
		out = append(out, f)
	}
	return out, nil
}
