package p2p

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const (
	echoProto  protocol.ID = "/dcep/test/echo/1.0.0"
	failProto  protocol.ID = "/dcep/test/fail/1.0.0"
	bigProto   protocol.ID = "/dcep/test/big/1.0.0"
	stallProto protocol.ID = "/dcep/test/stall/1.0.0"
	maxReq                 = 1024
)

func TestRequestResponse(t *testing.T) {
	nodes := newCluster(t, 2)
	server, client := nodes[0], nodes[1]

	server.h.Handle(echoProto, maxReq, func(_ context.Context, from peer.ID, req []byte) ([]byte, error) {
		return append([]byte(from.String()+":"), req...), nil
	})
	server.h.Handle(failProto, maxReq, func(context.Context, peer.ID, []byte) ([]byte, error) {
		return nil, errors.New("insufficient funds in account 42")
	})
	server.h.Handle(bigProto, maxReq, func(context.Context, peer.ID, []byte) ([]byte, error) {
		return bytes.Repeat([]byte{'x'}, 4096), nil
	})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the hosts close
	entered := make(chan struct{}, 16)
	server.h.Handle(stallProto, maxReq, func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("released")
	})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	t.Run("echo", func(t *testing.T) {
		resp, err := client.h.Request(ctx, server.h.ID(), echoProto, []byte("hello"), maxReq)
		if err != nil {
			t.Fatalf("Request: %v", err)
		}
		if want := client.h.ID().String() + ":hello"; string(resp) != want {
			t.Fatalf("response = %q, want %q", resp, want)
		}
	})

	t.Run("empty request at limit boundary", func(t *testing.T) {
		for _, n := range []int{0, maxReq} {
			req := bytes.Repeat([]byte{'a'}, n)
			resp, err := client.h.Request(ctx, server.h.ID(), echoProto, req, maxReq*2)
			if err != nil {
				t.Fatalf("Request(%d bytes): %v", n, err)
			}
			if !bytes.HasSuffix(resp, req) {
				t.Fatalf("Request(%d bytes): response does not echo request", n)
			}
		}
	})

	t.Run("oversized request refused", func(t *testing.T) {
		// 4 KiB fits the stream window; 4 MiB does not, so the client must
		// read the refusal while its write is still blocked.
		for _, n := range []int{maxReq + 1, 4 << 10, 4 << 20} {
			_, err := client.h.Request(ctx, server.h.ID(), echoProto, make([]byte, n), maxReq)
			if !errors.Is(err, ErrRequestTooLarge) {
				t.Fatalf("Request(%d bytes) error = %v, want ErrRequestTooLarge", n, err)
			}
			var re *RemoteError
			if !errors.As(err, &re) || !strings.Contains(re.Message, "exceeds limit of 1024") {
				t.Fatalf("Request(%d bytes) error = %v, want RemoteError naming the limit", n, err)
			}
		}
		if !strings.Contains(server.logs.String(), "refused oversized request") {
			t.Error("server did not log the oversized request")
		}
	})

	t.Run("handler error surfaces", func(t *testing.T) {
		_, err := client.h.Request(ctx, server.h.ID(), failProto, []byte("pay"), maxReq)
		if !errors.Is(err, ErrRemote) {
			t.Fatalf("error = %v, want ErrRemote", err)
		}
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("error %v is not a *RemoteError", err)
		}
		if re.Message != "insufficient funds in account 42" || re.Peer != server.h.ID() || re.Protocol != failProto {
			t.Fatalf("RemoteError = %+v", re)
		}
		if !strings.Contains(err.Error(), "insufficient funds in account 42") {
			t.Fatalf("error text %q lacks the remote message", err)
		}
	})

	t.Run("oversized response refused", func(t *testing.T) {
		_, err := client.h.Request(ctx, server.h.ID(), bigProto, nil, 100)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("error = %v, want ErrFrameTooLarge", err)
		}
		// The exact limit is accepted.
		resp, err := client.h.Request(ctx, server.h.ID(), bigProto, nil, 4096)
		if err != nil || len(resp) != 4096 {
			t.Fatalf("Request at exact limit: %d bytes, %v", len(resp), err)
		}
	})

	t.Run("deadline honoured", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := client.h.Request(short, server.h.ID(), stallProto, nil, maxReq)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("request returned after %v, deadline was 300ms", el)
		}
	})

	t.Run("cancel honoured", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := client.h.Request(cctx, server.h.ID(), stallProto, nil, maxReq)
			done <- err
		}()
		// Cancel only once the request is in flight, so the stream reset
		// path is exercised rather than the dial path.
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("stall handler was not reached")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Request did not return after cancel")
		}
	})

	t.Run("unhandled protocol", func(t *testing.T) {
		_, err := client.h.Request(ctx, server.h.ID(), "/dcep/test/none/1.0.0", nil, maxReq)
		if err == nil {
			t.Fatal("Request on an unhandled protocol succeeded")
		}
	})

	t.Run("invalid limit", func(t *testing.T) {
		_, err := client.h.Request(ctx, server.h.ID(), echoProto, nil, 0)
		if !errors.Is(err, ErrInvalidLimit) {
			t.Fatalf("error = %v, want ErrInvalidLimit", err)
		}
	})
}

func TestHandlePanicsOnMisuse(t *testing.T) {
	n := newNode(t, "a")
	fn := func(context.Context, peer.ID, []byte) ([]byte, error) { return nil, nil }
	for name, call := range map[string]func(){
		"zero limit":    func() { n.h.Handle(echoProto, 0, fn) },
		"nil handler":   func() { n.h.Handle(echoProto, 1, nil) },
		"raft protocol": func() { n.h.Handle(RaftProtocol, 1, fn) },
		"session":       func() { n.h.Handle(SessionProtocol, 1, fn) },
		"no rule":       func() { n.h.Handle("/dcep/unlisted/1", 1, fn) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Handle did not panic")
				}
			}()
			call()
		})
	}
}

func TestReadFrameNeverAllocatesUncheckedLength(t *testing.T) {
	// A prefix claiming ~2^63 bytes must fail on the limit check, not on
	// make().
	prefix := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	_, _, err := readFrame(bytes.NewReader(prefix), maxReq, &network.NullScope{})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("error = %v, want ErrFrameTooLarge", err)
	}
	// Truncated payloads and overlong varints are errors too.
	if _, _, err := readFrame(bytes.NewReader([]byte{5, 'a'}), maxReq, &network.NullScope{}); err == nil {
		t.Fatal("truncated payload accepted")
	}
	overlong := bytes.Repeat([]byte{0x80}, 11)
	if _, _, err := readFrame(bytes.NewReader(overlong), maxReq, &network.NullScope{}); err == nil {
		t.Fatal("overlong varint accepted")
	}
}
