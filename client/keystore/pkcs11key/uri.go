// Package pkcs11key keeps Ed25519 keys in a PKCS#11 token (an HSM, or
// SoftHSM2 in tests) and signs with them through CKM_EDDSA: the central
// bank's, a bank's or a regulator's operator key, and a node's identity key,
// never leave the token. Keys are named by RFC 7512 pkcs11: URIs, e.g.
//
//	pkcs11:token=dcep;object=pboc?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/dcep/pin
//
// accepted wherever a key is configured (config.toml node_key, dcep --key).
// The library is github.com/miekg/pkcs11 (cgo): ThalesGroup/crypto11
// v1.6.2 has RSA, ECDSA and DSA but no Ed25519. A binary built without cgo
// (the static container image) has no PKCS#11 and says so (ErrUnavailable).
package pkcs11key

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Scheme prefixes every PKCS#11 URI.
const Scheme = "pkcs11:"

// MaxURIBytes bounds a URI from config or the command line.
const MaxURIBytes = 4096

var (
	// ErrURI: the pkcs11: URI is malformed or lacks what is needed.
	ErrURI = errors.New("invalid pkcs11 URI")
	// ErrUnavailable: this binary was built without cgo, so without PKCS#11.
	ErrUnavailable = errors.New("PKCS#11 is not available in this build (built without cgo)")
	// ErrToken: no token matches the URI, or logging in failed.
	ErrToken = errors.New("PKCS#11 token")
	// ErrKey: no Ed25519 key in the token matches the URI, or it does not
	// sign as its public key says.
	ErrKey = errors.New("PKCS#11 key")
)

// IsURI says whether s names a key in a token rather than a file.
func IsURI(s string) bool { return strings.HasPrefix(s, Scheme) }

// URI is the part of an RFC 7512 URI that names a key and how to reach it.
type URI struct {
	Token  string // path attribute "token": the token label
	Serial string // "serial": the token serial number
	Object string // "object": the key's CKA_LABEL
	ID     []byte // "id": the key's CKA_ID
	Module string // query "module-path": the PKCS#11 library
	PIN    string // query "pin-value", or the contents of "pin-source"
}

// ParseURI parses a pkcs11: URI. It needs module-path, a token (label or
// serial) and the key (object or id); the PIN comes from pin-value or from
// the file pin-source names (RFC 7512 §2.3), whose trailing newline is
// dropped. Unknown attributes are refused, except vendor ones (x-...).
func ParseURI(s string) (*URI, error) {
	if len(s) > MaxURIBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrURI, len(s), MaxURIBytes)
	}
	if !IsURI(s) {
		return nil, fmt.Errorf("%w: %q does not start with %s", ErrURI, s, Scheme)
	}
	path, query, _ := strings.Cut(strings.TrimPrefix(s, Scheme), "?")
	u := &URI{}
	for _, attr := range splitNonEmpty(path, ";") {
		k, v, err := attribute(attr)
		if err != nil {
			return nil, err
		}
		switch k {
		case "token":
			u.Token = v
		case "serial":
			u.Serial = v
		case "object":
			u.Object = v
		case "id":
			u.ID = []byte(v)
		case "type":
			if v != "private" && v != "public" {
				return nil, fmt.Errorf("%w: type=%s: want private", ErrURI, v)
			}
		case "manufacturer", "model", "library-manufacturer", "library-description", "library-version", "slot-id", "slot-description", "slot-manufacturer":
			// Identify the token or library further; the token label or
			// serial is what this package matches on.
		default:
			if !strings.HasPrefix(k, "x-") {
				return nil, fmt.Errorf("%w: unknown path attribute %q", ErrURI, k)
			}
		}
	}
	pinSource := ""
	for _, attr := range splitNonEmpty(query, "&") {
		k, v, err := attribute(attr)
		if err != nil {
			return nil, err
		}
		switch k {
		case "module-path":
			u.Module = v
		case "pin-value":
			u.PIN = v
		case "pin-source":
			pinSource = strings.TrimPrefix(v, "file:")
		case "module-name":
			return nil, fmt.Errorf("%w: module-name: give module-path, the library's full path", ErrURI)
		default:
			if !strings.HasPrefix(k, "x-") {
				return nil, fmt.Errorf("%w: unknown query attribute %q", ErrURI, k)
			}
		}
	}
	if pinSource != "" {
		b, err := os.ReadFile(pinSource)
		if err != nil {
			return nil, fmt.Errorf("%w: pin-source: %w", ErrURI, err)
		}
		u.PIN = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case u.Module == "":
		return nil, fmt.Errorf("%w: module-path is required (the token's PKCS#11 library)", ErrURI)
	case u.Token == "" && u.Serial == "":
		return nil, fmt.Errorf("%w: token or serial is required", ErrURI)
	case u.Object == "" && len(u.ID) == 0:
		return nil, fmt.Errorf("%w: object or id is required (the key)", ErrURI)
	}
	return u, nil
}

// String is the URI without its PIN, for logs and errors.
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString(Scheme)
	sep := ""
	add := func(k, v string) {
		if v != "" {
			b.WriteString(sep + k + "=" + url.PathEscape(v))
			sep = ";"
		}
	}
	add("token", u.Token)
	add("serial", u.Serial)
	add("object", u.Object)
	add("id", string(u.ID))
	b.WriteString("?module-path=" + url.PathEscape(u.Module))
	return b.String()
}

func splitNonEmpty(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func attribute(attr string) (string, string, error) {
	k, raw, ok := strings.Cut(attr, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%w: %q is not name=value", ErrURI, attr)
	}
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %w", ErrURI, k, err)
	}
	return k, v, nil
}
