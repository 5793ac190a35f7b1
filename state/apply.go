package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state/statepb"
)

// Block is one log entry: the transactions the leader grouped, stamped with
// the ledger time the leader chose.
type Block struct {
	Index  uint64
	Term   uint64
	TimeMs int64
	Txs    [][]byte
}

// Applied is what one Apply call did.
type Applied struct {
	// Results has one slice per block, one result per transaction, in order.
	// A block at or below the applied index gets nil: it was applied before.
	Results [][]*statepb.TxResult
	// MembershipChanged: a committed transaction changed the membership.
	MembershipChanged bool
}

// Apply applies blocks in order in one Pebble batch and commits it with
// fsync, so a crash leaves either all of them or none. Blocks at or below the
// applied index are skipped (a restart never re-applies what the state
// holds). Each transaction gets a result; a rejected one changes no ledger
// state. The error is non-nil only for I/O failures or a broken invariant:
// then nothing was committed and the caller must stop, not skip.
func (s *Store) Apply(blocks []Block) (*Applied, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if s.genesis == nil {
		return nil, ErrNoGenesis
	}
	meta := proto.Clone(s.Meta()).(*statepb.Meta)
	var raws [][]byte
	last := meta.GetAppliedIndex()
	for _, b := range blocks {
		if b.Index <= meta.GetAppliedIndex() {
			continue
		}
		if b.Index <= last {
			return nil, fmt.Errorf("%w: index %d after %d", ErrOutOfOrder, b.Index, last)
		}
		last = b.Index
		raws = append(raws, b.Txs...)
	}
	out := &Applied{Results: make([][]*statepb.TxResult, len(blocks))}
	if last == meta.GetAppliedIndex() {
		return out, nil
	}
	p := s.startPipeline(raws)
	defer p.wait()

	a := newApplier(s, meta)
	defer a.b.Close()
	defer a.lt.stop()
	next := 0
	for bi, b := range blocks {
		if b.Index <= meta.GetAppliedIndex() {
			continue
		}
		a.beginBlock(b)
		// Refused before commit: nothing of the block is written.
		if err := a.activateDue(b.Index); err != nil {
			return nil, err
		}
		res := make([]*statepb.TxResult, len(b.Txs))
		for i := range b.Txs {
			res[i] = a.applyTx(p.take(next))
			next++
			if a.err != nil {
				return nil, a.err
			}
		}
		a.flushWallets()
		a.flushCampaigns()
		a.flushAudit()
		a.setNew(keyBlock(b.Index), &statepb.BlockRecord{LogIndex: b.Index, TimeMs: a.timeMs, Results: a.blockResults})
		if err := a.endBlock(b); err != nil {
			return nil, err
		}
		out.Results[bi] = res
	}
	meta.ContentHash = a.content.bytes()
	if err := setProto(a.b, keyMeta, meta); err != nil {
		return nil, err
	}
	sync := pebble.Sync
	if s.opts.NoSync {
		sync = pebble.NoSync
	}
	if err := a.b.Commit(sync); err != nil {
		return nil, fmt.Errorf("commit apply batch: %w", err)
	}
	s.meta.Store(meta)
	s.content = a.content
	s.wallets.update(a.cached)
	s.outputs.update(a.outs)
	if a.membershipChanged {
		s.membership.Add(1)
		out.MembershipChanged = true
	}
	return out, nil
}

