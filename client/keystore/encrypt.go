package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Encrypted key files
//
// A key file may instead hold the same JSON encrypted with age
// (filippo.io/age, https://age-encryption.org/v1), ASCII-armored as this
// package writes it ("-----BEGIN AGE ENCRYPTED FILE-----") or binary as the
// age tool writes it by default: to a passphrase (an scrypt recipient) or to
// an age recipient ("age1…", whose identity file "AGE-SECRET-KEY-1…" opens
// it). The file name, modes and write rules are those of a plain file.
// Reading one needs the Store's Unlock: by default DCEP_KEY_PASSPHRASE and
// DCEP_KEY_IDENTITY (EnvUnlock).

// Errors of encrypted key files.
var (
	// ErrLocked: a key file is encrypted and no passphrase or identity
	// that could open it was given.
	ErrLocked = errors.New("encrypted key file is locked")
	// ErrWrongSecret: the passphrase or identity given does not open the
	// key file (or the file was altered where that cannot be told apart).
	ErrWrongSecret = errors.New("wrong passphrase or identity for encrypted key file")
)

// Environment variables of EnvUnlock.
const (
	// EnvPassphrase holds the passphrase of passphrase-encrypted key files.
	EnvPassphrase = "DCEP_KEY_PASSPHRASE"
	// EnvIdentity names an age identity file (age-keygen's output) whose
	// identities open key files encrypted to their recipients.
	EnvIdentity = "DCEP_KEY_IDENTITY"
)

// ScryptWorkFactor is the scrypt work factor (log2 N) of passphrase-encrypted
// files this package writes, and the largest it reads: a file asking for
// more work is refused as corrupt rather than spending more memory (2^18 ×
// 1 KiB = 256 MiB) and time (about a second) on it.
var ScryptWorkFactor = 18

// Unlock is how a Store opens encrypted key files. Either function may be
// nil; each is called only when a file needs it.
type Unlock struct {
	// Passphrase returns the passphrase for the passphrase-encrypted key
	// file at path. An error (or "") leaves the file locked.
	Passphrase func(path string) (string, error)
	// Identities returns the age identities to try on a key file encrypted
	// to recipients, and where they came from (for messages).
	Identities func() (ids []age.Identity, from string, err error)
}

// EnvUnlock is the default Unlock: the passphrase in $DCEP_KEY_PASSPHRASE,
// the identities in the file $DCEP_KEY_IDENTITY names.
func EnvUnlock() Unlock {
	return Unlock{
		Passphrase: func(string) (string, error) {
			if p := os.Getenv(EnvPassphrase); p != "" {
				return p, nil
			}
			return "", fmt.Errorf("$%s is not set", EnvPassphrase)
		},
		Identities: func() ([]age.Identity, string, error) {
			path := os.Getenv(EnvIdentity)
			if path == "" {
				return nil, "", fmt.Errorf("$%s is not set", EnvIdentity)
			}
			ids, err := ReadIdentityFile(path)
			return ids, path, err
		},
	}
}

// ReadIdentityFile reads an age identity file (lines "AGE-SECRET-KEY-1…",
// "#" comments).
func ReadIdentityFile(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %v", path, err)
	}
	return ids, nil
}

// PassphraseRecipient is the recipient that encrypts key files to a
// passphrase, at ScryptWorkFactor.
func PassphraseRecipient(passphrase string) (age.Recipient, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: passphrase: %v", ErrInvalid, err)
	}
	r.SetWorkFactor(ScryptWorkFactor)
	return r, nil
}

// ParseRecipient reads an age recipient ("age1…", or "age1pq1…").
func ParseRecipient(s string) (age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(strings.TrimSpace(s)))
	if err != nil || len(rs) != 1 {
		return nil, fmt.Errorf("%w: recipient %q: want one age public key (age1…)", ErrInvalid, s)
	}
	return rs[0], nil
}

// isEncrypted reports whether data is an age file (armored or binary).
func isEncrypted(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return bytes.HasPrefix(t, []byte(armor.Header)) || bytes.HasPrefix(data, []byte("age-encryption.org/"))
}

