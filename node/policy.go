package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/accesslog"
	"github.com/dcep/dcep/node/nodepb"
	pc "github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state/statepb"
)

// access is who may call a procedure (docs/api.md, "Who may call what").
type access uint8

const (
	// accessPublic: anyone, anonymous too.
	accessPublic access = iota + 1
	// accessSubmit: anyone (transactions carry their own signatures), with
	// a per-identity rate limit (the signed-in caller, the tx's signers:
	// ratelimit.go) on top of the per-IP one.
	accessSubmit
	// accessSignedIn: any signed-in identity, not anonymous callers; rate-
	// limited per identity (GetWalletKey: chargeWalletKey).
	accessSignedIn
	// accessWallet: the parties of the wallet the request names — its
	// holder (for a sub-wallet, also its parent's holder), the merchant
	// platform a sub-wallet is pushed to, the wallet's bank — and
	// regulators.
	accessWallet
	// accessPublicOrWallet: anyone, unless the request names a wallet;
	// then accessWallet for it.
	accessPublicOrWallet
	// accessRecord: the parties of the record answered — a wallet named
	// in it (payer, payee, owner), that wallet's bank, a key that signed
	// it — and regulators.
	accessRecord
	// accessSponsor: the parties of the campaign's sponsor wallet, and
	// regulators.
	accessSponsor
	// accessInstitution: banks, the central bank, regulators.
	accessInstitution
	// accessPublicOrInstitution: anyone; with audit=true (a full scan of
	// the ledger) accessInstitution.
	accessPublicOrInstitution
	// accessRegulator: regulators.
	accessRegulator
	// accessRegulatorOrOperator: regulators and the node's own operator
	// (the bank or central bank that runs it).
	accessRegulatorOrOperator
	// accessRegulatorOrOperatorBank: regulators; on a bank's own node,
	// that bank too, which the handler answers only about its customers
	// (AccessLog: records whose subject wallet is the bank's).
	accessRegulatorOrOperatorBank
)

// who is the doc text of an access: the roles that may call.
func (a access) who() string {
	return [...]string{
		accessPublic:                  "anyone",
		accessSubmit:                  "anyone (rate-limited per IP and per identity)",
		accessSignedIn:                "any signed-in identity (rate-limited per identity)",
		accessWallet:                  "holder, platform (sub-wallet pushed to it), its bank, regulator",
		accessPublicOrWallet:          "anyone; with `wallet_id`: holder, its bank, regulator",
		accessRecord:                  "its parties (wallets named in it, their banks, its signers), regulator",
		accessSponsor:                 "the sponsor wallet's holder and bank, regulator",
		accessInstitution:             "bank, central bank, regulator",
		accessPublicOrInstitution:     "anyone; `audit=true`: bank, central bank, regulator",
		accessRegulator:               "regulator",
		accessRegulatorOrOperator:     "regulator, this node's operator",
		accessRegulatorOrOperatorBank: "regulator; on its own node, the operator bank (its customers only)",
	}[a]
}

// policyRule is one row of the policy table.
type policyRule struct {
	// Procedure is the connect procedure, or "GET /path" for a plain route.
	Procedure string
	Access    access
	// Sees is what an allowed caller gets (doc text).
	Sees string
	// Logged: the call reads identity-linked data; it goes to the access
	// log (recordAccess), allowed or refused.
	Logged bool
	// subject names what the request is about (a wallet id for
	// accessWallet, accessPublicOrWallet and accessSponsor).
	subject func(n *Node, m proto.Message) string
	// record picks the record whose parties accessRecord checks (default:
	// the whole response).
	record func(m proto.Message) proto.Message
}

