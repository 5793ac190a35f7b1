package node

import (
	"net/http"

	"github.com/dcep/dcep/node/console"
)

// consolePath is where the web console is served.
const consolePath = "/console/"

// mountConsole serves the read-only web console (node/console) at /console/
// when it is on for this node: the `console` config key if set, else on for
// regulator nodes (consoleEnabled). It is decided per request, so a node
// that becomes a regulator by a membership change serves it from then on.
func (n *Node) mountConsole(mux *http.ServeMux) {
	h := n.limits.middleware(console.Handler(consolePath))
	mux.Handle(consolePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.consoleEnabled() {
			http.Error(w, "the console is off on node "+n.cfg.Name+" (it is on by default on regulator nodes; set console = true in the node's config to turn it on)", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	}))
	mux.Handle("/console", http.RedirectHandler(consolePath, http.StatusMovedPermanently))
}
