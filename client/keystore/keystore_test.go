package keystore

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// noTemps fails if a temporary file was left behind.
func noTemps(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestGenerateGet(t *testing.T) {
	s := open(t)
	if m := mode(t, s.Dir()); checkPerms && m != 0o700 {
		t.Errorf("dir mode %04o, want 0700", m)
	}
	k, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice.1"})
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, s.Path("alice")); checkPerms && m != 0o600 {
		t.Errorf("key file mode %04o, want 0600", m)
	}
	got, err := s.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Private.Equal(k.Private) || got.Kind != KindWallet || got.BankID != "icbc" || got.WalletID != "alice.1" || !got.Created.Equal(k.Created) {
		t.Fatalf("got %+v, want %+v", got, k)
	}
	if got.Role() != "wallet:alice.1@icbc" {
		t.Errorf("role %q", got.Role())
	}
	// The file is the documented JSON.
	raw, err := os.ReadFile(s.Path("alice"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"format", "name", "kind", "bank_id", "wallet_id", "public_key", "seed", "created"} {
		if _, ok := m[f]; !ok {
			t.Errorf("key file lacks %q: %s", f, raw)
		}
	}
	if m["format"] != Format || m["kind"] != "wallet" {
		t.Errorf("key file: %s", raw)
	}
	noTemps(t, s)
}

func TestImportRoles(t *testing.T) {
	s := open(t)
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	priv := ed25519.NewKeyFromSeed(seed)
	for _, k := range []Key{
		{Name: "pboc", Kind: KindCentralBank, Private: priv},
		{Name: "icbc", Kind: KindBank, BankID: "icbc", Private: priv},
		{Name: "node-icbc", Kind: KindNode, Private: priv},
		{Name: "pos-1", Kind: KindDevice, Private: priv},
	} {
		if _, err := s.Import(k); err != nil {
			t.Fatalf("import %s: %v", k.Name, err)
		}
		got, err := s.Get(k.Name)
		if err != nil || !got.Private.Equal(priv) || got.Kind != k.Kind {
			t.Fatalf("get %s: %+v, %v", k.Name, got, err)
		}
	}
	if k, err := s.Bank("icbc"); err != nil || k.Name != "icbc" || k.Role() != "bank:icbc" {
		t.Errorf("Bank: %v, %v", k, err)
	}
	if k, err := s.CentralBank(); err != nil || k.Name != "pboc" {
		t.Errorf("CentralBank: %v, %v", k, err)
	}
	if _, err := s.Bank("abc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Bank(abc): %v", err)
	}
	p, err := ParseSeed("0700000000000000000000000000000000000000000000000000000000000000")
	if err != nil || !p.Equal(priv) {
		t.Errorf("ParseSeed: %v", err)
	}
	for _, bad := range []string{"", "07", "zz00000000000000000000000000000000000000000000000000000000000000"} {
		if _, err := ParseSeed(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSeed(%q): %v", bad, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	s := open(t)
	if _, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.Path("alice"))
	if _, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Generate: %v", err)
	}
	after, _ := os.ReadFile(s.Path("alice"))
	if string(before) != string(after) {
		t.Fatal("refused Generate changed the key file")
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name string
		k    Key
	}{
		{"empty name", Key{Name: "", Kind: KindCentralBank}},
		{"upper case", Key{Name: "Alice", Kind: KindCentralBank}},
		{"path", Key{Name: "../x", Kind: KindCentralBank}},
		{"slash", Key{Name: "a/b", Kind: KindCentralBank}},
		{"hidden", Key{Name: ".x", Kind: KindCentralBank}},
		{"space", Key{Name: "a b", Kind: KindCentralBank}},
		{"long", Key{Name: strings.Repeat("a", 65), Kind: KindCentralBank}},
		{"kind", Key{Name: "x", Kind: "admin"}},
		{"no kind", Key{Name: "x"}},
		{"wallet without bank", Key{Name: "x", Kind: KindWallet, WalletID: "x"}},
		{"wallet without id", Key{Name: "x", Kind: KindWallet, BankID: "icbc"}},
		{"wallet bad id", Key{Name: "x", Kind: KindWallet, BankID: "icbc", WalletID: "X"}},
		{"bank without id", Key{Name: "x", Kind: KindBank}},
		{"node with bank", Key{Name: "x", Kind: KindNode, BankID: "icbc"}},
		{"central bank with wallet", Key{Name: "x", Kind: KindCentralBank, WalletID: "w"}},
	} {
		if _, err := s.Generate(tc.k); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Generate: %v", tc.name, err)
		}
	}
	if _, err := s.Import(Key{Name: "short", Kind: KindNode, Private: priv[:10]}); !errors.Is(err, ErrInvalid) {
		t.Errorf("short private key: %v", err)
	}
	if _, err := s.Generate(Key{Name: "given", Kind: KindNode, Private: priv}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Generate with a private key: %v", err)
	}
	if _, err := s.Get("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nobody): %v", err)
	}
	if _, err := s.Get("../alice"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Get(../alice): %v", err)
	}
	if err := s.Delete("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(nobody): %v", err)
	}
	keys, err := s.List()
	if err != nil || len(keys) != 1 {
		t.Fatalf("List after refusals: %d keys, %v", len(keys), err)
	}
	noTemps(t, s)
}

