package archive

import (
	"encoding/binary"
	"testing"
)

// FuzzParseRecords fuzzes what the checksum keeps FuzzDecodeFile from
// reaching: the records of a body whose checksum verifies (a peer can
// always compute one) against a header that passed validate. Parsing
// never panics, and what it accepts agrees with the header.
func FuzzParseRecords(f *testing.F) {
	rec := func(idx, term uint64, typ byte, data string) []byte {
		b := binary.AppendUvarint(nil, idx)
		b = binary.AppendUvarint(b, term)
		b = append(b, typ)
		b = binary.AppendUvarint(b, uint64(len(data)))
		return append(b, data...)
	}
	f.Add(append(rec(1, 1, 0, "a"), rec(3, 1, 5, "")...), uint64(1), uint64(4), uint32(2), uint64(3))
	f.Add(rec(2, 9, 4, "barrier"), uint64(1), uint64(2), uint32(1), uint64(2))
	f.Add([]byte{}, uint64(5), uint64(5), uint32(0), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff}, uint64(1), uint64(1), uint32(1), uint64(1))
	f.Fuzz(func(t *testing.T, raw []byte, first, last uint64, count uint32, lastEntry uint64) {
		h := Header{First: first, Last: last, Count: count, LastEntry: lastEntry, RawBytes: uint64(len(raw))}
		if count > 0 {
			h.StateHash[0] = 1
		}
		if h.validate() != nil {
			return
		}
		es, err := parseRecords(raw, h)
		if err != nil {
			return
		}
		if len(es) != int(count) {
			t.Fatalf("%d records accepted, header says %d", len(es), count)
		}
		prev := first - 1
		for _, e := range es {
			if e.Index <= prev || e.Index > last || !Archived(e.Type) || len(e.Data) > MaxEntryBytes {
				t.Fatalf("accepted record %+v after %d in %d..%d", e, prev, first, last)
			}
			prev = e.Index
		}
		if count > 0 && prev != lastEntry {
			t.Fatalf("last record %d, header says %d", prev, lastEntry)
		}
	})
}
