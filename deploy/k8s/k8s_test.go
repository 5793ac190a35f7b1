package k8s

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protojson"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/node"
	"github.com/dcep/dcep/state/statepb"
)

// manifests is every object generated, decoded strictly by kind.
type manifests struct {
	namespaces []*corev1.Namespace
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
	services   map[string]*corev1.Service
	sets       map[string]*appsv1.StatefulSet
	pdbs       []*policyv1.PodDisruptionBudget
}

// strict decodes one JSON object into v, refusing fields the type lacks.
func strict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func load(t *testing.T, dir string) *manifests {
	t.Helper()
	m := &manifests{secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		services: map[string]*corev1.Service{}, sets: map[string]*appsv1.StatefulSet{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(raw), "\n---\n") {
			if err := m.add(doc); err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(f), i, err)
			}
		}
	}
	return m
}

func (m *manifests) add(doc string) error {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return err
	}
	into := func(v any, key func() string, put func(string)) error {
		if err := strict(js, v); err != nil {
			return fmt.Errorf("%s/%s: %w", tm.APIVersion, tm.Kind, err)
		}
		put(key())
		return nil
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		v := &corev1.Namespace{}
		return into(v, func() string { return v.Name }, func(string) { m.namespaces = append(m.namespaces, v) })
	case "v1 Secret":
		v := &corev1.Secret{}
		return into(v, func() string { return v.Name }, func(k string) { m.secrets[k] = v })
	case "v1 ConfigMap":
		v := &corev1.ConfigMap{}
		return into(v, func() string { return v.Name }, func(k string) { m.configMaps[k] = v })
	case "v1 Service":
		v := &corev1.Service{}
		return into(v, func() string { return v.Name }, func(k string) { m.services[k] = v })
	case "apps/v1 StatefulSet":
		v := &appsv1.StatefulSet{}
		return into(v, func() string { return v.Name }, func(k string) { m.sets[k] = v })
	case "policy/v1 PodDisruptionBudget":
		v := &policyv1.PodDisruptionBudget{}
		return into(v, func() string { return v.Name }, func(string) { m.pdbs = append(m.pdbs, v) })
	}
	return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
}

func generate(t *testing.T, o Options) (*manifests, *statepb.Genesis) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Generate(filepath.Join(dir, "net"), filepath.Join(dir, "k8s"), o); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "net", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g statepb.Genesis
	if err := protojson.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return load(t, filepath.Join(dir, "k8s")), &g
}

func TestManifests(t *testing.T) {
	o := Options{Namespace: "cbdc", ChainID: "k8s-test-1", Regulators: 2, StorageClass: "fast", StorageSize: "20Gi"}
	m, g := generate(t, o)
	if len(m.namespaces) != 1 || m.namespaces[0].Name != "cbdc" {
		t.Fatalf("namespaces: %v", m.namespaces)
	}
	if len(m.sets) != len(g.GetNodes()) {
		t.Fatalf("%d StatefulSets for %d nodes", len(m.sets), len(g.GetNodes()))
	}
	var genesis string
	for _, member := range g.GetNodes() {
		t.Run(member.GetName(), func(t *testing.T) {
			gen := checkNode(t, m, member, o)
			if genesis == "" {
				genesis = gen
			} else if gen != genesis {
				t.Errorf("genesis in %s-config differs from the first node's", member.GetName())
			}
		})
	}
	checkPDB(t, m, g)
}

// checkNode checks one node's objects and returns its ConfigMap's genesis.
func checkNode(t *testing.T, m *manifests, member *statepb.Node, o Options) string {
	name := member.GetName()
	sts := m.sets[name]
	if sts == nil {
		t.Fatalf("no StatefulSet %s", name)
	}
	for _, obj := range []metav1.Object{sts, m.secrets[name+"-node-key"], m.configMaps[name+"-config"], m.services[name], m.services[name+"-api"]} {
		if obj == nil || obj.GetNamespace() != o.Namespace {
			t.Fatalf("object missing or not in namespace %s: %v", o.Namespace, obj)
		}
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", sts.Spec.Replicas)
	}
	pod := sts.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("selector %v does not match the pod's labels %v (%v)", sts.Spec.Selector, pod.Labels, err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if c.Image != o.Image && !(o.Image == "" && c.Image == "dcep:dev") {
		t.Errorf("image %q", c.Image)
	}
	checkSecurity(t, pod.Spec, c)
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	checkClaim(t, sts, mounts, o)
	cfg := checkConfig(t, m, sts, c, mounts)
	checkKey(t, m, pod.Spec, mounts, cfg, member)
	checkPorts(t, m, sts, c, cfg, member, o)
	return m.configMaps[name+"-config"].Data["genesis.json"]
}

func checkSecurity(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod may run as root: %+v", psc)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("privilege escalation allowed")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("capabilities %+v, want drop ALL", sc.Capabilities)
	}
	if psc.FSGroup == nil || *psc.FSGroup != *psc.RunAsUser {
		t.Errorf("fsGroup %v: the volume would not be the node's user's", psc.FSGroup)
	}
}