// seal encrypts a plain key file's bytes to r, armored.
func seal(plain []byte, r age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("keystore: encrypt: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("keystore: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("keystore: encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("keystore: encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// passphraseIdentity asks for the passphrase only when a file is
// passphrase-encrypted, and remembers it to re-encrypt a replacement.
type passphraseIdentity struct {
	path   string
	get    func(string) (string, error)
	pass   string
	locked error
}

func (p *passphraseIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	scrypt := false
	for _, s := range stanzas {
		scrypt = scrypt || s.Type == "scrypt"
	}
	if !scrypt {
		return nil, fmt.Errorf("%w: not passphrase-encrypted", age.ErrIncorrectIdentity)
	}
	if p.get == nil {
		p.locked = errors.New("no passphrase source")
		return nil, p.locked
	}
	pass, err := p.get(p.path)
	if err == nil && pass == "" {
		err = errors.New("empty passphrase")
	}
	if err != nil {
		p.locked = err
		return nil, err
	}
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		p.locked = err
		return nil, err
	}
	id.SetMaxWorkFactor(ScryptWorkFactor)
	p.pass = pass
	return id.Unwrap(stanzas)
}

// recordingIdentity remembers whether its identity opened the file.
type recordingIdentity struct {
	age.Identity
	ok bool
}

func (r *recordingIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	k, err := r.Identity.Unwrap(stanzas)
	r.ok = err == nil
	return k, err
}

// stanzaTypes is the recipient types of an age file's header ("scrypt",
// "X25519", …), for messages; nil if it has none readable.
func stanzaTypes(data []byte) []string {
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte("age-encryption.org/")) {
		src = armor.NewReader(src)
	}
	hdr, err := age.ExtractHeader(src)
	if err != nil {
		return nil
	}
	var types []string
	for _, line := range strings.Split(string(hdr), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "->" {
			types = append(types, f[1])
		}
	}
	return types
}

// openSealed decrypts an encrypted key file. It returns the plaintext and the
// recipient that encrypts a replacement the same way (nil if none can be
// derived from what opened it).
func openSealed(path string, data []byte, u Unlock) ([]byte, age.Recipient, error) {
	types := stanzaTypes(data)
	if types == nil {
		return nil, nil, fmt.Errorf("%w: %s: encrypted key file is truncated or altered (no readable age header)", ErrCorrupt, path)
	}
	pass := &passphraseIdentity{path: path, get: u.Passphrase}
	ids := []age.Identity{pass}
	var recs []*recordingIdentity
	var idErr error
	from := ""
	passphrase := len(types) == 1 && types[0] == "scrypt"
	if !passphrase {
		if u.Identities == nil {
			idErr = errors.New("no identity source")
		} else {
			var got []age.Identity
			got, from, idErr = u.Identities()
			for _, id := range got {
				r := &recordingIdentity{Identity: id}
				recs = append(recs, r)
				ids = append(ids, r)
			}
		}
		if len(recs) == 0 {
			return nil, nil, fmt.Errorf("%w: %s is encrypted to an age recipient (%s); give the identity file that opens it (--key-identity or $%s): %v",
				ErrLocked, path, strings.Join(types, ", "), EnvIdentity, idErr)
		}
	}
	var src io.Reader = bytes.NewReader(data)
	if !bytes.HasPrefix(data, []byte("age-encryption.org/")) {
		src = armor.NewReader(src)
	}
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		switch {
		case pass.locked != nil:
			return nil, nil, fmt.Errorf("%w: %s is passphrase-encrypted; set $%s (or run on a terminal to be asked): %v", ErrLocked, path, EnvPassphrase, pass.locked)
		case errors.As(err, &nm) && passphrase:
			return nil, nil, fmt.Errorf("%w: %s: wrong passphrase (or the file was altered)", ErrWrongSecret, path)
		case errors.As(err, &nm):
			return nil, nil, fmt.Errorf("%w: %s: no identity in %s opens it (it is encrypted to another recipient, or was altered)", ErrWrongSecret, path, from)
		}
		return nil, nil, fmt.Errorf("%w: %s: encrypted key file is truncated or altered: %v", ErrCorrupt, path, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: encrypted key file is truncated or altered: %v", ErrCorrupt, path, err)
	}
	if len(plain) > maxFileBytes {
		return nil, nil, fmt.Errorf("%w: %s decrypts to more than %d bytes", ErrCorrupt, path, maxFileBytes)
	}
	var rcpt age.Recipient
	switch {
	case pass.pass != "":
		rcpt, err = PassphraseRecipient(pass.pass)
		if err != nil {
			return nil, nil, err
		}
	default:
		for _, rec := range recs {
			if !rec.ok {
				continue
			}
			switch id := rec.Identity.(type) {
			case *age.X25519Identity:
				rcpt = id.Recipient()
			case *age.HybridIdentity:
				rcpt = id.Recipient()
			}
		}
	}
	return plain, rcpt, nil
}
