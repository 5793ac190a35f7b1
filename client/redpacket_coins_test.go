package client_test

import (
	"errors"
	"testing"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

func rpOutput(b byte, fen uint64, campaign string) *nodepb.Unspent {
	id := make([]byte, statepb.TxIDBytes)
	id[0] = b
	return &nodepb.Unspent{Outpoint: &statepb.Outpoint{TxId: id}, AmountFen: fen, CampaignId: campaign}
}

// TestRedPacketSelection: plain selection never picks a red packet; paying
// an eligible merchant uses the campaign's packets first, then plain
// money, and never another campaign's.
func TestRedPacketSelection(t *testing.T) {
	unspent := []*nodepb.Unspent{
		rpOutput(1, 5000, ""), rpOutput(2, 800, ""),
		rpOutput(3, 20000, "dbl12"), rpOutput(4, 5000, "dbl12"),
		rpOutput(5, 90000, "other"),
	}
	sel, err := client.SelectInputs(unspent, 5500)
	if err != nil || sel.TotalFen != 5800 || len(sel.Inputs) != 2 {
		t.Fatalf("plain: %+v, %v", sel, err)
	}
	if _, err := client.SelectInputs(unspent, 6000); !errors.Is(err, client.ErrInsufficientFunds) {
		t.Fatalf("plain selection reached for red packets: %v", err)
	}
	if got := client.UnspentTotal(unspent); got != 5800 {
		t.Fatalf("UnspentTotal %d counts red packets", got)
	}
	// Covered by packets alone: the least change among them.
	sel, err = client.SelectWithRedPackets(unspent, "dbl12", 4000)
	if err != nil || len(sel.Inputs) != 1 || sel.Inputs[0].GetTxId()[0] != 4 || sel.RedPacketFen != 4000 || sel.ChangeFen != 1000 {
		t.Fatalf("packets alone: %+v, %v", sel, err)
	}
	// More than the packets: all of them, then plain money.
	sel, err = client.SelectWithRedPackets(unspent, "dbl12", 26000)
	if err != nil || len(sel.Inputs) != 3 || sel.RedPacketFen != 25000 || sel.TotalFen != 30000 || sel.ChangeFen != 4000 {
		t.Fatalf("packets and plain: %+v, %v", sel, err)
	}
	for _, in := range sel.Inputs {
		if in.GetTxId()[0] == 5 {
			t.Fatal("another campaign's packet selected")
		}
	}
	if _, err := client.SelectWithRedPackets(unspent, "dbl12", 40000); !errors.Is(err, client.ErrInsufficientFunds) {
		t.Fatalf("beyond packets and plain money: %v", err)
	}
	if tot := client.RedPacketTotal(unspent); tot["dbl12"] != 25000 || tot["other"] != 90000 || len(tot) != 2 {
		t.Fatalf("RedPacketTotal %v", tot)
	}
}
