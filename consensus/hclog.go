package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

type hclogLogger = hclog.Logger

// newHCLogger routes hashicorp/raft's hclog output into slog, so a node has
// one structured log. hclog writes one JSON object per line; each becomes a
// slog record at the matching level with the same fields.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      &slogWriter{l: l},
		JSONFormat:  true,
		DisableTime: true,
	})
}

type slogWriter struct {
	l *slog.Logger
	// repeats rate-limits Raft's per-attempt errors about one peer
	// (repeatWindow per message and peer), counting what it drops.
	mu      sync.Mutex
	repeats map[string]*repeat
}

type repeat struct {
	last    time.Time
	dropped int
}

// repeatWindow: a repeated error about one peer is logged at most once in
// this long (with how many were dropped); a stopped peer used to give 76
// ERROR lines in 30 s.
const repeatWindow = 30 * time.Second

// expected are Raft messages logged at ERROR for what happens on every
// clean stop, leadership hand-over or restart of a peer: logged at INFO.
var expected = []string{
	"peer has newer term, stopping replication",
	"failed to decode incoming command", // a peer closed its stream
}

// reservedKeys are keys a Raft field must not take: slog's own (a Raft
// "time" field, a duration, would repeat the record's time) and the
// node's name every line already carries.
var reservedKeys = map[string]bool{"time": true, "level": true, "msg": true, "source": true, "node": true, "src": true}

// perAttempt are Raft messages repeated for every retry towards an
// unreachable peer: WARN, rate-limited per peer.
var perAttempt = []string{
	"failed to make requestVote RPC", "failed to appendEntries to", "failed to heartbeat to",
	"failed to contact", "failed to get log", "failed to send snapshot to",
}

func (w *slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.l.Info(string(line), "src", "raft")
			continue
		}
		level := slog.LevelInfo
		switch m["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		msg, _ := m["@message"].(string)
		attrs := []any{"src", m["@module"]}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "" && k[0] != '@' {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		peer := ""
		for _, k := range keys {
			v := m[k]
			// Raft's server records ({ID, Address, Suffrage}) by the
			// member's name: the ID is the node name, the address a
			// peer id nobody reads.
			if sv, ok := v.(map[string]any); ok {
				if id, ok := sv["ID"].(string); ok {
					v = id
					if peer == "" {
						peer = id
					}
				}
			}
			if id, ok := v.(string); ok && peer == "" && (k == "server-id" || k == "peer") {
				peer = id
			}
			if reservedKeys[k] {
				k = "raft_" + k // slog's own keys, and "node" (this node's name on every line)
			}
			attrs = append(attrs, k, v)
		}
		switch {
		case level == slog.LevelError && hasPrefix(msg, expected):
			level = slog.LevelInfo
		case level >= slog.LevelWarn && hasPrefix(msg, perAttempt):
			// ERROR or WARN (Raft's "failed to contact"), once per window.
			level = slog.LevelWarn
			n, ok := w.allow(msg, peer)
			if !ok {
				continue
			}
			if n > 0 {
				attrs = append(attrs, "repeated", n, "window", repeatWindow.String())
			}
		}
		w.l.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

func hasPrefix(msg string, list []string) bool {
	for _, p := range list {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// allow reports whether msg about peer may be logged now, and how many
// were dropped since the last one that was.
func (w *slogWriter) allow(msg, peer string) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.repeats == nil {
		w.repeats = map[string]*repeat{}
	}
	k := msg + "\x00" + peer
	r := w.repeats[k]
	now := time.Now()
	if r != nil && now.Sub(r.last) < repeatWindow {
		r.dropped++
		return 0, false
	}
	if r == nil {
		if len(w.repeats) > 1024 {
			clear(w.repeats)
		}
		r = &repeat{}
		w.repeats[k] = r
	}
	n := r.dropped
	r.last, r.dropped = now, 0
	return n, true
}

// NewTransport builds Raft's network transport over a stream layer (libp2p
// in production), logging through slog like the rest of the node.
func NewTransport(layer raft.StreamLayer, log *slog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 8,
		Timeout: 10 * time.Second,
		Logger:  newHCLogger(log).Named("raft-net"),
	})
}
