package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentlog/agentlog/internal/listener"
)

// Client faults in reading a request; writeError maps them.
var (
	// errBodyTimeout: the body did not arrive within the server's read
	// timeout (408).
	errBodyTimeout = errors.New("request body not received in time")
	// errMediaType: a JSON route was sent another Content-Type (415).
	errMediaType = errors.New("unsupported Content-Type")
)

// checkRequest refuses what no route accepts, before any handler runs: more
// than one Authorization or Content-Type header, or a query parameter given
// twice (which one would count is ambiguous, and proxies disagree: a
// query's from=A&from=B was answered for A as complete), a query string
// that does not parse, and a JSON route's body sent as another media type
// (a browser's cross-origin form post is text/plain or a form encoding).
func (s *Server) checkRequest(r *http.Request, route string) error {
	if listener.Overflow(r.Context()) && route != "healthz" {
		return fmt.Errorf("%w: too many connections are open; retry later", errOverBudget)
	}
	if len(r.Header.Values("Authorization")) > 1 {
		return fmt.Errorf("%w: more than one Authorization header", errBadRequest)
	}
	if len(r.Header.Values("Content-Type")) > 1 {
		return fmt.Errorf("%w: more than one Content-Type header", errBadRequest)
	}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return fmt.Errorf("%w: the query string does not parse: %v", errBadRequest, err)
		}
		for k, v := range q {
			if len(v) > 1 {
				return fmt.Errorf("%w: query parameter %q given %d times", errBadRequest, k, len(v))
			}
		}
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return nil
	}
	if route != "append" && route != "gateway.config" && !strings.HasPrefix(route, "identity.") {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return fmt.Errorf("%w: %s takes application/json, not %q", errMediaType, r.URL.Path, ct)
	}
	return nil
}

// readBody reads a whole request body (already capped by a MaxBytesReader).
// Every way a body can fail to arrive is the client's: one larger than the
// cap stays an *http.MaxBytesError (413), one that outlasts the server's
// read timeout is errBodyTimeout (408), and one cut short (a Content-Length
// not met, a broken chunked encoding, a closed connection) is a bad request
// (400). None of them is a 500.
//
// A size of 0 or more is the declared Content-Length: the body is read into
// one buffer of that size instead of a growing one.
func readBody(body io.Reader, size int64) ([]byte, error) {
	var b []byte
	var err error
	if size >= 0 {
		b = make([]byte, size)
		var n int
		n, err = io.ReadFull(body, b)
		b = b[:n]
	} else {
		b, err = io.ReadAll(body)
	}
	if err == nil {
		return b, nil
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe), errors.Is(err, errOverBudget):
		return nil, err
	case errors.As(err, &ne) && ne.Timeout():
		return nil, fmt.Errorf("%w (after %d bytes)", errBodyTimeout, len(b))
	default:
		return nil, fmt.Errorf("%w: request body ended early after %d bytes: %v", errBadRequest, len(b), err)
	}
}
