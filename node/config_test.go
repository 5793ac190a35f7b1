package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dcep/dcep/node"
)

const baseConfig = `name = "icbc"
data_dir = "data"
genesis = "genesis.json"
node_key = "node.key"
p2p_listen = ["/ip4/127.0.0.1/tcp/0"]
api_listen = "127.0.0.1:0"
`

func loadConfig(t *testing.T, text string) (*node.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return node.LoadConfig(path)
}

// TestConfigDefaults: a minimal file gets every default, and relative
// paths resolve against the file's directory.
func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(t, baseConfig)
	if err != nil {
		t.Fatal(err)
	}
	if c.Raft.CommitMs != 10 || c.Batch.MaxTxs != 2000 || c.Batch.MaxInflight != 32 || c.Limits.Burst != 20_000 ||
		c.Limits.SubmitTimeoutMs != 10_000 || c.Log.Level != "info" || c.Archive.SegmentKB != 4096 || c.Archive.Enabled != nil {
		t.Fatalf("defaults: raft %+v batch %+v limits %+v log %+v", c.Raft, c.Batch, c.Limits, c.Log)
	}
	if p := c.Path(c.DataDir); !filepath.IsAbs(p) || filepath.Base(p) != "data" {
		t.Fatalf("data_dir resolves to %q", p)
	}
	if c.Limits.MaxStreamsPerIP != 16 || c.Debug.ClockOffsetMs != 0 {
		t.Fatalf("defaults: limits %+v debug %+v", c.Limits, c.Debug)
	}
	if c, err := loadConfig(t, baseConfig+"[debug]\nclock_offset_ms = -3600000\n"); err != nil || c.Debug.ClockOffsetMs != -3_600_000 {
		t.Fatalf("debug.clock_offset_ms: %v %v", c, err)
	}
	// No per-IP limit: allowed, and the unused burst stays valid.
	if c, err := loadConfig(t, baseConfig+"[limits]\nrate_per_sec = -1\n"); err != nil || c.Limits.RatePerSec != -1 {
		t.Fatalf("rate_per_sec -1: %v %v", c, err)
	}
}

// TestConfigRefused: every malformed or out-of-range setting is refused
// with an error that names the key.
func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown key", baseConfig + "state_cahce_mb = 5\n", "state_cahce_mb"},
		{"missing name", strings.Replace(baseConfig, `name = "icbc"`, "", 1), "name is required"},
		{"missing p2p_listen", strings.Replace(baseConfig, `p2p_listen = ["/ip4/127.0.0.1/tcp/0"]`, "", 1), "p2p_listen"},
		{"tls half", baseConfig + `tls_cert = "c.pem"` + "\n", "tls_cert and tls_key"},
		{"wrong type", baseConfig + `state_cache_mb = "big"` + "\n", "state_cache_mb"},
		{"cache negative", baseConfig + "state_cache_mb = -1\n", "state_cache_mb"},
		{"memtable too big", baseConfig + "state_memtable_mb = 4096\n", "state_memtable_mb"},
		{"heartbeat negative", baseConfig + "[raft]\nheartbeat_ms = -5\n", "raft.heartbeat_ms"},
		{"commit too slow", baseConfig + "[raft]\ncommit_ms = 60000\n", "raft.commit_ms"},
		{"lease over heartbeat", baseConfig + "[raft]\nheartbeat_ms = 200\nleader_lease_ms = 500\n", "raft.leader_lease_ms"},
		{"batch too many", baseConfig + "[batch]\nmax_txs = 1000000\n", "batch.max_txs"},
		{"batch bytes over forward limit", baseConfig + "[batch]\nmax_bytes = 104857600\n", "batch.max_bytes"},
		{"inflight negative", baseConfig + "[batch]\nmax_inflight = -1\n", "batch.max_inflight"},
		{"request bytes tiny", baseConfig + "[limits]\nmax_request_bytes = 10\n", "limits.max_request_bytes"},
		{"rate zero-ish", baseConfig + "[limits]\nrate_per_sec = -7\n", "limits.rate_per_sec"},
		{"identity rate zero-ish", baseConfig + "[limits]\nidentity_rate_per_sec = -2\n", "limits.identity_rate_per_sec"},
		{"identity burst too large", baseConfig + "[limits]\nidentity_burst = 200000000\n", "limits.identity_burst"},
		{"submit timeout tiny", baseConfig + "[limits]\nsubmit_timeout_ms = 5\n", "limits.submit_timeout_ms"},
		{"streams negative", baseConfig + "[limits]\nmax_streams = -3\n", "limits.max_streams"},
		{"per-ip streams over the total", baseConfig + "[limits]\nmax_streams = 8\nmax_streams_per_ip = 9\n", "limits.max_streams_per_ip"},
		{"clock offset past a century", baseConfig + "[debug]\nclock_offset_ms = 4000000000000\n", "debug.clock_offset_ms"},
		{"unknown debug key", baseConfig + "[debug]\nclock_skew = 5\n", "clock_skew"},
		{"archive segment too big", baseConfig + "[archive]\nsegment_kb = 65536\n", "archive.segment_kb"},
		{"archive enabled not a bool", baseConfig + "[archive]\nenabled = \"no\"\n", "archive.enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(t, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
