package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dcep/dcep/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcep/dcep/consensus"
	"github.com/dcep/dcep/consensus/archive"
	"github.com/dcep/dcep/state/statepb"
)

// The archive of committed entries between members (consensus/DESIGN.md,
// "Archive"; node/DESIGN.md, protocols): a node whose archive has holes (a
// regulator that joined by snapshot, a segment set aside as corrupt) asks
// members in turn for a segment starting at each hole over
// /dcep/archive/1 and keeps the part that fills it, after the checks of
// consensus.ArchiveImport. Every member may ask and every member with an
// archive answers: it is read-only, and regulators need it most.

const (
	protoArchive = p2p.ArchiveProtocol
	// archiveRequestBytes: a request is the first index wanted, u64.
	archiveRequestBytes = 8
	// maxArchiveBytes bounds a reply: one segment file.
	maxArchiveBytes = archive.MaxFileBytes
	// archiveServeConcurrency bounds segment requests served at once
	// (each reads, verifies and may re-encode one segment: ≤ 16 MiB).
	archiveServeConcurrency = 2
	// archiveRequestTimeout bounds one request to one member.
	archiveRequestTimeout = 30 * time.Second
	// archiveFillInterval is how often holes are looked for.
	archiveFillInterval = 5 * time.Second
)

// archiveRequest asks for a segment file starting exactly at From.
type archiveRequest struct{ From uint64 }

func (r archiveRequest) marshal() []byte { return binary.BigEndian.AppendUint64(nil, r.From) }

func parseArchiveRequest(b []byte) (archiveRequest, error) {
	r := archiveRequest{}
	if len(b) != archiveRequestBytes {
		return r, fmt.Errorf("archive request: %d bytes, want %d", len(b), archiveRequestBytes)
	}
	r.From = binary.BigEndian.Uint64(b)
	return r, r.ValidateBasic()
}

// ValidateBasic checks the request on its own.
func (r archiveRequest) ValidateBasic() error {
	if r.From == 0 {
		return errors.New("archive request: from: index 0 (the log starts at 1)")
	}
	return nil
}

// archiveSync is the node's side of the archive: serving segments to
// members and filling this node's holes from them.
type archiveSync struct {
	n     *Node
	serve chan struct{} // semaphore: archiveServeConcurrency
	fill  sync.Mutex    // one fill at a time

	fetched, refused atomic.Uint64
	lastWarn         time.Time // under fill
}

func newArchiveSync(n *Node) *archiveSync {
	s := &archiveSync{n: n, serve: make(chan struct{}, archiveServeConcurrency)}
	reg := n.metrics.reg
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	st := func() consensus.ArchiveStatus {
		if n.cons == nil {
			return consensus.ArchiveStatus{}
		}
		return n.cons.ArchiveStatus()
	}
	gauge("dcep_archive_segments", "Segments in this node's archive of committed entries.", func() float64 { return float64(st().Segments) })
	gauge("dcep_archive_bytes", "Bytes of this node's archive segments.", func() float64 { return float64(st().Bytes) })
	gauge("dcep_archive_end_index", "Highest log index in an archive segment.", func() float64 { return float64(st().End) })
	gauge("dcep_archive_missing_indexes", "Log indexes of history this node's archive lacks and must fetch from peers (holes).", func() float64 { return float64(st().Missing) })
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	counter("dcep_archive_fetched_segments_total", "Archive segments fetched from peers and stored.", func() float64 { return float64(s.fetched.Load()) })
	counter("dcep_archive_refused_segments_total", "Archive segments from peers refused (corrupt, or disagreeing with this ledger's state hashes).", func() float64 { return float64(s.refused.Load()) })
	counter("dcep_archive_failures_total", "Failures to archive committed entries from the local log (retried).", func() float64 { return float64(st().Failures) })
	return s
}

