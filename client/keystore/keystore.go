// Package keystore keeps named Ed25519 keys in a directory, one file per key,
// the way ssh keeps ~/.ssh: the directory is mode 0700, every key file 0600,
// and a key file that group or others may access is refused.
//
// # File format
//
// A key named NAME lives in DIR/NAME.key, a JSON object:
//
//	{
//	  "format": "dcep-key/v1",
//	  "name": "alice",
//	  "kind": "wallet",
//	  "bank_id": "icbc",
//	  "wallet_id": "alice",
//	  "public_key": "<64 hex digits: the Ed25519 public key>",
//	  "seed": "<64 hex digits: the Ed25519 seed (RFC 8032 private key)>",
//	  "created": "2026-12-01T00:00:00Z"
//	}
//
// kind is one of "central-bank", "bank", "wallet", "node", "device".
// bank_id is set for bank and wallet keys, wallet_id for wallet keys. The
// public key is derived from the seed; a file where the two disagree is
// refused as corrupt. Names use the ledger's id alphabet (a-z 0-9 . _ -,
// starting with a letter or digit; statepb.ValidateID), so a name is always a
// safe file name.
//
// # Writes
//
// Every write goes to a temporary file in DIR (".tmp-*", mode 0600), is
// fsynced, and is then put in place atomically: new keys by hard link, which
// fails if the name exists (so two processes can never both create "alice"),
// replacements by rename. The directory is fsynced after each change. A crash
// leaves either the old file or the new one, plus at worst a stray ".tmp-*"
// file, which List ignores.
//
// # Encryption at rest
//
// A key file may instead be that JSON encrypted with age
// (https://age-encryption.org/v1), to a passphrase (scrypt) or to an age
// recipient ("age1…"): Key.Seal on Import, Generate or Replace, or
// Store.Encrypt for an existing key. Such a file is read with the Store's
// Unlock (EnvUnlock by default: $DCEP_KEY_PASSPHRASE, and the identity file
// $DCEP_KEY_IDENTITY names). A file that cannot be opened is ErrLocked (no
// passphrase or identity given), ErrWrongSecret (they do not open it) or
// ErrCorrupt (truncated or altered), each naming the file. Replace keeps a
// replaced key's encryption.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/dcep/dcep/state/statepb"
)

// Format is the value of the "format" field of key files this package
// writes and reads.
const Format = "dcep-key/v1"

// fileSuffix ends every key file name.
const fileSuffix = ".key"

// maxFileBytes bounds a key file; anything larger is not a key file.
const maxFileBytes = 64 << 10

var (
	// ErrNotFound: no key has that name (or matches the lookup).
	ErrNotFound = errors.New("key not found")
	// ErrExists: a key with that name already exists; keys are never
	// overwritten except by Replace.
	ErrExists = errors.New("key already exists")
	// ErrInvalid: a name, kind, bank id, wallet id or private key is not
	// acceptable.
	ErrInvalid = errors.New("invalid key")
	// ErrPermissions: a key file or the key directory may be accessed by
	// group or others.
	ErrPermissions = errors.New("insecure permissions")
	// ErrCorrupt: a key file cannot be read as a key.
	ErrCorrupt = errors.New("corrupt key file")
	// ErrAmbiguous: more than one key matches a lookup.
	ErrAmbiguous = errors.New("more than one key matches")
)

// Kind is what a key is for.
type Kind string

// Kinds of keys.
const (
	// KindCentralBank is the issuer key (signs issue, return, membership).
	KindCentralBank Kind = "central-bank"
	// KindBank is an operating bank's key (wallet management, exchange,
	// return; owns the bank's reserve).
	KindBank Kind = "bank"
	// KindWallet is a wallet holder's key (transfer, redeem).
	KindWallet Kind = "wallet"
	// KindNode is a node's libp2p identity key.
	KindNode Kind = "node"
	// KindDevice is an offline payment device's key.
	KindDevice Kind = "device"
	// KindRegulator is a regulator's operator key (statepb.Node
	// operator_key): its staff sign in to the client API with it. The
	// key's name is the regulator's operator name.
	KindRegulator Kind = "regulator"
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case KindCentralBank, KindBank, KindWallet, KindNode, KindDevice, KindRegulator:
		return true
	}
	return false
}

