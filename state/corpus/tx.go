package corpus

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/state"
	"github.com/dcep/dcep/state/statepb"
	"github.com/dcep/dcep/state/statetest"
)

// Transaction kinds of a script line, their arguments and who signs by
// default:
//
//	issue bank= fen=                              cb
//	return bank= in= fen=                         bank/<bank>, cb
//	exchange bank= in= to= fen=                   bank/<bank>
//	redeem wallet= in= fen=                       wallet/<wallet>
//	transfer from= in= pay=<w>:<fen>,...          wallet/<from>
//	register bank= wallet= kind= tier= [region= parent=]   bank/<bank>
//	update wallet= tier= [region= category= payment= daily= yearly= balance=]
//	rotate wallet= key=<name>                     (wallet's bank)
//	freeze|unfreeze wallet= reason=               (wallet's bank)
//	close wallet=                                 (wallet's bank)
//	member_add name= role=voter|regulator         cb
//	member_remove name=                           cb
//	rotate_key holder=cb|bank|node [id=] key=<name>  cb, <name> (the new key)
//	activate_version v=<version> at=<log index>   cb
//	open_purse wallet= in= purse= device= amount= maxpay= [maxn= notafter=+ms bank= certby=]
//	deposit device= wallet= items=<offpay>,...|garbage   device/<device>
//	close_purse device= purse= final=             device/<device>
//	expire_purse purse=                           device/x (never submittable)
//	create_campaign sponsor= campaign= in= packets= fen= enrol=+a,+b spend=+c,+d seed= [regions= merchants=]
//	add_merchants sponsor= campaign= merchants=
//	enrol wallet= campaign=
//	draw sponsor= campaign= seed=
//	refund merchant= payment=<label> in= fen=
//	sub_create parent= sub=; sub_fund parent= sub= in= fen=
//	sub_push parent= sub= platform= maxpay= maxday= expires=+ms
//	sub_revoke parent= sub=; sub_withdraw parent= sub= in= fen=
//	charge platform= sub= in= fen=
//	none                                          a body with no kind (wallet/alice)
//	raw hex=<bytes> | raw zeros=<n>               (any bytes)
//
// Flags on any line: sig=<name>,... (sign with these keys instead),
// badsig (flip a bit of the first signature), shortsig (cut the first
// signature to 63 bytes), nosig, unknown (an unknown field 99 appended
// to the body before signing), nonce=, chain=, version=, memo=. Times
// "+ms" (or "-ms") are relative to the block's ledger time. Inputs are
// <label>:<i>, or <label>:<a>..<b> for outputs a to b-1 (to pass the
// input limit); a payee <w>:<fen>*<n> is repeated n times.
func (p *Player) tx(line string, at int64) (string, []byte, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", nil, fmt.Errorf("want <label> <kind> [key=value]")
	}
	label, kind, args := f[0], f[1], ParseArgs(f[2:])
	if kind == "raw" {
		if z := get(args, "zeros"); z != "" {
			return label, make([]byte, atoi(z)), nil
		}
		b, err := hex.DecodeString(get(args, "hex"))
		return label, b, err
	}
	body, signers, err := p.body(kind, args, at)
	if err != nil {
		return "", nil, err
	}
	if v := get(args, "sig"); v != "" {
		signers = nil
		for _, name := range strings.Split(v, ",") {
			signers = append(signers, p.key(name))
		}
	}
	if has(args, "nosig") {
		signers = nil
	}
	body.Nonce = uint64(p.c.Index+1)<<20 | uint64(len(p.ids))
	if v := get(args, "nonce"); v != "" {
		body.Nonce = uint64(atoi(v))
	}
	body.Version, body.ChainId, body.Memo = statepb.TxVersion, p.n.Genesis.GetChainId(), get(args, "memo")
	if v := get(args, "version"); v != "" {
		body.Version = uint32(atoi(v))
	}
	if v := get(args, "chain"); v != "" {
		body.ChainId = v
	}
	raw, err := deterministic.Marshal(body)
	if err != nil {
		return "", nil, err
	}
	if has(args, "unknown") {
		raw = protowire.AppendVarint(protowire.AppendTag(raw, 99, protowire.VarintType), 1)
	}
	stx := p.n.SignRaw(p.tb, raw, signers...)
	if has(args, "badsig") || has(args, "shortsig") {
		if stx, err = editSignature(stx, has(args, "shortsig")); err != nil {
			return "", nil, err
		}
	}
	if _, dup := p.ids[label]; dup && !has(args, "again") {
		return "", nil, fmt.Errorf("label %q used twice", label)
	}
	p.ids[label], p.kinds[label] = txID(raw), statepb.KindOf(body)
	return label, stx, nil
}

