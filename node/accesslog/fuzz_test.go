package accesslog

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeFrame: any bytes decode to a record or an error, never a panic;
// a frame that decodes re-encodes to exactly its bytes (one encoding per
// record), and its fields are within the limits.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, Record{Time: time.UnixMilli(1_765_000_000_000), Identity: "alice", Role: "holder",
		Procedure: "/dcep.node.v1.QueryService/History", Wallet: "alice", TxID: []byte{1, 2, 3}, Addr: "[::1]:5000", Allowed: true}))
	f.Add(appendFrame(nil, Record{Time: time.UnixMilli(-5), Code: "PERMISSION_DENIED"}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeFrame(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error with size %d", n)
			}
			return
		}
		if n < frameHeaderBytes || n > len(b) {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		if again := appendFrame(nil, r); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:n])
		}
		if r.normalize().Identity != r.Identity || len(r.TxID) > MaxTxIDBytes {
			t.Fatal("decoded field beyond its limit")
		}
	})
}

// FuzzDecodePayload reaches the payload decoder without the CRC in the
// way: whatever decodes re-encodes to the same bytes.
func FuzzDecodePayload(f *testing.F) {
	f.Add(appendFrame(nil, Record{Time: time.UnixMilli(7), Identity: "icbc", Wallet: "bob", TxID: []byte{9}})[frameHeaderBytes:])
	f.Add([]byte{1, 0x80, 0x00, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) == 0 || len(p) > MaxRecordBytes {
			return
		}
		r, err := decodePayload(p)
		if err != nil {
			return
		}
		if again := appendFrame(nil, r)[frameHeaderBytes:]; !bytes.Equal(again, p) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, p)
		}
	})
}
