// Package listener wraps a server's TCP listener. It caps the connections
// open at once, so that a flood of connections runs into a documented limit
// instead of the process's file descriptors, while keeping a small reserve
// of connections for health checks; and it turns the plain-text answers Go's
// HTTP server writes by itself, before any handler runs, to requests it
// cannot parse (431 headers too large, 400 malformed request, 501 transfer
// encoding) into the JSON errors every other answer uses.
//
// The rewrite applies to plain HTTP only: under TLS the wrapper sits below
// the encryption and passes those answers through as Go wrote them.
package listener

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultReserve is the servers' Config.Reserve: connections beyond their
// --max-connections accepted for /healthz and /metrics only.
const DefaultReserve = 32

// Config configures a Listener.
type Config struct {
	// Max is how many connections are served normally at once (>= 1).
	Max int
	// Reserve is how many more are accepted beyond Max, for health checks
	// only: a handler asks Overflow and answers anything else with 503.
	// Connections beyond Max+Reserve are closed as soon as accepted.
	Reserve int
	// Registerer receives the connection metrics (may be nil).
	Registerer prometheus.Registerer
}

// Listener is a net.Listener with a connection cap.
type Listener struct {
	net.Listener
	max, reserve int64
	open         atomic.Int64
	gauge        prometheus.GaugeFunc
	refused      prometheus.Counter
}

// Wrap caps ln's connections as cfg says.
func Wrap(ln net.Listener, cfg Config) *Listener {
	l := &Listener{Listener: ln, max: int64(max(cfg.Max, 1)), reserve: int64(max(cfg.Reserve, 0))}
	l.gauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_http_connections",
		Help: "HTTP connections open.",
	}, func() float64 { return float64(l.open.Load()) })
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "agentlog_http_connections_refused_total",
		Help: "Connections closed on accept because Max plus Reserve were open.",
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(l.gauge, l.refused)
	}
	return l
}

// Open returns the number of connections open.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Accept returns the next connection within the cap. Connections beyond
// Max+Reserve are closed at once and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.open.Add(1)
		if n > l.max+l.reserve {
			l.open.Add(-1)
			l.refused.Inc()
			c.Close()
			continue
		}
		return &conn{Conn: c, l: l, overflow: n > l.max}, nil
	}
}

type conn struct {
	net.Conn
	l        *Listener
	overflow bool
	once     sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// errorHeaders are the headers Go's server writes with its own plain-text
// error answers (net/http, conn.serve).
const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// Write passes p on, except an error answer of Go's server itself, which it
// rewrites as JSON with the same status.
func (c *conn) Write(p []byte) (int, error) {
	if j := jsonError(p); j != nil {
		if _, err := c.Conn.Write(j); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// jsonError returns the JSON form of p if p is exactly one of the answers
// Go's server writes by itself: "HTTP/1.1 <code> <text>", errorHeaders,
// then a body repeating the status line (or, for 501, naming the transfer
// encoding). Handlers' answers never take this form: they are buffered
// with a Content-Length or chunked, and carry a Date header.
func jsonError(p []byte) []byte {
	const proto = "HTTP/1.1 "
	// Most writes are handlers' answers: a 1xx-3xx status needs no search.
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) <= len(proto) || (p[len(proto)] != '4' && p[len(proto)] != '5') {
		return nil
	}
	i := bytes.Index(p, []byte(errorHeaders))
	if i < 0 {
		return nil
	}
	status, body := p[len(proto):i], p[i+len(errorHeaders):]
	if len(status) < 4 || status[3] != ' ' {
		return nil
	}
	code, err := strconv.Atoi(string(status[:3]))
	if err != nil || code < 400 || code > 599 || http.StatusText(code) == "" {
		return nil
	}
	if !bytes.Equal(body, status) && code != http.StatusNotImplemented {
		return nil
	}
	msg, _ := json.Marshal(map[string]string{"error": string(status) + describe(code)})
	msg = append(msg, '\n')
	var b bytes.Buffer
	b.WriteString(proto + strconv.Itoa(code) + " " + http.StatusText(code))
	b.WriteString("\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(msg)))
	b.WriteString("\r\n\r\n")
	b.Write(msg)
	return b.Bytes()
}

func describe(code int) string {
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		return ": the request's headers are over the server's limit"
	case http.StatusNotImplemented:
		return ": unsupported transfer encoding"
	}
	return ""
}

type ctxKey struct{}

// ConnContext is an http.Server ConnContext hook that lets handlers ask
// Overflow about a request's connection.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// Overflow reports whether the request of ctx came on one of the reserve
// connections (beyond Max), which should be served health checks only.
func Overflow(ctx context.Context) bool {
	c, _ := ctx.Value(ctxKey{}).(net.Conn)
	for c != nil {
		switch v := c.(type) {
		case *conn:
			return v.overflow
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = v.NetConn()
		default:
			return false
		}
	}
	return false
}