// TestCreateRace: stores in two "processes" (separate Store values, so no
// shared mutex) race to create one name; exactly one wins and the file is
// whole.
func TestCreateRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, losses := 0, 0
	var winner ed25519.PrivateKey
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			k, err := s.Generate(Key{Name: "shop", Kind: KindWallet, BankID: "boc", WalletID: "shop"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				winner = k.Private
			case errors.Is(err, ErrExists):
				losses++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || losses != 15 {
		t.Fatalf("wins %d, losses %d", wins, losses)
	}
	s, _ := Open(dir)
	k, err := s.Get("shop")
	if err != nil || !k.Private.Equal(winner) {
		t.Fatalf("stored key is not the winner's: %v", err)
	}
	noTemps(t, s)
}

func TestPermissions(t *testing.T) {
	if !checkPerms {
		t.Skip("no Unix permissions")
	}
	s := open(t)
	for _, n := range []string{"a", "b"} {
		if _, err := s.Generate(Key{Name: n, Kind: KindDevice}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		if err := os.Chmod(s.Path("a"), m); err != nil {
			t.Fatal(err)
		}
		_, err := s.Get("a")
		if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v", m, err)
		}
	}
	// List returns the good keys and reports the bad one.
	keys, err := s.List()
	if len(keys) != 1 || keys[0].Name != "b" || !errors.Is(err, ErrPermissions) {
		t.Errorf("List: %d keys, %v", len(keys), err)
	}
	// Lookups that find their key are not spoiled by another bad file.
	if _, err := s.Find("device b", func(k *Key) bool { return k.Name == "b" }); err != nil {
		t.Errorf("Find b: %v", err)
	}
	// ... but a miss reports it.
	if _, err := s.CentralBank(); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrPermissions) {
		t.Errorf("CentralBank: %v", err)
	}
	if err := os.Chmod(s.Path("a"), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("a"); err != nil {
		t.Errorf("mode 0400: %v", err)
	}

	// A directory others may write is refused.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrPermissions) {
		t.Errorf("Open 0777 dir: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Errorf("Open 0755 dir: %v", err)
	}
}

func TestCorrupt(t *testing.T) {
	s := open(t)
	k, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(s.Path("alice"))
	_, other, _ := ed25519.GenerateKey(nil)
	otherFile, _ := encode(&Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice", Private: other, Created: k.Created})
	var f map[string]any
	_ = json.Unmarshal(good, &f)
	edit := func(field string, v any) []byte {
		g := map[string]any{}
		for k, x := range f {
			g[k] = x
		}
		if v == nil {
			delete(g, field)
		} else {
			g[field] = v
		}
		b, _ := json.Marshal(g)
		return b
	}
	var otherMap map[string]any
	_ = json.Unmarshal(otherFile, &otherMap)
	for name, data := range map[string][]byte{
		"not json":       []byte("hello"),
		"empty":          {},
		"format":         edit("format", "dcep-key/v0"),
		"renamed":        edit("name", "bob"),
		"pub mismatch":   edit("public_key", otherMap["public_key"]),
		"bad seed":       edit("seed", "00"),
		"unknown field":  edit("extra", 1),
		"bad kind":       edit("kind", "root"),
		"wallet no bank": edit("bank_id", nil),
	} {
		if err := os.WriteFile(s.Path("alice"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get("alice"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := os.WriteFile(s.Path("alice"), good, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("alice"); err != nil {
		t.Fatal(err)
	}
}

func TestReplaceDelete(t *testing.T) {
	s := open(t)
	s.now = func() time.Time { return time.Unix(1_796_054_400, 5) }
	old, err := s.Generate(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	_, newPriv, _ := ed25519.GenerateKey(nil)
	if _, err := s.Replace(Key{Name: "bob", Kind: KindWallet, BankID: "icbc", WalletID: "bob", Private: newPriv}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Replace of a missing key: %v", err)
	}
	backup, err := s.Replace(Key{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice", Private: newPriv})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("alice")
	if err != nil || !got.Private.Equal(newPriv) {
		t.Fatalf("after Replace: %v", err)
	}
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := decode(backup, "alice", raw)
	if err != nil || !bk.Private.Equal(old.Private) {
		t.Fatalf("backup %s does not hold the old key: %v", backup, err)
	}
	if m := mode(t, backup); checkPerms && m != 0o600 {
		t.Errorf("backup mode %04o", m)
	}
	keys, err := s.List()
	if err != nil || len(keys) != 1 {
		t.Fatalf("List: backups must not be listed: %d, %v", len(keys), err)
	}
	if err := s.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}
	noTemps(t, s)
}

func TestLookups(t *testing.T) {
	s := open(t)
	for _, k := range []Key{
		{Name: "alice", Kind: KindWallet, BankID: "icbc", WalletID: "alice"},
		{Name: "shop", Kind: KindWallet, BankID: "boc", WalletID: "jd.shop"},
		{Name: "shop2", Kind: KindWallet, BankID: "boc", WalletID: "dup"},
		{Name: "shop3", Kind: KindWallet, BankID: "boc", WalletID: "dup"},
	} {
		if _, err := s.Generate(k); err != nil {
			t.Fatal(err)
		}
	}
	// A stray temporary file (a crash mid-write) and foreign files are
	// ignored.
	_ = os.WriteFile(filepath.Join(s.Dir(), ".tmp-bob-123"), []byte("x"), 0o600)
	_ = os.WriteFile(filepath.Join(s.Dir(), "README"), []byte("x"), 0o644)
	_ = os.WriteFile(filepath.Join(s.Dir(), "UPPER.key"), []byte("x"), 0o644)
	keys, err := s.List()
	if err != nil || len(keys) != 4 || keys[0].Name != "alice" || keys[3].Name != "shop3" {
		t.Fatalf("List: %v, %v", keys, err)
	}
	if k, err := s.Wallet("jd.shop"); err != nil || k.Name != "shop" {
		t.Errorf("Wallet(jd.shop): %v, %v", k, err)
	}
	if _, err := s.Wallet("dup"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "shop2, shop3") {
		t.Errorf("Wallet(dup): %v", err)
	}
	if _, err := s.Wallet("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wallet(nobody): %v", err)
	}
}
