// Package hsm tests dcep with its keys in a hardware token: a network of
// dcepd processes whose node identities (libp2p) and whose central bank's
// and bank's operator keys live in a SoftHSM2 token, driven by the dcep CLI
// with --key pkcs11:... (docs/operations.md, "Keys in hardware").
package hsm
