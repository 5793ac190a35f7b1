package archive

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Errors of the directory.
var (
	// ErrOverlap: a segment would overlap one the archive holds.
	ErrOverlap = errors.New("archive segment overlaps the archive")
	// ErrClosed: the archive was closed.
	ErrClosed = errors.New("archive closed")
)

// Range is the Raft indexes First..Last.
type Range struct{ First, Last uint64 }

func (r Range) String() string { return fmt.Sprintf("%d..%d", r.First, r.Last) }

// Archive is a directory of segment files, named by their ranges
// (first-last.seg, twenty digits each), that never overlap. Holes between
// them are allowed: a node that joined by snapshot fills its history from
// peers while it archives new entries from its own log. Safe for concurrent
// use. A segment is durable once Write returns: the file is fsynced before
// it is renamed into place, and the directory after.
type Archive struct {
	dir     string
	genesis [32]byte
	log     *slog.Logger
	c       *codec

	mu   sync.RWMutex
	segs []Header // sorted by First
	size int64    // bytes of every segment file
}

// Open opens (creating if needed) the archive in dir for the network of
// genesis. Leftover temporary files of an interrupted write are deleted.
// Segment headers are read and checked (bodies are verified when read);
// a file whose header is bad, or which overlaps another, is set aside as
// *.corrupt and its range becomes a hole again, to be fetched from peers.
func Open(dir string, genesis [32]byte, log *slog.Logger) (*Archive, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create archive dir: %w", err)
	}
	c, err := newCodec()
	if err != nil {
		return nil, err
	}
	a := &Archive{dir: dir, genesis: genesis, log: log, c: c}
	names, err := os.ReadDir(dir)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("read archive dir: %w", err)
	}
	for _, de := range names {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				c.close()
				return nil, fmt.Errorf("remove interrupted segment write: %w", err)
			}
		case strings.HasSuffix(name, ".seg"):
			h, err := a.readHeader(name)
			if err != nil {
				a.quarantine(name, err)
				continue
			}
			a.segs = append(a.segs, h)
		}
	}
	sort.Slice(a.segs, func(i, j int) bool { return a.segs[i].First < a.segs[j].First })
	kept := a.segs[:0]
	for _, h := range a.segs {
		if len(kept) > 0 && h.First <= kept[len(kept)-1].Last {
			a.quarantine(fileName(h.First, h.Last), fmt.Errorf("%w: %s overlaps %s", ErrOverlap, h, kept[len(kept)-1]))
			continue
		}
		kept = append(kept, h)
		a.size += h.FileBytes()
	}
	a.segs = kept
	return a, nil
}

func fileName(first, last uint64) string { return fmt.Sprintf("%020d-%020d.seg", first, last) }

func (a *Archive) readHeader(name string) (Header, error) {
	var first, last uint64
	if _, err := fmt.Sscanf(name, "%020d-%020d.seg", &first, &last); err != nil || fileName(first, last) != name {
		return Header{}, fmt.Errorf("%w: file name %q is not first-last.seg", ErrCorrupt, name)
	}
	f, err := os.Open(filepath.Join(a.dir, name))
	if err != nil {
		return Header{}, err
	}
	defer f.Close()
	buf := make([]byte, headerSize)
	if _, err := io.ReadFull(f, buf); err != nil {
		return Header{}, fmt.Errorf("%w: %s: header: %v", ErrCorrupt, name, err)
	}
	h, err := ParseHeader(buf)
	if err != nil {
		return Header{}, err
	}
	if h.First != first || h.Last != last || h.GenesisHash != a.genesis {
		return Header{}, fmt.Errorf("%w: %s: header says %s of genesis %x", ErrCorrupt, name, h, h.GenesisHash[:8])
	}
	return h, nil
}

// quarantine moves a bad file aside (kept for inspection, never read).
func (a *Archive) quarantine(name string, why error) {
	a.log.Error("ARCHIVE SEGMENT REFUSED: set aside; its range will be fetched from peers again", "file", filepath.Join(a.dir, name), "error", why)
	if err := os.Rename(filepath.Join(a.dir, name), filepath.Join(a.dir, name+".corrupt")); err != nil {
		a.log.Error("set aside archive segment", "file", name, "error", err)
	}
}

// Close releases the codec.
func (a *Archive) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c != nil {
		a.c.close()
		a.c = nil
	}
}

// Dir is the archive's directory.
func (a *Archive) Dir() string { return a.dir }

// Segments lists the segments' headers in index order.
func (a *Archive) Segments() []Header {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]Header(nil), a.segs...)
}

// Stats are the segment count, their total file bytes and the highest
// index covered.
func (a *Archive) Stats() (segments int, bytes int64, end uint64) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if n := len(a.segs); n > 0 {
		end = a.segs[n-1].Last
	}
	return len(a.segs), a.size, end
}