func checkClaim(t *testing.T, sts *appsv1.StatefulSet, mounts map[string]corev1.VolumeMount, o Options) {
	t.Helper()
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("%d claim templates, want 1", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if mounts[pvc.Name].MountPath != DataDir || mounts[pvc.Name].ReadOnly {
		t.Errorf("claim %s mounted at %+v, want %s read-write", pvc.Name, mounts[pvc.Name], DataDir)
	}
	if got := pvc.Spec.Resources.Requests.Storage().String(); got != o.StorageSize {
		t.Errorf("claim size %s, want %s", got, o.StorageSize)
	}
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != o.StorageClass {
		t.Errorf("storage class %v, want %s", pvc.Spec.StorageClassName, o.StorageClass)
	}
}

// checkConfig loads the ConfigMap's config.toml with the node's own loader
// at the path the container reads, and checks where its files are.
func checkConfig(t *testing.T, m *manifests, sts *appsv1.StatefulSet, c corev1.Container, mounts map[string]corev1.VolumeMount) *node.Config {
	t.Helper()
	name := sts.Name
	cm := m.configMaps[name+"-config"]
	if strings.Join(c.Args, " ") != "run --config "+ConfigFile {
		t.Errorf("args %q", c.Args)
	}
	vol := volume(t, sts.Spec.Template.Spec, "config")
	if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name || mounts["config"].MountPath != ConfigDir {
		t.Fatalf("config volume %+v mounted at %+v", vol, mounts["config"])
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(cm.Data["config.toml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := node.LoadConfig(path)
	if err != nil {
		t.Fatalf("config.toml does not load: %v", err)
	}
	if cfg.Name != name || cfg.DataDir != DataDir {
		t.Errorf("config name %q data_dir %q", cfg.Name, cfg.DataDir)
	}
	if dir, file := filepath.Split(cfg.Genesis); filepath.Clean(dir) != ConfigDir || cm.Data[file] == "" {
		t.Errorf("genesis %s is not a file of ConfigMap %s", cfg.Genesis, cm.Name)
	}
	return cfg
}

// checkKey: node_key is the Secret's file, mounted read-only, and is the
// key genesis names for this node.
func checkKey(t *testing.T, m *manifests, spec corev1.PodSpec, mounts map[string]corev1.VolumeMount, cfg *node.Config, member *statepb.Node) {
	t.Helper()
	vol := volume(t, spec, "node-key")
	if vol.Secret == nil || !mounts["node-key"].ReadOnly {
		t.Fatalf("node-key volume %+v mount %+v", vol, mounts["node-key"])
	}
	secret := m.secrets[vol.Secret.SecretName]
	dir, file := filepath.Split(cfg.NodeKey)
	if secret == nil || filepath.Clean(dir) != mounts["node-key"].MountPath {
		t.Fatalf("node_key %s is not in the Secret volume at %s", cfg.NodeKey, mounts["node-key"].MountPath)
	}
	if cfg.NodeKeyCheckPerms == nil || *cfg.NodeKeyCheckPerms {
		t.Error("node_key_check_perms not false: a Secret volume's modes would be refused")
	}
	kf := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(kf, secret.Data[file], 0o440); err != nil {
		t.Fatal(err)
	}
	k, err := keystore.ReadFileUnchecked(kf)
	if err != nil {
		t.Fatalf("secret %s: %v", secret.Name, err)
	}
	if k.Kind != keystore.KindNode || !k.Public().Equal(ed25519.PublicKey(member.GetPublicKey())) {
		t.Errorf("secret %s holds a %s key that is not node %s's in genesis", secret.Name, k.Kind, member.GetName())
	}
}

func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

// checkPorts: probes on the API port the config sets; the headless Service
// names the pod as genesis addresses it; the API Service reaches the API.
func checkPorts(t *testing.T, m *manifests, sts *appsv1.StatefulSet, c corev1.Container, cfg *node.Config, member *statepb.Node, o Options) {
	t.Helper()
	apiPort, err := portOf(cfg.APIListen)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["api"] != apiPort {
		t.Errorf("container api port %d, config api_listen %s", ports["api"], cfg.APIListen)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.IntValue() != int(apiPort) {
			t.Errorf("probe for %s: %+v, want GET %s on %d", p.path, p.probe, p.path, apiPort)
		}
	}
	listen, err := ma.NewMultiaddr(cfg.P2PListen[0])
	if err != nil {
		t.Fatal(err)
	}
	lp, _ := listen.ValueForProtocol(ma.P_TCP)
	if fmt.Sprint(ports["p2p"]) != lp {
		t.Errorf("container p2p port %d, config p2p_listen %s", ports["p2p"], cfg.P2PListen[0])
	}
	hs := m.services[sts.Spec.ServiceName]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Fatalf("serviceName %q is not a headless Service publishing not-ready pods", sts.Spec.ServiceName)
	}
	if !labels.SelectorFromSet(hs.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("headless Service selector %v misses the pod", hs.Spec.Selector)
	}
	// The pod's DNS name under the headless Service (StatefulSet pod
	// NAME-0, Service serviceName, the namespace, the cluster domain).
	want := fmt.Sprintf("/dns/%s-0.%s.%s.svc.cluster.local/tcp/%s", sts.Name, hs.Name, sts.Namespace, lp)
	if len(member.GetAddrs()) != 1 || member.GetAddrs()[0] != want {
		t.Errorf("genesis addrs %v, want [%s]", member.GetAddrs(), want)
	}
	if len(hs.Spec.Ports) != 1 || fmt.Sprint(hs.Spec.Ports[0].Port) != lp || hs.Spec.Ports[0].TargetPort.String() != "p2p" {
		t.Errorf("headless ports %+v", hs.Spec.Ports)
	}
	api := m.services[sts.Name+"-api"]
	if len(api.Spec.Ports) != 1 || api.Spec.Ports[0].Port != apiPort || api.Spec.ClusterIP == corev1.ClusterIPNone ||
		!labels.SelectorFromSet(api.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("API Service %+v", api.Spec)
	}
}

// checkPDB: the one budget covers exactly the voters' pods, and evicting as
// many as it allows leaves a quorum.
func checkPDB(t *testing.T, m *manifests, g *statepb.Genesis) {
	if len(m.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
	}
	pdb := m.pdbs[0]
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var covered, voters []string
	for name, sts := range m.sets {
		if sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			covered = append(covered, name)
		}
	}
	for _, n := range g.GetNodes() {
		if n.GetRole() == statepb.NodeRole_NODE_ROLE_VOTER {
			voters = append(voters, n.GetName())
		}
	}
	sort.Strings(covered)
	sort.Strings(voters)
	if strings.Join(covered, ",") != strings.Join(voters, ",") {
		t.Errorf("PDB covers %v, voters are %v", covered, voters)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MinAvailable != nil {
		t.Fatalf("PDB %+v: want maxUnavailable only", pdb.Spec)
	}
	down := pdb.Spec.MaxUnavailable.IntValue()
	if left := len(voters) - down; left < len(voters)/2+1 || down < 1 {
		t.Errorf("PDB allows %d of %d voters down: %d left, quorum %d", down, len(voters), left, len(voters)/2+1)
	}
}

func TestRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{Namespace: "Bad_NS"}, {StorageSize: "ten gigs"}} {
		dir := t.TempDir()
		if _, err := Generate(filepath.Join(dir, "net"), filepath.Join(dir, "k8s"), o); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
}

// TestStrictDecoding: a misspelt field is refused, so TestManifests would
// catch a generator that wrote one.
func TestStrictDecoding(t *testing.T) {
	m := &manifests{sets: map[string]*appsv1.StatefulSet{}}
	good := "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: 1}\n"
	if err := m.add(good); err != nil {
		t.Fatal(err)
	}
	if err := m.add(strings.Replace(good, "replicas", "replica", 1)); err == nil {
		t.Error("unknown field spec.replica accepted")
	}
	if err := m.add("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"); err == nil {
		t.Error("unexpected kind accepted")
	}
}
