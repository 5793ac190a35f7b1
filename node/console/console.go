// Package console is dcep's read-only web console for regulators (SPEC §6):
// network health, throughput, the supply audit, large payments, frozen
// wallets. dcepd serves it at /console/ (node/console.go decides where it is
// on). The page reads the node's own JSON API (AuditService over Connect);
// it writes nothing and loads nothing from outside the node.
//
// The assets in dist/ are built from web/ (Preact, htm, uPlot; bundled by
// Vite, versions pinned in web/package-lock.json) and committed, so Go builds
// and tests never need npm. After changing web/, rebuild them with:
//
//	cd node/console/web && npm ci && npm run build
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Assets are the built console files (index.html, assets/...).
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time
	}
	return sub
}

// Handler serves the console under prefix (e.g. "/console/"): GET and HEAD
// only, index.html for the prefix itself.
func Handler(prefix string) http.Handler {
	files := http.StripPrefix(prefix, http.FileServerFS(Assets()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the console is read-only", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
		if strings.HasPrefix(r.URL.Path, prefix+"assets/") {
			// Asset names carry a content hash.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
