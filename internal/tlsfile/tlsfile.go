// Package tlsfile serves TLS from a PEM certificate chain file and a PEM
// private key file, the pair an ACME client or an operator renews in place.
// The files are re-read when either changes, so a renewed certificate is
// served without a restart; a pair that fails to load is reported and the
// previous one kept.
package tlsfile

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/agentlog/agentlog/internal/secretfile"
)

// CheckEvery is how often, at most, the files are checked for changes.
const CheckEvery = 10 * time.Second

// Pair is a certificate and key loaded from files.
type Pair struct {
	certFile, keyFile string
	logger            *slog.Logger
	checkEvery        time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // modification times of the loaded files
	checked time.Time
}

// Load reads the pair, refusing a key file that others than its owner may
// read. logger receives reload messages (nil: discard).
func Load(certFile, keyFile string, logger *slog.Logger) (*Pair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate file and a key file")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pair{certFile: certFile, keyFile: keyFile, logger: logger, checkEvery: CheckEvery}
	cert, stamp, err := p.load()
	if err != nil {
		return nil, err
	}
	p.cert, p.stamp, p.checked = cert, stamp, time.Now()
	return p, nil
}

func (p *Pair) load() (*tls.Certificate, [2]time.Time, error) {
	var stamp [2]time.Time
	for i, f := range []string{p.certFile, p.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, stamp, fmt.Errorf("TLS: %w", err)
		}
		if i == 1 {
			if err := secretfile.Check(f, fi); err != nil {
				return nil, stamp, fmt.Errorf("TLS key: %w", err)
			}
		}
		stamp[i] = fi.ModTime()
	}
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("TLS: loading %s and %s: %w", p.certFile, p.keyFile, err)
	}
	return &cert, stamp, nil
}

// Certificate returns the current certificate, reloading the files first
// if they changed since the last check (at most every CheckEvery).
func (p *Pair) Certificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) < p.checkEvery {
		return p.cert
	}
	p.checked = time.Now()
	changed := false
	for i, f := range []string{p.certFile, p.keyFile} {
		if fi, err := os.Stat(f); err == nil && !fi.ModTime().Equal(p.stamp[i]) {
			changed = true
		}
	}
	if !changed {
		return p.cert
	}
	cert, stamp, err := p.load()
	if err != nil {
		// Mid-renewal the two files may not match yet: keep serving the
		// old pair and try again at the next check.
		p.logger.Warn("TLS certificate files changed but do not load; serving the previous certificate", "err", err)
		return p.cert
	}
	p.cert, p.stamp = cert, stamp
	p.logger.Info("TLS certificate reloaded", "cert", p.certFile)
	return p.cert
}

// Config returns a server TLS configuration (TLS 1.2 and up) that serves
// the pair's current certificate.
func (p *Pair) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.Certificate(), nil
		},
	}
}

// LoadIfSet is Load when either file is named, and nil, nil when neither
// is (plain HTTP).
func LoadIfSet(certFile, keyFile string, logger *slog.Logger) (*Pair, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	return Load(certFile, keyFile, logger)
}

// Listen listens on the TCP address addr, with TLS from p unless it is
// nil, and returns the listener and its URL scheme.
func Listen(addr string, p *Pair) (net.Listener, string, error) {
	return ListenWrapped(addr, p, nil)
}

// ListenWrapped is Listen with wrap (if not nil) applied to the TCP
// listener, below TLS.
func ListenWrapped(addr string, p *Pair, wrap func(net.Listener) net.Listener) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listening on %s: %w", addr, err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if p == nil {
		return ln, "http", nil
	}
	return tls.NewListener(ln, p.Config()), "https", nil
}
