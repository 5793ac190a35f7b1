package nodetest

import (
	"crypto/ed25519"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
	"github.com/dcep/dcep/state/statepb"
)

// OperatorKey is a regulator's operator key (its staff sign in to the API
// with it; statepb.Node.operator_key).
func (c *Cluster) OperatorKey(regulator string) ed25519.PrivateKey {
	return c.Net.Key("operator/" + regulator)
}

// Regulator is the identity of the cluster's first regulator ("" and nil
// if it has none).
func (c *Cluster) Regulator() *client.Identity {
	for _, m := range c.Net.Genesis.GetNodes() {
		if m.GetRole() == statepb.NodeRole_NODE_ROLE_REGULATOR && len(m.GetOperatorKey()) > 0 {
			return &client.Identity{Subject: token.Subject{Kind: token.KindRegulator, ID: m.GetOperator()}, Key: c.OperatorKey(m.GetName())}
		}
	}
	return nil
}

// Holder is the identity of a wallet's holder (the statetest key).
func (c *Cluster) Holder(wallet string) *client.Identity {
	return &client.Identity{Subject: token.Subject{Kind: token.KindWallet, ID: wallet}, Key: c.Net.Wallet(wallet)}
}

// BankIdentity is a bank's identity.
func (c *Cluster) BankIdentity(bank string) *client.Identity {
	return &client.Identity{Subject: token.Subject{Kind: token.KindBank, ID: bank}, Key: c.Net.Bank(bank)}
}

// CentralBankIdentity is the central bank's identity.
func (c *Cluster) CentralBankIdentity() *client.Identity {
	return &client.Identity{Subject: token.Subject{Kind: token.KindCentralBank, ID: c.Net.Genesis.GetCentralBank().GetId()}, Key: c.Net.CentralBank()}
}

// Picker is who the cluster's test clients sign in as: the regulator when
// the cluster has one (it may read everything); otherwise the holder of
// the wallet a request names, and the central bank for the rest.
func (c *Cluster) Picker() client.IdentityFunc {
	if r := c.Regulator(); r != nil {
		return func(string, any) *client.Identity { return r }
	}
	cb := c.CentralBankIdentity()
	return func(_ string, req any) *client.Identity {
		if m, ok := req.(proto.Message); ok {
			if w := client.RequestWallet(m); w != "" {
				for _, b := range c.Net.Genesis.GetBanks() {
					if w == b.GetReserveWalletId() || w == b.GetGuaranteeWalletId() {
						return c.BankIdentity(b.GetId())
					}
				}
				return c.Holder(w)
			}
		}
		return cb
	}
}

// SDK is a client.Client of a node signed in as Picker chooses.
func (c *Cluster) SDK(t testing.TB, name string, opts ...client.Option) *client.Client {
	t.Helper()
	return c.SDKAt(t, c.URL(name), opts...)
}

// SDKAt is SDK for an address that reaches a node of the cluster (a proxy).
func (c *Cluster) SDKAt(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.New(url, append([]client.Option{client.WithIdentity(c.Picker())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// As is a client of a node signed in as id (nil: anonymous).
func (c *Cluster) As(t testing.TB, name string, id *client.Identity) *client.Client {
	t.Helper()
	opts := []client.Option{client.WithRetry(client.RetryPolicy{MaxAttempts: 1})}
	if id != nil {
		opts = append(opts, client.As(*id))
	}
	cl, err := client.New(c.URL(name), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// AuditClient is a raw AuditService client of a node, signed in as Picker
// chooses.
func (c *Cluster) AuditClient(name string) nodepbconnect.AuditServiceClient {
	return c.sdk(name).Audit()
}

func (c *Cluster) sdk(name string) *client.Client {
	cl, err := client.New(c.URL(name), client.WithIdentity(c.Picker()))
	if err != nil {
		panic(err)
	}
	return cl
}
