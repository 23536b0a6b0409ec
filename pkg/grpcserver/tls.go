package grpcserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// CertFiles serves a certificate and key from files and loads them again
// when either file changes (a renewed certificate is picked up without a
// restart; a half-written pair keeps the old one until both load).
type CertFiles struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	modified [2]time.Time
}

// NewCertFiles loads the pair once, so that a wrong path fails at start.
func NewCertFiles(certFile, keyFile string) (*CertFiles, error) {
	c := &CertFiles{certFile: certFile, keyFile: keyFile}
	if _, err := c.GetCertificate(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var mod [2]time.Time
	for i, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if c.cert != nil {
				return c.cert, nil
			}
			return nil, fmt.Errorf("grpcserver: TLS file: %w", err)
		}
		mod[i] = st.ModTime()
	}
	if c.cert != nil && mod == c.modified {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // mid-rotation: keep serving the old pair
		}
		return nil, fmt.Errorf("grpcserver: TLS pair %s, %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.modified = &cert, mod
	return c.cert, nil
}

// TLSConfig returns a server TLS configuration (TLS 1.2 or later) that takes
// its certificate from c.
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// SelfTLS returns the client credentials the HTTP/JSON gateway (Gateway)
// dials the server's own listener with: TLS that accepts exactly the
// certificate c serves now (the current one after a renewal), whatever the
// name in it; a certificate that is not c's is refused.
func (c *CertFiles) SelfTLS() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		// The peer is checked by VerifyPeerCertificate: it must be the
		// certificate this process serves (pinned), not one a CA vouches for.
		InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			own, err := c.GetCertificate(nil)
			if err != nil {
				return err
			}
			if len(raw) == 0 || len(own.Certificate) == 0 || !bytes.Equal(raw[0], own.Certificate[0]) {
				return errors.New("grpcserver: the gateway reached a server that does not serve this process's certificate")
			}
			return nil
		},
	})
}
