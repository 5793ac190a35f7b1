package node

import (
	"fmt"
	"net/http"
	"strings"
)

// apiContentTypes are the request content types the RPC services take
// (Connect, gRPC, gRPC-Web; protobuf or JSON).
var apiContentTypes = []string{"application/proto", "application/json", "application/connect+", "application/grpc"}

// envelopeSlack is what a body may carry beyond the message limit
// (message framing).
const envelopeSlack = 16

// checkBody answers what connect-go would refuse unhelpfully: a body over
// limits.max_request_bytes gets 413 (connect says 429, which reads as rate
// limiting) and an unknown content type 415 (connect sends it empty), each
// with a body naming the limit or the types taken.
func checkBody(maxBytes int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A gRPC or Connect streaming body frames each message in 5 bytes.
		limit := int64(maxBytes) + envelopeSlack
		if r.Method == http.MethodPost {
			if r.ContentLength > limit {
				http.Error(w, fmt.Sprintf("request body of %d bytes exceeds limits.max_request_bytes (%d bytes)", r.ContentLength, maxBytes),
					http.StatusRequestEntityTooLarge)
				return
			}
			ct := r.Header.Get("Content-Type")
			ok := false
			for _, p := range apiContentTypes {
				ok = ok || strings.HasPrefix(ct, p)
			}
			if !ok {
				http.Error(w, fmt.Sprintf("content type %q is not served here; use one of application/proto, application/json (Connect), application/grpc[+proto|+json], application/grpc-web[+proto|+json]", ct),
					http.StatusUnsupportedMediaType)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}