// Policy is the one table of who may call what on the client API: a row
// for every RPC of every service (a test enumerates the service
// descriptors) and for every plain HTTP route. docs/api.md carries the same
// table (PolicyMarkdown; a test keeps them equal).
var Policy = []policyRule{
	{Procedure: pc.LedgerServiceSubmitProcedure, Access: accessSubmit, Sees: "the transaction's outcome"},
	{Procedure: pc.LedgerServiceGetTxProcedure, Access: accessRecord, Sees: "the transaction, its body and outcome", Logged: true},
	{Procedure: pc.LedgerServiceGetWalletProcedure, Access: accessWallet, Sees: "the wallet record (balance, limits, status)", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.LedgerServiceGetWalletKeyProcedure, Access: accessSignedIn, Sees: "the wallet's public key only (to seal a memo to it); a decoy key for a wallet this node does not know", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.LedgerServiceListWalletsProcedure, Access: accessRegulator, Sees: "every wallet (a bank lists its customers from its own books)", Logged: true},
	{Procedure: pc.LedgerServiceListUnspentProcedure, Access: accessWallet, Sees: "the wallet's unspent outputs", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.LedgerServiceHistoryProcedure, Access: accessWallet, Sees: "the wallet's history (memos as recorded)", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.LedgerServiceSupplyProcedure, Access: accessPublicOrInstitution, Sees: "money supply totals; with audit, per bank"},
	{Procedure: pc.LedgerServiceStatusProcedure, Access: accessPublic, Sees: "the node's and network's status"},
	{Procedure: pc.LedgerServiceGetGenesisProcedure, Access: accessPublic, Sees: "the genesis (public keys, members) and the keys in force"},
	{Procedure: pc.LedgerServiceStreamOutcomesProcedure, Access: accessInstitution, Sees: "every block's outcomes (tx ids, codes, messages)"},
	{Procedure: pc.LedgerServiceGetPurseProcedure, Access: accessRecord, Sees: "the purse and its settlements", Logged: true,
		record: func(m proto.Message) proto.Message { return m.(*nodepb.GetPurseResponse).GetPurse() }},
	{Procedure: pc.LedgerServiceGetSettlementProcedure, Access: accessRecord, Sees: "the offline payment's settlement", Logged: true},
	{Procedure: pc.LedgerServiceGetOfflineTxProcedure, Access: accessRecord, Sees: "the offline transaction's record", Logged: true},
	{Procedure: pc.LedgerServiceListIncidentsProcedure, Access: accessInstitution, Sees: "offline double-spend incidents with their proofs", Logged: true},
	{Procedure: pc.LedgerServiceListRevocationsProcedure, Access: accessPublic, Sees: "revoked purse devices (what payee devices must refuse)"},
	{Procedure: pc.LedgerServiceGetOfflineDebtProcedure, Access: accessWallet, Sees: "the wallet's offline debt", Logged: true, subject: field("wallet_id")},

	{Procedure: pc.AuditServiceSupplyProcedure, Access: accessRegulator, Sees: "the audited supply", Logged: true},
	{Procedure: pc.AuditServiceLargePaymentsProcedure, Access: accessRegulator, Sees: "large payments with payer and payee", Logged: true},
	{Procedure: pc.AuditServiceBankActivityProcedure, Access: accessRegulator, Sees: "per-bank daily activity", Logged: true},
	{Procedure: pc.AuditServiceFrozenWalletsProcedure, Access: accessRegulator, Sees: "frozen wallets and why", Logged: true},
	{Procedure: pc.AuditServiceIncidentsProcedure, Access: accessRegulator, Sees: "offline incidents", Logged: true},
	{Procedure: pc.AuditServiceOfflineProcedure, Access: accessRegulator, Sees: "offline exposure per bank", Logged: true},
	{Procedure: pc.AuditServiceCampaignsProcedure, Access: accessRegulator, Sees: "red-packet campaigns' totals", Logged: true},
	{Procedure: pc.AuditServiceDivergenceProcedure, Access: accessRegulator, Sees: "state-hash comparisons with peers"},
	{Procedure: pc.AuditServiceReplayProcedure, Access: accessRegulatorOrOperator, Sees: "the replay's report (minutes of CPU)"},
	{Procedure: pc.AuditServiceAccessLogProcedure, Access: accessRegulatorOrOperatorBank, Sees: "this node's access-log records (who read what); a bank only those about its customers' wallets", Logged: true, subject: field("wallet")},
	{Procedure: pc.AuditServiceOverviewProcedure, Access: accessRegulator, Sees: "the console's overview", Logged: true},

	{Procedure: pc.ProgrammableServiceGetCampaignProcedure, Access: accessPublicOrWallet, Sees: "the campaign; with wallet_id, that wallet's enrolment", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.ProgrammableServiceListCampaignsProcedure, Access: accessPublic, Sees: "campaigns (title, windows, counts)"},
	{Procedure: pc.ProgrammableServiceListEnrolmentsProcedure, Access: accessSponsor, Sees: "enrolled wallets", Logged: true, subject: sponsor},
	{Procedure: pc.ProgrammableServiceListWinnersProcedure, Access: accessSponsor, Sees: "winning wallets", Logged: true, subject: sponsor},
	{Procedure: pc.ProgrammableServiceCheckEligibilityProcedure, Access: accessWallet, Sees: "whether the wallet may enrol or be paid", Logged: true, subject: field("wallet_id")},
	{Procedure: pc.ProgrammableServiceGetSubWalletProcedure, Access: accessWallet, Sees: "the sub-wallet and its push state", Logged: true, subject: field("sub_wallet_id")},
	{Procedure: pc.ProgrammableServiceGetPaymentProcedure, Access: accessWallet, Sees: "a payment the merchant received", Logged: true, subject: field("merchant_wallet_id")},
	{Procedure: pc.ProgrammableServiceListPaymentsProcedure, Access: accessWallet, Sees: "the payments the merchant received", Logged: true, subject: field("merchant_wallet_id")},

	// Reflection reveals the API's shape (the public .proto files), no data.
	{Procedure: reflectV1Procedure, Access: accessPublic, Sees: "the API's service and message descriptors (gRPC server reflection)"},
	{Procedure: reflectV1AlphaProcedure, Access: accessPublic, Sees: "the same, for v1alpha clients"},

	{Procedure: "GET /status", Access: accessPublic, Sees: "Status as JSON"},
	{Procedure: "GET /healthz", Access: accessPublic, Sees: "the process is up"},
	{Procedure: "GET /readyz", Access: accessPublic, Sees: "ready or why not"},
	{Procedure: "GET /metrics", Access: accessPublic, Sees: "Prometheus metrics: counts and timings, no wallet ids"},
	{Procedure: "GET /console/", Access: accessPublic, Sees: "the console's static app; its data comes through the API with the visitor's token"},
}

