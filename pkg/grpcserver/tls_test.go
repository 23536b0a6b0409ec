package grpcserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/huifang/huifang/pkg/grpcserver"
)

// writePair writes a self-signed certificate for cn and its key, with a
// modification time of at.
func writePair(t *testing.T, dir, cn string, at time.Time) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, at, at); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func commonName(t *testing.T, c *grpcserver.CertFiles) string {
	t.Helper()
	cert, err := c.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// TestCertFilesReloadOnChange: a renewed pair is served without a restart;
// a half-written one keeps the old pair; a wrong path fails at start.
func TestCertFilesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	certFile, keyFile := writePair(t, dir, "first", base)
	c, err := grpcserver.NewCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cn := commonName(t, c); cn != "first" {
		t.Fatalf("serving %q, want first", cn)
	}
	writePair(t, dir, "second", base.Add(time.Minute))
	if cn := commonName(t, c); cn != "second" {
		t.Fatalf("after renewal serving %q, want second", cn)
	}
	if err := os.WriteFile(keyFile, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cn := commonName(t, c); cn != "second" {
		t.Fatalf("with a broken key serving %q, want the old pair", cn)
	}
	if _, err := grpcserver.NewCertFiles(filepath.Join(dir, "none.crt"), keyFile); err == nil {
		t.Fatal("a missing certificate file was accepted")
	}
}