// applier carries one Apply call's batch, caches and hash. Reads go through
// the indexed batch, so a transaction sees the writes of those before it in
// the same call (an output spent earlier in the batch is spent).
type applier struct {
	s    *Store
	b    *pebble.Batch
	meta *statepb.Meta

	// Caches of decoded records; every write goes through the setters below,
	// which keep them equal to what the batch holds (wallets: will hold at
	// the end of the block, see setWallet).
	wallets map[string]*statepb.WalletRecord
	banks   map[string]*statepb.BankRecord
	supply  *statepb.Supply
	// dirty lists the wallets changed in the current block, in the order
	// of their first change; flushWallets writes them.
	dirty    []string
	dirtySet map[string]bool
	// cached is what this call adds to the store's wallet cache if it
	// commits: the serialized wallets it read or wrote.
	cached map[string][]byte
	// walletRaw is each wallet's record as the batch holds it now (nil:
	// none), read or written by this call: the old value its next write
	// takes out of the content hash.
	walletRaw map[string][]byte
	// recorded are the outcomes this call recorded, by transaction id.
	recorded map[[32]byte]*statepb.TxResult
	// outs are the unspent-output keys this call created (value) or spent
	// (nil), for unspent and, once committed, the store's output cache.
	outs map[string][]byte
	// prog caches campaigns (programmable.go).
	prog progCache

	// Per block.
	timeMs int64
	index  uint64
	digest hash.Hash
	// content is the content hash (lthash.go) as of the last block ended;
	// lt sums the current block's changes to it in the background.
	content ltHash
	lt      ltAccumulator
	// blockResults are the outcomes the block recorded, as hashed (no
	// messages), for its r: record.
	blockResults []*statepb.TxResult

	membershipChanged bool
	// audit is the regulator indexes' per-call state (audit.go).
	audit auditState
	// off is the offline kinds' per-transaction state (offline.go);
	// offCredits the wallets credited that may owe offline money
	// (offline_debt.go).
	off        offState
	offCredits offCredits
	// err is the first I/O error; once set, nothing more is done and the
	// batch is never committed.
	err error
}

func newApplier(s *Store, meta *statepb.Meta) *applier {
	return &applier{
		s: s, b: s.db.NewIndexedBatch(), meta: meta,
		wallets:  map[string]*statepb.WalletRecord{},
		recorded: map[[32]byte]*statepb.TxResult{},
		banks:    map[string]*statepb.BankRecord{},
		dirtySet: map[string]bool{},
		cached:   map[string][]byte{},
		outs:     map[string][]byte{},
		digest:   sha256.New(),
		content:  s.content,

		walletRaw: map[string][]byte{},
	}
}

// beginBlock fixes the block's ledger time: the leader's stamp, but never
// earlier than time already applied, so ledger time is monotonic on every
// node whatever a new leader's clock says.
func (a *applier) beginBlock(b Block) {
	a.timeMs = max(b.TimeMs, a.meta.GetLedgerTimeMs())
	a.index = b.Index
	a.digest.Reset()
	a.blockResults = nil
	a.runScheduled()
	a.settleOfflineCredits()
}

// endBlock chains the block's write digest and the content hash into the
// state hash and records the hash for this index, so nodes can compare at
// any index.
func (a *applier) endBlock(b Block) error {
	delta := a.lt.sum()
	a.content.add(&delta)
	digest := a.digest.Sum(nil)
	sum := chainStateHash(a.meta.GetStateHash(), b.Index, a.timeMs, digest, &a.content)
	a.meta.PrevStateHash, a.meta.BlockDigest = a.meta.GetStateHash(), digest
	a.meta.StateHash = sum
	a.meta.AppliedIndex, a.meta.AppliedTerm = b.Index, b.Term
	a.meta.LedgerTimeMs = a.timeMs
	a.meta.Blocks++
	if err := a.b.Set(keyHashIndex(b.Index), sum, nil); err != nil {
		return fmt.Errorf("record state hash: %w", err)
	}
	return a.err
}

// chainStateHash is the state hash after a block:
// SHA-256("dcep/state/v2\0" | previous hash | index | ledger time | write
// digest | content hash). The chain commits to every write in order; the
// content hash to what the state holds, so a snapshot's state can be
// checked against its hash (Restore, AuditSupply).
func chainStateHash(prev []byte, index uint64, timeMs int64, digest []byte, content *ltHash) []byte {
	h := sha256.New()
	h.Write([]byte(domainState))
	h.Write(prev)
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], index)
	binary.BigEndian.PutUint64(buf[8:], uint64(timeMs))
	h.Write(buf[:])
	h.Write(digest)
	h.Write(content.bytes())
	return h.Sum(nil)
}

