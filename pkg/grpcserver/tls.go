package grpcserver

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
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
