package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/node/nodepb"
)

type accessJSON struct {
	Time      string `json:"time"`
	Identity  string `json:"identity"`
	Role      string `json:"role"`
	Procedure string `json:"procedure"`
	Wallet    string `json:"wallet,omitempty"`
	TxID      string `json:"tx_id,omitempty"`
	Addr      string `json:"addr"`
	Allowed   bool   `json:"allowed"`
	Code      string `json:"code,omitempty"`
	ms        int64
}

type accessListJSON struct {
	Node    string       `json:"node"`
	Records []accessJSON `json:"records"`
}

func (a *app) auditAccessCmd() *cobra.Command {
	var wallet, by, since string
	var limit uint32
	cmd := &cobra.Command{
		Use:   "access (--wallet WALLET | --by IDENTITY) [--since TIME] [--limit N]",
		Short: "Who read a wallet's data, or what an identity read, on this node",
		Long: `audit access lists the node's access log: every read of identity-linked data
(a wallet, its history, a transaction, payments, a purse, an audit answer) the
node answered or refused — who (identity and role), what (procedure and
wallet or transaction), when (the node's clock, UTC+8), from which address,
and the refusal's code. Each node keeps its own log: this asks your regulator
node by default (or --node), and shows only what that node served.

A regulator sees every record. A bank (signed in with its bank key) may ask
only its own node, and sees only the records about its own customers' wallets:
--by IDENTITY lists what that identity read of the bank's customers, and a
--wallet of another bank's customer shows no records. Another bank's node
refuses it (PERMISSION_DENIED). The query itself is on record.`,
		Example: `  dcep audit access --wallet alice
  dcep audit access --by icbc --since 2026-12-11
  dcep --node http://icbc-node:8101 --as icbc audit access --wallet alice
  dcep --json audit access --wallet alice --limit 50`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if wallet == "" && by == "" {
				return usage("give --wallet WALLET or --by IDENTITY (or both)")
			}
			req := &nodepb.AccessLogRequest{Wallet: wallet, By: by, Limit: limit}
			if since != "" {
				ms, err := parseWhen("since", since)
				if err != nil {
					return err
				}
				req.SinceMs = ms
			}
			ctx := cmd.Context()
			cl, role, note, err := a.auditor(ctx)
			if err != nil {
				return err
			}
			resp, err := cl.AccessLog(ctx, req)
			if err != nil {
				return err
			}
			out := accessListJSON{Node: resp.GetNode(), Records: []accessJSON{}}
			for _, r := range resp.GetRecords() {
				j := accessJSON{Time: whenJSON(r.GetTimeMs()), Identity: r.GetIdentity(), Role: r.GetRole(), Procedure: r.GetProcedure(),
					Wallet: r.GetWallet(), Addr: r.GetAddr(), Allowed: r.GetAllowed(), Code: r.GetCode(), ms: r.GetTimeMs()}
				if len(r.GetTxId()) > 0 {
					j.TxID = hex.EncodeToString(r.GetTxId())
				}
				out.Records = append(out.Records, j)
			}
			return a.emit(out, func(w io.Writer) { printAccess(w, out, role, note) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&wallet, "wallet", "", "reads of this wallet's data")
	f.StringVar(&by, "by", "", "reads by this identity (a wallet, bank or regulator id)")
	f.StringVar(&since, "since", "", "from this Beijing-time date or time")
	f.Uint32Var(&limit, "limit", 0, "at most this many, the newest (default 1000, at most 10000)")
	return cmd
}

func printAccess(w io.Writer, out accessListJSON, role, note string) {
	fmt.Fprintf(w, "access log of %s (%s)\n", out.Node, role)
	if note != "" {
		fmt.Fprintf(w, "note: %s\n", note)
	}
	if len(out.Records) == 0 {
		fmt.Fprintln(w, "no records")
		return
	}
	t := newTable("TIME (UTC+8)", "WHO", "ROLE", "WHAT", "WALLET", "TX", "FROM", "ANSWER")
	for _, r := range out.Records {
		who, answer, tx := r.Identity, "allowed", ""
		if who == "" {
			who = "-"
		}
		if !r.Allowed {
			answer = "refused " + r.Code
		}
		if r.TxID != "" {
			tx = r.TxID[:12]
		}
		t.add(when(r.ms), who, r.Role, shortProcedure(r.Procedure), r.Wallet, tx, r.Addr, answer)
	}
	t.write(w)
}

// shortProcedure drops the package from "/dcep.node.v1.LedgerService/History".
func shortProcedure(p string) string {
	const prefix = "/dcep.node.v1."
	if len(p) > len(prefix) && p[:len(prefix)] == prefix {
		return p[len(prefix):]
	}
	return p
}
