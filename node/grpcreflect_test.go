//lint:file-ignore SA1019 v1alpha reflection is deprecated upstream and tested here on purpose: older grpcurl builds ask it first.

package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/node/nodetest"
)

// TestGRPCReflection (issue 16): grpc-go's own reflection client, with no
// proto files of ours, lists the node's services over both reflection
// versions and resolves LedgerService.Submit to a file descriptor set that
// builds (with its imports) into a registry naming the method's input
// type — what grpcurl does before `grpcurl -plaintext host list` or
// `describe`. An unknown symbol gets a NOT_FOUND error response.
func TestGRPCReflection(t *testing.T) {
	c := nodetest.New(t, nodetest.Options{Voters: 1})
	c.StartAll()
	c.WaitReady(c.Names[0], 10*time.Second)
	conn, err := grpc.NewClient(c.Configs[c.Names[0]].APIListen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectpb.ServerReflectionRequest) *reflectpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{nodepbconnect.LedgerServiceName, nodepbconnect.AuditServiceName, nodepbconnect.ProgrammableServiceName, "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Fatalf("reflection lists %v, not %s", names, want)
		}
	}

	sym := ask(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: nodepbconnect.LedgerServiceName + ".Submit"}})
	set := &descriptorpb.FileDescriptorSet{}
	for _, raw := range sym.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(raw, fd); err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the %d descriptors reflection sent do not build: %v", len(set.File), err)
	}
	assertSubmitResolves(t, files)

	miss := ask(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "no.such.Service"}})
	if miss.GetErrorResponse().GetErrorCode() != 5 { // NOT_FOUND
		t.Fatalf("unknown symbol: %v", miss)
	}

	// v1alpha, which older grpcurl builds ask first.
	alpha, err := reflectalphapb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alpha.Send(&reflectalphapb.ServerReflectionRequest{MessageRequest: &reflectalphapb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	aresp, err := alpha.Recv()
	if err != nil || len(aresp.GetListServicesResponse().GetService()) != len(names) {
		t.Fatalf("v1alpha list: %v %v (v1 listed %d)", aresp, err, len(names))
	}
}

func assertSubmitResolves(t *testing.T, files *protoregistry.Files) {
	t.Helper()
	d, err := files.FindDescriptorByName(nodepbconnect.LedgerServiceName + ".Submit")
	if err != nil {
		t.Fatalf("Submit not in the descriptors reflection sent: %v", err)
	}
	m, ok := d.(protoreflect.MethodDescriptor)
	if !ok || m.Input().FullName() != "dcep.node.v1.SubmitRequest" || m.Input().Fields().Len() == 0 {
		t.Fatalf("Submit resolves to %v", d)
	}
}
