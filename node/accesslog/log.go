package accesslog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults and bounds of Options.
const (
	// DefaultMaxFileBytes is when a file is rotated (64 MiB).
	DefaultMaxFileBytes = 64 << 20
	// DefaultKeepFiles is how many files are kept, the active one
	// included: the log holds at most KeepFiles × MaxFileBytes.
	DefaultKeepFiles = 8
	// MinMaxFileBytes keeps at least a few records per file.
	MinMaxFileBytes = 4 * MaxRecordBytes
	// DefaultQueryLimit and MaxQueryLimit bound one Query's answer.
	DefaultQueryLimit = 1000
	MaxQueryLimit     = 10000

	filePrefix = "access-"
	fileSuffix = ".log"
)

// Options bound the log on disk.
type Options struct {
	// MaxFileBytes: a file that would grow past it is closed and a new one
	// started (0: DefaultMaxFileBytes).
	MaxFileBytes int64
	// KeepFiles: after a rotation, the oldest files beyond this many are
	// deleted (0: DefaultKeepFiles).
	KeepFiles int
}

// Filter selects records for Query. Empty fields match everything.
type Filter struct {
	// Wallet matches the record's subject wallet.
	Wallet string
	// By matches the caller's identity.
	By string
	// Since keeps records at or after it.
	Since time.Time
	// Limit is how many records at most (0: DefaultQueryLimit; capped at
	// MaxQueryLimit). When more match, the newest Limit are returned.
	Limit int
	// Keep, if set, must also accept a record (a bank's query keeps the
	// records about its own customers). It is applied before Limit.
	Keep func(*Record) bool
}

func (f Filter) match(r *Record) bool {
	return (f.Wallet == "" || r.Wallet == f.Wallet) && (f.By == "" || r.Identity == f.By) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Keep == nil || f.Keep(r))
}

// Log is an open access log. Its methods are safe for concurrent use.
type Log struct {
	dir  string
	opts Options

	reqs chan appendReq
	done chan struct{}
	// closeMu keeps Close from closing reqs while an Append sends on it.
	closeMu    sync.RWMutex
	reqsClosed bool

	// mu guards the fields below; the writer goroutine holds it while it
	// writes, syncs or rotates, Query while it lists the files.
	mu        sync.RWMutex
	f         *os.File
	seq       uint64 // number of the active file
	size      int64  // bytes in the active file, all of them synced
	closed    bool
	truncated int64 // bytes cut off the active file's tail at Open
	// broken is set when a write or fsync failed and the file could not be
	// restored to its last synced size: later appends fail with it rather
	// than write after bytes of unknown state.
	broken error
}

type appendReq struct {
	frame []byte
	done  chan error
}

// Open opens (or creates) the log in dir. If the newest file ends in a torn
// or damaged frame, the file is cut back to its last whole frame (the cut
// is fsynced); Truncated says how many bytes were dropped.
func Open(dir string, opts Options) (*Log, error) {
	if opts.MaxFileBytes == 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.KeepFiles == 0 {
		opts.KeepFiles = DefaultKeepFiles
	}
	if opts.MaxFileBytes < MinMaxFileBytes || opts.KeepFiles < 1 {
		return nil, fmt.Errorf("accesslog: max file bytes %d (min %d) or keep files %d (min 1) out of range", opts.MaxFileBytes, MinMaxFileBytes, opts.KeepFiles)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	l := &Log{dir: dir, opts: opts, reqs: make(chan appendReq, 1024), done: make(chan struct{})}
	seqs, err := l.files()
	if err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		if err := l.openFile(1); err != nil {
			return nil, err
		}
	} else if err := l.recoverTail(seqs[len(seqs)-1]); err != nil {
		return nil, err
	}
	go l.writer()
	return l, nil
}

// Truncated is how many bytes of a torn tail Open cut off (0 if none).
func (l *Log) Truncated() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.truncated
}

func (l *Log) path(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s%08d%s", filePrefix, seq, fileSuffix))
}