// Key is one named key and what it is for.
type Key struct {
	// Name is the key's name in the store.
	Name string
	// Kind is what the key is for.
	Kind Kind
	// BankID is the bank of a bank or wallet key.
	BankID string
	// WalletID is the ledger wallet id of a wallet key.
	WalletID string
	// Private is the Ed25519 private key; nil for a key in a token.
	Private ed25519.PrivateKey
	// Token, set instead of Private, is a key that lives in a hardware
	// token (client/keystore/pkcs11key: dcep --key pkcs11:...). It is never
	// written to the store.
	Token crypto.Signer
	// Created is when the key was stored (UTC, whole seconds).
	Created time.Time
	// Encrypted is set by Get and List for a key whose file is
	// age-encrypted.
	Encrypted bool
	// Seal, when set, encrypts the file Import, Generate or Replace writes
	// to this age recipient (PassphraseRecipient, ParseRecipient). Get
	// sets it, for an encrypted file, to the recipient that encrypts a
	// replacement the same way (nil if what opened it cannot tell).
	Seal age.Recipient
}

// Public returns the key's public half.
func (k *Key) Public() ed25519.PublicKey {
	if k.Token != nil {
		pub, _ := k.Token.Public().(ed25519.PublicKey)
		return pub
	}
	return k.Private.Public().(ed25519.PublicKey)
}

// Signer is what signs with the key: the token's signer, or Private.
func (k *Key) Signer() crypto.Signer {
	if k.Token != nil {
		return k.Token
	}
	return k.Private
}

// Role describes the key for people: "central-bank", "bank:icbc",
// "wallet:alice@icbc", "regulator:regulator-1", "node", "device".
func (k *Key) Role() string {
	switch k.Kind {
	case KindBank:
		return "bank:" + k.BankID
	case KindWallet:
		return "wallet:" + k.WalletID + "@" + k.BankID
	case KindRegulator:
		return "regulator:" + k.Name
	}
	return string(k.Kind)
}

// Validate checks the name, kind, ids and private key.
func (k *Key) Validate() error {
	if err := ValidateName(k.Name); err != nil {
		return err
	}
	if !k.Kind.Valid() {
		return fmt.Errorf("%w: key %q: kind %q (want one of central-bank, bank, wallet, node, device, regulator)", ErrInvalid, k.Name, k.Kind)
	}
	if k.Kind == KindBank || k.Kind == KindWallet {
		if err := statepb.ValidateID("bank_id", k.BankID); err != nil {
			return fmt.Errorf("%w: key %q: %s", ErrInvalid, k.Name, err.(*statepb.Error).Message)
		}
	} else if k.BankID != "" {
		return fmt.Errorf("%w: key %q: a %s key has no bank id", ErrInvalid, k.Name, k.Kind)
	}
	if k.Kind == KindWallet {
		if err := statepb.ValidateID("wallet_id", k.WalletID); err != nil {
			return fmt.Errorf("%w: key %q: %s", ErrInvalid, k.Name, err.(*statepb.Error).Message)
		}
	} else if k.WalletID != "" {
		return fmt.Errorf("%w: key %q: a %s key has no wallet id", ErrInvalid, k.Name, k.Kind)
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: key %q: private key is %d bytes (want %d)", ErrInvalid, k.Name, len(k.Private), ed25519.PrivateKeySize)
	}
	if !ed25519.NewKeyFromSeed(k.Private.Seed()).Equal(k.Private) {
		return fmt.Errorf("%w: key %q: private key's public half does not match its seed", ErrInvalid, k.Name)
	}
	return nil
}

// ValidateName checks a key name: the ledger's id alphabet (a-z 0-9 . _ -,
// first a letter or digit, at most 64 bytes).
func ValidateName(name string) error {
	if err := statepb.ValidateID("key name", name); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, err.(*statepb.Error).Message)
	}
	return nil
}

