package chaos

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// loopbackFabric runs every node on 127.0.0.1 (node i on ports p2p+i and
// api+i) where namespaces are not permitted. Partitions are nftables rules
// in this namespace on the nodes' p2p ports: libp2p dials from its listen
// port (SO_REUSEPORT), so a (source port, destination port) pair names one
// direction between two nodes. Without nft (or the right to use it)
// partitions are unsupported; netem always is (it would shape the whole
// loopback device).
type loopbackFabric struct {
	nodes    int
	p2p, api int
	nft      bool
	http     *http.Client
}

func newLoopback(n int) (*loopbackFabric, error) {
	f := &loopbackFabric{nodes: n, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	var err error
	if f.p2p, err = freeRange(n, 0); err != nil {
		return nil, err
	}
	if f.api, err = freeRange(n, f.p2p); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("nft"); err == nil {
		f.nft = f.Block(nil) == nil
	}
	return f, nil
}

// freeRange finds n consecutive free TCP ports below the ephemeral range,
// not overlapping [avoid, avoid+n).
func freeRange(n, avoid int) (int, error) {
	seed := time.Now().UnixNano()
	for try := range 200 {
		base := 10_000 + int((seed+int64(try)*7919)%int64(22_000-n))
		if avoid != 0 && base < avoid+n && avoid < base+n {
			continue
		}
		ok := true
		for i := 0; ok && i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no free port range")
}

func (f *loopbackFabric) Mode() string       { return "loopback" }
func (f *loopbackFabric) Hosts() []string    { return []string{"127.0.0.1"} }
func (f *loopbackFabric) Ports() (int, int)  { return f.p2p, f.api }
func (f *loopbackFabric) Wrap(int) []string  { return nil }
func (f *loopbackFabric) HTTP() *http.Client { return f.http }

func (f *loopbackFabric) Block(pairs [][2]int) error {
	if !f.nft && pairs != nil {
		return ErrUnsupported
	}
	script := fmt.Sprintf("table inet %s\ndelete table inet %s\n", Prefix, Prefix)
	if len(pairs) > 0 {
		var rules []string
		for _, p := range pairs {
			rules = append(rules, fmt.Sprintf("  iif lo tcp sport %d tcp dport %d drop", f.p2p+p[0], f.p2p+p[1]))
		}
		script += fmt.Sprintf("table inet %s {\n chain in {\n  type filter hook input priority 0; policy accept;\n%s\n }\n}\n",
			Prefix, strings.Join(rules, "\n"))
	}
	return nftIn("", script)
}

func (f *loopbackFabric) Teardown() error {
	if f.nft {
		return f.Block(nil)
	}
	return nil
}
