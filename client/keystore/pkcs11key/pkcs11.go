//go:build cgo

package pkcs11key

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// PKCS#11 v3.0 names miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards           = 0x00000040 // CKK_EC_EDWARDS
	ckmECEdwardsKeyPairGen = 0x00001055 // CKM_EC_EDWARDS_KEY_PAIR_GEN
	ckmEdDSA               = 0x00001057 // CKM_EDDSA
)

// ed25519Params is CKA_EC_PARAMS for Ed25519: the DER OID 1.3.101.112.
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// modules holds one initialized library per path: C_Initialize is
// process-wide, and tokens are shared by every key of the process.
var (
	modulesMu sync.Mutex
	modules   = map[string]*pkcs11.Ctx{}
)

func module(path string) (*pkcs11.Ctx, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[path]; m != nil {
		return m, nil
	}
	m := pkcs11.New(path)
	if m == nil {
		return nil, fmt.Errorf("%w: cannot load the PKCS#11 library %s", ErrToken, path)
	}
	if err := m.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return nil, fmt.Errorf("%w: C_Initialize %s: %w", ErrToken, path, err)
	}
	modules[path] = m
	return m, nil
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// Signer is an Ed25519 private key in a token: a crypto.Signer whose Sign
// runs CKM_EDDSA in the token. It is safe for concurrent use (one session,
// serialized: PKCS#11 sessions are not).
type Signer struct {
	uri     string
	ctx     *pkcs11.Ctx
	mu      sync.Mutex
	session pkcs11.SessionHandle
	key     pkcs11.ObjectHandle
	pub     ed25519.PublicKey
}

// Open logs in to the token the URI names and finds its Ed25519 key pair.
// Before returning it signs a probe and verifies it with the public key, so
// a key that does not sign as its public key says is refused at start, not
// at the first transaction.
func Open(rawURI string) (*Signer, error) {
	u, err := ParseURI(rawURI)
	if err != nil {
		return nil, err
	}
	s, err := openSession(u)
	if err != nil {
		return nil, err
	}
	if err := s.findKey(u); err != nil {
		s.Close()
		return nil, err
	}
	probe := []byte("dcep pkcs11 probe")
	sig, err := s.Sign(nil, probe, crypto.Hash(0))
	if err != nil || !ed25519.Verify(s.pub, probe, sig) {
		s.Close()
		return nil, fmt.Errorf("%w: %s does not sign as its public key says: %v", ErrKey, u, err)
	}
	return s, nil
}

func openSession(u *URI) (*Signer, error) {
	m, err := module(u.Module)
	if err != nil {
		return nil, err
	}
	slot, err := findSlot(m, u)
	if err != nil {
		return nil, err
	}
	sh, err := m.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Errorf("%w: C_OpenSession %s: %w", ErrToken, u, err)
	}
	if err := m.Login(sh, pkcs11.CKU_USER, u.PIN); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = m.CloseSession(sh)
		return nil, fmt.Errorf("%w: C_Login %s: %w", ErrToken, u, err)
	}
	return &Signer{uri: u.String(), ctx: m, session: sh}, nil
}

// findSlot finds the token. A file-backed token (SoftHSM2) that another
// process is updating at that moment can be missing from one listing, so a
// miss is retried a few times before it is an error.
func findSlot(m *pkcs11.Ctx, u *URI) (uint, error) {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		var slot uint
		if slot, err = findSlotOnce(m, u); err == nil {
			return slot, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, err
}

func findSlotOnce(m *pkcs11.Ctx, u *URI) (uint, error) {
	slots, err := m.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("%w: C_GetSlotList: %w", ErrToken, err)
	}
	for _, slot := range slots {
		ti, err := m.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		if (u.Token == "" || ti.Label == u.Token) && (u.Serial == "" || ti.SerialNumber == u.Serial) {
			return slot, nil
		}
	}
	return 0, fmt.Errorf("%w: no token matches %s", ErrToken, u)
}

// keyTemplate selects the key by label and/or id.
func keyTemplate(u *URI, class uint) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
	}
	if u.Object != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	return t
}

func (s *Signer) findOne(t []*pkcs11.Attribute, what string) (pkcs11.ObjectHandle, error) {
	if err := s.ctx.FindObjectsInit(s.session, t); err != nil {
		return 0, fmt.Errorf("%w: C_FindObjectsInit: %w", ErrKey, err)
	}
	objs, _, err := s.ctx.FindObjects(s.session, 2)
	_ = s.ctx.FindObjectsFinal(s.session)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: C_FindObjects: %w", ErrKey, err)
	case len(objs) == 0:
		return 0, fmt.Errorf("%w: no Ed25519 %s key matches %s", ErrKey, what, s.uri)
	case len(objs) > 1:
		return 0, fmt.Errorf("%w: more than one Ed25519 %s key matches %s: name it by id as well", ErrKey, what, s.uri)
	}
	return objs[0], nil
}

