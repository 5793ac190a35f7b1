// Package state is the ledger: the deterministic UTXO state machine of SPEC
// §1–§2 on Pebble. Every bank node and regulator node runs it on the same log
// and ends in the same state. See DESIGN.md.
package state

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// Logger receives Pebble's and the store's messages; default slog.Default().
	Logger *slog.Logger
	// CacheBytes is Pebble's block cache; default 512 MiB. It must hold
	// the filter and index blocks and the hot outputs and wallets: at
	// 64 MiB a 3-node cluster under load read filter blocks from disk on
	// most input lookups and ran at 60% of the throughput (PERFORMANCE.md).
	CacheBytes int64
	// MemTableBytes is the size of Pebble's memtables; default 64 MiB.
	MemTableBytes int64
	// MaxLedgerVersion is the highest ledger version this node runs
	// (default LedgerVersion). A block at or after the index where the
	// network activates a higher one is refused with ErrLedgerVersion.
	// Tests of rolling upgrades raise it to stand for a newer build.
	MaxLedgerVersion uint32
	// VerifyWorkers is how many goroutines verify signatures; default
	// GOMAXPROCS.
	VerifyWorkers int
	// OnCorrupt is called once, on its own goroutine, when a read or a
	// background compaction finds a damaged ledger file (integrity.go):
	// the node must stop. Damage present at Open is Open's error.
	OnCorrupt func(error)
	// NoSync commits Apply batches without fsync, and Pebble writes them to
	// the OS asynchronously: a crash, even of the process alone (kill -9),
	// may lose the last batches, which the caller must then re-apply from a
	// durable log. Nodes do not set it (they must never re-apply what the
	// ledger acknowledged); it exists to measure what fsync costs.
	NoSync bool
}

// Store is one node's ledger state. Apply, InitGenesis and Restore must be
// called by one goroutine at a time (the consensus FSM); queries may run
// concurrently with them from any goroutine.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	// mu guards db against Restore swapping it out and Close closing it.
	// Queries and Apply hold it shared; Restore and Close hold it exclusively.
	mu sync.RWMutex
	db *pebble.DB

	// Set once genesis is known; fixed for the life of the Store.
	genesis     *statepb.Genesis
	genesisHash [32]byte
	tiers       tierTable

	meta atomic.Pointer[statepb.Meta]
	// content is the committed content hash (meta's content_hash, decoded),
	// which the next Apply starts from; only the applying goroutine uses it.
	content ltHash
	// wallets and outputs cache committed records for Apply (apply.go).
	wallets walletCache
	outputs outputCache
	// membership counts committed membership changes, so consensus can see
	// cheaply that the allowlist must follow.
	membership atomic.Uint64
	// offline is the offline-payment verification context (offline.go).
	offline offlineNet
	// precheck batches Precheck's signature verification; verified
	// remembers what it verified, for Apply (precheck.go).
	precheck precheckBatcher
	verified verifiedCache
	sigStats sigStats
}

// Open opens (creating if needed) the store in dir, which the store owns.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 512 << 20
	}
	if opts.MemTableBytes <= 0 {
		opts.MemTableBytes = 64 << 20
	}
	if opts.VerifyWorkers <= 0 {
		opts.VerifyWorkers = runtime.GOMAXPROCS(0)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger.With("component", "state")}
	if err := recoverRestore(dir); err != nil {
		return nil, err
	}
	db, err := s.openDB(dbDir(dir))
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.loadMeta(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func dbDir(dir string) string { return filepath.Join(dir, "db") }

func (s *Store) openDB(path string) (*pebble.DB, error) {
	cache := pebble.NewCache(s.opts.CacheBytes)
	defer cache.Unref()
	opts := s.pebbleOptions()
	opts.Cache = cache
	db, err := pebble.Open(path, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble at %s: %w", path, err)
	}
	// A damaged table is refused now, not met by a read later.
	opts.EnsureDefaults()
	if err := s.checkTables(db, path, opts.MakeReaderOptions()); err != nil {
		return nil, err
	}
	return db, nil
}

// pebbleOptions are the ledger's Pebble options, without a cache.
func (s *Store) pebbleOptions() *pebble.Options {
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(s.opts.MemTableBytes),
		Logger:             pebbleLogger{s.log},
		EventListener:      s.eventListener(),
	}
	// Bloom filters: most of Apply's lookups of transaction ids (the
	// duplicate check) miss, and without filters a miss reads an index and
	// a data block of every table it might be in.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return opts
}

// loadMeta reads genesis and meta into memory. A store without genesis is
// valid (InitGenesis or Restore fills it).
func (s *Store) loadMeta() error {
	var g statepb.Genesis
	found, err := getProto(s.db, keyGenesis, &g)
	if err != nil || !found {
		return err
	}
	var m statepb.Meta
	if found, err := getProto(s.db, keyMeta, &m); err != nil {
		return err
	} else if !found {
		return fmt.Errorf("%w: genesis without meta", ErrInvariant)
	}
	return s.setGenesis(&g, &m)
}