var policyByProcedure = func() map[string]*policyRule {
	m := map[string]*policyRule{}
	for i := range Policy {
		m[Policy[i].Procedure] = &Policy[i]
	}
	return m
}()

// PolicyProcedures lists the table's procedures (tests).
func PolicyProcedures() []string {
	var out []string
	for _, r := range Policy {
		out = append(out, r.Procedure)
	}
	return out
}

// PolicyMarkdown is the table as docs/api.md carries it.
func PolicyMarkdown() string {
	var b strings.Builder
	b.WriteString("| procedure | who may call | what they see |\n|---|---|---|\n")
	for _, r := range Policy {
		p := strings.TrimPrefix(r.Procedure, "/dcep.node.v1.")
		fmt.Fprintf(&b, "| `%s` | %s | %s%s |\n", p, r.Access.who(), r.Sees, map[bool]string{true: " (access log)"}[r.Logged])
	}
	return b.String()
}

// field reads a string field of the request by name.
func field(name string) func(*Node, proto.Message) string {
	return func(_ *Node, m proto.Message) string {
		f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
		if f == nil {
			return ""
		}
		return m.ProtoReflect().Get(f).String()
	}
}

// sponsor is the sponsor wallet of the campaign the request names.
func sponsor(n *Node, m proto.Message) string {
	c, err := n.store.Campaign(field("campaign_id")(n, m))
	if err != nil {
		return ""
	}
	return c.GetSponsorWalletId()
}

// policyInterceptor enforces Policy on every RPC: it authenticates the
// caller, refuses what its role does not allow, and records reads of
// identity-linked data (recordAccess).
type policyInterceptor struct{ n *Node }