// editSignature flips a bit of the first signature, or cuts it to 63
// bytes.
func editSignature(stx []byte, cut bool) ([]byte, error) {
	var s statepb.SignedTx
	if err := proto.Unmarshal(stx, &s); err != nil {
		return nil, err
	}
	sig := s.GetSignatures()[0]
	if cut {
		sig.Signature = sig.Signature[:len(sig.Signature)-1]
	} else {
		sig.Signature[0] ^= 1
	}
	return deterministic.Marshal(&s)
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func txID(body []byte) [32]byte { return state.TxID(body) }

// body builds the unsigned body of one kind and its default signers.
func (p *Player) body(kind string, a []Arg, at int64) (*statepb.Tx, []ed25519.PrivateKey, error) {
	n := p.n
	g := func(k string) string { return get(a, k) }
	u := func(k string) uint64 {
		if g(k) == "" {
			return 0
		}
		return uint64(atoi(g(k)))
	}
	in := p.inputs(g("in"))
	wallet := func(k string) ed25519.PrivateKey { return n.Wallet(g(k)) }
	bankOf := func(w string) ed25519.PrivateKey { return n.Bank(p.banks[w]) }
	switch kind {
	case "issue":
		return statetest.IssueBody(g("bank"), u("fen")), keys(n.CentralBank()), nil
	case "return":
		return statetest.ReturnBody(g("bank"), in, u("fen")), keys(n.Bank(g("bank")), n.CentralBank()), nil
	case "exchange":
		return statetest.ExchangeBody(g("bank"), in, g("to"), u("fen")), keys(n.Bank(g("bank"))), nil
	case "redeem":
		return statetest.RedeemBody(g("wallet"), in, u("fen")), keys(wallet("wallet")), nil
	case "transfer":
		var pay []*statepb.Payee
		for _, x := range split(g("pay")) {
			w, fen, _ := strings.Cut(x, ":")
			fen, times, repeated := strings.Cut(fen, "*")
			n := int64(1)
			if repeated {
				n = atoi(times)
			}
			for range n {
				pay = append(pay, statetest.Pay(w, uint64(atoi(fen))))
			}
		}
		return statetest.TransferBody(g("from"), in, pay...), keys(wallet("from")), nil
	case "register":
		p.banks[g("wallet")] = g("bank")
		b := n.RegisterBody(g("bank"), g("wallet"), walletKind(g("kind")), uint32(u("tier")))
		r := b.GetRegisterWallet()
		r.RegionCode, r.ParentWalletId = g("region"), g("parent")
		return b, keys(n.Bank(g("bank"))), nil
	case "update":
		var lim *statepb.Limits
		if g("payment")+g("daily")+g("yearly")+g("balance") != "" {
			lim = &statepb.Limits{MaxPaymentFen: u("payment"), MaxDailyFen: u("daily"), MaxYearlyFen: u("yearly"), MaxBalanceFen: u("balance")}
		}
		return statetest.UpdateBody(g("wallet"), uint32(u("tier")), g("region"), g("category"), lim), keys(bankOf(g("wallet"))), nil
	case "rotate":
		return statetest.RotateBody(g("wallet"), p.key(g("key")).Public().(ed25519.PublicKey)), keys(bankOf(g("wallet"))), nil
	case "freeze":
		return statetest.FreezeBody(g("wallet"), g("reason")), keys(bankOf(g("wallet"))), nil
	case "unfreeze":
		return statetest.UnfreezeBody(g("wallet"), g("reason")), keys(bankOf(g("wallet"))), nil
	case "close":
		return statetest.CloseBody(g("wallet")), keys(bankOf(g("wallet"))), nil
	case "member_add":
		role := statepb.NodeRole_NODE_ROLE_VOTER
		if g("role") == "regulator" {
			role = statepb.NodeRole_NODE_ROLE_REGULATOR
		}
		return n.AddMemberBody(g("name"), role), keys(n.CentralBank()), nil
	case "member_remove":
		return statetest.RemoveMemberBody(g("name")), keys(n.CentralBank()), nil
	case "rotate_key":
		holder := map[string]statepb.KeyHolder{"cb": statepb.KeyHolder_KEY_HOLDER_CENTRAL_BANK, "bank": statepb.KeyHolder_KEY_HOLDER_BANK, "node": statepb.KeyHolder_KEY_HOLDER_NODE}[g("holder")]
		nk := p.key(g("key"))
		return &statepb.Tx{Kind: &statepb.Tx_RotateKey{RotateKey: &statepb.RotateKey{
			Holder: holder, Id: g("id"), NewPublicKey: nk.Public().(ed25519.PublicKey),
		}}}, keys(n.CentralBank(), nk), nil
	case "activate_version":
		return &statepb.Tx{Kind: &statepb.Tx_ActivateVersion{ActivateVersion: &statepb.ActivateVersion{
			Version: uint32(u("v")), ActivateAtIndex: u("at"),
		}}}, keys(n.CentralBank()), nil
	case "none":
		return &statepb.Tx{}, keys(n.Wallet("alice")), nil
	}
	return p.offlineBody(kind, a, at, in)
}

func (p *Player) offlineBody(kind string, a []Arg, at int64, in []*statepb.Outpoint) (*statepb.Tx, []ed25519.PrivateKey, error) {
	n := p.n
	g := func(k string) string { return get(a, k) }
	u := func(k string) uint64 {
		if g(k) == "" {
			return 0
		}
		return uint64(atoi(g(k)))
	}
	switch kind {
	case "open_purse":
		bank := g("bank")
		if bank == "" {
			bank = p.banks[g("wallet")]
		}
		maxn, notAfter := uint32(u("maxn")), at+atoi(orDefault(g("notafter"), "+864000000"))
		if maxn == 0 {
			maxn = 10
		}
		spec := statetest.Purse{Name: g("purse"), Bank: bank, Wallet: g("wallet"), Device: g("device"),
			AmountFen: u("amount"), MaxPaymentFen: u("maxpay"), MaxPayments: maxn, NotAfterMs: notAfter}
		signer := n.Bank(bank)
		if g("certby") != "" {
			signer = p.key(g("certby"))
		}
		cert := n.CertBy(p.tb, signer, spec)
		p.certs[g("purse")] = cert
		return statetest.OpenPurseBody(g("wallet"), in, cert), keys(n.Wallet(g("wallet"))), nil
	case "deposit":
		var items []*statepb.DepositItem
		for _, l := range split(g("items")) {
			if l == "garbage" {
				req := n.Request(g("device"), 100, "garbage")
				items = append(items, statetest.Item(&statepb.Payment{Body: []byte{0xff, 0x01}, Signature: make([]byte, 64)}, req))
				continue
			}
			it, ok := p.pays[l]
			if !ok {
				return nil, nil, fmt.Errorf("no offline payment %q", l)
			}
			items = append(items, it)
		}
		return n.DepositBody(g("device"), g("wallet"), items...), keys(n.Device(g("device"))), nil
	case "close_purse":
		return statetest.ClosePurseBody(statetest.PurseID(g("purse")), uint32(u("final"))), keys(n.Device(g("device"))), nil
	case "expire_purse":
		return &statepb.Tx{Kind: &statepb.Tx_ExpirePurse{ExpirePurse: &statepb.ExpirePurse{PurseId: statetest.PurseID(g("purse"))}}}, keys(n.Device("x")), nil
	}
	return p.programmableBody(kind, a, at, in)
}

func (p *Player) programmableBody(kind string, a []Arg, at int64, in []*statepb.Outpoint) (*statepb.Tx, []ed25519.PrivateKey, error) {
	n := p.n
	g := func(k string) string { return get(a, k) }
	u := func(k string) uint64 {
		if g(k) == "" {
			return 0
		}
		return uint64(atoi(g(k)))
	}
	window := func(k string) (int64, int64) {
		w := split(g(k))
		if len(w) != 2 {
			panic(fatal(k + "= wants +start,+end"))
		}
		return at + atoi(w[0]), at + atoi(w[1])
	}
	switch kind {
	case "create_campaign":
		es, ee := window("enrol")
		ss, se := window("spend")
		return statetest.CreateCampaignBody(statetest.Campaign{
			ID: g("campaign"), Sponsor: g("sponsor"), Title: "corpus", Inputs: in, Packets: uint32(u("packets")), PacketFen: u("fen"),
			EnrolStart: es, EnrolEnd: ee, SpendStart: ss, SpendEnd: se, Regions: split(g("regions")), Merchants: split(g("merchants")),
			Seed: statetest.Seed(g("seed")),
		}), keys(n.Wallet(g("sponsor"))), nil
	case "add_merchants":
		return statetest.AddMerchantsBody(g("campaign"), split(g("merchants"))...), keys(n.Wallet(g("sponsor"))), nil
	case "enrol":
		return statetest.EnrolBody(g("campaign"), g("wallet")), keys(n.Wallet(g("wallet"))), nil
	case "draw":
		return statetest.DrawBody(g("campaign"), statetest.Seed(g("seed"))), keys(n.Wallet(g("sponsor"))), nil
	case "refund":
		id := p.ids[g("payment")]
		return statetest.RefundBody(g("merchant"), id[:], in, u("fen")), keys(n.Wallet(g("merchant"))), nil
	case "sub_create":
		p.banks[g("sub")] = p.banks[g("parent")]
		return statetest.CreateSubWalletBody(g("parent"), g("sub")), keys(n.Wallet(g("parent"))), nil
	case "sub_fund":
		return statetest.FundSubWalletBody(g("sub"), in, u("fen")), keys(n.Wallet(g("parent"))), nil
	case "sub_push":
		return statetest.PushSubWalletBody(g("sub"), g("platform"), u("maxpay"), u("maxday"), at+atoi(orDefault(g("expires"), "+86400000"))), keys(n.Wallet(g("parent"))), nil
	case "sub_revoke":
		return statetest.RevokeSubWalletBody(g("sub")), keys(n.Wallet(g("parent"))), nil
	case "sub_withdraw":
		return statetest.WithdrawSubWalletBody(g("sub"), in, u("fen")), keys(n.Wallet(g("parent"))), nil
	case "charge":
		return statetest.ChargeBody(g("platform"), g("sub"), in, u("fen")), keys(n.Wallet(g("platform"))), nil
	}
	return nil, nil, fmt.Errorf("unknown kind %q", kind)
}

// offpay makes a payer device's payment for a later deposit.
func (p *Player) offpay(args []Arg) error {
	f := args[0].Key
	g := func(k string) string { return get(args, k) }
	cert, ok := p.certs[g("purse")]
	if !ok {
		return fmt.Errorf("no purse %q opened in this script", g("purse"))
	}
	fen := uint64(atoi(g("fen")))
	// The payment answers signed (its body), the deposit presents req.
	req, signed := p.n.Request(g("to"), fen, f), p.n.Request(g("to"), fen, f)
	if tag := g("nonce"); tag != "" {
		signed = p.n.Request(g("to"), fen, tag)
	}
	if v := g("reqfen"); v != "" {
		req.AmountFen = uint64(atoi(v))
	}
	var prev []byte
	if l := g("prev"); l != "" {
		h := p.hashes[l]
		prev = h[:]
	}
	pay, h := p.n.Payment(p.tb, statetest.OfflinePay{Device: g("device"), Cert: cert, Counter: uint32(atoi(g("counter"))), Prev: prev, Req: signed})
	p.pays[f], p.hashes[f] = statetest.Item(pay, req), h
	return nil
}

// inputs parses "label:i,label:j,label:a..b".
func (p *Player) inputs(s string) []*statepb.Outpoint {
	var out []*statepb.Outpoint
	for _, x := range split(s) {
		l, i, ok := strings.Cut(x, ":")
		id, known := p.ids[l]
		if !ok || !known {
			panic(fatal(fmt.Sprintf("input %q: want <label>:<index> of an earlier transaction", x)))
		}
		from, to, isRange := strings.Cut(i, "..")
		if !isRange {
			to = strconv.FormatInt(atoi(from)+1, 10)
		}
		for j := atoi(from); j < atoi(to); j++ {
			out = append(out, statetest.Out(id, uint32(j)))
		}
	}
	return out
}

func walletKind(s string) statepb.WalletKind {
	switch s {
	case "merchant":
		return statepb.WalletKind_WALLET_KIND_MERCHANT
	case "government":
		return statepb.WalletKind_WALLET_KIND_GOVERNMENT
	case "sub":
		return statepb.WalletKind_WALLET_KIND_SUB_WALLET
	case "reserve":
		return statepb.WalletKind_WALLET_KIND_BANK_RESERVE
	}
	return statepb.WalletKind_WALLET_KIND_PERSONAL
}

func keys(k ...ed25519.PrivateKey) []ed25519.PrivateKey { return k }

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
