// Package netgen writes a dcep network to disk: genesis, keys and one config
// per node. dcepd dev, dcepd testnet and the local launcher in deploy/ use it.
//
// Layout of a generated directory:
//
//	genesis.json               the network's genesis (protobuf JSON)
//	keys/                      operator keystore: pboc, the banks, the regulators' operator keys, node keys
//	nodes/<name>/config.toml   one node's configuration
//	nodes/<name>/data/         its ledger and Raft log (created on start)
//	network.json               node names, roles and API addresses
package netgen

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
)

// Banks are the six operating banks of SPEC §1.
var Banks = []struct{ ID, Name string }{
	{"icbc", "Industrial and Commercial Bank of China"},
	{"abc", "Agricultural Bank of China"},
	{"boc", "Bank of China"},
	{"ccb", "China Construction Bank"},
	{"bocom", "Bank of Communications"},
	{"psbc", "Postal Savings Bank of China"},
}

// CentralBankID is the issuer's id.
const CentralBankID = "pboc"

// GuaranteeCoverBps is the generated networks' offline guarantee cover
// ratio: a bank's guarantee wallet must hold 10% of its offline exposure
// for its wallets to open purses (docs/offline.md, "Who pays"). Fund it
// with FundGuarantees or `dcep offline guarantee`.
const GuaranteeCoverBps = 1_000

// Options describe a network to generate.
type Options struct {
	ChainID string
	// Regulators is the number of regulator nodes (regulator-1, …).
	Regulators int
	// Hosts gives each node's host, in node order (pboc, the six banks, the
	// regulators); one entry means every node on that host.
	Hosts []string
	// P2PPort and APIPort are the first node's ports; on a shared host each
	// further node takes the next port.
	P2PPort, APIPort int
	// APIBind is the address nodes bind the API to; default the node's host.
	APIBind string
	// GenesisTime is the ledger's start; default now.
	GenesisTime time.Time
	// Raft and Limits go into every node's config.
	Raft   node.RaftConfig
	Limits node.LimitsConfig
	// StateCacheMB is every node's ledger block cache (0: the node default).
	StateCacheMB int
}

// Network is a generated network's summary (network.json).
type Network struct {
	ChainID string        `json:"chain_id"`
	Nodes   []NetworkNode `json:"nodes"`
}

// NetworkNode is one node of a Network.
type NetworkNode struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	API    string `json:"api"`
	P2P    string `json:"p2p"`
	Config string `json:"config"`
}

// Exists reports whether dir already holds a generated network.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "genesis.json"))
	return err == nil
}

// Generate writes a new network into dir, which must not hold one.
func Generate(dir string, o Options) (*Network, error) {
	if Exists(dir) {
		return nil, fmt.Errorf("%s already holds a network (genesis.json exists)", dir)
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"127.0.0.1"}
	}
	names := nodeNames(o.Regulators)
	if len(o.Hosts) != 1 && len(o.Hosts) != len(names) {
		return nil, fmt.Errorf("hosts: %d given; want 1 or %d (one per node: %s)", len(o.Hosts), len(names), strings.Join(names, ", "))
	}
	if o.GenesisTime.IsZero() {
		o.GenesisTime = time.Now()
	}
	keys, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		return nil, err
	}
	g, err := genesis(keys, o)
	if err != nil {
		return nil, err
	}
	net := &Network{ChainID: o.ChainID}
	for i, name := range names {
		nn, member, err := writeNode(dir, keys, o, i, name)
		if err != nil {
			return nil, err
		}
		g.Nodes = append(g.Nodes, member)
		net.Nodes = append(net.Nodes, nn)
	}
	if err := state.ValidateGenesis(g); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(dir, "network.json"), net); err != nil {
		return nil, err
	}
	raw, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(g)
	if err != nil {
		return nil, err
	}
	// genesis.json last: its presence marks a complete network.
	return net, writeFile(filepath.Join(dir, "genesis.json"), append(raw, '\n'))
}

// NodeNames are the names of a generated network's nodes, in order: the
// central bank, the six banks, then regulator-1 … regulator-N.
func NodeNames(regulators int) []string { return nodeNames(regulators) }

func nodeNames(regulators int) []string {
	names := []string{CentralBankID}
	for _, b := range Banks {
		names = append(names, b.ID)
	}
	for i := 1; i <= regulators; i++ {
		names = append(names, fmt.Sprintf("regulator-%d", i))
	}
	return names
}

func genesis(keys *keystore.Store, o Options) (*statepb.Genesis, error) {
	cb, err := keys.Generate(keystore.Key{Name: CentralBankID, Kind: keystore.KindCentralBank})
	if err != nil {
		return nil, err
	}
	g := &statepb.Genesis{
		ChainId: o.ChainID, GenesisTimeMs: o.GenesisTime.UnixMilli(),
		CentralBank:            &statepb.CentralBank{Id: CentralBankID, Name: "People's Bank of China", PublicKey: cb.Public()},
		Tiers:                  state.DefaultTiers(),
		LargeValueThresholdFen: state.DefaultLargeValueThresholdFen,
		Offline: &statepb.OfflinePolicy{
			MaxPurseFen: 5_000 * state.Yuan, MaxPaymentFen: 2_000 * state.Yuan, MaxPayments: 100,
			MaxValidityMs: 30 * 24 * 3600 * 1000, GraceMs: 7 * 24 * 3600 * 1000,
			GuaranteeCoverBps: GuaranteeCoverBps,
		},
	}
	for _, b := range Banks {
		k, err := keys.Generate(keystore.Key{Name: b.ID, Kind: keystore.KindBank, BankID: b.ID})
		if err != nil {
			return nil, err
		}
		g.Banks = append(g.Banks, &statepb.Bank{
			Id: b.ID, Name: b.Name, PublicKey: k.Public(),
			ReserveWalletId: b.ID + ".reserve", GuaranteeWalletId: b.ID + ".guarantee",
		})
	}
	return g, nil
}

