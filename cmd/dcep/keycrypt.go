package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dcep/dcep/client/keystore"
)

// Encrypted key files (client/keystore, "Encryption at rest"): the CLI opens
// them with the passphrase in $DCEP_KEY_PASSPHRASE, else one asked on the
// terminal (once per run, then tried on every passphrase-encrypted file),
// and with the age identities of --key-identity or $DCEP_KEY_IDENTITY.

// passphrases asks for the passphrase at most once per run.
type passphrases struct {
	mu   sync.Mutex
	pass string
}

// terminal reports whether stdin is a terminal the passphrase can be asked
// on (a variable for tests, which have none).
var terminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// readPassword reads a line from the terminal without echo.
var readPassword = func() (string, error) {
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	return string(b), err
}

// get returns the passphrase for the file at path: $DCEP_KEY_PASSPHRASE, the
// one already typed, or asked now (confirm: typed twice, for a new one).
func (p *passphrases) get(a *app, path string, confirm bool) (string, error) {
	if s := os.Getenv(keystore.EnvPassphrase); s != "" {
		return s, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pass != "" && !confirm {
		return p.pass, nil
	}
	if !terminal() {
		return "", fmt.Errorf("$%s is not set and stdin is not a terminal to ask on", keystore.EnvPassphrase)
	}
	fmt.Fprintf(a.stderr, "passphrase for %s: ", path)
	s, err := readPassword()
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if confirm {
		fmt.Fprintf(a.stderr, "again: ")
		again, err := readPassword()
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		if again != s {
			return "", usage("the two passphrases differ")
		}
	}
	if s == "" {
		return "", errors.New("empty passphrase")
	}
	p.pass = s
	return s, nil
}

// unlock is how the CLI's keystores open encrypted key files.
func (a *app) unlock() keystore.Unlock {
	return keystore.Unlock{
		Passphrase: func(path string) (string, error) { return a.pass.get(a, path, false) },
		Identities: func() ([]age.Identity, string, error) {
			path, from := a.keyIdentity, "--key-identity"
			if path == "" {
				path, from = os.Getenv(keystore.EnvIdentity), "$"+keystore.EnvIdentity
			}
			if path == "" {
				return nil, "", fmt.Errorf("neither --key-identity nor $%s is set", keystore.EnvIdentity)
			}
			ids, err := keystore.ReadIdentityFile(path)
			return ids, path + " (" + from + ")", err
		},
	}
}

// openStore opens a keystore other than --home's (a --new-key file's)
// with the CLI's unlock.
func (a *app) openStore(dir string) (*keystore.Store, error) {
	ks, err := keystore.Open(dir)
	if err != nil {
		return nil, err
	}
	ks.SetUnlock(a.unlock())
	return ks, nil
}

// sealTo is the recipient --recipient names, else the passphrase's (asked
// twice on a terminal).
func (a *app) sealTo(recipient, path string) (age.Recipient, string, error) {
	if recipient != "" {
		r, err := keystore.ParseRecipient(recipient)
		return r, "age recipient " + strings.TrimSpace(recipient), err
	}
	pass, err := a.pass.get(a, path, true)
	if err != nil {
		return nil, "", err
	}
	r, err := keystore.PassphraseRecipient(pass)
	return r, "passphrase", err
}

type keyCryptJSON struct {
	Name         string   `json:"name"`
	File         string   `json:"file"`
	Encrypted    bool     `json:"encrypted"`
	To           string   `json:"to,omitempty"`
	PlainBackups []string `json:"plain_backups,omitempty"`
}

func (a *app) keyEncryptCmd() *cobra.Command {
	var recipient string
	cmd := &cobra.Command{
		Use:   "encrypt NAME",
		Short: "Encrypt a key file of the keystore with a passphrase or to an age recipient",
		Long: `key encrypt rewrites the key file NAME.key as an age-encrypted file
(https://age-encryption.org/v1, ASCII-armored), in place and without a
backup: to a passphrase ($DCEP_KEY_PASSPHRASE, else asked twice on the
terminal; scrypt, work factor 2^18), or with --recipient to an age public key
(age1…; its identity file, from age-keygen, opens it: --key-identity or
$DCEP_KEY_IDENTITY). Every command that reads the key then needs the
passphrase or identity: without it the command fails with KEY_LOCKED.

Backups an earlier rotation left (NAME.key.bak-*) are not touched; the
command lists those still in plaintext.`,
		Example: `  DCEP_KEY_PASSPHRASE=... dcep key encrypt alice
  dcep key encrypt icbc --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`,
		Args: args(1, "NAME"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ks, err := a.keys()
			if err != nil {
				return err
			}
			name := argv[0]
			if err := keystore.ValidateName(name); err != nil {
				return err
			}
			k, err := ks.Get(name)
			if err != nil {
				return err
			}
			if k.Encrypted {
				return usage("key %q is already encrypted (%s)", name, ks.Path(name)).
					hint("to change how, decrypt it first: dcep key decrypt %s", name)
			}
			r, to, err := a.sealTo(recipient, ks.Path(name))
			if err != nil {
				return err
			}
			backups, err := ks.Encrypt(name, r)
			if err != nil {
				return err
			}
			out := keyCryptJSON{Name: name, File: ks.Path(name), Encrypted: true, To: to, PlainBackups: backups}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "encrypted %s (to a %s)\n", out.File, to)
				for _, b := range backups {
					fmt.Fprintf(w, "warning: %s is an older key of %s in plaintext; delete it if no longer needed\n", b, name)
				}
			})
		}),
	}
	cmd.Flags().StringVar(&recipient, "recipient", "", "encrypt to this age public key (age1…) instead of a passphrase")
	return cmd
}