func (s *Store) setGenesis(g *statepb.Genesis, m *statepb.Meta) error {
	h, err := GenesisHash(g)
	if err != nil {
		return err
	}
	if s.genesis != nil && h != s.genesisHash {
		return fmt.Errorf("%w: store has %x, got %x", ErrGenesisMismatch, s.genesisHash[:8], h[:8])
	}
	content, ok := ltFromBytes(m.GetContentHash())
	if !ok {
		// A store written before the content hash existed: compute it
		// once from the whole state.
		var err error
		if content, err = scanContent(s.db); err != nil {
			return err
		}
		s.log.Warn("state had no content hash; computed it from a full scan")
	}
	s.genesis, s.genesisHash, s.tiers = g, h, newTierTable(g)
	s.content = content
	s.meta.Store(m)
	return nil
}

// InitGenesis writes genesis into an empty store: banks, their reserve and
// guarantee wallets, the membership, zero supply. On a store that already
// has this genesis it does nothing; on one with another genesis it fails
// with ErrGenesisMismatch. The commit is fsynced.
func (s *Store) InitGenesis(g *statepb.Genesis) error {
	if err := ValidateGenesis(g); err != nil {
		return err
	}
	h, err := GenesisHash(g)
	if err != nil {
		return err
	}
	if s.genesis != nil {
		if h != s.genesisHash {
			return fmt.Errorf("%w: store has %x, config has %x", ErrGenesisMismatch, s.genesisHash[:8], h[:8])
		}
		return nil
	}
	recs, err := genesisRecords(g)
	if err != nil {
		return err
	}
	content := contentOf(recs)
	meta := &statepb.Meta{StateHash: h[:], GenesisHash: h[:], LedgerTimeMs: g.GetGenesisTimeMs(), ContentHash: content.bytes()}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, r := range recs {
		if err := b.Set(r.key, r.value, nil); err != nil {
			return err
		}
	}
	if err := setProto(b, keyMeta, meta); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit genesis: %w", err)
	}
	return s.setGenesis(g, meta)
}

// record is one key and its value.
type record struct{ key, value []byte }

// genesisRecords are the records a genesis-only state holds, meta aside:
// genesis, zero supply, banks, their reserve and guarantee wallets, the
// membership.
func genesisRecords(g *statepb.Genesis) ([]record, error) {
	var out []record
	var err error
	w := func(k []byte, m proto.Message) {
		if err != nil {
			return
		}
		var v []byte
		if v, err = deterministic.Marshal(m); err != nil {
			err = fmt.Errorf("marshal %q: %w", k, err)
			return
		}
		out = append(out, record{k, v})
	}
	w(keyGenesis, g)
	w(keySupply, &statepb.Supply{})
	for _, bank := range g.GetBanks() {
		w(keyBank(bank.GetId()), &statepb.BankRecord{Bank: bank})
		for _, wr := range genesisWallets(g, bank) {
			w(keyWallet(wr.GetId()), wr)
		}
	}
	for _, n := range g.GetNodes() {
		w(keyMember(n.GetName()), n)
	}
	return out, err
}

func genesisWallets(g *statepb.Genesis, bank *statepb.Bank) []*statepb.WalletRecord {
	mk := func(id string, kind statepb.WalletKind) *statepb.WalletRecord {
		return &statepb.WalletRecord{
			Id: id, BankId: bank.GetId(), PublicKey: bank.GetPublicKey(), Kind: kind, Tier: statepb.MinTier,
			Status: statepb.WalletStatus_WALLET_STATUS_ACTIVE, CreatedMs: g.GetGenesisTimeMs(),
		}
	}
	out := []*statepb.WalletRecord{mk(bank.GetReserveWalletId(), statepb.WalletKind_WALLET_KIND_BANK_RESERVE)}
	if id := bank.GetGuaranteeWalletId(); id != "" {
		out = append(out, mk(id, statepb.WalletKind_WALLET_KIND_BANK_GUARANTEE))
	}
	return out
}

// Genesis returns the store's genesis, or nil before InitGenesis.
func (s *Store) Genesis() *statepb.Genesis { return s.genesis }

// GenesisHash returns the hash of the store's genesis.
func (s *Store) GenesisHash() [32]byte { return s.genesisHash }

// Signer returns a Signer for this store's network.
func (s *Store) Signer() Signer {
	return Signer{ChainID: s.genesis.GetChainId(), GenesisHash: s.genesisHash}
}

// Meta returns the last committed position: applied index and term, state
// hash, ledger time. The caller must not modify it.
func (s *Store) Meta() *statepb.Meta {
	if m := s.meta.Load(); m != nil {
		return m
	}
	return &statepb.Meta{}
}

// MembershipVersion changes whenever a committed transaction changes the
// network membership.
func (s *Store) MembershipVersion() uint64 { return s.membership.Load() }

// Dir is the directory the store owns.
func (s *Store) Dir() string { return s.dir }

// Close flushes and closes the store. Further calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	s.precheck.close()
	err := s.db.Close()
	s.db = nil
	return err
}

// getter is what *pebble.DB, *pebble.Batch and *pebble.Snapshot offer.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func getProto(r getter, key []byte, m proto.Message) (bool, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get %q: %w", key, err)
	}
	defer c.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		return false, fmt.Errorf("%w: decode %q: %v", ErrInvariant, key, err)
	}
	return true, nil
}

func setProto(b *pebble.Batch, key []byte, m proto.Message) error {
	v, err := deterministic.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal %q: %w", key, err)
	}
	return b.Set(key, v, nil)
}

// pebbleLogger sends Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "src", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "src", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "src", "pebble")
	panic(fmt.Sprintf("pebble: "+format, args...))
}