// handleArchive serves a segment to a member. Any member may ask (the
// gater and p2p's handler admit members only; the role table is in
// node/DESIGN.md).
func (n *Node) handleArchive(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	r, err := parseArchiveRequest(req)
	if err != nil {
		return nil, err
	}
	if m := n.memberByPeer(from); m == nil || (m.GetRole() != statepb.NodeRole_NODE_ROLE_VOTER && m.GetRole() != statepb.NodeRole_NODE_ROLE_REGULATOR) {
		return nil, errors.New("archive: not a member")
	}
	select {
	case n.archive.serve <- struct{}{}:
		defer func() { <-n.archive.serve }()
	default:
		return nil, errors.New("archive: busy serving other members; ask another or retry")
	}
	return n.cons.ArchiveServe(r.From)
}

func (n *Node) memberByPeer(p peer.ID) *memberInfo {
	for _, m := range n.members.all() {
		if m.peer == p {
			return m
		}
	}
	return nil
}

// registerArchive serves /dcep/archive/1 and starts filling holes.
func (n *Node) registerArchive() {
	n.host.Handle(protoArchive, archiveRequestBytes, n.handleArchive)
	if n.cons.ArchiveStatus().Enabled {
		n.wg.Add(1)
		go n.archive.runFill()
	}
}

// runFill fills holes in the background.
func (s *archiveSync) runFill() {
	defer s.n.wg.Done()
	tick := time.NewTicker(archiveFillInterval)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		done := make(chan struct{})
		go func() {
			select {
			case <-s.n.stop:
				cancel()
			case <-done:
			}
		}()
		_, err := s.fillHoles(ctx)
		close(done)
		cancel()
		if err != nil {
			s.warn(err)
		}
		select {
		case <-s.n.stop:
			return
		case <-tick.C:
		}
	}
}

func (s *archiveSync) warn(err error) {
	s.fill.Lock()
	defer s.fill.Unlock()
	if time.Since(s.lastWarn) < time.Minute {
		return
	}
	s.lastWarn = time.Now()
	s.n.log.Warn("ARCHIVE INCOMPLETE: history this node lacks could not be fetched from any member; a replay from genesis will refuse until it is", "error", err)
}

// fillHoles fetches every hole's segments from members until none is left
// or a whole pass makes no progress; it returns how many it stored.
func (s *archiveSync) fillHoles(ctx context.Context) (int, error) {
	s.fill.Lock()
	defer s.fill.Unlock()
	stored := 0
	for {
		holes := s.n.cons.ArchiveHoles()
		if len(holes) == 0 {
			return stored, nil
		}
		progress := false
		var fails []string
		for _, h := range holes {
			for {
				if err := ctx.Err(); err != nil {
					return stored, fmt.Errorf("filling the archive: %w", err)
				}
				got, err := s.fetch(ctx, h.First)
				if err != nil {
					fails = append(fails, fmt.Sprintf("%s: %v", h, err))
					break
				}
				stored, progress = stored+1, true
				if got.Last >= h.Last {
					break
				}
				h.First = got.Last + 1
			}
		}
		if !progress {
			return stored, fmt.Errorf("holes %v: %s", holes, strings.Join(fails, "; "))
		}
	}
}

// fetch asks members in turn for a segment from index from and stores the
// first one that passes the checks.
func (s *archiveSync) fetch(ctx context.Context, from uint64) (archive.Header, error) {
	n := s.n
	var errs []string
	for _, m := range n.members.all() {
		if m.GetName() == n.cfg.Name {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, archiveRequestTimeout)
		file, err := n.host.Request(rctx, m.peer, protoArchive, archiveRequest{From: from}.marshal(), maxArchiveBytes)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", m.GetName(), err))
			continue
		}
		h, err := n.cons.ArchiveImport(from, file)
		if err != nil {
			if errors.Is(err, archive.ErrCorrupt) || errors.Is(err, consensus.ErrSegmentRefused) {
				s.refused.Add(1)
				n.log.Error("ARCHIVE SEGMENT REFUSED from a peer", "peer", m.GetName(), "from_index", from, "error", err)
			}
			errs = append(errs, fmt.Sprintf("%s: %v", m.GetName(), err))
			continue
		}
		s.fetched.Add(1)
		n.log.Info("archive segment fetched", "peer", m.GetName(), "first", h.First, "last", h.Last, "entries", h.Count)
		return h, nil
	}
	if len(errs) == 0 {
		return archive.Header{}, errors.New("no other member to ask")
	}
	return archive.Header{}, errors.New(strings.Join(errs, "; "))
}
