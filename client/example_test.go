package client_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/amount"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/state/statepb"
)

// A holder pays a merchant ¥88.50 from the wallet whose key is in the
// keystore, and prints the ledger's stable error code if it is refused.
func Example_pay() {
	ctx := context.Background()
	ks, err := keystore.Open("/home/alice/.dcep/keys")
	if err != nil {
		log.Fatal(err)
	}
	key, err := ks.Get("alice")
	if err != nil {
		log.Fatal(err)
	}
	fen, err := amount.Parse("88.50")
	if err != nil {
		log.Fatal(err) // invalid amount "88.505": more than two decimals ...
	}
	c, err := client.New("http://127.0.0.1:8101")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Pay(ctx, key.Private, key.WalletID, []*statepb.Payee{client.PayTo("jd.shop", fen)}, client.Memo("lunch"))
	if code := statepb.CodeOf(err); code != statepb.Code_CODE_UNSPECIFIED {
		// A ledger refusal (*client.TxError), a local refusal
		// (*statepb.Error) or a *client.FundsError.
		log.Fatalf("error %s", err) // e.g. "error LIMIT_PAYMENT: transfer: ..."
	}
	if err != nil {
		log.Fatal(err) // *client.APIError, *client.OutcomeUnknownError
	}
	fmt.Printf("paid %s in tx %x at log index %d\n", amount.Yuan(fen), res.GetTxId(), res.GetLogIndex())
}

// Submit retries are safe: they re-send the same signed bytes, and the
// ledger returns the first outcome of a transaction it already has.
func ExampleClient_Submit() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8101", client.WithRetry(client.RetryPolicy{
		MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		AttemptTimeout: 5 * time.Second, Deadline: 20 * time.Second,
	}))
	if err != nil {
		log.Fatal(err)
	}
	b, err := c.Builder(ctx) // fetches and checks the network's genesis
	if err != nil {
		log.Fatal(err)
	}
	var centralBank ed25519.PrivateKey // from the keystore
	tx, err := b.Issue(centralBank, "icbc", 1_000_000*amount.FenPerYuan)
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Submit(ctx, tx)
	var unknown *client.OutcomeUnknownError
	if errors.As(err, &unknown) {
		// Safe to try again later with the same tx (never re-sign), or to
		// look it up: c.Tx(ctx, tx.ID).
		log.Fatalf("not sure whether %s committed", tx.IDHex())
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetCode().Short(), res.GetDuplicate())
}

// Follow committed outcomes from an index; the stream reconnects and
// resumes by itself, never delivering an index twice.
func ExampleClient_Outcomes() {
	c, err := client.New("http://127.0.0.1:8101")
	if err != nil {
		log.Fatal(err)
	}
	err = c.Outcomes(context.Background(), 1, func(b *statepb.BlockRecord) error {
		for _, r := range b.GetResults() {
			fmt.Printf("%d %x %s\n", b.GetLogIndex(), r.GetTxId(), r.GetCode().Short())
		}
		return nil
	})
	log.Fatal(err)
}

// Read a wallet's history, newest first, page by page.
func ExampleClient_History() {
	c, err := client.New("http://127.0.0.1:8101")
	if err != nil {
		log.Fatal(err)
	}
	for e, err := range c.History(context.Background(), "alice", client.Linearizable()) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.GetKind(), amount.Yuan(e.GetInFen()), amount.Yuan(e.GetOutFen()), e.GetCounterparty())
	}
}

// Build and sign offline: the builder needs only the network's genesis.
func ExampleBuilder() {
	genesis := &statepb.Genesis{ChainId: "dcep-example"}
	b, err := client.NewBuilder(genesis)
	if err != nil {
		log.Fatal(err)
	}
	_, centralBank, _ := ed25519.GenerateKey(nil)
	tx, err := b.Issue(centralBank, "icbc", 100_000*amount.FenPerYuan)
	fmt.Println(len(tx.IDHex()), tx.Body.GetChainId(), tx.Body.GetIssue().GetAmountFen(), err)

	// Bad input fails before signing, with the code the ledger would give.
	_, err = b.Issue(centralBank, "icbc", 0)
	fmt.Println(statepb.CodeOf(err).Short())
	// Output:
	// 64 dcep-example 10000000 <nil>
	// AMOUNT_ZERO
}

// Choose inputs: fewest outputs, then least change.
func ExampleSelectInputs() {
	out := func(b byte, fen uint64) *nodepb.Unspent {
		id := make([]byte, 32)
		id[0] = b
		return &nodepb.Unspent{Outpoint: &statepb.Outpoint{TxId: id}, AmountFen: fen}
	}
	unspent := []*nodepb.Unspent{out(1, 50_00), out(2, 120_00), out(3, 300_00), out(4, 90_00)}
	sel, err := client.SelectInputs(unspent, 100_00)
	fmt.Println(len(sel.Inputs), amount.Yuan(sel.TotalFen), amount.Yuan(sel.ChangeFen), err)

	_, err = client.SelectInputs(unspent, 1000_00)
	fmt.Println(err)
	// Output:
	// 1 ¥120.00 ¥20.00 <nil>
	// insufficient funds: balance ¥560.00, need ¥1,000.00
}
