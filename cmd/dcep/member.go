package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/state/statepb"
)

// memberJSON is one member of the network as `dcep member list` shows it.
type memberJSON struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	PeerID    string `json:"peer_id"`
	Connected bool   `json:"connected"`
}

// memberCmd is `dcep member list|add|remove`: the network's membership
// (the ledger's member records), changed by central-bank-signed
// ChangeMembership transactions.
func (a *app) memberCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "The network's members (bank voters, regulators): list, add, remove",
		Long: `member shows and changes who runs the network. Changes are ChangeMembership
transactions signed with the central bank's key; consensus follows them (the
Raft configuration and the libp2p allowlist). A removed node logs that it was
removed and stops.`,
		Example: `  dcep member list
  dcep member add regulator-2 --role regulator --node-key nodes/regulator-2/keys/node.key --addr /ip4/10.0.0.9/tcp/7101
  dcep member remove regulator-2`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.memberListCmd(), a.memberAddCmd(), a.memberRemoveCmd())
	return cmd
}

func (a *app) memberListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the members in the node's ledger",
		Long: `list shows every member of the network as the node's ledger records it (the
node itself and its peers), with each one's role and libp2p peer id, and
whether the node is connected to it.`,
		Example: `  dcep member list`,
		Args:    args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			self := st.GetNode()
			out := []memberJSON{{Name: self.GetName(), Role: roleName(self.GetRole()), PeerID: self.GetPeerId(), Connected: true}}
			if self.GetRole() == statepb.NodeRole_NODE_ROLE_UNSPECIFIED {
				out = nil // the node asked is not (or no longer) a member
			}
			for _, p := range st.GetPeers() {
				out = append(out, memberJSON{Name: p.GetName(), Role: roleName(p.GetRole()), PeerID: p.GetPeerId(), Connected: p.GetConnected()})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return a.emit(out, func(w io.Writer) {
				t := newTable("NAME", "ROLE", "PEER ID", "CONNECTED")
				for _, m := range out {
					t.add(m.Name, m.Role, m.PeerID, yesNo(m.Connected))
				}
				t.write(w)
				fmt.Fprintf(w, "\n%d members (as %s records them)\n", len(out), self.GetName())
			})
		}),
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) memberAddCmd() *cobra.Command {
	var role, pubHex, keyFile, operator, operatorKeyHex string
	var addrs []string
	cmd := &cobra.Command{
		Use:   "add NAME --role voter|regulator (--node-key FILE | --public-key HEX) --addr MULTIADDR",
		Short: "Central bank: add a node to the network",
		Long: `add signs a ChangeMembership (ADD) with the central bank's key. The new node's
identity is its node key: give the key file its operator generated (only its
public key is read) or the public key in hex. Start the new node with an
empty data directory (or one restored from a backup: dcepd snapshot restore);
the leader adds it to Raft and replicates to it.`,
		Example: `  dcep member add regulator-2 --role regulator --node-key nodes/regulator-2/keys/node.key --addr /ip4/10.0.0.9/tcp/7101`,
		Args:    args(1, "NAME"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			if err := required(cmd, "role"); err != nil {
				return err
			}
			r, ok := map[string]statepb.NodeRole{"voter": statepb.NodeRole_NODE_ROLE_VOTER, "regulator": statepb.NodeRole_NODE_ROLE_REGULATOR}[role]
			if !ok {
				return usage("--role %q: want voter or regulator", role)
			}
			pub, err := memberKey(pubHex, keyFile)
			if err != nil {
				return err
			}
			if operator == "" {
				operator = argv[0]
			}
			var opKey []byte
			if operatorKeyHex != "" {
				if r != statepb.NodeRole_NODE_ROLE_REGULATOR {
					return usage("--operator-key: only a regulator has one (a bank signs in with its bank key)")
				}
				if opKey, err = hex.DecodeString(operatorKeyHex); err != nil || len(opKey) != ed25519.PublicKeySize {
					return usage("--operator-key %q: want %d bytes of hex", operatorKeyHex, ed25519.PublicKeySize)
				}
			}
			return a.changeMembership(cmd, statepb.MembershipAction_MEMBERSHIP_ACTION_ADD,
				&statepb.Node{Name: argv[0], Role: r, PublicKey: pub, Addrs: addrs, Operator: operator, OperatorKey: opKey}, "added")
		}),
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "voter (a bank's node) or regulator (read-only)")
	f.StringVar(&keyFile, "node-key", "", "the new node's key file (keystore format; only its public key is read)")
	f.StringVar(&pubHex, "public-key", "", "the new node's Ed25519 public key, hex")
	f.StringSliceVar(&addrs, "addr", nil, "libp2p multiaddr the node listens on (repeatable)")
	f.StringVar(&operator, "operator", "", "the bank id or regulator running it (default NAME)")
	f.StringVar(&operatorKeyHex, "operator-key", "", "regulator only: its operator's Ed25519 public key, hex, with which its staff sign in to the API (dcep token --as)")
	return cmd
}

// memberKey is the public key given by --public-key or --node-key.
func memberKey(pubHex, keyFile string) (ed25519.PublicKey, error) {
	switch {
	case (pubHex == "") == (keyFile == ""):
		return nil, usage("give exactly one of --node-key and --public-key")
	case pubHex != "":
		b, err := hex.DecodeString(pubHex)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, usage("--public-key: want %d bytes in hex", ed25519.PublicKeySize)
		}
		return b, nil
	}
	ks, err := keystore.Open(filepath.Dir(keyFile))
	if err != nil {
		return nil, err
	}
	k, err := ks.Get(strings.TrimSuffix(filepath.Base(keyFile), ".key"))
	if err != nil {
		return nil, fail(exitRefused, codeKeyNotFound, "--node-key %s: %v", keyFile, err)
	}
	if k.Kind != keystore.KindNode {
		return nil, usage("--node-key %s: is a %s key, not a node key", keyFile, k.Kind)
	}
	return k.Public(), nil
}

func (a *app) memberRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Central bank: remove a node from the network",
		Long: `remove signs a ChangeMembership (REMOVE) with the central bank's key. Once it
is committed the leader takes the node out of Raft, every member refuses its
connections, and the removed node logs "REMOVED" and stops. The last voter
cannot be removed (MEMBER_LAST_VOTER).`,
		Example: `  dcep member remove regulator-2`,
		Args:    args(1, "NAME"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			return a.changeMembership(cmd, statepb.MembershipAction_MEMBERSHIP_ACTION_REMOVE, &statepb.Node{Name: argv[0]}, "removed")
		}),
	}
}

func (a *app) changeMembership(cmd *cobra.Command, action statepb.MembershipAction, n *statepb.Node, verb string) error {
	if err := statepb.ValidateID("NAME", n.GetName()); err != nil {
		return usage("%v", err)
	}
	ctx := cmd.Context()
	cb, err := a.centralBankKey(ctx)
	if err != nil {
		return err
	}
	cl, _ := a.client()
	r, err := cl.ChangeMembership(ctx, cb.Private, action, n)
	if err != nil {
		return err
	}
	return a.emit(txOut(r), func(w io.Writer) {
		fmt.Fprintf(w, "%s member %s\n", verb, n.GetName())
		writeTx(w, r)
	})
}
