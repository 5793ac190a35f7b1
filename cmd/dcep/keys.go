package main

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

type keyJSON struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Role      string `json:"role"`
	Bank      string `json:"bank,omitempty"`
	Wallet    string `json:"wallet,omitempty"`
	PublicKey string `json:"public_key"`
	Created   string `json:"created"`
	File      string `json:"file"`
	Encrypted bool   `json:"encrypted"`
}

func (a *app) keysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keys",
		Aliases: []string{"key"},
		Short:   "Inspect the keystore; make, encrypt and decrypt keys; rotate the central bank's, a bank's or a node's key",
		Example: `  dcep keys list
  dcep key new regulator-2 --kind regulator --encrypt
  DCEP_KEY_PASSPHRASE=... dcep key encrypt alice
  dcep key rotate --bank icbc`,
		Args: args(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the keys in the keystore (--home): central bank, banks, wallets, nodes",
		Long: `keys list shows every key file in the keystore with what it signs for. Private
keys are never printed. FILE says whether the key file is encrypted (dcep key
encrypt); reading an encrypted one needs its passphrase or identity. Files
that cannot be read (wrong permissions, corrupt, locked) are reported on
stderr.`,
		Example: `  dcep keys list
  dcep --home ~/.dcep/dev/keys --json keys list`,
		Args: args(0, ""),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ks, err := a.keys()
			if err != nil {
				return err
			}
			keys, lerr := ks.List()
			if lerr != nil {
				fmt.Fprintf(a.stderr, "warning: %v\n", lerr)
			}
			out := []keyJSON{}
			for _, k := range keys {
				out = append(out, keyJSON{Name: k.Name, Kind: string(k.Kind), Role: k.Role(), Bank: k.BankID, Wallet: k.WalletID,
					PublicKey: hex.EncodeToString(k.Public()), Created: k.Created.Format("2006-01-02T15:04:05Z07:00"), File: ks.Path(k.Name), Encrypted: k.Encrypted})
			}
			return a.emit(out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintf(w, "no keys in %s\n", ks.Dir())
					return
				}
				t := newTable("NAME", "KIND", "FOR", "PUBLIC KEY", "CREATED", "FILE")
				for i, k := range out {
					file := "plain"
					if k.Encrypted {
						file = "encrypted"
					}
					t.add(k.Name, k.Kind, k.Role, k.PublicKey[:16]+"…", keys[i].Created.Local().Format("2006-01-02 15:04"), file)
				}
				t.write(w)
				fmt.Fprintf(w, "\n%d keys in %s\n", len(out), ks.Dir())
			})
		}),
	})
	cmd.AddCommand(a.keyRotateCmd(), a.keyNewCmd(), a.keyEncryptCmd(), a.keyDecryptCmd())
	return cmd
}
