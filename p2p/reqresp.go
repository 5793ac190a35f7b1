package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// Reply status bytes. They are part of the wire format: never renumber.
const (
	statusOK        byte = 0
	statusError     byte = 1
	statusTooLarge  byte = 2
	statusForbidden byte = 3
)

// maxErrMsgBytes caps error replies independently of the caller's response
// limit, so a small response limit never hides the remote's reason.
const maxErrMsgBytes = 1024

// Handler serves one request on a request/response protocol. from is the
// authenticated member that sent req. A non-nil error is sent back to the
// caller as its text (truncated to 1 KiB) and surfaces there as a
// *RemoteError; do not put secrets in it.
type Handler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// Handle serves proto with fn. Each stream carries exactly one request, a
// uvarint length followed by that many bytes, and one reply, a status byte,
// a uvarint length and the payload. Requests longer than maxReqBytes are
// refused without being read. ctx passed to fn expires after
// Config.HandlerTimeout or when the host closes. Calling Handle again for the
// same proto replaces the handler.
//
// Only members whose role the protocol's row in Rules names reach fn; any
// other member's stream is answered with a refusal (ErrForbidden on its
// side) before its request is read.
//
// Handle panics if maxReqBytes is not positive, fn is nil, proto is
// RaftProtocol or SessionProtocol, or proto has no row in the host's Rules,
// since those are programming errors.
func (h *Host) Handle(proto protocol.ID, maxReqBytes int, fn Handler) {
	_, hasRule := h.rules[proto]
	switch {
	case maxReqBytes <= 0:
		panic(fmt.Sprintf("p2p: Handle %s: maxReqBytes %d must be positive", proto, maxReqBytes))
	case fn == nil:
		panic(fmt.Sprintf("p2p: Handle %s: nil handler", proto))
	case proto == RaftProtocol || proto == SessionProtocol:
		panic("p2p: Handle: " + string(proto) + " is reserved for the host")
	case !hasRule:
		panic(fmt.Sprintf("p2p: Handle %s: no row in the protocol rules: say which roles may open it first", proto))
	}
	h.host.SetStreamHandler(proto, func(s network.Stream) {
		h.serve(s, proto, maxReqBytes, fn)
	})
}

// RemoveHandler stops serving proto; new streams for it are refused by
// protocol negotiation.
func (h *Host) RemoveHandler(proto protocol.ID) {
	h.host.RemoveStreamHandler(proto)
}

func (h *Host) serve(s network.Stream, proto protocol.ID, maxReqBytes int, fn Handler) {
	from := s.Conn().RemotePeer()
	// The gater should make this unreachable; checking again means a bug or
	// a race with SetMembers can never hand a request to a non-member.
	if !h.gater.admit(from, "stream", slog.String("protocol", string(proto))) {
		_ = s.Reset()
		return
	}
	log := h.log.With("peer", from.String(), "protocol", string(proto))

	ctx, cancel := context.WithTimeout(h.ctx, h.handlerTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := s.SetDeadline(deadline); err != nil {
		log.Warn("set stream deadline", "err", err)
		_ = s.Reset()
		return
	}
	if err := h.connAdmitted(ctx, s.Conn()); err != nil {
		log.Debug("stream on a connection not admitted", "err", err)
		_ = s.Reset()
		return
	}
	if err := h.checkRole(from, proto, s.Conn()); err != nil {
		h.reply(s, log, statusForbidden, errorText(err))
		return
	}

	req, reserved, err := readFrame(s, maxReqBytes, s.Scope())
	defer s.Scope().ReleaseMemory(reserved)
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		log.Warn("refused oversized request", "err", err)
		// Reply before the body has been read: the caller reads the reply
		// concurrently with writing and resets its side once it has it.
		h.reply(s, log, statusTooLarge, errorText(err))
		return
	case errors.Is(err, ErrResourceLimit):
		log.Warn("refused request: resource limit", "err", err)
		h.reply(s, log, statusError, errorText(err))
		return
	case err != nil:
		log.Debug("read request", "err", err)
		_ = s.Reset()
		return
	}

	resp, err := fn(ctx, from, req)
	if err != nil {
		log.Debug("handler failed", "err", err)
		h.reply(s, log, statusError, errorText(err))
		return
	}
	h.reply(s, log, statusOK, resp)
}

func (h *Host) reply(s network.Stream, log *slog.Logger, status byte, payload []byte) {
	hdr := binary.AppendUvarint([]byte{status}, uint64(len(payload)))
	if _, err := s.Write(hdr); err != nil {
		log.Debug("write reply header", "err", err)
		_ = s.Reset()
		return
	}
	if _, err := s.Write(payload); err != nil {
		log.Debug("write reply", "err", err)
		_ = s.Reset()
		return
	}
	// Close, not Reset: a reset would discard the reply the caller has not
	// read yet.
	if err := s.Close(); err != nil {
		log.Debug("close stream", "err", err)
	}
}