func (p policyInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		proc := req.Spec().Procedure
		rule := policyByProcedure[proc]
		if rule == nil {
			return nil, apiError(CodeInternal, "%s has no row in the policy table", proc)
		}
		c, aerr := p.n.authenticate(req.Header(), req.Peer().Addr)
		msg, _ := req.Any().(proto.Message)
		if aerr != nil {
			if lerr := p.n.logUnauthenticated(rule, c, msg); lerr != nil {
				return nil, apiError(CodeUnavailable, "access log: %v", lerr)
			}
			return nil, aerr
		}
		ctx = withCaller(ctx, c)
		subject, err := p.n.allow(c, rule, msg)
		if err != nil {
			if lerr := p.n.logAccess(rule, c, msg, subject, false, errorCode(err)); lerr != nil {
				return nil, apiError(CodeUnavailable, "access log: %v", lerr)
			}
			return nil, err
		}
		resp, err := next(ctx, req)
		if rule.Access == accessRecord {
			resp, subject, err = p.n.checkRecord(c, rule, resp, err)
		}
		// An access that cannot be put on record is not answered.
		allowed := err == nil || !isDenial(err)
		if lerr := p.n.logAccess(rule, c, msg, subject, allowed, errorCode(err)); lerr != nil {
			return nil, apiError(CodeUnavailable, "access log: %v", lerr)
		}
		return resp, err
	}
}

func (p policyInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler checks a stream on its headers: no streaming
// procedure needs its request to decide (StreamOutcomes is by role).
func (p policyInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		proc := conn.Spec().Procedure
		rule := policyByProcedure[proc]
		if rule == nil {
			return apiError(CodeInternal, "%s has no row in the policy table", proc)
		}
		c, aerr := p.n.authenticate(conn.RequestHeader(), conn.Peer().Addr)
		if aerr != nil {
			return aerr
		}
		if _, err := p.n.allow(c, rule, nil); err != nil {
			return err
		}
		return next(withCaller(ctx, c), conn)
	}
}

// allow decides a call before it runs; it returns what the call is about
// (for the access log).
func (n *Node) allow(c caller, rule *policyRule, msg proto.Message) (string, error) {
	acc := rule.Access
	var wallet string
	if rule.subject != nil && msg != nil {
		wallet = rule.subject(n, msg)
	}
	switch acc {
	case accessPublicOrWallet:
		if wallet == "" {
			return "", nil
		}
		acc = accessWallet
	case accessPublicOrInstitution:
		if s, ok := msg.(*nodepb.SupplyRequest); !ok || !s.GetAudit() {
			return "", nil
		}
		acc = accessInstitution
	}
	subject := ""
	if wallet != "" {
		subject = "wallet:" + wallet
	}
	switch acc {
	case accessPublic:
		return "", nil
	case accessSubmit:
		return "", n.chargeCaller(c)
	case accessSignedIn:
		if c.anonymous() {
			return subject, denied(c, strings.TrimPrefix(rule.Procedure, "/dcep.node.v1."), acc)
		}
		return subject, n.chargeWalletKey(c)
	case accessWallet, accessSponsor:
		if acc == accessSponsor && wallet == "" && msg != nil {
			// No such campaign: answered as the handler would, NOT_FOUND,
			// to everyone (campaigns are public).
			return "campaign:" + field("campaign_id")(n, msg), nil
		}
		if statepb.ValidateID("wallet_id", wallet) != nil {
			return subject, nil // the handler names the bad field
		}
		if n.walletAllowed(c, wallet) {
			return subject, nil
		}
		return subject, denied(c, fmt.Sprintf("wallet %q", wallet), acc)
	case accessRecord:
		return "", nil // decided on the answer (checkRecord)
	case accessInstitution:
		if c.is(token.KindBank) || c.is(token.KindCentralBank) || c.is(token.KindRegulator) {
			return "", nil
		}
	case accessRegulator:
		if c.is(token.KindRegulator) {
			return "", nil
		}
	case accessRegulatorOrOperator:
		op := n.self().GetOperator()
		if c.is(token.KindRegulator) || ((c.is(token.KindBank) || c.is(token.KindCentralBank)) && c.sub.ID == op) {
			return "", nil
		}
	case accessRegulatorOrOperatorBank:
		// The wallet asked about is on record, allowed or refused.
		if c.is(token.KindRegulator) || (c.is(token.KindBank) && c.sub.ID == n.self().GetOperator()) {
			return subject, nil
		}
		return subject, denied(c, strings.TrimPrefix(rule.Procedure, "/dcep.node.v1."), acc)
	}
	return "", denied(c, strings.TrimPrefix(rule.Procedure, "/dcep.node.v1."), acc)
}

