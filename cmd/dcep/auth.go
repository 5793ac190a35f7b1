package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/dcep/dcep/client"
	"github.com/dcep/dcep/client/keystore"
	"github.com/dcep/dcep/client/token"
	"github.com/dcep/dcep/node/nodepb/nodepbconnect"
)

// signIn is who the CLI signs in as for each call (docs/api.md, "Who may
// call what"): --as if given; else, from the keystore, the holder of the
// wallet the call is about, a regulator, the wallet's bank, the only
// bank, the central bank, in that order; for GetWalletKey (which any
// signed-in identity may ask), failing those, any key that signs in; else
// anonymous.
type signIn struct {
	a *app

	once  sync.Once
	keys  []*keystore.Key
	cbID  string // the central bank's id on the network
	errAs error  // --as names no usable key
}

func (s *signIn) load() {
	s.once.Do(func() {
		ks, err := s.a.keys()
		if err != nil {
			return
		}
		s.keys, _ = ks.List()
		if s.a.as != "" {
			if _, err := s.byName(s.a.as); err != nil {
				s.errAs = err
			}
		}
	})
}

func (s *signIn) byName(name string) (*keystore.Key, error) {
	for _, k := range s.keys {
		if k.Name == name {
			if k.Kind == keystore.KindNode || k.Kind == keystore.KindDevice {
				return nil, usage("--as %s: a %s key does not sign in (use a wallet, bank, central-bank or regulator key)", name, k.Kind)
			}
			return k, nil
		}
	}
	return nil, fail(exitRefused, codeKeyNotFound, "--as %s: no such key in %s", name, s.a.home).hint("dcep keys list")
}

// identity is the client.IdentityFunc of the CLI's clients.
func (s *signIn) identity(procedure string, req any) *client.Identity {
	s.load()
	if s.a.as != "" {
		k, err := s.byName(s.a.as)
		if err != nil {
			return nil
		}
		return s.of(k)
	}
	wallet := ""
	if m, ok := req.(proto.Message); ok {
		wallet = client.RequestWallet(m)
	}
	find := func(match func(*keystore.Key) bool) *keystore.Key {
		for _, k := range s.keys {
			if match(k) {
				return k
			}
		}
		return nil
	}
	var bankOf string
	if wallet != "" && !strings.Contains(procedure, "AuditService") {
		if k := find(func(k *keystore.Key) bool { return k.Kind == keystore.KindWallet && k.WalletID == wallet }); k != nil {
			return s.of(k)
		}
	}
	if k := find(func(k *keystore.Key) bool { return k.Kind == keystore.KindRegulator }); k != nil {
		return s.of(k)
	}
	if k := find(func(k *keystore.Key) bool { return k.Kind == keystore.KindWallet && k.WalletID == wallet }); k != nil {
		bankOf = k.BankID
	}
	var banks []*keystore.Key
	for _, k := range s.keys {
		if k.Kind == keystore.KindBank {
			banks = append(banks, k)
			if k.BankID == bankOf {
				return s.of(k)
			}
		}
	}
	if len(banks) == 1 {
		return s.of(banks[0])
	}
	if k := find(func(k *keystore.Key) bool { return k.Kind == keystore.KindCentralBank }); k != nil {
		return s.of(k)
	}
	if procedure == nodepbconnect.LedgerServiceGetWalletKeyProcedure {
		// Any signed-in identity may ask a wallet's key (to seal a memo
		// to it): a keystore holding only the payer's key signs in as
		// the payer.
		for _, k := range s.keys {
			if id := s.of(k); id != nil {
				return id
			}
		}
	}
	return nil
}

// of is a key's identity (nil for keys that do not sign in).
func (s *signIn) of(k *keystore.Key) *client.Identity {
	var sub token.Subject
	switch k.Kind {
	case keystore.KindWallet:
		sub = token.Subject{Kind: token.KindWallet, ID: k.WalletID}
	case keystore.KindBank:
		sub = token.Subject{Kind: token.KindBank, ID: k.BankID}
	case keystore.KindRegulator:
		sub = token.Subject{Kind: token.KindRegulator, ID: k.Name}
	case keystore.KindCentralBank:
		sub = token.Subject{Kind: token.KindCentralBank, ID: s.centralBankID()}
	default:
		return nil
	}
	return &client.Identity{Subject: sub, Key: k.Private}
}

// centralBankID is the network's central bank id, read once from its
// public genesis.
func (s *signIn) centralBankID() string {
	if s.cbID != "" {
		return s.cbID
	}
	cl, err := client.New(s.a.node)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := cl.Builder(ctx)
	if err != nil {
		return ""
	}
	s.cbID = b.Genesis().GetCentralBank().GetId()
	return s.cbID
}

// clientOptions are the options of every client the CLI makes.
func (a *app) clientOptions() []client.Option {
	return []client.Option{client.WithIdentity(a.signIn.identity)}
}

func (a *app) tokenCmd() *cobra.Command {
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "token --as NAME",
		Short: "Print a bearer token for --node, signed with a key of the keystore",
		Long: `token prints a bearer token (a JWT signed with EdDSA, RFC 8037) that signs in
to --node as the key NAME: a wallet holder, a bank, the central bank or a
regulator. It is good for that one node of that one network, for --lifetime
(at most 1h). The CLI attaches tokens by itself; this is for curl and other
HTTP clients:

  curl -H "Authorization: Bearer $(dcep token --as alice)" ...`,
		Example: `  dcep token --as alice
  dcep token --as regulator-1 --node http://127.0.0.1:8108 --lifetime 30m`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if a.as == "" {
				return usage("token needs --as NAME (a key of dcep keys list)")
			}
			a.signIn.load()
			if a.signIn.errAs != nil {
				return a.signIn.errAs
			}
			k, _ := a.signIn.byName(a.as)
			id := a.signIn.of(k)
			cl, err := a.client()
			if err != nil {
				return err
			}
			if lifetime > token.MaxLifetime {
				return usage("--lifetime %v: at most %v", lifetime, token.MaxLifetime)
			}
			raw, err := cl.Token(cmd.Context(), *id, lifetime)
			if err != nil {
				var ae *client.APIError
				if errors.As(err, &ae) {
					return err
				}
				return fmt.Errorf("token: %w", err)
			}
			_, err = fmt.Fprintln(a.stdout, raw)
			return err
		}),
	}
	cmd.Flags().DurationVar(&lifetime, "lifetime", token.DefaultLifetime, "how long the token is good for (at most 1h)")
	return cmd
}
