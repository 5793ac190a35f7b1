// Package k8s writes Kubernetes manifests for a whole dcep network
// (`dcepd testnet --out DIR --k8s MANIFESTS`): per node a StatefulSet of one
// pod with its own PersistentVolumeClaim, a Secret holding its node key, a
// ConfigMap with its config and the genesis, a headless Service giving the
// pod a stable DNS name for libp2p and a Service for the API; and one
// PodDisruptionBudget over the voters that keeps a quorum. DESIGN.md has the
// choices; k8s_test.go decodes every manifest with the Kubernetes API types
// and checks the invariants.
package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/node/netgen"
	"github.com/dcep/dcep/state/statepb"
)

// Ports every pod uses: each pod has its own IP, so all nodes share them.
const (
	P2PPort = 7101
	APIPort = 8101
)

// Paths inside the pod.
const (
	// DataDir is the PersistentVolumeClaim's mount: data_dir.
	DataDir = "/data"
	// ConfigDir is the ConfigMap's mount: config.toml and genesis.json.
	ConfigDir = "/etc/dcep/config"
	// KeyDir is the Secret's mount: node.key.
	KeyDir = "/etc/dcep/keys"
	// ConfigFile is what dcepd run --config reads.
	ConfigFile = ConfigDir + "/config.toml"
)

// Labels on every object; RoleLabel selects the voters for the PDB.
const (
	NameLabel     = "app.kubernetes.io/name"
	InstanceLabel = "app.kubernetes.io/instance"
	RoleLabel     = "dcep.io/role"
)

// UID is the image's non-root user (deploy/container/Containerfile).
const UID = 65532

// Options describe the manifests.
type Options struct {
	// Namespace the network runs in (default "dcep").
	Namespace string
	// ClusterDomain is the cluster's DNS domain (default "cluster.local").
	ClusterDomain string
	// Image is the dcep image (deploy/container; default "dcep:dev").
	Image string
	// StorageSize is each node's volume (default "10Gi").
	StorageSize string
	// StorageClass, if set, is the claims' storage class.
	StorageClass string
	// Regulators is the number of regulator nodes.
	Regulators int
	// ChainID of the network.
	ChainID string
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = "dcep"
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.Image == "" {
		o.Image = "dcep:dev"
	}
	if o.StorageSize == "" {
		o.StorageSize = "10Gi"
	}
}

// PodHost is the stable DNS name of node's pod: pod 0 of its StatefulSet
// under its headless Service.
func PodHost(name string, o Options) string {
	o.defaults()
	return fmt.Sprintf("%s-0.%s.%s.svc.%s", name, name, o.Namespace, o.ClusterDomain)
}

// Generate writes a new network into netDir (as `dcepd testnet`, with each
// node's host its pod's DNS name) and its manifests into outDir: one file per
// node (NAME.yaml), 00-namespace.yaml and pdb.yaml.
func Generate(netDir, outDir string, o Options) (*netgen.Network, error) {
	o.defaults()
	if msgs := validationDNSLabel(o.Namespace); msgs != "" {
		return nil, fmt.Errorf("k8s: namespace %q: %s", o.Namespace, msgs)
	}
	if _, err := resource.ParseQuantity(o.StorageSize); err != nil {
		return nil, fmt.Errorf("k8s: storage size %q: %w", o.StorageSize, err)
	}
	names := netgen.NodeNames(o.Regulators)
	hosts := make([]string, len(names))
	for i, n := range names {
		hosts[i] = PodHost(n, o)
	}
	net, err := netgen.Generate(netDir, netgen.Options{
		ChainID: o.ChainID, Regulators: o.Regulators, Hosts: hosts,
		P2PPort: P2PPort, APIPort: APIPort, APIBind: "0.0.0.0",
	})
	if err != nil {
		return nil, err
	}
	genesis, err := os.ReadFile(filepath.Join(netDir, "genesis.json"))
	if err != nil {
		return nil, err
	}
	var g statepb.Genesis
	if err := protojson.Unmarshal(genesis, &g); err != nil {
		return nil, fmt.Errorf("k8s: genesis: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return nil, err
	}
	if err := writeObjects(filepath.Join(outDir, "00-namespace.yaml"), namespace(o)); err != nil {
		return nil, err
	}
	voters := 0
	for _, m := range g.GetNodes() {
		objs, err := nodeObjects(netDir, m, genesis, o)
		if err != nil {
			return nil, err
		}
		if err := writeObjects(filepath.Join(outDir, m.GetName()+".yaml"), objs...); err != nil {
			return nil, err
		}
		if m.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
			voters++
		}
	}
	return net, writeObjects(filepath.Join(outDir, "pdb.yaml"), votersPDB(voters, o))
}