func (s *Signer) findKey(u *URI) error {
	priv, err := s.findOne(keyTemplate(u, pkcs11.CKO_PRIVATE_KEY), "private")
	if err != nil {
		return err
	}
	pubObj, err := s.findOne(keyTemplate(u, pkcs11.CKO_PUBLIC_KEY), "public")
	if err != nil {
		return err
	}
	attrs, err := s.ctx.GetAttributeValue(s.session, pubObj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil || len(attrs) != 1 {
		return fmt.Errorf("%w: CKA_EC_POINT of %s: %v", ErrKey, u, err)
	}
	pub, err := parseECPoint(attrs[0].Value)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKey, u, err)
	}
	s.key, s.pub = priv, pub
	return nil
}

// parseECPoint reads CKA_EC_POINT: the 32-byte key, as a DER OCTET STRING
// (PKCS#11 v3.0, what SoftHSM2 returns) or raw (some tokens).
func parseECPoint(v []byte) (ed25519.PublicKey, error) {
	switch {
	case len(v) == ed25519.PublicKeySize+2 && v[0] == 0x04 && v[1] == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(v[2:])), nil
	case len(v) == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(v)), nil
	}
	return nil, fmt.Errorf("CKA_EC_POINT is %d bytes, not an Ed25519 point", len(v))
}

// Public returns the key's ed25519.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs msg with CKM_EDDSA (pure Ed25519: opts must not name a hash).
// rand is unused: Ed25519 is deterministic.
func (s *Signer) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, fmt.Errorf("%w: %s signs pure Ed25519, not a %v digest", ErrKey, s.uri, opts.HashFunc())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ctx.SignInit(s.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, s.key); err != nil {
		return nil, fmt.Errorf("%w: C_SignInit %s: %w", ErrKey, s.uri, err)
	}
	sig, err := s.ctx.Sign(s.session, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: C_Sign %s: %w", ErrKey, s.uri, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %s returned a %d-byte signature", ErrKey, s.uri, len(sig))
	}
	return sig, nil
}

// Close ends the session (the library stays loaded for the process).
func (s *Signer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.ctx.CloseSession(s.session)
}

// Generate makes a new Ed25519 key pair inside the token, labelled and
// identified as the URI says, private key sensitive and not extractable,
// and returns its public key.
func Generate(rawURI string) (ed25519.PublicKey, error) {
	u, err := ParseURI(rawURI)
	if err != nil {
		return nil, err
	}
	s, err := openSession(u)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	pubT, privT := templates(u)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}
	if _, _, err := s.ctx.GenerateKeyPair(s.session, mech, pubT, privT); err != nil {
		return nil, fmt.Errorf("%w: C_GenerateKeyPair %s: %w", ErrKey, u, err)
	}
	if err := s.findKey(u); err != nil {
		return nil, err
	}
	return s.pub, nil
}

// Import stores an existing Ed25519 key (a seed from a keystore file) in
// the token, so that a network generated with `dcepd testnet` can move its
// keys into hardware; delete the file afterwards.
func Import(rawURI string, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key is %d bytes", ErrKey, len(priv))
	}
	u, err := ParseURI(rawURI)
	if err != nil {
		return err
	}
	s, err := openSession(u)
	if err != nil {
		return err
	}
	defer s.Close()
	pubT, privT := templates(u)
	point := append([]byte{0x04, ed25519.PublicKeySize}, priv.Public().(ed25519.PublicKey)...)
	pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, point))
	privT = append(privT, pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, priv.Seed()))
	if _, err := s.ctx.CreateObject(s.session, pubT); err != nil {
		return fmt.Errorf("%w: C_CreateObject (public) %s: %w", ErrKey, u, err)
	}
	if _, err := s.ctx.CreateObject(s.session, privT); err != nil {
		return fmt.Errorf("%w: C_CreateObject (private) %s: %w", ErrKey, u, err)
	}
	return nil
}

func templates(u *URI) (pub, priv []*pkcs11.Attribute) {
	common := func() []*pkcs11.Attribute {
		t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}
		if u.Object != "" {
			t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
		}
		if len(u.ID) > 0 {
			t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
		}
		return t
	}
	pub = append(common(), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params))
	priv = append(common(), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	return pub, priv
}
