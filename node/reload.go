package node

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// apiCert is the API's TLS certificate, swapped by ReloadTLS (SIGHUP)
// while the server runs: each new handshake takes the current one.
type apiCert struct {
	p atomic.Pointer[tls.Certificate]
}

func (c *apiCert) load(certPath, keyPath string) error {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return fmt.Errorf("tls_cert %s / tls_key %s: %w", certPath, keyPath, err)
	}
	c.p.Store(&cert)
	return nil
}

func (c *apiCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.p.Load(), nil }

// ReloadTLS reads the API's certificate and key again from tls_cert and
// tls_key (renewed in place by the operator); connections already open
// keep theirs. An unreadable pair is refused and the old one kept. A node
// without TLS has nothing to reload.
func (n *Node) ReloadTLS() error {
	if n.cfg.TLSCert == "" {
		return nil
	}
	if err := n.cert.load(n.cfg.Path(n.cfg.TLSCert), n.cfg.Path(n.cfg.TLSKey)); err != nil {
		return err
	}
	n.log.Info("API TLS certificate reloaded", "tls_cert", n.cfg.Path(n.cfg.TLSCert))
	return nil
}
