package node

import (
	"encoding/hex"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// maxTrackedIPs bounds each rate table (the per-IP one and the
// per-identity one): evict.
const maxTrackedIPs = 100_000

// rateTable is a token bucket per key (a client address, an identity),
// bounded to maxTrackedIPs keys.
type rateTable struct {
	perSec, burst int // perSec < 0: no limit
	mu            sync.Mutex
	m             map[string]*keyLimit
}

type keyLimit struct {
	l    *rate.Limiter
	seen time.Time
}

func newRateTable(perSec, burst int) *rateTable {
	return &rateTable{perSec: perSec, burst: burst, m: map[string]*keyLimit{}}
}

// allow charges one request to key; false: over its rate.
func (t *rateTable) allow(key string) bool {
	if t.perSec < 0 {
		return true
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[key]
	if e == nil {
		if len(t.m) >= maxTrackedIPs {
			t.evict(now)
		}
		e = &keyLimit{l: rate.NewLimiter(rate.Limit(t.perSec), t.burst)}
		t.m[key] = e
	}
	e.seen = now
	return e.l.AllowN(now, 1)
}

// evict drops entries idle for a minute (a full bucket is what a new entry
// starts with anyway) and, if that is not enough — a flood from more
// keys than the table holds, all active — any entries until the table
// is 7/8 full, so it never grows past maxTrackedIPs and the scan runs at most
// once per maxTrackedIPs/8 new keys. A key dropped so starts again with a
// full bucket: under such a flood the limit is best effort, and
// maxInflightSubmits still bounds the work.
func (t *rateTable) evict(now time.Time) {
	for k, e := range t.m {
		if now.Sub(e.seen) > time.Minute {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= maxTrackedIPs*7/8 {
			return
		}
		delete(t.m, k)
	}
}

func (t *rateTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// Submit is limited per identity as well as per client address, so that
// one identity spread over many addresses cannot flood the node
// (docs/operations.md, "Rate limits"). An identity is charged one request
// per Submit for each of:
//   - the signed-in caller, when the call carries a token (chargeCaller,
//     before the request is decoded): key "id:" + the token subject;
//   - each distinct key that signed the transaction (chargeSigners, after
//     Precheck verified the signatures, so a forged signature cannot
//     spend another identity's allowance): key "key:" + the public key.
//     A wallet, a bank and the central bank each sign with one key, so
//     this is the identity that authorises the transaction whether or not
//     its sender signed in.

// chargeCaller charges a signed-in Submit to its token identity.
func (n *Node) chargeCaller(c caller) error {
	if c.anonymous() || n.limits.perID.allow("id:"+c.String()) {
		return nil
	}
	return apiError(CodeRateLimited, "%s exceeded the per-identity Submit rate of %d/s ([limits] identity_rate_per_sec)", c, n.cfg.Limits.IdentityRatePerSec)
}

// chargeSigners charges a prechecked transaction to each key that signed it.
func (n *Node) chargeSigners(raw []byte) error {
	if n.cfg.Limits.IdentityRatePerSec < 0 {
		return nil
	}
	var stx statepb.SignedTx
	if proto.Unmarshal(raw, &stx) != nil {
		return nil // Precheck passed it; cannot happen
	}
	seen := map[string]bool{}
	for _, s := range stx.GetSignatures() {
		k := string(s.GetPublicKey())
		if seen[k] {
			continue
		}
		seen[k] = true
		if !n.limits.perID.allow("key:" + k) {
			return apiError(CodeRateLimited, "signer key %s exceeded the per-identity Submit rate of %d/s ([limits] identity_rate_per_sec)", hex.EncodeToString(s.GetPublicKey()), n.cfg.Limits.IdentityRatePerSec)
		}
	}
	return nil
}
