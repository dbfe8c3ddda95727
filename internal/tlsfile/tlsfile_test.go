package tlsfile

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate named cn and its key, and
// returns the certificate.
func writePair(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	if err := WriteSelfSigned(certFile, keyFile, cn); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// handshake connects to addr trusting only root and returns the name on
// the certificate served.
func handshake(t *testing.T, addr string, root *x509.Certificate) (string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestServeAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writePair(t, certFile, keyFile, "first")
	p, err := Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.checkEvery = 0 // check the files at every handshake
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	if cn, err := handshake(t, ln.Addr().String(), first); err != nil || cn != "first" {
		t.Fatalf("first handshake: %q %v", cn, err)
	}

	// A half-written renewal (the new certificate, the old key) does not
	// load: the old pair stays in service.
	oldKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	second := writePair(t, certFile, keyFile, "second")
	newKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(keyFile, future, future)
	if cn, err := handshake(t, ln.Addr().String(), first); err != nil || cn != "first" {
		t.Fatalf("during renewal: %q %v, want the first certificate", cn, err)
	}
	// Once both files are written, the new pair is served.
	if err := os.WriteFile(keyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	future = future.Add(time.Minute)
	os.Chtimes(keyFile, future, future)
	if cn, err := handshake(t, ln.Addr().String(), second); err != nil || cn != "second" {
		t.Fatalf("after renewal: %q %v, want the second certificate", cn, err)
	}
	if _, err := handshake(t, ln.Addr().String(), first); err == nil {
		t.Fatal("a client trusting only the first certificate accepted the second")
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certFile, keyFile, "x")
	if _, err := Load(certFile, "", nil); err == nil {
		t.Fatal("Load accepted a missing key file name")
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a world-readable key: %v", err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	// A key that does not match the certificate.
	other := filepath.Join(dir, "other.pem")
	writePair(t, other, keyFile, "y")
	if _, err := Load(certFile, keyFile, nil); err == nil {
		t.Fatal("Load accepted a key that does not match the certificate")
	}
	if _, err := Load(filepath.Join(dir, "missing.pem"), keyFile, nil); err == nil {
		t.Fatal("Load accepted a missing certificate file")
	}
}
