package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodetest"
	"github.com/dcep/dcep/state/statetest"
)

// The client's network tests run against real nodes (node/nodetest: a real
// node.Node with its Pebble ledger, Raft log, libp2p host and API server).
// Faults on the way (lost replies, lost requests, cut streams, a tampering
// middlebox) come from faultProxy, an HTTP proxy between the client and the
// node: a network fault, not a fake node.

// testNet is a running in-process network.
type testNet struct {
	*nodetest.Cluster
	n *statetest.Net
}

// startNet starts a network of voters (pboc, icbc, …) and regulators
// (regulator-1, …) with fast Raft timeouts and waits until every node is
// ready.
func startNet(t *testing.T, voters, regulators int) *testNet {
	t.Helper()
	c := nodetest.New(t, nodetest.Options{Voters: voters, Regulators: regulators})
	c.StartAll()
	c.WaitLeader()
	for _, name := range c.Names {
		c.WaitReady(name, 20*time.Second)
	}
	return &testNet{Cluster: c, n: c.Net}
}

// faultProxy forwards HTTP/1.1 requests to a node and injects faults. Each
// knob is a counter of how many more requests it affects.
type faultProxy struct {
	t      *testing.T
	target string
	up     *http.Client
	URL    string

	// loseReplies: Submit is forwarded and answered by the node (so the
	// transaction is committed), then the connection to the client is
	// dropped before the answer: a lost reply.
	loseReplies atomic.Int32
	// dropRequests: Submit is dropped before it reaches the node (the
	// connection is closed): a lost request.
	dropRequests atomic.Int32
	// cutStreamAfter: every StreamOutcomes response is cut (connection
	// dropped) after this many messages (0: never).
	cutStreamAfter atomic.Int32
	// replayOnResume: StreamOutcomes requests from index i > 1 are sent to
	// the node as from i−1, so the block before the resume point comes
	// again.
	replayOnResume atomic.Bool
	// lieGenesis: GetGenesis answers carry a genesis hash of zeros.
	lieGenesis atomic.Bool

	submits atomic.Int32 // Submit requests received from the client
	streams atomic.Int32 // StreamOutcomes requests received
}

func newProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	p := &faultProxy{t: t, target: strings.TrimRight(target, "/"),
		up: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// take decrements a knob if it is positive, reporting whether it was.
func take(c *atomic.Int32) bool {
	for {
		v := c.Load()
		if v <= 0 {
			return false
		}
		if c.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// drop closes the client's connection without an answer.
func drop() { panic(http.ErrAbortHandler) }

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	body, err := io.ReadAll(r.Body)
	if err != nil {
		drop()
	}
	switch method {
	case "Submit":
		p.submits.Add(1)
		if take(&p.dropRequests) {
			drop()
		}
	case "StreamOutcomes":
		p.streams.Add(1)
		if p.replayOnResume.Load() {
			body = rewindStreamRequest(p.t, body)
		}
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		p.t.Errorf("proxy: %v", err)
		drop()
	}
	req.Header = r.Header.Clone()
	// Uncompressed answers, so that the proxy can read them.
	for _, h := range []string{"Accept-Encoding", "Connect-Accept-Encoding"} {
		req.Header.Del(h)
	}
	resp, err := p.up.Do(req)
	if err != nil {
		drop()
	}
	defer resp.Body.Close()
	switch {
	case method == "Submit" && take(&p.loseReplies):
		_, _ = io.Copy(io.Discard, resp.Body) // the node has answered
		drop()
	case method == "GetGenesis" && p.lieGenesis.Load():
		p.lie(w, resp)
		return
	case method == "StreamOutcomes":
		p.relayStream(w, resp)
		return
	}
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

// lie replaces the genesis hash in a GetGenesis answer (Connect unary,
// binary protobuf) with zeros.
func (p *faultProxy) lie(w http.ResponseWriter, resp *http.Response) {
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		drop()
	}
	var m nodepb.GetGenesisResponse
	if resp.StatusCode == http.StatusOK && proto.Unmarshal(raw, &m) == nil {
		m.GenesisHash = make([]byte, 32)
		raw, _ = proto.Marshal(&m)
	} else {
		p.t.Errorf("proxy: cannot read GetGenesis answer (%s)", resp.Status)
	}
	copyHeader(w.Header(), resp.Header)
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(raw)
}

// relayStream copies a Connect server stream message by message (5-byte
// envelope header, then the message), cutting it after cutStreamAfter
// messages.
func (p *faultProxy) relayStream(w http.ResponseWriter, resp *http.Response) {
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	flush := w.(http.Flusher)
	flush.Flush()
	cut := p.cutStreamAfter.Load()
	for sent := int32(0); ; {
		var hdr [5]byte
		if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			drop()
		}
		end := hdr[0]&0x02 != 0 // end-of-stream envelope
		if !end && cut > 0 && sent == cut {
			drop()
		}
		if _, err := w.Write(append(hdr[:], msg...)); err != nil {
			return
		}
		flush.Flush()
		if end {
			return
		}
		sent++
	}
}

// rewindStreamRequest turns a StreamOutcomes request (one Connect
// envelope, binary protobuf) from index i > 1 into one from i−1.
func rewindStreamRequest(t *testing.T, body []byte) []byte {
	if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		t.Errorf("proxy: unexpected StreamOutcomes request framing")
		return body
	}
	var m nodepb.StreamOutcomesRequest
	if err := proto.Unmarshal(body[5:], &m); err != nil {
		t.Errorf("proxy: StreamOutcomes request: %v", err)
		return body
	}
	if m.GetFromIndex() > 1 {
		m.FromIndex--
	}
	raw, _ := proto.Marshal(&m)
	out := make([]byte, 5, 5+len(raw))
	binary.BigEndian.PutUint32(out[1:], uint32(len(raw)))
	return append(out, raw...)
}

// clientAt is a client of url (a node of tn, or a proxy to one) with fast
// retries, signed in as tn's test identities (nodetest.Cluster.Picker).
func (tn *testNet) clientAt(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	return tn.SDKAt(t, url, append([]client.Option{client.WithRetry(fastRetry)}, opts...)...)
}

// waitNoLeader waits until a node knows no leader.
func waitNoLeader(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err == nil && st.GetNode().GetLeader() == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node still has a leader after 20s: %v", errors.Join(err, fmt.Errorf("leader %q", st.GetNode().GetLeader())))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
