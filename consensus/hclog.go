package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
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

type slogWriter struct{ l *slog.Logger }

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
		for _, k := range keys {
			attrs = append(attrs, k, m[k])
		}
		w.l.Log(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
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