// Request sends req on proto to the peer identified by to and returns the
// reply payload. Replies longer than maxRespBytes are refused without being
// read. ctx's deadline becomes the stream deadline and cancelling ctx resets
// the stream.
// A handler error surfaces as a *RemoteError wrapping ErrRemote, and a
// request above the handler's limit as one wrapping ErrRequestTooLarge.
func (h *Host) Request(ctx context.Context, to peer.ID, proto protocol.ID, req []byte, maxRespBytes int) ([]byte, error) {
	prefix := fmt.Sprintf("p2p: request %s to %s", proto, to)
	if maxRespBytes <= 0 {
		return nil, fmt.Errorf("%s: %w: maxRespBytes %d", prefix, ErrInvalidLimit, maxRespBytes)
	}
	s, err := h.host.NewStream(ctx, to, proto)
	if err != nil {
		if errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			return nil, fmt.Errorf("%s: %w: %w", prefix, ErrNotMember, err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%s: open stream: %w: %w", prefix, cerr, err)
		}
		return nil, fmt.Errorf("%s: open stream: %w", prefix, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := s.SetDeadline(deadline); err != nil {
			_ = s.Reset()
			return nil, fmt.Errorf("%s: set deadline: %w", prefix, err)
		}
	}
	// Only over a connection whose process is settled: a request must not
	// reach a second process holding the peer's key.
	if err := h.connAdmitted(ctx, s.Conn()); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}

	// Write concurrently with reading: a handler refuses an oversized request
	// before reading it, and a sequential writer would block on flow control
	// and never see that reply.
	written := make(chan error, 1)
	go func() { written <- writeRequest(s, req) }()

	status, payload, reserved, err := readReply(s, maxRespBytes, s.Scope())
	defer s.Scope().ReleaseMemory(reserved)
	if err != nil {
		_ = s.Reset()
		<-written
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%s: %w", prefix, cerr)
		}
		if hasDeadline && isTimeout(err) {
			return nil, fmt.Errorf("%s: %w: %w", prefix, context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	select {
	case <-written:
	default:
		// The reply came before the request was fully sent (only an
		// oversize refusal does that); unblock the writer.
		_ = s.Reset()
		<-written
	}
	_ = s.Close()

	switch status {
	case statusOK:
		return payload, nil
	case statusTooLarge:
		return nil, &RemoteError{Peer: to, Protocol: proto, Message: cleanText(payload), kind: ErrRequestTooLarge}
	case statusForbidden:
		return nil, &RemoteError{Peer: to, Protocol: proto, Message: cleanText(payload), kind: ErrForbidden}
	default:
		return nil, &RemoteError{Peer: to, Protocol: proto, Message: cleanText(payload), kind: ErrRemote}
	}
}

func writeRequest(s network.Stream, req []byte) error {
	hdr := binary.AppendUvarint(nil, uint64(len(req)))
	if _, err := s.Write(hdr); err != nil {
		return fmt.Errorf("write request header: %w", err)
	}
	if _, err := s.Write(req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	// Half-close so the handler sees a clean end of request.
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	return nil
}

// readReply reads a reply's status and payload; reserved is the memory
// readFrame reserved in scope, which the caller releases.
func readReply(r io.Reader, maxRespBytes int, scope network.ResourceScope) (status byte, payload []byte, reserved int, err error) {
	var st [1]byte
	if _, err := io.ReadFull(r, st[:]); err != nil {
		return 0, nil, 0, fmt.Errorf("read reply status: %w", err)
	}
	limit := maxRespBytes
	switch st[0] {
	case statusOK:
	case statusError, statusTooLarge, statusForbidden:
		limit = maxErrMsgBytes
	default:
		return 0, nil, 0, fmt.Errorf("%w: unknown reply status %d", ErrProtocol, st[0])
	}
	payload, reserved, err = readFrame(r, limit, scope)
	if err != nil {
		return 0, nil, reserved, fmt.Errorf("read reply: %w", err)
	}
	return st[0], payload, reserved, nil
}

// frameChunkBytes is the first buffer readFrame allocates; it doubles as
// bytes arrive. A peer that claims a large length and sends nothing costs
// at most this.
const frameChunkBytes = 64 << 10

// readFrame reads a uvarint length and that many bytes, refusing lengths
// above limit before reading any. The buffer grows as the bytes arrive
// (doubling from frameChunkBytes), never ahead of them by more than its
// size, and every byte of it is first reserved in scope (libp2p's resource
// manager), so a frame that would pass a memory limit is refused with
// ErrResourceLimit instead of allocated. It returns how much it reserved:
// the caller releases that once done with the payload (closing the stream
// releases it too).
func readFrame(r io.Reader, limit int, scope network.ResourceScope) (payload []byte, reserved int, err error) {
	n, err := binary.ReadUvarint(&byteReader{r: r})
	if err != nil {
		return nil, 0, fmt.Errorf("read length prefix: %w", err)
	}
	if n > uint64(limit) {
		return nil, 0, fmt.Errorf("%w: %d bytes exceeds limit of %d", ErrFrameTooLarge, n, limit)
	}
	size := int(n)
	var buf []byte // reserved == cap(buf) throughout
	for len(buf) < size {
		if len(buf) == cap(buf) {
			next := min(size, max(frameChunkBytes, 2*cap(buf)))
			if err := scope.ReserveMemory(next, network.ReservationPriorityAlways); err != nil {
				return nil, reserved, fmt.Errorf("%w: %d-byte frame: %w", ErrResourceLimit, size, err)
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			scope.ReleaseMemory(reserved)
			buf, reserved = grown, next
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, reserved, fmt.Errorf("read %d-byte payload (%d arrived): %w", size, len(buf), err)
		}
	}
	if buf == nil {
		buf = []byte{}
	}
	return buf, reserved, nil
}

// byteReader reads one byte at a time so that decoding the length prefix
// never consumes payload bytes, which a buffered reader would.
type byteReader struct {
	r io.Reader
	b [1]byte
}

func (br *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(br.r, br.b[:]); err != nil {
		return 0, err
	}
	return br.b[0], nil
}

func errorText(err error) []byte {
	msg := err.Error()
	if len(msg) > maxErrMsgBytes {
		msg = msg[:maxErrMsgBytes]
	}
	return []byte(strings.ToValidUTF8(msg, ""))
}

// cleanText keeps a remote-controlled message from carrying invalid UTF-8
// into logs and error chains.
func cleanText(b []byte) string {
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