func (a *app) keyDecryptCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "decrypt NAME",
		Short: "Write an encrypted key file of the keystore back in plaintext",
		Long: `key decrypt rewrites the encrypted key file NAME.key as the plain JSON key
file, in place, opening it with $DCEP_KEY_PASSPHRASE (or the passphrase asked
on the terminal) or the identity file of --key-identity / $DCEP_KEY_IDENTITY.`,
		Example: `  DCEP_KEY_PASSPHRASE=... dcep key decrypt alice`,
		Args:    args(1, "NAME"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ks, err := a.keys()
			if err != nil {
				return err
			}
			name := argv[0]
			if err := keystore.ValidateName(name); err != nil {
				return err
			}
			k, err := ks.Get(name)
			if err != nil {
				return err
			}
			if !k.Encrypted {
				return usage("key %q is not encrypted (%s)", name, ks.Path(name))
			}
			if err := ks.Decrypt(name); err != nil {
				return err
			}
			out := keyCryptJSON{Name: name, File: ks.Path(name)}
			return a.emit(out, func(w io.Writer) { fmt.Fprintf(w, "decrypted %s (now plaintext)\n", out.File) })
		}),
	}
}

func (a *app) keyNewCmd() *cobra.Command {
	var kind, bank, walletID, recipient string
	var encrypt bool
	cmd := &cobra.Command{
		Use:   "new NAME --kind KIND",
		Short: "Generate a key into the keystore (optionally encrypted)",
		Long: `key new generates an Ed25519 key NAME of --kind central-bank, bank, wallet,
node, device or regulator (a regulator's operator key: NAME is the operator
name) and prints its public key, which goes into the network's genesis or a
membership change. Nothing is sent to a node.

With --encrypt the file is written age-encrypted from the start (the key is
never on disk in plaintext): to the passphrase of $DCEP_KEY_PASSPHRASE (else
asked twice on the terminal), or with --recipient to an age public key.`,
		Example: `  dcep key new regulator-2 --kind regulator --encrypt
  dcep key new icbc-next --kind bank --bank icbc --encrypt --recipient age1…`,
		Args: args(1, "NAME"),
		RunE: runE(func(cmd *cobra.Command, argv []string) error {
			ks, err := a.keys()
			if err != nil {
				return err
			}
			if recipient != "" && !encrypt {
				return usage("--recipient needs --encrypt")
			}
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			k := keystore.Key{Name: argv[0], Kind: keystore.Kind(kind), BankID: bank, WalletID: walletID, Private: priv}
			if k.Kind == keystore.KindWallet && k.WalletID == "" {
				k.WalletID = k.Name
			}
			if err := k.Validate(); err != nil {
				return err
			}
			// Before asking for a passphrase (Import checks again, atomically).
			if _, err := os.Lstat(ks.Path(k.Name)); err == nil {
				return fmt.Errorf("%w: %q in %s (refusing to overwrite)", keystore.ErrExists, k.Name, ks.Dir())
			}
			to := ""
			if encrypt {
				if k.Seal, to, err = a.sealTo(recipient, ks.Path(k.Name)); err != nil {
					return err
				}
			}
			nk, err := ks.Import(k)
			if err != nil {
				return err
			}
			out := keyJSON{Name: nk.Name, Kind: string(nk.Kind), Role: nk.Role(), Bank: nk.BankID, Wallet: nk.WalletID,
				PublicKey: hex.EncodeToString(nk.Public()), Created: nk.Created.Format("2006-01-02T15:04:05Z07:00"), File: ks.Path(nk.Name), Encrypted: nk.Encrypted}
			return a.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "new %s key %s: public key %s\n", out.Role, out.Name, out.PublicKey)
				if encrypt {
					fmt.Fprintf(w, "file %s (encrypted to a %s)\n", out.File, to)
				} else {
					fmt.Fprintf(w, "file %s (plaintext; encrypt it with: dcep key encrypt %s)\n", out.File, out.Name)
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "central-bank, bank, wallet, node, device or regulator")
	f.StringVar(&bank, "bank", "", "the bank of a bank or wallet key")
	f.StringVar(&walletID, "wallet", "", "the ledger wallet id of a wallet key (default NAME)")
	f.BoolVar(&encrypt, "encrypt", false, "write the key file age-encrypted (passphrase, or --recipient)")
	f.StringVar(&recipient, "recipient", "", "with --encrypt: to this age public key (age1…) instead of a passphrase")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}