// applyTx decides one transaction. Order: stateless rejection, duplicate,
// authority (none of these recorded anywhere: they change nothing, and the
// submitter gets them back from Apply), then the kind's ledger rules, whose
// outcome, OK or not, is recorded under the transaction id and in the
// block's record.
func (a *applier) applyTx(t *decodedTx) *statepb.TxResult {
	res := &statepb.TxResult{LogIndex: a.index, TimeMs: a.timeMs}
	if t.hasID {
		// A copy: the result outlives the call (Raft keeps entry
		// responses a while), and t.id[:] would keep all of t — its
		// bytes, body and signatures — alive with it.
		res.TxId = bytes.Clone(t.id[:])
	}
	if t.rej != nil {
		t.rej.Fill(res)
		return res
	}
	first := a.firstOutcome(t)
	if a.err != nil {
		return res
	}
	if first != nil {
		dup := proto.Clone(first).(*statepb.TxResult)
		dup.Duplicate = true
		return dup
	}
	if rej := a.authorize(t); rej != nil {
		rej.Fill(res)
		return res
	}
	outputs, rej := a.execute(t)
	if a.err != nil {
		return res
	}
	res.Code = statepb.Code_CODE_OK
	if rej != nil {
		rej.Fill(res)
		outputs = 0
		a.offCredits = a.offCredits[:0]
	} else {
		a.indexTx(t)
	}
	a.recordTx(t.id, &statepb.TxRecord{SignedTx: t.raw, Result: res, OutputCount: outputs})
	// Money that reached a debtor repays its offline debt first, in a
	// transaction the ledger records right after this one.
	a.settleOfflineCredits()
	return res
}

// firstOutcome is the outcome already recorded under t's id: by this call,
// or committed before it (looked up by the pipeline, lookupFirst); nil if
// none.
func (a *applier) firstOutcome(t *decodedTx) *statepb.TxResult {
	if r, ok := a.recorded[t.id]; ok {
		return r
	}
	if t.firstErr != nil && a.err == nil {
		a.err = t.firstErr
	}
	return t.first.GetResult()
}

// recordTx records a transaction's outcome under its id and in the
// block's record. The hashed records hold what the rule decided (code,
// field, args); the message goes beside them, unhashed (keyMessage).
func (a *applier) recordTx(id [32]byte, rec *statepb.TxRecord) {
	res := rec.GetResult()
	a.recorded[id] = res
	if msg := res.GetMessage(); msg != "" {
		rec.Result = withoutMessage(res)
		a.setUnhashed(keyMessage(id[:]), []byte(msg))
	}
	a.setNew(keyTx(id[:]), rec)
	a.blockResults = append(a.blockResults, rec.GetResult())
}

// withoutMessage is a copy of r without its message: the form hashed
// records hold.
func withoutMessage(r *statepb.TxResult) *statepb.TxResult {
	return &statepb.TxResult{
		TxId: r.GetTxId(), Code: r.GetCode(), Duplicate: r.GetDuplicate(), LogIndex: r.GetLogIndex(),
		TimeMs: r.GetTimeMs(), Field: r.GetField(), Args: r.GetArgs(),
	}
}

// authorize checks that each signature is by the key the kind requires, in
// order. Signature validity was checked by the pipeline.
func (a *applier) authorize(t *decodedTx) *statepb.Error {
	keys, rej := a.signers(t.body)
	if rej != nil {
		return rej
	}
	for i, k := range keys {
		if string(t.sigs[i].GetPublicKey()) != string(k.key) {
			return statepb.Errorf(statepb.Code_CODE_SIGNER_UNAUTHORIZED, "signatures[%d]: not signed by %s", i, statepb.Text(k.who))
		}
	}
	return nil
}

// signer is a key a kind requires and whose it is, for messages.
type signer struct {
	key []byte
	who string
}