// ParseSeed reads a private key given as its 32-byte Ed25519 seed in hex
// (64 digits, as in key files), for importing keys.
func ParseSeed(s string) (ed25519.PrivateKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed must be %d hex digits", ErrInvalid, 2*ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// Store is a directory of key files. Its methods are safe for concurrent
// use; creating a key is also safe against other processes.
type Store struct {
	dir string
	mu  sync.Mutex // serializes writes of this process
	// now is the clock for Created stamps and backup names (tests).
	now    func() time.Time
	unlock Unlock

	// cacheMu guards cache only, and is held for nothing else (never
	// while reading files or asking for a passphrase), so it nests inside
	// mu without ordering concerns.
	cacheMu sync.Mutex
	// cache holds encrypted files once opened, by path, with the bytes
	// they were opened from: a lookup that scans the store decrypts each
	// file (a second of scrypt) once per process, not once per scan.
	cache map[string]cached
}

type cached struct {
	data []byte
	key  Key
}

// SetUnlock sets how encrypted key files are opened (default EnvUnlock).
// Call it before using the store.
func (s *Store) SetUnlock(u Unlock) { s.unlock = u }

// Open opens the keystore in dir, creating it (mode 0700) if it does not
// exist. An existing directory that group or others may write is refused.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: keystore directory not set", ErrInvalid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("keystore: %s is not a directory", dir)
	}
	if checkPerms && fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%w: keystore directory %s is writable by group or others (mode %04o); run: chmod 700 %s", ErrPermissions, dir, fi.Mode().Perm(), dir)
	}
	return &Store{dir: dir, now: time.Now, unlock: EnvUnlock(), cache: map[string]cached{}}, nil
}

// checkPerms: Unix permission bits mean nothing on Windows.
var checkPerms = runtime.GOOS != "windows"

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path is the file a key of that name is stored in.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name+fileSuffix) }

// Generate creates a new random key with k's name, kind and ids (k.Private
// must be nil), stores it and returns it. It refuses an existing name.
func (s *Store) Generate(k Key) (*Key, error) {
	if k.Private != nil {
		return nil, fmt.Errorf("%w: key %q: Generate makes the private key; use Import for an existing one", ErrInvalid, k.Name)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	k.Private = priv
	return s.Import(k)
}

// Import stores an existing key and returns the stored copy. It refuses an
// existing name.
func (s *Store) Import(k Key) (*Key, error) {
	k.Created = s.now().UTC().Truncate(time.Second)
	if err := k.Validate(); err != nil {
		return nil, err
	}
	data, err := encodeSealed(&k)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(k.Name, data, false); err != nil {
		return nil, err
	}
	k.Encrypted = k.Seal != nil
	return &k, nil
}

// Replace overwrites the existing key of k's name (e.g. after a wallet key
// rotation). The old file is kept beside it as NAME.key.bak-UNIXNANO (mode
// 0600), whose path is returned, so a replaced key can always be recovered.
// A replaced encrypted key stays encrypted: to k.Seal if set, else the way
// the old file was (refused if that cannot be told).
func (s *Store) Replace(k Key) (backup string, err error) {
	k.Created = s.now().UTC().Truncate(time.Second)
	if err := k.Validate(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.load(k.Name)
	if err != nil {
		return "", err
	}
	if k.Seal == nil && old.Encrypted {
		if old.Seal == nil {
			return "", fmt.Errorf("%w: key %q: its file is encrypted to a recipient the identity that opened it does not name; set Seal", ErrInvalid, k.Name)
		}
		k.Seal = old.Seal
	}
	data, err := encodeSealed(&k)
	if err != nil {
		return "", err
	}
	backup = s.Path(k.Name) + ".bak-" + strconv.FormatInt(s.now().UnixNano(), 10)
	if err := os.Link(s.Path(k.Name), backup); err != nil {
		return "", fmt.Errorf("keystore: back up %s: %w", k.Name, err)
	}
	if err := s.write(k.Name, data, true); err != nil {
		return "", err
	}
	return backup, nil
}

// Encrypt rewrites the plain key file of name encrypted to r, in place and
// without a backup (a backup would keep the plaintext). Backups Replace
// made earlier (NAME.key.bak-*) stay as they were: it returns their paths
// so the caller can say so.
func (s *Store) Encrypt(name string, r age.Recipient) (plainBackups []string, err error) {
	if r == nil {
		return nil, fmt.Errorf("%w: key %q: no recipient to encrypt to", ErrInvalid, name)
	}
	return s.rewrite(name, r)
}

// Decrypt rewrites the encrypted key file of name as a plain one, in place.
func (s *Store) Decrypt(name string) error {
	_, err := s.rewrite(name, nil)
	return err
}

func (s *Store) rewrite(name string, r age.Recipient) ([]string, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.load(name)
	if err != nil {
		return nil, err
	}
	switch {
	case r != nil && k.Encrypted:
		return nil, fmt.Errorf("%w: key %q is already encrypted (%s); decrypt it first to change how", ErrInvalid, name, s.Path(name))
	case r == nil && !k.Encrypted:
		return nil, fmt.Errorf("%w: key %q is not encrypted (%s)", ErrInvalid, name, s.Path(name))
	}
	k.Seal = r
	data, err := encodeSealed(k)
	if err != nil {
		return nil, err
	}
	if err := s.write(name, data, true); err != nil {
		return nil, err
	}
	backups, _ := filepath.Glob(s.Path(name) + ".bak-*")
	return backups, nil
}

// Get loads the key of that name.
func (s *Store) Get(name string) (*Key, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	return s.load(name)
}

// Delete removes the key of that name.
func (s *Store) Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.Path(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %q in %s", ErrNotFound, name, s.dir)
		}
		return fmt.Errorf("keystore: %w", err)
	}
	return syncDir(s.dir)
}