// walletAllowed: c is a party of wallet id (accessWallet). A wallet that
// does not exist has no parties but regulators, so the answer for it and
// for one c may not read is the same.
func (n *Node) walletAllowed(c caller, id string) bool {
	if c.is(token.KindRegulator) {
		return true
	}
	if c.anonymous() {
		return false
	}
	w, err := n.store.Wallet(id)
	if err != nil {
		return false
	}
	switch c.sub.Kind {
	case token.KindBank:
		return w.GetBankId() == c.sub.ID
	case token.KindWallet:
		if c.sub.ID == id || (w.GetParentWalletId() != "" && c.sub.ID == w.GetParentWalletId()) {
			return true
		}
		if w.GetParentWalletId() == "" {
			return false
		}
		sw, err := n.store.SubWallet(id)
		return err == nil && !sw.GetRevoked() && sw.GetPlatformWalletId() == c.sub.ID
	}
	return false
}

// checkRecord decides an accessRecord call on its answer: c must be a
// party of the record. A record that does not exist is answered to a
// non-regulator exactly as one it may not read.
func (n *Node) checkRecord(c caller, rule *policyRule, resp connect.AnyResponse, err error) (connect.AnyResponse, string, error) {
	what := strings.TrimPrefix(rule.Procedure, "/dcep.node.v1.")
	if err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound && !c.is(token.KindRegulator) {
			return nil, "", denied(c, what, rule.Access)
		}
		return nil, "", err
	}
	msg, _ := resp.Any().(proto.Message)
	rec := msg
	if rule.record != nil {
		rec = rule.record(msg)
	}
	wallets, keys := parties(rec)
	subject := ""
	if len(wallets) > 0 {
		subject = "wallet:" + wallets[0] // the first party: a payer, owner
	}
	if c.is(token.KindRegulator) {
		return resp, subject, nil
	}
	for _, k := range keys {
		if len(c.key) > 0 && c.key.Equal(k) {
			return resp, subject, nil
		}
	}
	for _, w := range wallets {
		if n.walletAllowed(c, w) {
			return resp, subject, nil
		}
	}
	return nil, subject, denied(c, what, rule.Access)
}

// maxParties bounds the wallets checkRecord looks up for one record.
const maxParties = 256

// parties collects the wallet ids a record names (fields wallet_id,
// *_wallet_id, output_owners) and the keys that signed it (Signature
// public keys), depth first.
func parties(m proto.Message) (wallets []string, keys [][]byte) {
	var walk func(protoreflect.Message)
	walk = func(r protoreflect.Message) {
		sig := r.Descriptor().FullName() == "dcep.state.v1.Signature"
		r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := string(fd.Name())
			switch {
			case fd.Kind() == protoreflect.MessageKind && fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
				walk(v.Message())
			case fd.Kind() == protoreflect.StringKind && (name == "wallet_id" || strings.HasSuffix(name, "_wallet_id")) && !fd.IsList():
				wallets = append(wallets, v.String())
			case fd.Kind() == protoreflect.StringKind && name == "output_owners" && fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					wallets = append(wallets, v.List().Get(i).String())
				}
			case sig && name == "public_key":
				keys = append(keys, v.Bytes())
			}
			return len(wallets) < maxParties
		})
	}
	if m != nil && m.ProtoReflect().IsValid() {
		walk(m.ProtoReflect())
	}
	return wallets, keys
}

