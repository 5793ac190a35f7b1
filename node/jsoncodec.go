package node

import (
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// protoNamesJSON is the one JSON encoding of the API: protojson with the
// .proto field names (snake_case), for Connect JSON requests and answers
// as for GET /status, so a client sees the same field names whichever it
// uses (Connect's default was camelCase, /status snake_case). Either
// spelling is accepted on input, as protojson always does.
type protoNamesJSON struct{}

var (
	apiJSONMarshal   = protojson.MarshalOptions{UseProtoNames: true}
	apiJSONUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

func (protoNamesJSON) Name() string { return "json" }

func (protoNamesJSON) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("json codec: %T is not a protobuf message", v)
	}
	return apiJSONMarshal.Marshal(m)
}

func (protoNamesJSON) Unmarshal(b []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("json codec: %T is not a protobuf message", v)
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	return apiJSONUnmarshal.Unmarshal(b, m)
}

var _ connect.Codec = protoNamesJSON{}
