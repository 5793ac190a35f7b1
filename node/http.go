package node

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
)

// compressMinBytes is the smallest response the API compresses (when the
// client accepts gzip).
const compressMinBytes = 4 << 10

// serve starts the API server: the LedgerService (gRPC, gRPC-Web, Connect
// JSON), gRPC health and server reflection, /metrics, /healthz, /readyz and /status. HTTP/2 without TLS is on so
// plain gRPC clients work.
func (n *Node) serve() error {
	mux := http.NewServeMux()
	path, h := nodepbconnect.NewLedgerServiceHandler(api{n},
		connect.WithReadMaxBytes(n.cfg.Limits.MaxRequestBytes),
		// Most answers (a submit's result, a wallet) are a few hundred
		// bytes: gzip would cost more CPU than it saves bytes.
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(n.metrics.interceptor(), policyInterceptor{n}),
	)
	mux.Handle(path, checkBody(n.cfg.Limits.MaxRequestBytes, n.limits.middleware(h)))
	// AuditService (audit.go) and the console (console.go): read-only.
	apath, ah := nodepbconnect.NewAuditServiceHandler(auditAPI{n},
		connect.WithReadMaxBytes(n.cfg.Limits.MaxRequestBytes),
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(n.metrics.interceptor(), policyInterceptor{n}),
	)
	mux.Handle(apath, checkBody(n.cfg.Limits.MaxRequestBytes, n.limits.middleware(ah)))
	// ProgrammableService (programmable_api.go): read-only.
	ppath, ph := nodepbconnect.NewProgrammableServiceHandler(programmableAPI{n},
		connect.WithReadMaxBytes(n.cfg.Limits.MaxRequestBytes),
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithInterceptors(n.metrics.interceptor(), policyInterceptor{n}),
	)
	mux.Handle(ppath, checkBody(n.cfg.Limits.MaxRequestBytes, n.limits.middleware(ph)))
	// grpc.health.v1 (grpchealth.go): as /readyz, for gRPC tooling.
	mux.Handle(grpchealth.NewHandler(healthChecker{n}))
	// grpc.reflection.v1 and v1alpha (grpcreflect.go): grpcurl with no protos.
	n.mountReflection(mux)
	n.mountConsole(mux)
	mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{Registry: n.metrics.reg}))
	mux.HandleFunc("/healthz", n.healthz)
	mux.HandleFunc("/readyz", n.readyz)
	mux.HandleFunc("/status", n.statusJSON)

	l := n.listener // bound at the start of Start (listenAPI)
	if n.cfg.TLSCert != "" {
		if err := n.cert.load(n.cfg.Path(n.cfg.TLSCert), n.cfg.Path(n.cfg.TLSKey)); err != nil {
			return err
		}
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	n.httpSrv = &http.Server{
		Handler:           mux,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	go func() {
		var err error
		if n.cfg.TLSCert != "" {
			// The certificate comes from n.cert, which SIGHUP reloads.
			n.httpSrv.TLSConfig = &tls.Config{GetCertificate: n.cert.get, MinVersion: tls.VersionTLS12}
			err = n.httpSrv.ServeTLS(l, "", "")
		} else {
			err = n.httpSrv.Serve(l)
		}
		if err != nil && err != http.ErrServerClosed {
			n.log.Error("api server stopped", "error", err)
		}
	}()
	return nil
}

// healthz: the process is up and its ledger open.
func (n *Node) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "node": n.cfg.Name})
}

// readyz: the node can serve current reads and route writes.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	st := n.cons.Status()
	body := map[string]any{"node": n.cfg.Name, "leader": st.LeaderID, "applied_index": st.Applied, "commit_index": st.CommitIndex}
	n.clockReason(body)
	if n.ready() {
		body["ready"] = true
		writeJSON(w, http.StatusOK, body)
		return
	}
	body["ready"] = false
	switch {
	case st.LeaderID == "":
		body["reason"] = "no leader known"
	case st.LeaderID != n.cfg.Name:
		if lc, ok := n.members.polledCommit(st.LeaderID, readyPollAge); ok {
			body["leader_commit_index"] = lc
			body["reason"] = "catching up with the log"
		} else {
			body["reason"] = "waiting to hear the leader's commit index"
		}
	default:
		body["reason"] = "catching up with the log"
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// statusJSON is Status as plain JSON on GET, for curl and load balancers.
// It is byte for byte the encoding Connect's JSON codec gives the same
// StatusResponse (protojson with default options: lowerCamelCase names,
// zero fields left out), so a script written against one reads the other
// and the console, which reads Connect JSON, and curl agree on names.
func (n *Node) statusJSON(w http.ResponseWriter, r *http.Request) {
	raw, err := statusJSONOptions.Marshal(n.status())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

// statusJSONOptions are connect-go's protoJSONCodec marshal options.
var statusJSONOptions = protojson.MarshalOptions{}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// limiter bounds requests per client IP, Submit per identity (ratelimit.go)
// and concurrent streams.
type limiter struct {
	cfg LimitsConfig
	// perIP bounds every request by client address; perID bounds Submit by
	// identity (identities.go).
	perIP, perID *rateTable
	// walletKey bounds GetWalletKey by identity (walletkey.go).
	walletKey *rateTable
	streams   *streamCaps
	// submits bounds submissions being processed at once.
	submits chan struct{}
}

func newLimiter(cfg LimitsConfig) *limiter {
	return &limiter{
		cfg:       cfg,
		perIP:     newRateTable(cfg.RatePerSec, cfg.Burst),
		perID:     newRateTable(cfg.IdentityRatePerSec, cfg.IdentityBurst),
		walletKey: newRateTable(cfg.WalletKeyRatePerSec, cfg.WalletKeyBurst),
		streams:   newStreamCaps(cfg.MaxStreams, cfg.MaxStreamsPerIP),
		submits:   make(chan struct{}, cfg.MaxInflightSubmits),
	}
}

// allow charges one request to client address ip.
func (l *limiter) allow(ip string) bool { return l.perIP.allow(ip) }

// trackedIPs is the size of the per-IP table (tests).
func (l *limiter) trackedIPs() int { return l.perIP.size() }

// acquireStream takes an outcome-stream slot for the client at remote
// (streamcap.go).
func (l *limiter) acquireStream(remote string) (func(), *connect.Error) {
	return l.streams.acquire(remote)
}

// middleware refuses over-rate clients and bounds in-flight submissions
// before any decoding happens.
func (l *limiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		if !l.allow(ip) {
			writeConnectError(w, r, apiError(CodeRateLimited, "client %s exceeded %d requests/s", ip, l.cfg.RatePerSec))
			return
		}
		if strings.HasSuffix(r.URL.Path, "/Submit") {
			select {
			case l.submits <- struct{}{}:
				defer func() { <-l.submits }()
			default:
				writeConnectError(w, r, apiError(CodeOverloaded, "node has %d submissions in flight", l.cfg.MaxInflightSubmits))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// writeConnectError answers in the protocol the client spoke, so its
// library decodes the error (and its ErrorInfo) normally.
func writeConnectError(w http.ResponseWriter, r *http.Request, e *connect.Error) {
	ew := connect.NewErrorWriter()
	if ew.IsSupported(r) {
		_ = ew.Write(w, r, e)
		return
	}
	http.Error(w, e.Error(), http.StatusTooManyRequests)
}
