package node

import (
	"context"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
)

// healthChecker answers grpc.health.v1 (connectrpc.com/grpchealth), for
// load balancers and gRPC tooling: SERVING when the node is ready (what
// /readyz says), NOT_SERVING otherwise, for the whole server ("") and each
// API service; any other name is NOT_FOUND.
type healthChecker struct{ n *Node }

var healthServices = map[string]bool{
	"": true, nodepbconnect.LedgerServiceName: true, nodepbconnect.AuditServiceName: true,
	nodepbconnect.ProgrammableServiceName: true,
}

func (h healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if !healthServices[req.Service] {
		return nil, connect.NewError(connect.CodeNotFound, nil)
	}
	if h.n.ready() {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
}