// signers returns who must sign a transaction, looked up in current state.
func (a *applier) signers(body *statepb.Tx) ([]signer, *statepb.Error) {
	cb := signer{a.centralBankKey(), "the central bank"}
	switch k := body.GetKind().(type) {
	case *statepb.Tx_Issue, *statepb.Tx_ChangeMembership, *statepb.Tx_ActivateVersion:
		return []signer{cb}, nil
	case *statepb.Tx_RotateKey:
		return []signer{cb, {k.RotateKey.GetNewPublicKey(), "the holder of the new key"}}, nil
	case *statepb.Tx_Return:
		b, rej := a.bankSigner("return.bank_id", k.Return.GetBankId())
		return []signer{b, cb}, rej
	case *statepb.Tx_Exchange:
		b, rej := a.bankSigner("exchange.bank_id", k.Exchange.GetBankId())
		return []signer{b}, rej
	case *statepb.Tx_Redeem:
		return a.ownerSigner("redeem.wallet_id", k.Redeem.GetWalletId())
	case *statepb.Tx_Transfer:
		return a.ownerSigner("transfer.from_wallet_id", k.Transfer.GetFromWalletId())
	case *statepb.Tx_RegisterWallet:
		b, rej := a.bankSigner("register_wallet.bank_id", k.RegisterWallet.GetBankId())
		return []signer{b}, rej
	case *statepb.Tx_OpenPurse, *statepb.Tx_DepositOffline, *statepb.Tx_ClosePurse, *statepb.Tx_ExpirePurse,
		*statepb.Tx_PayOfflineClaims, *statepb.Tx_CollectOfflineDebt:
		return a.offlineSigners(body)
	default:
		if keys, rej, ok := a.programmableSigners(body); ok {
			return keys, rej
		}
		field, id := managedWallet(body)
		w := a.wallet(id)
		if w == nil {
			return nil, statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s: %q", field, id)
		}
		b, rej := a.bankSigner(field, w.GetBankId())
		return []signer{b}, rej
	}
}

func (a *applier) bankSigner(field, bankID string) (signer, *statepb.Error) {
	b := a.bank(bankID)
	if b == nil {
		return signer{}, statepb.Errorf(statepb.Code_CODE_BANK_NOT_FOUND, "%s: %q", field, bankID)
	}
	return signer{b.GetBank().GetPublicKey(), "bank " + bankID}, nil
}

func (a *applier) ownerSigner(field, walletID string) ([]signer, *statepb.Error) {
	w := a.wallet(walletID)
	if w == nil {
		return nil, statepb.Errorf(statepb.Code_CODE_WALLET_NOT_FOUND, "%s: %q", field, walletID)
	}
	return []signer{{w.GetPublicKey(), "the holder of wallet " + walletID}}, nil
}

// execute applies a kind's ledger rules. It writes only after every check
// passed, so a rejection leaves no trace but its recorded outcome. It returns
// how many outputs the transaction created.
func (a *applier) execute(t *decodedTx) (uint32, *statepb.Error) {
	switch k := t.body.GetKind().(type) {
	case *statepb.Tx_Issue:
		return a.issue(t, k.Issue)
	case *statepb.Tx_Return:
		return a.returnToCentralBank(t, k.Return)
	case *statepb.Tx_Exchange:
		return a.exchange(t, k.Exchange)
	case *statepb.Tx_Redeem:
		return a.redeem(t, k.Redeem)
	case *statepb.Tx_Transfer:
		return a.transfer(t, k.Transfer)
	case *statepb.Tx_RegisterWallet:
		return 0, a.registerWallet(t, k.RegisterWallet)
	case *statepb.Tx_UpdateWallet:
		return 0, a.updateWallet(t, k.UpdateWallet)
	case *statepb.Tx_RotateWalletKey:
		return 0, a.rotateWalletKey(t, k.RotateWalletKey)
	case *statepb.Tx_FreezeWallet:
		return 0, a.freezeWallet(t, k.FreezeWallet)
	case *statepb.Tx_UnfreezeWallet:
		return 0, a.unfreezeWallet(t, k.UnfreezeWallet)
	case *statepb.Tx_CloseWallet:
		return 0, a.closeWallet(t, k.CloseWallet)
	case *statepb.Tx_ChangeMembership:
		return 0, a.changeMembership(k.ChangeMembership)
	case *statepb.Tx_RotateKey:
		return 0, a.rotateKey(k.RotateKey)
	case *statepb.Tx_ActivateVersion:
		return 0, a.activateVersion(k.ActivateVersion)
	case *statepb.Tx_OpenPurse:
		return a.openPurse(t, k.OpenPurse)
	case *statepb.Tx_DepositOffline:
		return a.depositOffline(t, k.DepositOffline)
	case *statepb.Tx_ClosePurse:
		return a.closePurse(t, k.ClosePurse)
	}
	if n, rej, ok := a.executeProgrammable(t); ok {
		return n, rej
	}
	// decode accepted a kind nobody executes: a programming error.
	panic(fmt.Sprintf("state: no executor for %T", t.body.GetKind()))
}

