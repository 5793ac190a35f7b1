package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// hugeProto takes requests up to 8 MiB, as /dcep/forward/1 does.
const (
	hugeProto protocol.ID = "/dcep/test/huge/1.0.0"
	hugeReq               = 8 << 20
)

func init() { testRules = append(testRules, Rule{hugeProto, AnyMember, "test"}) }

// TestLengthPrefixOnlyStreamsCostLittle: a member opens 64 streams that
// each claim an 8 MiB request and send nothing more. The handler side
// allocates as bytes arrive, not what the prefix claims, so the heap grows
// by well under 16 MiB (it grew by 512 MiB when the reader allocated the
// claimed size up front), and what it holds is counted in libp2p's
// resource manager; closing the streams gives it back.
func TestLengthPrefixOnlyStreamsCostLittle(t *testing.T) {
	const streams, boundBytes = 64, 16 << 20
	nodes := newCluster(t, 2)
	server, client := nodes[0], nodes[1]
	server.h.Handle(hugeProto, hugeReq, func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Warm up: connection, session check, protocol negotiation.
	if _, err := client.h.Request(ctx, server.h.ID(), hugeProto, []byte("warm"), 1); err != nil {
		t.Fatal(err)
	}
	before := heapBytes()

	prefix := binary.AppendUvarint(nil, hugeReq)
	open := make([]network.Stream, 0, streams)
	defer func() {
		for _, s := range open {
			_ = s.Reset()
		}
	}()
	for range streams {
		s, err := client.h.host.NewStream(ctx, server.h.ID(), hugeProto)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
		if _, err := s.Write(prefix); err != nil {
			t.Fatal(err)
		}
	}
	// Every handler is now waiting for bytes that never come, holding what
	// it reserved.
	var st network.ScopeStat
	eventually(t, 10*time.Second, func() bool {
		st = protocolStat(t, server.h, hugeProto)
		return st.NumStreamsInbound == streams && st.Memory == streams*frameChunkBytes
	}, "%d streams each reserving %d bytes in the resource manager (have %+v)", streams, frameChunkBytes, &st)
	after := heapBytes()
	grew := int64(after) - int64(before)
	t.Logf("%d streams claiming %d MiB each: heap %.1f → %.1f MiB (+%.1f MiB); resource manager: %d streams, %d KiB reserved",
		streams, hugeReq>>20, mib(before), mib(after), float64(grew)/(1<<20), st.NumStreamsInbound, st.Memory>>10)
	if grew > boundBytes {
		t.Fatalf("heap grew by %d bytes for %d length prefixes (bound %d)", grew, streams, boundBytes)
	}

	for _, s := range open {
		_ = s.Reset()
	}
	open = nil
	eventually(t, 10*time.Second, func() bool {
		st = protocolStat(t, server.h, hugeProto)
		return st.NumStreamsInbound == 0 && st.Memory == 0
	}, "streams and memory released (have %+v)", &st)
}

// TestReadFrameRefusedByResourceManager: a frame that would take a stream
// past its memory limit (streamMemoryBytes) is refused with ErrResourceLimit once that
// much has arrived, and what readFrame reserved goes back to the scope.
func TestReadFrameRefusedByResourceManager(t *testing.T) {
	rm, err := newResourceManager()
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	p := newNode(t, "a").h.ID()
	for _, tc := range []struct {
		size int
		want error
	}{{streamMemoryBytes / 2, nil}, {streamMemoryBytes + 1, ErrResourceLimit}} {
		scope, err := rm.OpenStream(p, network.DirInbound)
		if err != nil {
			t.Fatal(err)
		}
		frame := append(binary.AppendUvarint(nil, uint64(tc.size)), make([]byte, tc.size)...)
		payload, reserved, err := readFrame(bytes.NewReader(frame), 2*streamMemoryBytes, scope)
		if !errors.Is(err, tc.want) || (err == nil && len(payload) != tc.size) {
			t.Fatalf("%d-byte frame: %d bytes, %v; want %v", tc.size, len(payload), err, tc.want)
		}
		if got := scope.Stat().Memory; got != int64(reserved) {
			t.Fatalf("%d-byte frame: scope holds %d bytes, readFrame says it reserved %d", tc.size, got, reserved)
		}
		scope.ReleaseMemory(reserved)
		if got := scope.Stat().Memory; got != 0 {
			t.Fatalf("scope holds %d bytes after release", got)
		}
		scope.Done()
	}
}

func protocolStat(t *testing.T, h *Host, proto protocol.ID) network.ScopeStat {
	t.Helper()
	var st network.ScopeStat
	if err := h.host.Network().ResourceManager().ViewProtocol(proto, func(s network.ProtocolScope) error {
		st = s.Stat()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

func heapBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
