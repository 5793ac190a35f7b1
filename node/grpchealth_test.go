package node_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
)

// TestGRPCHealth (issue 16, defect 5): a stock gRPC client (grpc-go's
// health client, no proto files of ours) asks grpc.health.v1 and gets
// SERVING for the server and the LedgerService, NOT_FOUND for a service
// the node does not have.
func TestGRPCHealth(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	c.StartAll()
	c.WaitReady(c.Names[0], 10*time.Second)
	conn, err := grpc.NewClient(c.Configs[c.Names[0]].APIListen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", nodepbconnect.LedgerServiceName} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, resp, err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); err == nil {
		t.Fatal("health of an unknown service answered")
	}
}