// NodeKeyName is the keystore name of a node's identity key.
func NodeKeyName(node string) string { return "node." + node }

func writeNode(dir string, keys *keystore.Store, o Options, i int, name string) (NetworkNode, *statepb.Node, error) {
	host := o.Hosts[0]
	off := i
	if len(o.Hosts) > 1 {
		host, off = o.Hosts[i], 0
	}
	k, err := keys.Generate(keystore.Key{Name: NodeKeyName(name), Kind: keystore.KindNode})
	if err != nil {
		return NetworkNode{}, nil, err
	}
	role, operator := statepb.NodeRole_NODE_ROLE_VOTER, name
	var operatorKey []byte
	if strings.HasPrefix(name, "regulator-") {
		role = statepb.NodeRole_NODE_ROLE_REGULATOR
		// The regulator's operator key, with which its staff sign in to
		// the client API (dcep token --as regulator-1).
		ok, err := keys.Generate(keystore.Key{Name: name, Kind: keystore.KindRegulator})
		if err != nil {
			return NetworkNode{}, nil, err
		}
		operatorKey = ok.Public()
	}
	p2pAddr := peerAddr(host, o.P2PPort+off)
	bind := o.APIBind
	if bind == "" {
		bind = host
	}
	api := fmt.Sprintf("%s:%d", bind, o.APIPort+off)
	ndir := filepath.Join(dir, "nodes", name)
	if err := os.MkdirAll(ndir, 0o700); err != nil {
		return NetworkNode{}, nil, err
	}
	// The node's own copy of its key, so a node directory is self-contained
	// and can be shipped to its host alone.
	nkeys, err := keystore.Open(filepath.Join(ndir, "keys"))
	if err != nil {
		return NetworkNode{}, nil, err
	}
	if _, err := nkeys.Import(keystore.Key{Name: "node", Kind: keystore.KindNode, Private: k.Private}); err != nil {
		return NetworkNode{}, nil, err
	}
	cfg := node.Config{
		Name: name, DataDir: "data", Genesis: "../../genesis.json", NodeKey: "keys/node.key",
		P2PListen: []string{p2pListen(bind, o.P2PPort+off)}, APIListen: api,
		Raft: o.Raft, Limits: o.Limits, StateCacheMB: o.StateCacheMB,
	}
	if err := cfg.Validate(); err != nil { // fills defaults, so the file shows them
		return NetworkNode{}, nil, err
	}
	raw, err := cfg.Marshal()
	if err != nil {
		return NetworkNode{}, nil, err
	}
	cfgPath := filepath.Join(ndir, "config.toml")
	if err := writeFile(cfgPath, raw); err != nil {
		return NetworkNode{}, nil, err
	}
	member := &statepb.Node{Name: name, Role: role, PublicKey: k.Public(), Addrs: []string{p2pAddr}, Operator: operator, OperatorKey: operatorKey}
	return NetworkNode{Name: name, Role: roleLabel(role), API: "http://" + api, P2P: p2pAddr, Config: cfgPath}, member, nil
}

// peerAddr is the multiaddr other members dial: /ip4 or /ip6 for an IP,
// /dns for a name (resolved when dialling: a Kubernetes headless Service's
// pod name, deploy/k8s).
func peerAddr(host string, port int) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return fmt.Sprintf("/dns/%s/tcp/%d", host, port)
	case ip.To4() == nil:
		return fmt.Sprintf("/ip6/%s/tcp/%d", ip, port)
	}
	return fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)
}

// p2pListen is where a node's libp2p listens: the address its API binds
// (its --hosts entry, or APIBind), so a loopback network listens on
// loopback only; all interfaces only when that address is not an IP.
func p2pListen(bind string, port int) string {
	ip := net.ParseIP(bind)
	switch {
	case ip == nil:
		return fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)
	case ip.To4() == nil:
		return fmt.Sprintf("/ip6/%s/tcp/%d", ip, port)
	}
	return fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)
}

func roleLabel(r statepb.NodeRole) string {
	if r == statepb.NodeRole_NODE_ROLE_REGULATOR {
		return "regulator"
	}
	return "voter"
}

// Load reads a generated network's summary.
func Load(dir string) (*Network, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "network.json"))
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("%s/network.json: %w", dir, err)
	}
	return &n, nil
}

// LoadNodeKey reads a node identity key file written in keystore format,
// refusing one group or others may access.
func LoadNodeKey(path string) (ed25519.PrivateKey, error) {
	return loadNodeKey(path, true)
}

// LoadNodeKeyUnchecked is LoadNodeKey without the permission checks
// (node_key_check_perms = false: a Kubernetes Secret volume).
func LoadNodeKeyUnchecked(path string) (ed25519.PrivateKey, error) {
	return loadNodeKey(path, false)
}

func loadNodeKey(path string, checkPerms bool) (ed25519.PrivateKey, error) {
	var k *keystore.Key
	var err error
	if checkPerms {
		var ks *keystore.Store
		if ks, err = keystore.Open(filepath.Dir(path)); err != nil {
			return nil, err
		}
		k, err = ks.Get(strings.TrimSuffix(filepath.Base(path), ".key"))
	} else {
		k, err = keystore.ReadFileUnchecked(path)
	}
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	if k.Kind != keystore.KindNode {
		return nil, fmt.Errorf("node key %s: is a %s key, not a node key", path, k.Kind)
	}
	return k.Private, nil
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(raw, '\n'))
}

// writeFile writes atomically (temp file, fsync, rename).
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, path)
}
