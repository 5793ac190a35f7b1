package localnet_test

// Process-level fault test of SPEC §3 / issue 3: the generated network (7
// voters and a regulator) runs as separate `dcepd run` processes; the leader
// and then a follower are killed with SIGKILL while clients submit signed
// transactions over the API, and restarted. Afterwards every transaction a
// client was given an outcome for is on every node with that outcome, the
// supply invariant holds everywhere and all state hashes agree.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/dcep/dcep/internal/testports"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/deploy/localnet"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
	"github.com/dcep/dcep/node/nodepb"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// TestMain removes the dcepd binary built for the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// dcepd builds the node binary once per test binary.
func dcepd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "dcepd-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dcepd")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/dcep/dcep/cmd/dcepd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build dcepd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePorts reserves n consecutive free TCP ports (node i uses base+i)
// for this test process (internal/testports).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	base, err := testports.Range(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// net is a running localnet with API clients and operator keys.
type testNet struct {
	t       *testing.T
	ln      *localnet.Network
	clients map[string]nodepbconnect.LedgerServiceClient
	http    *http.Client
	voters  []string
	reg     string
	signer  state.Signer
	cb      ed25519.PrivateKey
	banks   map[string]ed25519.PrivateKey
}

func startNet(t *testing.T) *testNet {
	t.Helper()
	bin := dcepd(t)
	dir := t.TempDir()
	p2pBase := freePorts(t, 8)
	apiBase := freePorts(t, 8)
	ln, err := localnet.Create(dir, bin, localnet.Options{
		ChainID: "dcep-fault", Regulators: 1, P2PPort: p2pBase, APIPort: apiBase,
		Raft:   node.RaftConfig{HeartbeatMs: 300, ElectionMs: 300, LeaderLeaseMs: 200, CommitMs: 20},
		Limits: node.LimitsConfig{RatePerSec: -1, SubmitTimeoutMs: 5000},
	})
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, ln: ln, clients: map[string]nodepbconnect.LedgerServiceClient{}, banks: map[string]ed25519.PrivateKey{},
		http: &http.Client{Timeout: 15 * time.Second}}
	// The test reads as the network's regulator (its operator key is in the
	// keystore netgen wrote).
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	rk, err := ks.Find("regulator key", func(k *keystore.Key) bool { return k.Kind == keystore.KindRegulator })
	if err != nil {
		t.Fatal(err)
	}
	reg := client.Identity{Subject: token.Subject{Kind: token.KindRegulator, ID: rk.Name}, Key: rk.Private}
	for _, nn := range ln.Info.Nodes {
		cl, err := client.New(nn.API, client.As(reg), client.WithHTTPClient(tn.http), client.WithRetry(client.RetryPolicy{MaxAttempts: 1}))
		if err != nil {
			t.Fatal(err)
		}
		tn.clients[nn.Name] = cl.API()
		if nn.Role == "voter" {
			tn.voters = append(tn.voters, nn.Name)
		} else {
			tn.reg = nn.Name
		}
	}
	g, err := node.LoadGenesis(filepath.Join(dir, "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := state.GenesisHash(g)
	if err != nil {
		t.Fatal(err)
	}
	tn.signer = state.Signer{ChainID: g.GetChainId(), GenesisHash: h}
	keys, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := keys.CentralBank()
	if err != nil {
		t.Fatal(err)
	}
	tn.cb = cb.Private
	for _, b := range netgen.Banks {
		k, err := keys.Bank(b.ID)
		if err != nil {
			t.Fatal(err)
		}
		tn.banks[b.ID] = k.Private
	}
	t.Cleanup(func() {
		// SIGKILL whatever is left (a failed test must not leave nodes
		// running); a clean stop is checked at the end of the test.
		for _, nn := range ln.Info.Nodes {
			_ = ln.Kill(nn.Name)
		}
		if t.Failed() {
			for _, nn := range ln.Info.Nodes {
				if raw, err := os.ReadFile(filepath.Join(dir, "logs", nn.Name+".log")); err == nil {
					t.Logf("--- %s log (tail) ---\n%s", nn.Name, tail(raw, 3000))
				}
			}
		}
	})
	if err := ln.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, nn := range ln.Info.Nodes {
		if err := ln.WaitReady(ctx, nn.Name); err != nil {
			t.Fatal(err)
		}
	}
	return tn
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// statusJSON is GET /status, the way an operator with curl sees it.
func (tn *testNet) statusJSON(name string) (*nodepb.StatusResponse, error) {
	nn, _ := tn.ln.Node(name)
	resp, err := tn.http.Get(nn.API + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var st nodepb.StatusResponse
	if err := protojson.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("status JSON: %w", err)
	}
	return &st, nil
}

// leader asks running nodes who leads until one names a leader that is
// itself running.
func (tn *testNet) leader(timeout time.Duration, not string) string {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, n := range tn.voters {
			if !tn.ln.Running(n) {
				continue
			}
			st, err := tn.statusJSON(n)
			if err != nil {
				continue
			}
			if l := st.GetNode().GetLeader(); l != "" && l != not && tn.ln.Running(l) {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tn.t.Fatalf("no leader (other than %q) within %v", not, timeout)
	return ""
}

// ack is what a client was told about one transaction.
type ack struct {
	id    [32]byte
	code  statepb.Code
	index uint64
	kind  string
	at    time.Time
}

// load is clients submitting chains of dependent transactions: each worker
// registers two wallets at its bank, then loops issue → exchange →
// transfer (the transfer spends the last change and the new exchange
// output: two inputs, a payment and change). A submit is retried with the
// same signed bytes on any RPC error, going round the voters; one that never
// gets an outcome is unacknowledged and the worker starts a fresh chain.
type load struct {
	tn      *testNet
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	acks    []ack
	unacked atomic.Int64
	rpcErrs atomic.Int64
	notOK   atomic.Int64
	// prefix starts every wallet name, so a second load on the same
	// network registers new wallets.
	prefix string
}

func (tn *testNet) startLoad(workers int) *load { return tn.startLoadNamed(workers, "") }

func (tn *testNet) startLoadNamed(workers int, prefix string) *load {
	l := &load{tn: tn, stop: make(chan struct{}), prefix: prefix}
	for w := range workers {
		l.wg.Add(1)
		go l.worker(w)
	}
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// waitAcks waits until n more transactions than now are acknowledged.
func (l *load) waitAcks(n int, timeout time.Duration) time.Duration {
	l.tn.t.Helper()
	start, want := time.Now(), l.count()+n
	for l.count() < want {
		if time.Since(start) > timeout {
			l.tn.t.Fatalf("load stalled: %d acknowledged, want %d within %v (unacknowledged %d, rpc errors %d)",
				l.count(), want, timeout, l.unacked.Load(), l.rpcErrs.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func (l *load) finish() []ack {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// submit takes one signed transaction to an outcome, or gives up after
// 30 s of RPC errors (unacknowledged).
func (l *load) submit(tx []byte, id [32]byte, kind string, rng *mrand.Rand) (*statepb.TxResult, bool) {
	voters := l.tn.voters
	i := rng.IntN(len(voters))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := l.tn.clients[voters[i%len(voters)]].Submit(ctx, connect.NewRequest(&nodepb.SubmitRequest{Tx: tx}))
		cancel()
		if err == nil {
			r := resp.Msg.GetResult()
			if !bytes.Equal(r.GetTxId(), id[:]) {
				l.tn.t.Errorf("outcome for tx %x names tx %x", id[:6], r.GetTxId())
			}
			l.mu.Lock()
			l.acks = append(l.acks, ack{id: id, code: r.GetCode(), index: r.GetLogIndex(), kind: kind, at: time.Now()})
			l.mu.Unlock()
			if r.GetCode() != statepb.Code_CODE_OK {
				l.notOK.Add(1)
				l.tn.t.Errorf("%s %x: %s: %s", kind, id[:6], r.GetCode().Short(), r.GetMessage())
				return r, false
			}
			return r, true
		}
		l.rpcErrs.Add(1)
		i++ // another node: this one may be the one that was killed
		time.Sleep(20 * time.Millisecond)
	}
	l.unacked.Add(1)
	return nil, false
}

func (l *load) worker(w int) {
	defer l.wg.Done()
	tn := l.tn
	bank := netgen.Banks[w%len(netgen.Banks)].ID
	rng := mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
	// Nonces differ between loads (the prefix) as well as between workers:
	// a second load replaying the first's nonces signed byte-identical
	// issues whenever the random amount matched, and got the first's
	// (already spent) output back as a duplicate.
	nonce := uint64(crc32.ChecksumIEEE([]byte(l.prefix))&0xffff)<<48 | uint64(w)<<40
	sign := func(body *statepb.Tx, key ed25519.PrivateKey) ([]byte, [32]byte) {
		nonce++
		body.Version, body.ChainId, body.Nonce = statepb.TxVersion, tn.signer.ChainID, nonce
		raw, id, err := tn.signer.Sign(body, key)
		if err != nil {
			panic(err)
		}
		return raw, id
	}
	for epoch := 0; !l.stopped(); epoch++ {
		a, b := fmt.Sprintf("%sw%d-e%d-a", l.prefix, w, epoch), fmt.Sprintf("%sw%d-e%d-b", l.prefix, w, epoch)
		_, aKey, _ := ed25519.GenerateKey(rand.Reader)
		bPub, _, _ := ed25519.GenerateKey(rand.Reader)
		ok := true
		for _, wl := range []struct {
			id  string
			pub ed25519.PublicKey
		}{{a, aKey.Public().(ed25519.PublicKey)}, {b, bPub}} {
			raw, id := sign(&statepb.Tx{Kind: &statepb.Tx_RegisterWallet{RegisterWallet: &statepb.RegisterWallet{
				WalletId: wl.id, BankId: bank, PublicKey: wl.pub, Kind: statepb.WalletKind_WALLET_KIND_PERSONAL, Tier: 1,
			}}}, tn.banks[bank])
			if _, ok = l.submit(raw, id, "register", rng); !ok {
				break
			}
		}
		var change *statepb.Outpoint // a's change from its last transfer
		for ok && !l.stopped() {
			amount := uint64(100+rng.IntN(900)) * state.Yuan
			raw, issueID := sign(&statepb.Tx{Kind: &statepb.Tx_Issue{Issue: &statepb.Issue{BankId: bank, AmountFen: amount}}}, tn.cb)
			if _, ok = l.submit(raw, issueID, "issue", rng); !ok {
				break
			}
			raw, exID := sign(&statepb.Tx{Kind: &statepb.Tx_Exchange{Exchange: &statepb.Exchange{
				BankId: bank, Inputs: []*statepb.Outpoint{{TxId: issueID[:], Index: 0}}, ToWalletId: a, AmountFen: amount,
			}}}, tn.banks[bank])
			if _, ok = l.submit(raw, exID, "exchange", rng); !ok {
				break
			}
			inputs := []*statepb.Outpoint{{TxId: exID[:], Index: 0}}
			if change != nil {
				inputs = append(inputs, change)
			}
			raw, trID := sign(&statepb.Tx{Kind: &statepb.Tx_Transfer{Transfer: &statepb.Transfer{
				FromWalletId: a, Inputs: inputs, Payees: []*statepb.Payee{{WalletId: b, AmountFen: amount / 2}},
			}}}, aKey)
			if _, ok = l.submit(raw, trID, "transfer", rng); !ok {
				break
			}
			change = &statepb.Outpoint{TxId: trID[:], Index: 1}
		}
	}
}

// TestKill9UnderLoad: SIGKILL of the leader, then of a follower, while
// clients submit transfers over the API; both are restarted. Afterwards
// every acknowledged transaction is on every node with the outcome its
// client got, the supply invariant holds on every node, and all nodes agree
// on the state hash at the same applied index.
func TestKill9UnderLoad(t *testing.T) {
	began := time.Now()
	dcepd(t)
	t.Logf("dcepd built in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	tn := startNet(t)
	t.Logf("7 voters + 1 regulator (dcepd processes) ready in %v", time.Since(began).Round(time.Millisecond))
	ln := tn.ln
	l := tn.startLoad(12)
	l.waitAcks(150, 60*time.Second)

	// The leader, under load.
	leader := tn.leader(10*time.Second, "")
	acksAtKill := l.count()
	killedAt := time.Now()
	if err := ln.Kill(leader); err != nil {
		t.Fatal(err)
	}
	newLeader := tn.leader(20*time.Second, leader)
	elected := time.Since(killedAt)
	resumed := l.waitAcks(50, 60*time.Second) + elected
	t.Logf("SIGKILL leader %s after %d acks: %s leads after %v; 50 more acks %v after the kill",
		leader, acksAtKill, newLeader, elected.Round(time.Millisecond), resumed.Round(time.Millisecond))
	restart := time.Now()
	if err := ln.Start(leader); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ln, leader)
	t.Logf("%s restarted: ready in %v", leader, time.Since(restart).Round(time.Millisecond))
	l.waitAcks(100, 60*time.Second)

	// A follower, under load.
	cur := tn.leader(10*time.Second, "")
	follower := ""
	for _, v := range tn.voters {
		if v != cur && v != leader {
			follower = v
			break
		}
	}
	if err := ln.Kill(follower); err != nil {
		t.Fatal(err)
	}
	l.waitAcks(100, 60*time.Second)
	t.Logf("SIGKILL follower %s: load went on (leader %s)", follower, cur)
	restart = time.Now()
	if err := ln.Start(follower); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ln, follower)
	t.Logf("%s restarted: ready in %v", follower, time.Since(restart).Round(time.Millisecond))
	l.waitAcks(100, 60*time.Second)
	acks := l.finish()
	t.Logf("load: %d acknowledged (%d not OK), %d unacknowledged, %d RPC errors retried",
		len(acks), l.notOK.Load(), l.unacked.Load(), l.rpcErrs.Load())
	if l.notOK.Load() > 0 {
		t.Fatalf("%d acknowledged transactions were not OK", l.notOK.Load())
	}

	// Everyone converges: same applied index, same state hash.
	all := append(append([]string{}, tn.voters...), tn.reg)
	index, hash := tn.converge(all, 60*time.Second)
	t.Logf("all 8 nodes at applied index %d, state hash %x", index, hash[:8])

	// Every acknowledged transaction, on every node, with its outcome.
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	for _, n := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tn.checkAcks(n, acks)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// The books balance on every node, and identically.
	var outstanding []uint64
	for _, n := range all {
		resp, err := tn.clients[n].Supply(context.Background(), connect.NewRequest(&nodepb.SupplyRequest{Audit: true}))
		if err != nil {
			t.Fatalf("%s: supply: %v", n, err)
		}
		if !resp.Msg.GetInvariantHolds() {
			t.Fatalf("%s: supply invariant does not hold: %s", n, resp.Msg.GetInvariantError())
		}
		outstanding = append(outstanding, resp.Msg.GetOutstandingFen())
	}
	for i := range outstanding {
		if outstanding[i] != outstanding[0] || outstanding[i] == 0 {
			t.Fatalf("outstanding supply differs: %v", outstanding)
		}
	}
	// The regulator still refuses writes.
	_, err := tn.clients[tn.reg].Submit(context.Background(), connect.NewRequest(&nodepb.SubmitRequest{Tx: []byte{1}}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied {
		t.Fatalf("regulator submit: %v", err)
	}
	if t.Failed() {
		return
	}
	// A clean shutdown of everything.
	if err := ln.StopAll(); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	t.Logf("total %v", time.Since(began).Round(time.Millisecond))
}

func waitReady(t *testing.T, ln *localnet.Network, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := ln.WaitReady(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// converge waits until every node reports the same applied index and state
// hash (and has applied all it knows committed).
func (tn *testNet) converge(names []string, timeout time.Duration) (uint64, []byte) {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var index uint64
		var hash []byte
		ok := true
		var desc []string
		for i, n := range names {
			resp, err := tn.clients[n].Status(context.Background(), connect.NewRequest(&nodepb.StatusRequest{}))
			if err != nil {
				ok = false
				desc = append(desc, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			st := resp.Msg.GetNode()
			desc = append(desc, fmt.Sprintf("%s: applied %d commit %d hash %x", n, st.GetAppliedIndex(), st.GetCommitIndex(), prefix(st.GetStateHash())))
			if i == 0 {
				index, hash = st.GetAppliedIndex(), st.GetStateHash()
			}
			if st.GetAppliedIndex() != index || string(st.GetStateHash()) != string(hash) || st.GetAppliedIndex() < st.GetCommitIndex() {
				ok = false
			}
		}
		if ok {
			return index, hash
		}
		sort.Strings(desc)
		last = fmt.Sprint(desc)
		time.Sleep(50 * time.Millisecond)
	}
	tn.t.Fatalf("nodes did not converge within %v: %s", timeout, last)
	return 0, nil
}

func prefix(b []byte) []byte {
	if len(b) > 6 {
		return b[:6]
	}
	return b
}

// checkAcks looks every acknowledged transaction up on one node.
func (tn *testNet) checkAcks(name string, acks []ack) error {
	const parallel = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	next := make(chan ack)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range next {
				resp, err := tn.clients[name].GetTx(context.Background(), connect.NewRequest(&nodepb.GetTxRequest{TxId: a.id[:]}))
				if err == nil && (resp.Msg.GetResult().GetCode() != a.code || resp.Msg.GetResult().GetLogIndex() != a.index) {
					err = fmt.Errorf("%s at %d, client was told %s at %d", resp.Msg.GetResult().GetCode().Short(),
						resp.Msg.GetResult().GetLogIndex(), a.code.Short(), a.index)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: acknowledged %s %x: %w", name, a.kind, a.id[:6], err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, a := range acks {
		next <- a
	}
	close(next)
	wg.Wait()
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("... and %d more", len(errs)-5))
	}
	return errors.Join(errs...)
}