// denied is the refusal of c for what: UNAUTHENTICATED for an anonymous
// caller, else PERMISSION_DENIED naming the roles that may.
func denied(c caller, what string, a access) *connect.Error {
	if c.anonymous() {
		return apiError(CodeUnauthenticated, "no bearer token: %s needs %s (dcep token --as NAME)", what, a.who())
	}
	return apiError(CodePermissionDenied, "%s needs %s; you are %s", what, a.who(), c)
}

func isDenial(err error) bool {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false
	}
	return ce.Code() == connect.CodePermissionDenied || ce.Code() == connect.CodeUnauthenticated
}

// logAccess puts a Logged call on the access log (node/accesslog):
// who (the caller and its role), what (the procedure, the subject wallet,
// the request's tx id if it names one), from where, allowed or refused.
// The record is fsynced before logAccess returns; an error means the access
// is not on record, and an allowed read must then be refused (the
// interceptor answers UNAVAILABLE), never answered unrecorded.
func (n *Node) logAccess(rule *policyRule, c caller, msg proto.Message, subject string, allowed bool, code string) error {
	if !rule.Logged {
		return nil
	}
	wallet, _ := strings.CutPrefix(subject, "wallet:")
	if wallet == subject {
		wallet = "" // "campaign:ID" or none
	}
	rec := accesslog.Record{
		Identity: c.sub.ID, Role: c.role(), Procedure: rule.Procedure,
		Wallet: wallet, TxID: requestTxID(msg),
		Addr: c.addr, Allowed: allowed, Code: code,
	}
	return n.recordAccess(rec)
}

// logUnauthenticated puts a Logged call refused for its bearer token (401,
// before the policy applies) on the access log: who as claimed — the
// token's sub unverified (role "unverified"), or anonymous when it has
// none — the procedure and the wallet the request names, the address,
// refused with code "UNAUTHENTICATED:<reason>" (authReason). A flood of
// bad tokens must not rotate real records out of the bounded log: per
// client address at most unauthLogRate such records a second are written
// (burst unauthLogBurst); beyond that the calls are still refused, not
// recorded, and counted (dcep_access_unrecorded_refusals_total). Such a
// call reads nothing, so no access to personal data goes unrecorded.
func (n *Node) logUnauthenticated(rule *policyRule, c caller, msg proto.Message) error {
	if !rule.Logged {
		return nil
	}
	if !n.unauthLog.allow(c.addr) {
		n.metrics.unrecordedRefusals.Inc()
		return nil
	}
	wallet := ""
	if rule.subject != nil && msg != nil {
		wallet = rule.subject(n, msg)
	}
	if wallet != "" && statepb.ValidateID("wallet_id", wallet) != nil {
		wallet = "" // junk is not a subject; the record cuts long fields anyway
	}
	rec := accesslog.Record{
		Role: "anonymous", Procedure: rule.Procedure, Wallet: wallet, TxID: requestTxID(msg),
		Addr: c.addr, Allowed: false, Code: CodeUnauthenticated + ":" + c.reason,
	}
	if c.claim != "" {
		rec.Identity, rec.Role = c.claim, "unverified"
	}
	return n.recordAccess(rec)
}

// Bounds of the access-log records of 401 refusals, per client address.
const (
	unauthLogRate  = 10
	unauthLogBurst = 100
)

// requestTxID is the request's tx_id field, if it has one.
func requestTxID(m proto.Message) []byte {
	if m == nil {
		return nil
	}
	fd := m.ProtoReflect().Descriptor().Fields().ByName("tx_id")
	if fd == nil || fd.Kind() != protoreflect.BytesKind {
		return nil
	}
	return m.ProtoReflect().Get(fd).Bytes()
}

// role names the caller's kind for the access log: "anonymous", or the
// token subject's kind (wallet, bank, central-bank, regulator; a platform
// signs in as its wallet).
func (c caller) role() string {
	if c.anonymous() {
		return "anonymous"
	}
	return c.sub.Kind
}

// errorCode is the stable code an API error carries ("" for none).
func errorCode(err error) string {
	var ce *connect.Error
	if err == nil || !errors.As(err, &ce) {
		return ""
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*nodepb.ErrorInfo); ok {
				return info.GetCode()
			}
		}
	}
	return ce.Code().String()
}