// validationDNSLabel is "" for an RFC 1123 label (what a namespace must be).
func validationDNSLabel(s string) string {
	if len(s) == 0 || len(s) > 63 {
		return "want 1..63 characters"
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return "want lower-case letters, digits and inner '-'"
		}
	}
	return ""
}

// Quorum is the voters raft needs to commit.
func Quorum(voters int) int { return voters/2 + 1 }

func nodeLabels(name, role string) map[string]string {
	l := map[string]string{NameLabel: "dcep", InstanceLabel: name}
	if role != "" {
		l[RoleLabel] = role
	}
	return l
}

func meta(name, ns string, l map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: l}
}

func namespace(o Options) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: map[string]string{NameLabel: "dcep"}},
	}
}

// votersPDB is one budget over every voter's pod: at most voters − quorum
// of them may be evicted at a time, so a drain never takes the ledger below
// a quorum (a budget per StatefulSet cannot bound how many are down at once).
func votersPDB(voters int, o Options) *policyv1.PodDisruptionBudget {
	maxDown := intstr.FromInt32(int32(voters - Quorum(voters)))
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta("dcep-voters", o.Namespace, map[string]string{NameLabel: "dcep"}),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxDown,
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{NameLabel: "dcep", RoleLabel: "voter"}},
		},
	}
}

func roleName(r statepb.NodeRole) string {
	if r == statepb.NodeRole_NODE_ROLE_REGULATOR {
		return "regulator"
	}
	return "voter"
}

// podConfig is the node's generated config with the pod's paths.
func podConfig(netDir, name string) ([]byte, *node.Config, error) {
	cfg, err := node.LoadConfig(filepath.Join(netDir, "nodes", name, "config.toml"))
	if err != nil {
		return nil, nil, err
	}
	no := false
	cfg.DataDir, cfg.Genesis, cfg.NodeKey = DataDir, ConfigDir+"/genesis.json", KeyDir+"/node.key"
	cfg.NodeKeyCheckPerms = &no
	raw, err := cfg.Marshal()
	return raw, cfg, err
}

func nodeObjects(netDir string, m *statepb.Node, genesis []byte, o Options) ([]any, error) {
	name, role := m.GetName(), roleName(m.GetRole())
	cfgRaw, cfg, err := podConfig(netDir, name)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(filepath.Join(netDir, "nodes", name, "keys", "node.key"))
	if err != nil {
		return nil, err
	}
	apiPort, err := portOf(cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("k8s: node %s: api_listen: %w", name, err)
	}
	l := nodeLabels(name, role)
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(name+"-node-key", o.Namespace, l),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"node.key": key},
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(name+"-config", o.Namespace, l),
		Data:       map[string]string{"config.toml": string(cfgRaw), "genesis.json": string(genesis)},
	}
	return []any{secret, cm, headless(name, l, o), apiService(name, l, apiPort, o), statefulSet(name, l, apiPort, o)}, nil
}

// headless gives pod NAME-0 the DNS name other members dial
// (PodHost). publishNotReadyAddresses: a node is ready only once it sees
// a quorum, which it cannot reach if its peers' names wait for readiness.
func headless(name string, l map[string]string, o Options) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(name, o.Namespace, l),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 map[string]string{NameLabel: "dcep", InstanceLabel: name},
			Ports:                    []corev1.ServicePort{{Name: "p2p", Port: P2PPort, TargetPort: intstr.FromString("p2p"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// apiService routes the client API, /metrics and health to ready pods only.
func apiService(name string, l map[string]string, apiPort int32, o Options) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(name+"-api", o.Namespace, l),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{NameLabel: "dcep", InstanceLabel: name},
			Ports:    []corev1.ServicePort{{Name: "api", Port: apiPort, TargetPort: intstr.FromString("api"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func portOf(hostport string) (int32, error) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return 0, errors.New("no port")
	}
	p, err := strconv.ParseUint(hostport[i+1:], 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q", hostport[i+1:])
	}
	return int32(p), nil
}

func writeObjects(path string, objs ...any) error {
	var buf bytes.Buffer
	buf.WriteString("# Generated by dcepd testnet --k8s (deploy/k8s).\n")
	for i, obj := range objs {
		raw, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("k8s: %s: %w", path, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(raw)
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}