// files lists the log's file numbers, oldest first.
func (l *Log) files() ([]uint64, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, filePrefix) || !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		s, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, filePrefix), fileSuffix), 10, 64)
		if err == nil && s > 0 {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// openFile creates file seq and makes its directory entry durable.
func (l *Log) openFile(seq uint64) error {
	f, err := os.OpenFile(l.path(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		_ = f.Close()
		return err
	}
	l.f, l.seq, l.size = f, seq, 0
	return nil
}

// recoverTail opens the newest file and cuts it back to its last whole,
// valid frame: after kill -9 only an unacknowledged append can be torn.
func (l *Log) recoverTail(seq uint64) error {
	raw, err := os.ReadFile(l.path(seq))
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	good := validPrefix(raw)
	f, err := os.OpenFile(l.path(seq), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	if good < len(raw) {
		if err := f.Truncate(int64(good)); err != nil {
			_ = f.Close()
			return fmt.Errorf("accesslog: cut torn tail of %s: %w", l.path(seq), err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return fmt.Errorf("accesslog: %w", err)
		}
	}
	l.f, l.seq, l.size, l.truncated = f, seq, int64(good), int64(len(raw)-good)
	return nil
}

// validPrefix is the length of the longest run of whole, valid frames at
// the front of raw.
func validPrefix(raw []byte) int {
	off := 0
	for off < len(raw) {
		_, n, err := DecodeFrame(raw[off:])
		if err != nil {
			break
		}
		off += n
	}
	return off
}

// Append records r. It returns once r is written and fsynced: that is where
// the record becomes durable. Fields longer than the limits are cut.
func (l *Log) Append(r Record) error {
	req := appendReq{frame: appendFrame(nil, r.normalize()), done: make(chan error, 1)}
	l.closeMu.RLock()
	if l.reqsClosed {
		l.closeMu.RUnlock()
		return ErrClosed
	}
	l.reqs <- req
	l.closeMu.RUnlock()
	// The writer answers every request it takes, and takes every request
	// sent before Close closed the queue.
	return <-req.done
}

// writer takes what is waiting, writes it and fsyncs once for all of it
// (group commit), then answers each appender.
func (l *Log) writer() {
	for req := range l.reqs {
		batch := []appendReq{req}
	more:
		for len(batch) < cap(l.reqs) {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		err := l.writeBatch(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
	close(l.done)
}

func (l *Log) writeBatch(batch []appendReq) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	var buf []byte
	for _, r := range batch {
		if l.size+int64(len(buf)+len(r.frame)) > l.opts.MaxFileBytes && l.size+int64(len(buf)) > 0 {
			if err := l.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			if err := l.rotate(); err != nil {
				return err
			}
		}
		buf = append(buf, r.frame...)
	}
	return l.flush(buf)
}

// flush writes buf to the active file and fsyncs it.
func (l *Log) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := l.f.Write(buf); err != nil {
		// Cut what may have reached the file, so that the next append does
		// not follow a half-written frame (which Open would cut, taking
		// acknowledged records with it).
		if terr := l.f.Truncate(l.size); terr != nil {
			l.broken = fmt.Errorf("accesslog: stopped after a failed write: %w", errors.Join(err, terr))
		}
		return fmt.Errorf("accesslog: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		// After a failed fsync the page cache cannot be trusted to reach
		// the disk: the log stops (a restart re-reads what is durable).
		l.broken = fmt.Errorf("accesslog: stopped after a failed fsync: %w", err)
		return l.broken
	}
	l.size += int64(len(buf))
	return nil
}

// rotate closes the active file (already synced), starts the next and
// deletes the oldest files beyond KeepFiles.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("accesslog: close: %w", err)
	}
	if err := l.openFile(l.seq + 1); err != nil {
		return err
	}
	seqs, err := l.files()
	if err != nil {
		return err
	}
	for len(seqs) > l.opts.KeepFiles {
		if err := os.Remove(l.path(seqs[0])); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("accesslog: drop old file: %w", err)
		}
		seqs = seqs[1:]
	}
	return syncDir(l.dir)
}

// Query returns the records that match f, oldest first (the newest
// f.Limit of them when more match). It reads what is durable; a damaged
// frame in any file is an error naming the file and offset.
func (l *Log) Query(f Filter) ([]Record, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultQueryLimit
	}
	f.Limit = min(f.Limit, MaxQueryLimit)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	seqs, err := l.files()
	active, activeSize := l.seq, l.size
	l.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, s := range seqs {
		if s > active {
			break
		}
		raw, err := readFile(l.path(s), s == active, activeSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated out since the listing
		}
		if err != nil {
			return nil, err
		}
		for off := 0; off < len(raw); {
			r, n, err := DecodeFrame(raw[off:])
			if err != nil {
				return nil, fmt.Errorf("%s at offset %d: %w", l.path(s), off, err)
			}
			off += n
			if f.match(&r) {
				out = append(out, r)
			}
		}
		if len(out) > f.Limit {
			out = append(out[:0:0], out[len(out)-f.Limit:]...)
		}
	}
	return out, nil
}

// readFile reads a whole rotated file, or the active one up to the size
// that was synced when Query listed the files.
func readFile(path string, active bool, size int64) ([]byte, error) {
	if !active {
		return os.ReadFile(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw := make([]byte, size)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("accesslog: read %s: %w", path, err)
	}
	return raw, nil
}

// Close waits for pending appends, then closes the active file.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.reqsClosed {
		l.closeMu.Unlock()
		return nil
	}
	l.reqsClosed = true
	close(l.reqs)
	l.closeMu.Unlock()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("accesslog: fsync dir: %w", err)
	}
	return nil
}
