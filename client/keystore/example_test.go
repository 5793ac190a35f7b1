package keystore_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dcep/dcep/client/keystore"
)

func Example() {
	dir, err := os.MkdirTemp("", "dcep-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		log.Fatal(err)
	}
	// A wallet key records the wallet id and its bank.
	k, err := ks.Generate(keystore.Key{Name: "alice", Kind: keystore.KindWallet, BankID: "icbc", WalletID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Name, k.Role(), len(k.Public()))

	// Names are never overwritten.
	_, err = ks.Generate(keystore.Key{Name: "alice", Kind: keystore.KindWallet, BankID: "icbc", WalletID: "alice"})
	fmt.Println(errors.Is(err, keystore.ErrExists))

	// Look keys up by what they are for.
	w, err := ks.Wallet("alice")
	fmt.Println(w.Name, err)
	// Output:
	// alice wallet:alice@icbc 32
	// true
	// alice <nil>
}