// --- reads and writes through the batch ---

func (a *applier) get(key []byte, m proto.Message) bool {
	return a.getRaw(key, m, nil)
}

// getRaw is get that also hands the stored bytes, valid only during the
// call, to raw (if not nil).
func (a *applier) getRaw(key []byte, m proto.Message, raw func([]byte)) bool {
	if a.err != nil {
		return false
	}
	v, c, err := a.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		a.err = fmt.Errorf("read %q: %w", key, err)
		return false
	}
	defer c.Close()
	if err := proto.Unmarshal(v, m); err != nil {
		a.err = fmt.Errorf("%w: decode %q: %v", ErrInvariant, key, err)
		return false
	}
	if raw != nil {
		raw(v)
	}
	return true
}

// set writes a record and feeds it to the block digest and the content
// hash. The digest sees each write in the order the (deterministic) apply
// logic makes it. The record's old value, which the content hash takes
// out, is read through the batch; setNew and replace are set for callers
// that know it.
func (a *applier) set(key []byte, m proto.Message) {
	if v := a.marshal(key, m); v != nil {
		a.setRaw(key, v)
	}
}

// setNew is set of a key that holds nothing yet (a new transaction,
// history entry, output, block record).
func (a *applier) setNew(key []byte, m proto.Message) {
	if v := a.marshal(key, m); v != nil {
		a.replace(key, v, nil)
	}
}

func (a *applier) marshal(key []byte, m proto.Message) []byte {
	if a.err != nil {
		return nil
	}
	v, err := deterministic.Marshal(m)
	if err != nil {
		a.err = fmt.Errorf("marshal %q: %w", key, err)
		return nil
	}
	return v
}

func (a *applier) setRaw(key, v []byte) {
	if old, ok := a.current(key); ok {
		a.replace(key, v, old)
	}
}

// replace writes v under key, whose value the batch holds now is old (nil:
// none). v and old must not change afterwards (the content hash reads them
// in the background until the block ends).
func (a *applier) replace(key, v, old []byte) {
	if a.err != nil {
		return
	}
	a.checkOld(key, old)
	if err := a.b.Set(key, v, nil); err != nil {
		a.err = fmt.Errorf("write %q: %w", key, err)
		return
	}
	a.hashOp('S', key, v)
	if hashed(key) {
		if old != nil {
			a.lt.push(ltOp{key: key, value: old, remove: true})
		}
		a.lt.push(ltOp{key: key, value: v})
	}
}

// current is key's value as the batch holds it now (nil: none), a copy.
func (a *applier) current(key []byte) ([]byte, bool) {
	if a.err != nil {
		return nil, false
	}
	v, c, err := a.b.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, true
	}
	if err != nil {
		a.err = fmt.Errorf("read %q: %w", key, err)
		return nil, false
	}
	defer c.Close()
	return bytes.Clone(v), true
}

// checkOldValues makes every write that names its old value check it
// against the batch: a wrong one would corrupt the content hash (which
// AuditSupply would find, later). Tests set it (export_test.go).
var checkOldValues = false

func (a *applier) checkOld(key, old []byte) {
	if !checkOldValues || a.err != nil {
		return
	}
	if cur, ok := a.current(key); ok && !bytes.Equal(cur, old) {
		a.fail("write of %q names old value %x, the batch holds %x", key, old, cur)
	}
}

// setUnhashed writes a record outside the state hash (hashed(key) is
// false): rejection messages.
func (a *applier) setUnhashed(key, v []byte) {
	if a.err != nil {
		return
	}
	if hashed(key) {
		a.fail("setUnhashed of hashed key %q", key)
		return
	}
	if err := a.b.Set(key, v, nil); err != nil {
		a.err = fmt.Errorf("write %q: %w", key, err)
	}
}

// del deletes a record, taking its value (read through the batch) out of
// the content hash.
func (a *applier) del(key []byte) {
	if old, ok := a.current(key); ok {
		a.delOld(key, old)
	}
}