// End is the highest index any segment covers (0 if none).
func (a *Archive) End() uint64 {
	_, _, end := a.Stats()
	return end
}

// Find returns the segment covering index i.
func (a *Archive) Find(i uint64) (Header, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	k := sort.Search(len(a.segs), func(k int) bool { return a.segs[k].Last >= i })
	if k < len(a.segs) && a.segs[k].First <= i {
		return a.segs[k], true
	}
	return Header{}, false
}

// Holes lists the ranges within 1..upTo that no segment covers.
func (a *Archive) Holes(upTo uint64) []Range {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Range
	next := uint64(1)
	for _, h := range a.segs {
		if next > upTo {
			break
		}
		if h.First > next {
			out = append(out, Range{next, min(h.First-1, upTo)})
		}
		next = max(next, h.Last+1)
	}
	if next <= upTo {
		out = append(out, Range{next, upTo})
	}
	return out
}

// Encode builds a segment file covering first..last from entries (every
// archived entry of that range, in order) and the state hash after the
// last, without writing it (to send to a peer).
func (a *Archive) Encode(first, last uint64, entries []Entry, stateHash [32]byte) ([]byte, Header, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.c == nil {
		return nil, Header{}, ErrClosed
	}
	return a.c.encode(first, last, entries, stateHash, a.genesis)
}

// Decode verifies a segment file from elsewhere (a peer) completely.
func (a *Archive) Decode(file []byte) (*Segment, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.c == nil {
		return nil, ErrClosed
	}
	return a.c.decode(file, a.genesis)
}

// Write encodes and stores a segment. It must fit in a hole. It is durable
// when Write returns: written to a temporary file, fsynced, renamed into
// place, directory fsynced; a crash before the rename leaves only the
// temporary file, which Open deletes.
func (a *Archive) Write(first, last uint64, entries []Entry, stateHash [32]byte) (Header, error) {
	file, h, err := a.Encode(first, last, entries, stateHash)
	if err != nil {
		return h, err
	}
	if err := a.fits(h); err != nil {
		return h, err
	}
	name := fileName(h.First, h.Last)
	tmp := filepath.Join(a.dir, ".tmp-"+name)
	if err := writeSynced(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return h, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.fitsLocked(h); err != nil { // a concurrent Write may have taken the hole
		_ = os.Remove(tmp)
		return h, err
	}
	if err := os.Rename(tmp, filepath.Join(a.dir, name)); err != nil {
		_ = os.Remove(tmp)
		return h, fmt.Errorf("archive: rename segment into place: %w", err)
	}
	if err := syncDir(a.dir); err != nil {
		return h, err
	}
	k := sort.Search(len(a.segs), func(k int) bool { return a.segs[k].First > h.First })
	a.segs = append(a.segs[:k], append([]Header{h}, a.segs[k:]...)...)
	a.size += h.FileBytes()
	return h, nil
}

func (a *Archive) fits(h Header) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.fitsLocked(h)
}

func (a *Archive) fitsLocked(h Header) error {
	k := sort.Search(len(a.segs), func(k int) bool { return a.segs[k].Last >= h.First })
	if k < len(a.segs) && a.segs[k].First <= h.Last {
		return fmt.Errorf("%w: %s overlaps %s", ErrOverlap, h, a.segs[k])
	}
	return nil
}

// Read reads and verifies the segment h names. A segment whose bytes do
// not verify is set aside (its range becomes a hole, to be fetched again
// from peers) and ErrCorrupt returned, naming the file.
func (a *Archive) Read(h Header) (*Segment, []byte, error) {
	name := fileName(h.First, h.Last)
	path := filepath.Join(a.dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("archive: %w", err)
	}
	var file []byte
	if fi.Size() > MaxFileBytes {
		err = fmt.Errorf("%w: %s is %d bytes (max %d)", ErrCorrupt, path, fi.Size(), MaxFileBytes)
	} else if file, err = os.ReadFile(path); err != nil {
		return nil, nil, fmt.Errorf("archive: %w", err)
	}
	var seg *Segment
	if err == nil {
		seg, err = a.Decode(file)
	}
	if err == nil && (seg.First != h.First || seg.Last != h.Last) {
		err = fmt.Errorf("%w: %s holds %s", ErrCorrupt, path, seg.Header)
	}
	if errors.Is(err, ErrCorrupt) {
		a.drop(h)
		a.quarantine(name, err)
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return seg, file, err
}

func (a *Archive) drop(h Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.segs {
		if s.First == h.First && s.Last == h.Last {
			a.segs = append(a.segs[:k], a.segs[k+1:]...)
			a.size -= s.FileBytes()
			return
		}
	}
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("archive: create %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("archive: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("archive: fsync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("archive: fsync %s: %w", dir, err)
	}
	return nil
}
