package state

import (
	"encoding/binary"

	"github.com/dcep/dcep/state/statepb"
)

// Key layout. Every key starts with a two-byte prefix naming its table. Ids
// never contain 0x00 (statepb.ValidateID), so 0x00 separates an id from what
// follows and a prefix scan over one wallet never runs into another's keys.
// state/DESIGN.md documents each table.
var (
	keyMeta    = []byte("m:meta")    // statepb.Meta; not hashed
	keyGenesis = []byte("m:genesis") // statepb.Genesis
	keySupply  = []byte("m:supply")  // statepb.Supply

	prefixBank      = []byte("b:") // + bank id → statepb.BankRecord
	prefixWallet    = []byte("w:") // + wallet id → statepb.WalletRecord
	prefixUnspent   = []byte("u:") // + wallet id + 0x00 + tx id + index(4) → statepb.OutputRecord
	prefixTx        = []byte("t:") // + tx id → statepb.TxRecord
	prefixHistory   = []byte("h:") // + wallet id + 0x00 + seq(8) → statepb.HistoryEntry
	prefixMember    = []byte("n:") // + node name → statepb.Node
	prefixHashIndex = []byte("s:") // + log index(8) → state hash(32); not hashed
	prefixBlock     = []byte("r:") // + log index(8) → statepb.BlockRecord
	prefixSchedule  = []byte("q:") // + due ms(8) + job kind(1) + id → job payload (schedule.go)
	prefixOffline   = []byte("o:") // + table letter + key: dual offline payments (offline.go)
	prefixMessage   = []byte("v:") // + tx id → a recorded rejection's message for people; not hashed

	// Regulator indexes (audit.go).
	prefixLarge  = []byte("l:") // + time ms(8) + log index(8) + tx id → statepb.LargePayment
	prefixDay    = []byte("d:") // + Beijing day(8) + bank id → statepb.BankDay
	prefixFrozen = []byte("f:") // + wallet id → statepb.FrozenWallet
)

func keyBank(id string) []byte   { return cat(prefixBank, []byte(id)) }
func keyWallet(id string) []byte { return cat(prefixWallet, []byte(id)) }
func keyTx(id []byte) []byte     { return cat(prefixTx, id) }
func keyMember(n string) []byte  { return cat(prefixMember, []byte(n)) }

func keyUnspentPrefix(walletID string) []byte {
	return append(cat(prefixUnspent, []byte(walletID)), 0)
}

func keyUnspent(walletID string, op *statepb.Outpoint) []byte {
	return binary.BigEndian.AppendUint32(append(keyUnspentPrefix(walletID), op.GetTxId()...), op.GetIndex())
}

func keyHistoryPrefix(walletID string) []byte {
	return append(cat(prefixHistory, []byte(walletID)), 0)
}

func keyHistory(walletID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(keyHistoryPrefix(walletID), seq)
}

func keyHashIndex(index uint64) []byte {
	return binary.BigEndian.AppendUint64(cat(prefixHashIndex, nil), index)
}

func keyMessage(txID []byte) []byte { return cat(prefixMessage, txID) }

func keyBlock(index uint64) []byte {
	return binary.BigEndian.AppendUint64(cat(prefixBlock, nil), index)
}

// hashed reports whether writes to key feed the state hash. Meta holds the
// hash itself and the hash index records it; messages are for people and
// may differ between releases (state/DESIGN.md, "Outcomes"); everything
// else is ledger state.
func hashed(key []byte) bool {
	return !(string(key) == string(keyMeta) || hasPrefix(key, prefixHashIndex) || hasPrefix(key, prefixMessage))
}

func cat(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+len(b)+12)
	return append(append(out, a...), b...)
}

func hasPrefix(b, p []byte) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == string(p)
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
