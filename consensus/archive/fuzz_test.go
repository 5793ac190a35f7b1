package archive_test

import (
	"bytes"
	"testing"

	"github.com/dcep/dcep/consensus/archive"
)

// FuzzDecodeFile: whatever bytes a peer sends, decoding returns a segment
// or an error, never panics or allocates beyond the bounds; what decodes
// re-encodes to a file that decodes to the same entries. Seeds: a valid
// segment, an empty one, and testdata/fuzz.
func FuzzDecodeFile(f *testing.F) {
	valid, err := archive.EncodeFile(1, 40, entries(1, 2, 5, 8, 13, 21, 34), hashOf(34), genesis)
	if err != nil {
		f.Fatal(err)
	}
	empty, err := archive.EncodeFile(3, 4, nil, [32]byte{}, genesis)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(empty)
	f.Add(valid[:152])
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := archive.DecodeFile(b, genesis)
		if err != nil {
			return
		}
		again, err := archive.EncodeFile(seg.First, seg.Last, seg.Entries, seg.StateHash, genesis)
		if err != nil {
			t.Fatalf("decoded segment does not re-encode: %v", err)
		}
		seg2, err := archive.DecodeFile(again, genesis)
		if err != nil || seg2.Count != seg.Count || seg2.LastEntry != seg.LastEntry {
			t.Fatalf("re-encoded segment: %+v %v", seg2, err)
		}
		for i := range seg.Entries {
			if !bytes.Equal(seg.Entries[i].Data, seg2.Entries[i].Data) || seg.Entries[i].Index != seg2.Entries[i].Index {
				t.Fatalf("entry %d differs after re-encoding", i)
			}
		}
	})
}
