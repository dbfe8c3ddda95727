package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// transportError marks an error of the connection to the upstream (one
// that names its address), as against the gateway's own findings about
// an answer (too large, not JSON-RPC, ...), whose texts name no address.
func transportError(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	var errno syscall.Errno
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &errno) ||
		tlsError(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// tlsError reports whether err is a failed TLS handshake or certificate.
func tlsError(err error) bool {
	var ce *tls.CertificateVerificationError
	var he tls.RecordHeaderError
	var ae x509.UnknownAuthorityError
	var hn x509.HostnameError
	return errors.As(err, &ce) || errors.As(err, &he) || errors.As(err, &ae) || errors.As(err, &hn)
}

// upstreamReason is what the agent is told of its upstream's failure.
// A failure of the connection is told by its kind only: the upstream's
// address, port and URL are the operator's, not the agent's (the call's
// entry and the gateway's log keep the whole error).
func upstreamReason(err error) string {
	if !transportError(err) && !errors.Is(err, context.DeadlineExceeded) {
		return err.Error()
	}
	var de *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "the upstream did not answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the upstream refused the connection"
	case errors.As(err, &de):
		return "the upstream's host name does not resolve"
	case tlsError(err):
		return "the TLS handshake with the upstream failed"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the upstream closed the connection"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return "the upstream's host cannot be reached"
	}
	return "the upstream cannot be reached"
}

// upstreamWarnEvery is how often, at most, the gateway logs its
// upstreams' failures (with the number left unlogged since the last).
const upstreamWarnEvery = 10 * time.Second

// warnLimiter logs at most one line per interval, counting the rest.
type warnLimiter struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (wl *warnLimiter) warn(log *slog.Logger, now time.Time, msg string, args ...any) {
	wl.mu.Lock()
	if !wl.last.IsZero() && now.Sub(wl.last) < upstreamWarnEvery {
		wl.skipped++
		wl.mu.Unlock()
		return
	}
	skipped := wl.skipped
	wl.last, wl.skipped = now, 0
	wl.mu.Unlock()
	log.Warn(msg, append(args, "unlogged_since_last", skipped)...)
}

// upstreamFailed logs an upstream's failure (rate-limited) with the
// whole error, and returns what the agent is told.
func (g *Gateway) upstreamFailed(rt *route, err error) string {
	g.upstreamWarn.warn(g.log, g.now(), "an upstream failed", "route", rt.Name, "err", err)
	return "upstream: " + upstreamReason(err)
}
