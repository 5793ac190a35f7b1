package p2p

import (
	"context"
	"log/slog"
	"os"

	"github.com/libp2p/go-libp2p/gologshim"
)

// libp2p logs through gologshim to stderr on its own. Its dependency
// injection (fx) logs every failed start at ERROR, three lines for one
// port in use, before New returns that same error, which the node reports
// in one line (node/startup.go). So fx's lines are dropped; the rest of
// libp2p's output is kept at WARN and above.
func init() {
	gologshim.SetDefaultHandler(&libp2pHandler{next: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})})
}

type libp2pHandler struct {
	next slog.Handler
	drop bool // a logger of libp2p's fx events
}

func (h *libp2pHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.drop && h.next.Enabled(ctx, l)
}

func (h *libp2pHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.drop {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *libp2pHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	drop := h.drop
	for _, a := range attrs {
		if a.Key == "system" && a.Value.String() == "fx" {
			drop = true
		}
	}
	return &libp2pHandler{next: h.next.WithAttrs(attrs), drop: drop}
}

func (h *libp2pHandler) WithGroup(name string) slog.Handler {
	return &libp2pHandler{next: h.next.WithGroup(name), drop: h.drop}
}
