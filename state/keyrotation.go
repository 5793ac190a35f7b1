package state

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Key rotation and ledger versions (state/DESIGN.md, "Keys and versions").

var (
	keyCentralBankKey = []byte("m:cbkey")   // statepb.KeyRecord: the central bank's key after a rotation
	keyLedgerVersion  = []byte("m:version") // statepb.LedgerVersion
)

// LedgerVersion is the highest ledger version this build runs. A network
// activates a higher one with ActivateVersion; a node whose
// Options.MaxLedgerVersion is below it stops before the activation index
// (ErrLedgerVersion).
const LedgerVersion = 1

// maxLedgerVersion bounds what ActivateVersion may schedule.
const maxLedgerVersion = 1 << 16

// ErrLedgerVersion: the network activated a ledger version this build
// cannot run; applying on would risk diverging from the nodes that can.
// Nothing of the block was applied.
var ErrLedgerVersion = errors.New("ledger version not supported by this build")

// centralBankKey is the central bank's current key: genesis's, or the one
// a RotateKey put in its place.
func (a *applier) centralBankKey() []byte {
	var k statepb.KeyRecord
	if a.get(keyCentralBankKey, &k) {
		return k.GetPublicKey()
	}
	return a.s.genesis.GetCentralBank().GetPublicKey()
}

// rotateKey replaces the central bank's, a bank's or a node's key. The
// signatures (current central bank key, new key) were checked already.
func (a *applier) rotateKey(k *statepb.RotateKey) *statepb.Error {
	key := k.GetNewPublicKey()
	same := statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "rotate_key.new_public_key: is the current key")
	switch k.GetHolder() {
	case statepb.KeyHolder_KEY_HOLDER_CENTRAL_BANK:
		if bytes.Equal(key, a.centralBankKey()) {
			return same
		}
		a.set(keyCentralBankKey, &statepb.KeyRecord{PublicKey: key, SinceIndex: a.index})
	case statepb.KeyHolder_KEY_HOLDER_BANK:
		b := a.bank(k.GetId())
		if b == nil {
			return statepb.Errorf(statepb.Code_CODE_BANK_NOT_FOUND, "rotate_key.id: %q", k.GetId())
		}
		if bytes.Equal(key, b.GetBank().GetPublicKey()) {
			return same
		}
		nb := proto.Clone(b).(*statepb.BankRecord)
		nb.Bank.PublicKey = key
		a.setBank(nb)
	case statepb.KeyHolder_KEY_HOLDER_NODE:
		var m statepb.Node
		if !a.get(keyMember(k.GetId()), &m) {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_NOT_FOUND, "rotate_key.id: %q is not a member", k.GetId())
		}
		if bytes.Equal(key, m.GetPublicKey()) {
			return same
		}
		if other, ok := a.memberWithKey(key); ok {
			return statepb.Errorf(statepb.Code_CODE_MEMBER_EXISTS, "rotate_key.new_public_key: already used by %q", other)
		}
		m.PublicKey = key
		a.set(keyMember(k.GetId()), &m)
		a.membershipChanged = true
	}
	return nil
}

// activateVersion schedules a ledger version. The ledger accepts any
// higher version whatever this build runs: whether a build can run it is
// a property of the node, not of the ledger's rules, and must not make
// nodes decide differently.
func (a *applier) activateVersion(k *statepb.ActivateVersion) *statepb.Error {
	v := a.ledgerVersion()
	if k.GetVersion() <= max(v.GetActive(), v.GetNext()) || k.GetVersion() > maxLedgerVersion {
		return statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "activate_version.version: %d (want above %d, at most %d)", k.GetVersion(), max(v.GetActive(), v.GetNext()), maxLedgerVersion)
	}
	if k.GetActivateAtIndex() <= a.index {
		return statepb.Errorf(statepb.Code_CODE_INVALID_FIELD, "activate_version.activate_at_index: %d is not after this block (%d)", k.GetActivateAtIndex(), a.index)
	}
	a.set(keyLedgerVersion, &statepb.LedgerVersion{Active: v.GetActive(), Next: k.GetVersion(), NextAtIndex: k.GetActivateAtIndex()})
	return nil
}

// ledgerVersion is the version schedule (version 1 until one is set).
func (a *applier) ledgerVersion() *statepb.LedgerVersion {
	var v statepb.LedgerVersion
	if !a.get(keyLedgerVersion, &v) {
		v.Active = 1
	}
	return &v
}

// activateDue makes a scheduled version active at its index, or refuses
// the block if this build cannot run it (before anything of it is
// written).
func (a *applier) activateDue(index uint64) error {
	v := a.ledgerVersion()
	if v.GetNext() == 0 || index < v.GetNextAtIndex() {
		return a.err
	}
	if max := a.s.maxLedgerVersion(); v.GetNext() > max {
		return fmt.Errorf("%w: the network activated ledger version %d at log index %d; this build runs versions up to %d: install a build that runs version %d and start the node again",
			ErrLedgerVersion, v.GetNext(), v.GetNextAtIndex(), max, v.GetNext())
	}
	a.set(keyLedgerVersion, &statepb.LedgerVersion{Active: v.GetNext()})
	return a.err
}

func (s *Store) maxLedgerVersion() uint32 {
	if s.opts.MaxLedgerVersion > 0 {
		return s.opts.MaxLedgerVersion
	}
	return LedgerVersion
}

// CentralBankKey is the central bank's key in force: genesis's, or the
// one a RotateKey put in its place.
func (s *Store) CentralBankKey() ([]byte, error) {
	var k statepb.KeyRecord
	var found bool
	err := s.read(func(r pebbleReader) error {
		var err error
		found, err = getProto(r, keyCentralBankKey, &k)
		return err
	})
	if err != nil || !found {
		return s.genesis.GetCentralBank().GetPublicKey(), err
	}
	return k.GetPublicKey(), nil
}

// LedgerVersionSchedule is the ledger's version record: active, and the
// next one with its index if scheduled.
func (s *Store) LedgerVersionSchedule() (*statepb.LedgerVersion, error) {
	var v statepb.LedgerVersion
	err := s.read(func(r pebbleReader) error {
		found, err := getProto(r, keyLedgerVersion, &v)
		if err == nil && !found {
			v.Active = 1
		}
		return err
	})
	return &v, err
}
