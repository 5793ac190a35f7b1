package node_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/nodetest"
)

// TestStartFailureIsAnError: a node that fails to start after opening its
// ledger (here: its API port is taken) returns the error and releases what
// it opened, so the same node starts once the port is free. It used to
// panic (a nil pointer in Start's cleanup), which is how a node refusing a
// damaged snapshot died in the chaos campaign (deploy/chaos).
func TestStartFailureIsAnError(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	name := c.Names[0]
	cfg := c.Configs[name]
	l, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := node.Start(cfg, node.Options{Key: c.Key(name), Genesis: c.Net.Genesis}); err == nil {
		n.Close(context.Background())
		t.Fatal("started with its API port taken")
	} else {
		t.Logf("refused: %v", err)
	}
	l.Close()
	n, err := node.Start(cfg, node.Options{Key: c.Key(name), Genesis: c.Net.Genesis})
	if err != nil {
		t.Fatalf("start after the port was freed (was the ledger released?): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