// delOld is del of a key whose value the batch holds now is old.
func (a *applier) delOld(key, old []byte) {
	if a.err != nil {
		return
	}
	a.checkOld(key, old)
	if err := a.b.Delete(key, nil); err != nil {
		a.err = fmt.Errorf("delete %q: %w", key, err)
		return
	}
	a.hashOp('D', key, nil)
	if hashed(key) && old != nil {
		a.lt.push(ltOp{key: key, value: old, remove: true})
	}
}

func (a *applier) hashOp(op byte, key, v []byte) {
	if !hashed(key) {
		return
	}
	var hdr [9]byte
	hdr[0] = op
	binary.BigEndian.PutUint32(hdr[1:5], uint32(len(key)))
	binary.BigEndian.PutUint32(hdr[5:9], uint32(len(v)))
	a.digest.Write(hdr[:])
	a.digest.Write(key)
	a.digest.Write(v)
}

// wallet returns a wallet as this call has made it so far, or nil. Records
// come from the call's own cache, else the store's cache of committed
// wallets, else Pebble.
func (a *applier) wallet(id string) *statepb.WalletRecord {
	if w, ok := a.wallets[id]; ok {
		return w
	}
	w := &statepb.WalletRecord{}
	if v, ok := a.s.wallets.get(id); ok {
		if err := proto.Unmarshal(v, w); err != nil {
			a.fail("wallet cache %q: %v", id, err)
			return nil
		}
		a.walletRaw[id] = v
	} else if !a.getRaw(keyWallet(id), w, func(v []byte) {
		a.cached[id] = append([]byte(nil), v...)
		a.walletRaw[id] = a.cached[id]
	}) {
		w = nil
	}
	if a.err == nil {
		a.wallets[id] = w
	}
	return w
}

// setWallet records that a wallet changed. It is written once, at the end
// of the block (flushWallets), however many transactions of the block
// change it: reads go through a.wallets, never the batch.
func (a *applier) setWallet(w *statepb.WalletRecord) {
	id := w.GetId()
	a.wallets[id] = w
	if !a.dirtySet[id] {
		a.dirtySet[id] = true
		a.dirty = append(a.dirty, id)
	}
}

// flushWallets writes the block's changed wallets in the order they first
// changed (deterministic: it follows the transactions).
func (a *applier) flushWallets() {
	for _, id := range a.dirty {
		v, err := deterministic.Marshal(a.wallets[id])
		if err != nil {
			a.err = fmt.Errorf("marshal wallet %q: %w", id, err)
			return
		}
		if old, ok := a.walletRaw[id]; ok {
			a.replace(keyWallet(id), v, old)
		} else {
			a.setRaw(keyWallet(id), v)
		}
		a.cached[id], a.walletRaw[id] = v, v
	}
	a.dirty = a.dirty[:0]
	clear(a.dirtySet)
}

func (a *applier) bank(id string) *statepb.BankRecord {
	if b, ok := a.banks[id]; ok {
		return b
	}
	b := &statepb.BankRecord{}
	if !a.get(keyBank(id), b) {
		b = nil
	}
	if a.err == nil {
		a.banks[id] = b
	}
	return b
}

func (a *applier) setBank(b *statepb.BankRecord) {
	a.banks[b.GetBank().GetId()] = b
	a.set(keyBank(b.GetBank().GetId()), b)
}

func (a *applier) getSupply() *statepb.Supply {
	if a.supply == nil {
		a.supply = &statepb.Supply{}
		if !a.get(keySupply, a.supply) && a.err == nil {
			a.err = fmt.Errorf("%w: supply record missing", ErrInvariant)
		}
	}
	return a.supply
}

func (a *applier) setSupply(s *statepb.Supply) {
	a.supply = s
	a.set(keySupply, s)
}

// addHistory appends an entry to a wallet's history; the caller writes the
// wallet afterwards (history_len lives in it).
func (a *applier) addHistory(w *statepb.WalletRecord, t *decodedTx, e *statepb.HistoryEntry) {
	e.TxId, e.Kind, e.TimeMs, e.LogIndex = t.id[:], kindName(t.body), a.timeMs, a.index
	e.Memo, e.BalanceFen = t.body.GetMemo(), w.GetBalanceFen()
	a.setNew(keyHistory(w.GetId(), w.GetHistoryLen()), e)
	w.HistoryLen++
}