// List loads every key in name order. Files that fail to load (bad
// permissions, corrupt) are left out and reported together in the error,
// which is then non-nil alongside the keys that did load.
func (s *Store) List() ([]*Key, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	var keys []*Key
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), fileSuffix)
		if !ok || strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		if ValidateName(name) != nil {
			continue // not a file this package wrote
		}
		k, err := s.load(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, errors.Join(errs...)
}

// Find returns the one key for which match is true. Keys that fail to load
// are skipped unless no key matches, in which case their errors are
// returned with ErrNotFound.
func (s *Store) Find(what string, match func(*Key) bool) (*Key, error) {
	keys, lerr := s.List()
	var found []*Key
	for _, k := range keys {
		if match(k) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if locked := lockedErrors(lerr); locked != nil {
			// The key may be in a file that could not be opened: say
			// that, not that there is none.
			return nil, fmt.Errorf("no readable key for %s in %s: %w", what, s.dir, locked)
		}
		err := fmt.Errorf("%w: no key for %s in %s", ErrNotFound, what, s.dir)
		if lerr != nil {
			err = errors.Join(err, lerr)
		}
		return nil, err
	}
	names := make([]string, len(found))
	for i, k := range found {
		names[i] = k.Name
	}
	return nil, fmt.Errorf("%w: %s has keys %s", ErrAmbiguous, what, strings.Join(names, ", "))
}

// lockedErrors is the part of List's error about encrypted files that
// could not be opened (ErrLocked, ErrWrongSecret), nil if none.
func lockedErrors(err error) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var locked []error
	for _, e := range errs {
		if errors.Is(e, ErrLocked) || errors.Is(e, ErrWrongSecret) {
			locked = append(locked, e)
		}
	}
	return errors.Join(locked...)
}

// Wallet returns the key of the wallet with that ledger id.
func (s *Store) Wallet(walletID string) (*Key, error) {
	return s.Find("wallet "+walletID, func(k *Key) bool { return k.Kind == KindWallet && k.WalletID == walletID })
}

// Bank returns the key of the bank with that id.
func (s *Store) Bank(bankID string) (*Key, error) {
	return s.Find("bank "+bankID, func(k *Key) bool { return k.Kind == KindBank && k.BankID == bankID })
}

// CentralBank returns the central bank's key.
func (s *Store) CentralBank() (*Key, error) {
	return s.Find("the central bank", func(k *Key) bool { return k.Kind == KindCentralBank })
}

// file is the JSON form of a key file.
type file struct {
	Format    string    `json:"format"`
	Name      string    `json:"name"`
	Kind      Kind      `json:"kind"`
	BankID    string    `json:"bank_id,omitempty"`
	WalletID  string    `json:"wallet_id,omitempty"`
	PublicKey string    `json:"public_key"`
	Seed      string    `json:"seed"`
	Created   time.Time `json:"created"`
}

// encodeSealed is encode, encrypted to k.Seal when set.
func encodeSealed(k *Key) ([]byte, error) {
	data, err := encode(k)
	if err != nil || k.Seal == nil {
		return data, err
	}
	return seal(data, k.Seal)
}

