package node

import (
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
)

// Reflection procedures (grpc.reflection.v1 and its v1alpha
// predecessor, which older grpcurl and Postman builds still ask first).
const (
	reflectV1Procedure      = "/" + grpcreflect.ReflectV1ServiceName + "/ServerReflectionInfo"
	reflectV1AlphaProcedure = "/" + grpcreflect.ReflectV1AlphaServiceName + "/ServerReflectionInfo"
)

// reflectedServices are the services the node names to gRPC server
// reflection (connectrpc.com/grpcreflect), so grpcurl and Postman work
// with no .proto files. Reflection shows the API's shape only — the same
// descriptors the public repository holds — never data, so its policy row
// is public; it still passes the policy interceptor, metrics, the request
// limits and the per-IP rate like every other call.
var reflectedServices = []string{
	nodepbconnect.LedgerServiceName, nodepbconnect.AuditServiceName,
	nodepbconnect.ProgrammableServiceName, grpchealth.HealthV1ServiceName,
	grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName,
}

// mountReflection serves both reflection versions on mux.
func (n *Node) mountReflection(mux *http.ServeMux) {
	r := grpcreflect.NewStaticReflector(reflectedServices...)
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(n.cfg.Limits.MaxRequestBytes),
		connect.WithInterceptors(n.metrics.interceptor(), policyInterceptor{n}),
	}
	for _, mk := range []func(*grpcreflect.Reflector, ...connect.HandlerOption) (string, http.Handler){
		grpcreflect.NewHandlerV1, grpcreflect.NewHandlerV1Alpha,
	} {
		path, h := mk(r, opts...)
		mux.Handle(path, checkBody(n.cfg.Limits.MaxRequestBytes, n.limits.middleware(h)))
	}
}