// kindName is the short name of a transaction's kind, e.g. "transfer".
func kindName(body *statepb.Tx) string {
	k := body.ProtoReflect().WhichOneof(body.ProtoReflect().Descriptor().Oneofs().ByName("kind"))
	if k == nil {
		return "none"
	}
	return string(k.Name())
}

// scanMembers calls fn for each member in name order, through the batch.
func (a *applier) scanMembers(fn func(*statepb.Node) bool) {
	if a.err != nil {
		return
	}
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: prefixMember, UpperBound: prefixEnd(prefixMember)})
	if err != nil {
		a.err = fmt.Errorf("scan members: %w", err)
		return
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var n statepb.Node
		if err := proto.Unmarshal(it.Value(), &n); err != nil {
			a.err = fmt.Errorf("%w: decode member: %v", ErrInvariant, err)
			return
		}
		if !fn(&n) {
			return
		}
	}
}

// unspent reads output op of wallet owner if it is unspent: as this call
// left it, else from the store's cache of recent outputs, else from Pebble.
func (a *applier) unspent(owner string, op *statepb.Outpoint, o *statepb.OutputRecord) bool {
	k := keyUnspent(owner, op)
	v, ok := a.outs[string(k)]
	if !ok {
		v, ok = a.s.outputs.get(k)
	}
	if !ok {
		return a.get(k, o)
	}
	if v == nil {
		return false
	}
	if err := proto.Unmarshal(v, o); err != nil {
		a.fail("output cache %q: %v", k, err)
		return false
	}
	return true
}

// delOutput deletes an unspent output the call has seen (checkInputs read
// it), with its old value from where unspent found it.
func (a *applier) delOutput(k []byte) {
	v, ok := a.outs[string(k)]
	if !ok {
		v, ok = a.s.outputs.get(k)
	}
	if ok && v != nil {
		a.delOld(k, v)
	} else {
		a.del(k)
	}
	a.outs[string(k)] = nil
}

// outputCache holds the committed unspent outputs created by recent Apply
// calls: change and fresh payments are what gets spent next, and a hit
// saves a Pebble lookup. Like walletCache it is only touched by the
// applying goroutine, updated after a commit, cleared by Restore, and
// bounded by clearing when full; a miss just reads Pebble.
type outputCache struct {
	m map[string][]byte
}

// maxCachedOutputs bounds the output cache (about 150 bytes an entry).
const maxCachedOutputs = 1 << 18

func (c *outputCache) get(k []byte) ([]byte, bool) {
	v, ok := c.m[string(k)]
	return v, ok
}

func (c *outputCache) update(outs map[string][]byte) {
	if len(outs) > maxCachedOutputs {
		c.m = nil
		return
	}
	if c.m == nil || len(c.m)+len(outs) > maxCachedOutputs {
		c.m = make(map[string][]byte, len(outs))
	}
	for k, v := range outs {
		if v == nil {
			delete(c.m, k)
		} else {
			c.m[k] = v
		}
	}
}

func (c *outputCache) clear() { c.m = nil }

// walletCache holds serialized committed wallet records, so that Apply
// calls need not read busy wallets from Pebble again and again. Only the
// applying goroutine uses it (Apply and Restore never run at once); it is
// updated only after a commit succeeded and cleared by Restore, so it
// always equals committed state. It is bounded by clearing when full.
type walletCache struct {
	m map[string][]byte
}

// maxCachedWallets bounds the cache (about 200 bytes a wallet).
const maxCachedWallets = 1 << 17

func (c *walletCache) get(id string) ([]byte, bool) {
	v, ok := c.m[id]
	return v, ok
}

func (c *walletCache) update(vs map[string][]byte) {
	if len(vs) > maxCachedWallets {
		c.m = nil
		return
	}
	if c.m == nil || len(c.m)+len(vs) > maxCachedWallets {
		c.m = make(map[string][]byte, len(vs))
	}
	for id, v := range vs {
		c.m[id] = v
	}
}

func (c *walletCache) clear() { c.m = nil }