func encode(k *Key) ([]byte, error) {
	b, err := json.MarshalIndent(file{
		Format: Format, Name: k.Name, Kind: k.Kind, BankID: k.BankID, WalletID: k.WalletID,
		PublicKey: hex.EncodeToString(k.Public()), Seed: hex.EncodeToString(k.Private.Seed()),
		Created: k.Created,
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode key %q: %w", k.Name, err)
	}
	return append(b, '\n'), nil
}

// ReadFileUnchecked reads the key file at path without checking its
// permissions or its directory's: for a file whose modes another program
// sets and this one cannot change, a Kubernetes Secret volume (files root's,
// group fsGroup, mode 0440, in a world-writable tmpfs). Its size, format
// and contents are checked as for any key file, and an encrypted one is
// opened with EnvUnlock. The key's name is the file's base name without
// .key.
func ReadFileUnchecked(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, path, maxFileBytes)
	}
	return decodeFile(path, strings.TrimSuffix(filepath.Base(path), fileSuffix), data, EnvUnlock())
}

// load reads and checks one key file.
func (s *Store) load(name string) (*Key, error) {
	path := s.Path(name)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q in %s", ErrNotFound, name, s.dir)
		}
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	if checkPerms && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s is accessible by group or others (mode %04o); run: chmod 600 %s", ErrPermissions, path, fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, path, maxFileBytes)
	}
	if !isEncrypted(data) {
		return decode(path, name, data)
	}
	s.cacheMu.Lock()
	c, ok := s.cache[path]
	s.cacheMu.Unlock()
	if ok && bytes.Equal(c.data, data) {
		k := c.key
		return &k, nil
	}
	k, err := decodeFile(path, name, data, s.unlock)
	if err != nil {
		return nil, err
	}
	s.cacheMu.Lock()
	s.cache[path] = cached{data: data, key: *k}
	s.cacheMu.Unlock()
	return k, nil
}

// decodeFile reads a key file's bytes, plain or encrypted.
func decodeFile(path, name string, data []byte, u Unlock) (*Key, error) {
	if !isEncrypted(data) {
		return decode(path, name, data)
	}
	plain, rcpt, err := openSealed(path, data, u)
	if err != nil {
		return nil, err
	}
	if isEncrypted(plain) {
		return nil, fmt.Errorf("%w: %s: encrypted twice", ErrCorrupt, path)
	}
	k, err := decode(path, name, plain)
	if err != nil {
		return nil, err
	}
	k.Encrypted, k.Seal = true, rcpt
	return k, nil
}

func decode(path, name string, data []byte) (*Key, error) {
	var kf file
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if kf.Format != Format {
		return nil, fmt.Errorf("%w: %s: format %q (this program reads %q)", ErrCorrupt, path, kf.Format, Format)
	}
	if kf.Name != name {
		return nil, fmt.Errorf("%w: %s: holds key %q, not %q (was it renamed?)", ErrCorrupt, path, kf.Name, name)
	}
	priv, err := ParseSeed(kf.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: seed: %v", ErrCorrupt, path, err)
	}
	pub, err := hex.DecodeString(kf.PublicKey)
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pub)) {
		return nil, fmt.Errorf("%w: %s: public_key does not match the seed", ErrCorrupt, path)
	}
	k := &Key{Name: kf.Name, Kind: kf.Kind, BankID: kf.BankID, WalletID: kf.WalletID, Private: priv, Created: kf.Created}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return k, nil
}

// write puts data in place as the file of name: by hard link (refusing an
// existing name) or, with replace, by rename. Callers hold s.mu.
func (s *Store) write(name string, data []byte, replace bool) (err error) {
	f, err := os.CreateTemp(s.dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && checkPerms {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keystore: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keystore: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore: close %s: %w", tmp, err)
	}
	final := s.Path(name)
	if replace {
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("keystore: %w", err)
		}
		return syncDir(s.dir)
	}
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %q in %s (refusing to overwrite)", ErrExists, name, s.dir)
		}
		return fmt.Errorf("keystore: %w", err)
	}
	// The key is in place; the temporary name is only an extra link, and a
	// leftover one is ignored by List.
	_ = os.Remove(tmp)
	return syncDir(s.dir)
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keystore: fsync %s: %w", dir, err)
	}
	return nil
}
