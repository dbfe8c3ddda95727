// Package gateway is agentlog's recording reverse proxy ("agentlog
// gateway"): agents call their tools through it, authenticated by their
// agentlog session credential, and every call is recorded in the log
// durably before its answer is released, with a receipt (the entry's index
// and RFC 6962 leaf hash) in the answer. It proxies plain HTTP APIs and MCP
// servers over the Streamable HTTP transport
// (modelcontextprotocol.io/specification/2025-06-18/basic/transports).
//
// docs/gateway.md is the manual: routes, the configuration file, what each
// entry holds (field names after the OpenTelemetry GenAI and MCP semantic
// conventions), record=before and record=after, failing closed, scopes and
// receipts.
//
// The gateway talks to the log over HTTP like any client, with the
// calling agent's own session credential, so every entry is attributed by
// the log itself to the agent, session and task the credential stands for.
// Entries of concurrent calls under one credential share one append.
package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/httpstatus"
	"github.com/agentlog/agentlog/internal/listener"
)

// Headers of the gateway's answers.
const (
	// ReceiptHeader carries "<index> <base64 leaf hash>" of the call's
	// entry (with record=before, the entry written before forwarding). An
	// MCP batch's receipts are one field line, a comma-separated list in
	// request order (ParseReceipts), while it fits MaxReceiptField.
	ReceiptHeader = "Agentlog-Receipt"
	// OutcomeReceiptHeader carries, with record=before, the receipt of the
	// second entry (the outcome); on a streamed answer it is a trailer.
	OutcomeReceiptHeader = "Agentlog-Outcome-Receipt"
	// UnrecordedHeader is set, on a fail_open route, on an answer whose
	// call could not be recorded; it says why.
	UnrecordedHeader = "Agentlog-Unrecorded"
	// ReceiptsInBodyHeader replaces the receipt fields of an MCP batch
	// whose receipts do not fit MaxReceiptField: it gives their number,
	// and each answer carries its own in _meta or error.data.
	ReceiptsInBodyHeader = "Agentlog-Receipts-In-Body"
)

// MaxReceiptField is the most bytes a receipt field of one answer holds:
// about 150 receipts. HTTP clients cap an answer's header (Node.js at
// 16 KiB in all, Python's h11 likewise, Python's http.client at 100
// lines), so a batch of many calls must not put a line per call there.
const MaxReceiptField = 8 << 10

// Outcomes the gateway records.
const (
	OutcomeSuccess       = "success"
	OutcomeError         = "error"          // an HTTP status >= 400, or a JSON-RPC error
	OutcomeToolError     = "tool_error"     // an MCP tool result with isError
	OutcomeDenied        = "denied"         // refused by scope=enforce
	OutcomeUpstreamError = "upstream_error" // the upstream could not be reached or broke off
)

// Options are what a Gateway needs besides its Config.
type Options struct {
	// LogClient talks to the log (default: a client with pooled
	// connections and LogTimeout).
	LogClient *http.Client
	// Transport talks to upstreams (default: a clone of
	// http.DefaultTransport with a larger idle pool).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Now       func() time.Time
	// Registry receives the gateway's metrics (default: a registry of
	// its own); Metrics serves it.
	Registry *prometheus.Registry
}

// Gateway is the proxy. It is an http.Handler.
type Gateway struct {
	cfg    *Config
	log    *slog.Logger
	now    func() time.Time
	rec    *recorder
	sess   *sessions
	routes map[string]*route
	slots  chan struct{}
	// agentMu guards byAgent: the calls in flight of each agent past
	// admit (at most cfg.MaxConcurrentAgent).
	agentMu sync.Mutex
	byAgent map[string]int
	bodies  int64 // request body bytes held (at most cfg.MaxBodyBytes), under agentMu
	// agentBodies: the bytes of bodies each agent's calls hold (at most
	// cfg.MaxBodyBytesAgent), under agentMu.
	agentBodies map[string]int64
	// upstream calls MCP upstreams (never following redirects).
	upstream *http.Client
	m        *metrics
	reg      *prometheus.Registry
	// upstreamWarn rate-limits the log lines of upstreams' failures.
	upstreamWarn warnLimiter
}

type route struct {
	*Route
	proxy *httputil.ReverseProxy
}

// New returns a Gateway for cfg.
func New(cfg *Config, o Options) *Gateway {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// One connection for each append in flight, kept between calls:
		// the default transport's cap of 100 idle connections in all
		// would close the rest after each burst.
		t.MaxIdleConnsPerHost, t.MaxIdleConns = cfg.MaxAppends, cfg.MaxAppends
		o.LogClient = &http.Client{Transport: t, Timeout: cfg.LogTimeout}
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	m := newMetrics(o.Registry)
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Keep up to 1024 idle connections to each upstream, and as many
		// in all as calls may be in flight (not the default 100 in all).
		t.MaxIdleConnsPerHost, t.MaxIdleConns = 1024, max(1024, cfg.MaxConcurrent)
		o.Transport = t
	}
	g := &Gateway{
		cfg:         cfg,
		log:         o.Logger,
		now:         o.Now,
		rec:         newRecorder(cfg.Log, o.LogClient, cfg.LogTimeout, cfg.MaxBatch, cfg.MaxInflight, cfg.MaxAppends, m),
		sess:        &sessions{log: cfg.Log, hc: o.LogClient, ttl: cfg.SessionCache, timeout: cfg.LogTimeout, now: o.Now, byID: map[[32]byte]*session{}, m: m},
		m:           m,
		reg:         o.Registry,
		routes:      map[string]*route{},
		slots:       make(chan struct{}, cfg.MaxConcurrent),
		byAgent:     map[string]int{},
		agentBodies: map[string]int64{},
		upstream: &http.Client{Transport: o.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	for _, r := range cfg.Routes {
		rt := &route{Route: r}
		rt.proxy = &httputil.ReverseProxy{
			Rewrite:    g.rewrite(rt),
			Transport:  o.Transport,
			BufferPool: proxyBuffers,
			// 0: an answer of known length is passed on as it is copied,
			// flushed once at its end; ReverseProxy itself flushes every
			// write of a stream (text/event-stream, or no Content-Length)
			// at once, so streams are never held back.
			FlushInterval:  0,
			ModifyResponse: g.modifyResponse,
			ErrorHandler:   g.proxyError,
			ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		}
		g.routes[r.Name] = rt
	}
	return g
}

// proxyBuffers are the copy buffers of every route's proxy: without a
// pool, ReverseProxy allocates 32 KiB for each call it copies, which was
// two thirds of the gateway's allocations.
var proxyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

// bufferPool is an httputil.BufferPool over a sync.Pool.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(s []byte) { b.p.Put(&s) }

// Metrics serves the gateway's Prometheus metrics (GET /metrics).
func (g *Gateway) Metrics() http.Handler {
	return promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{})
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if listener.Overflow(r.Context()) {
		// A reserve connection, beyond the listener's cap: health checks
		// and metrics only, and freed once answered.
		w.Header().Set("Connection", "close")
		if r.URL.Path != "/healthz" && r.URL.Path != "/metrics" {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many connections are open; retry later"})
			return
		}
	}
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "routes": len(g.routes)})
		return
	}
	if r.URL.Path == "/metrics" && r.Method == http.MethodGet && !g.cfg.MetricsElsewhere {
		g.Metrics().ServeHTTP(w, r)
		return
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	rt := g.routes[name]
	if rt == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no route serves %s", r.URL.Path)})
		return
	}
	start := time.Now()
	sw := httpstatus.New(w)
	st := &stats{}
	g.m.inflight.Inc()
	defer func() {
		if st.agent != "" || st.bodyBytes > 0 {
			g.release(st)
		}
		g.m.inflight.Dec()
		g.m.calls.WithLabelValues(rt.Name, st.result(sw, sw.Code)).Inc()
		if st.outcome != "" {
			total := time.Since(start)
			g.m.added.WithLabelValues(rt.Name).Observe(max(total-st.upstream, 0).Seconds())
			if st.upstream > 0 {
				g.m.upstream.WithLabelValues(rt.Name).Observe(st.upstream.Seconds())
			}
		}
	}()
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	default:
		sw.Header().Set("Retry-After", "1")
		writeJSON(sw, http.StatusServiceUnavailable, map[string]string{"error": "the gateway is at its limit of calls in flight; retry later"})
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), statsKey{}, st))
	if rt.MCP {
		g.serveMCP(sw, r, rt)
		return
	}
	g.serveHTTP(sw, r, rt, "/"+rest)
}

// call is one call in flight.
type call struct {
	rt      *route
	sess    *session
	cred    string
	start   time.Time
	rec     record   // what the entry says of the request
	first   *Receipt // record=before: the request's entry
	unrec   string   // fail_open: why the call is not recorded
	restRaw string   // the path after the route's prefix, escaped
	st      *stats   // what the metrics learn of the call
	sent    time.Time
	// passthrough: an MCP GET stream or DELETE, proxied unrecorded.
	passthrough bool
}

type callKey struct{}

func callOf(ctx context.Context) *call { c, _ := ctx.Value(callKey{}).(*call); return c }

// record is one record of an append request being built: the wire
// record, with its attributes as a map until it is encoded.
type record struct {
	agentlog.Record
	Attributes map[string]any
}

// withOutcome returns a copy of r with its outcome and extra attributes.
func (r record) withOutcome(outcome string, attrs map[string]any) record {
	a := make(map[string]any, len(r.Attributes)+len(attrs))
	for k, v := range r.Attributes {
		a[k] = v
	}
	for k, v := range attrs {
		a[k] = v
	}
	r.Outcome, r.Attributes = outcome, a
	return r
}

func (r record) encode() []byte {
	out := r.Record
	out.Action, out.Tool = clean(r.Action, 256), clean(r.Tool, 256)
	out.Resource, out.Outcome = clean(r.Resource, 2048), clean(r.Outcome, 256)
	if len(r.Attributes) > 0 {
		out.Attributes = jsonMarshal(r.Attributes)
	}
	return jsonMarshal(out)
}

// clean makes s a valid leaf field: valid UTF-8 without control
// characters, at most max bytes (cut at a character boundary).
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsFunc(s, isControl) {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return '\uFFFD'
			}
			return r
		}, s)
	}
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func (rc Receipt) String() string {
	return strconv.FormatUint(rc.Index, 10) + " " + base64.StdEncoding.EncodeToString(rc.LeafHash)
}

// ParseReceipts parses a receipt field: one receipt, or an MCP batch's
// comma-separated list of them (field lines joined with commas read the
// same, as RFC 9110 section 5.3 allows).
func ParseReceipts(field string) ([]Receipt, error) {
	var out []Receipt
	for _, s := range strings.Split(field, ",") {
		rc, err := ParseReceipt(s)
		if err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, nil
}

// setReceipts sets field name of h to the receipts rs, one line, in
// order; a list longer than MaxReceiptField is left out and
// ReceiptsInBodyHeader says how many receipts the answers carry instead.
func setReceipts(h http.Header, name string, rs []string) {
	if len(rs) == 0 {
		return
	}
	v := strings.Join(rs, ", ")
	if len(v) > MaxReceiptField {
		h.Set(ReceiptsInBodyHeader, strconv.Itoa(len(rs)))
		return
	}
	h.Set(name, v)
}

// ParseReceipt parses a receipt as the gateway writes it: "<index>
// <base64 leaf hash>" (a decimal index, a 32-byte hash in standard
// base64).
func ParseReceipt(s string) (Receipt, error) {
	i, h, ok := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.ParseUint(i, 10, 64)
	if !ok || err != nil || (len(i) > 1 && i[0] == '0') {
		return Receipt{}, fmt.Errorf("receipt %q: want \"<index> <base64 leaf hash>\"", s)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return Receipt{}, fmt.Errorf("receipt %q: the leaf hash is not 32 bytes in standard base64", s)
	}
	return Receipt{Index: n, LeafHash: b}, nil
}

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func (g *Gateway) ms(since time.Time) float64 {
	return float64(g.now().Sub(since).Microseconds()) / 1000
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// admit authenticates the call's session credential. When it returns
// false it has answered the request. unrec is set when the log could not
// be asked and the route is fail_open with a session the log confirmed
// before.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, rt *route, fail failFunc) (*session, string, string, bool) {
	cred, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="agentlog"`)
		fail(w, http.StatusUnauthorized, "send your agentlog session credential as Authorization: Bearer <credential>")
		return nil, "", "", false
	}
	se, err := g.sess.authenticate(r.Context(), cred)
	switch {
	case err == nil:
		return se, cred, "", g.takeAgent(w, r, se.agent, fail)
	case errors.Is(err, errRefused):
		w.Header().Set("WWW-Authenticate", `Bearer realm="agentlog"`)
		fail(w, http.StatusUnauthorized, err.Error())
	case se != nil && rt.FailOpen:
		g.log.Warn("fail_open: the log cannot be asked about a session; the call goes through unrecorded", "route", rt.Name, "agent", se.agent, "err", err)
		return se, cred, err.Error(), g.takeAgent(w, r, se.agent, fail)
	default:
		g.log.Warn("failing closed: the log cannot be asked about a session", "route", rt.Name, "err", err)
		fail(w, http.StatusBadGateway, "agentlog: the log cannot be reached to check the session credential; the call was not forwarded (fail closed)")
	}
	return nil, "", "", false
}

// takeAgent counts an admitted call against its agent's share of the call
// slots (max_concurrent_per_agent), released when ServeHTTP ends, or
// answers it 503.
func (g *Gateway) takeAgent(w http.ResponseWriter, r *http.Request, agent string, fail failFunc) bool {
	g.agentMu.Lock()
	n := g.byAgent[agent]
	if n < g.cfg.MaxConcurrentAgent {
		g.byAgent[agent] = n + 1
	}
	g.agentMu.Unlock()
	if n >= g.cfg.MaxConcurrentAgent {
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, fmt.Sprintf("agent %s has %d calls in flight, at most %d (max_concurrent_per_agent); retry later", agent, n, g.cfg.MaxConcurrentAgent))
		return false
	}
	statsOf(r.Context()).agent = agent
	return true
}

// takeBytes takes n bytes of max_body_bytes_in_flight for the request of
// st, or reports that they are not free.
func (g *Gateway) takeBytes(st *stats, n int64) bool {
	g.agentMu.Lock()
	defer g.agentMu.Unlock()
	if g.bodies+n > g.cfg.MaxBodyBytes || (st.agent != "" && g.agentBodies[st.agent]+n > g.cfg.MaxBodyBytesAgent) {
		return false
	}
	g.bodies += n
	if st.agent != "" {
		g.agentBodies[st.agent] += n
	}
	st.bodyBytes += n
	return true
}

// errBodyBudget: a request body or a held answer outgrew what is free of
// max_body_bytes_in_flight.
var errBodyBudget = errors.New("the bodies held are over max_body_bytes_in_flight")

// budgetReader takes the bytes of a body of undeclared length from
// max_body_bytes_in_flight as they are read.
type budgetReader struct {
	r  io.Reader
	g  *Gateway
	st *stats
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && !b.g.takeBytes(b.st, int64(n)) {
		// The n bytes are returned, not counted: a held answer that
		// outgrows the budget is streamed on from them.
		return n, errBodyBudget
	}
	return n, err
}

// holdAnswer returns a reader of an upstream's answer to hold in memory
// (record=after, MCP): its bytes are taken from max_body_bytes_in_flight,
// by its declared length up to limit before it is read, or as it is read.
// It reads errBodyBudget once the budget has no room for what comes.
func (g *Gateway) holdAnswer(st *stats, resp *http.Response, limit int64) io.Reader {
	if resp.ContentLength >= 0 {
		if g.takeBytes(st, min(resp.ContentLength, limit)) {
			return resp.Body
		}
		return errReader{errBodyBudget}
	}
	return &budgetReader{r: resp.Body, g: g, st: st}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// release gives back what a request held: its agent's call slot and its
// body's bytes.
func (g *Gateway) release(st *stats) {
	g.agentMu.Lock()
	defer g.agentMu.Unlock()
	g.bodies -= st.bodyBytes
	if st.agent == "" {
		return
	}
	if g.agentBodies[st.agent] -= st.bodyBytes; g.agentBodies[st.agent] <= 0 {
		delete(g.agentBodies, st.agent)
	}
	if g.byAgent[st.agent]--; g.byAgent[st.agent] <= 0 {
		delete(g.byAgent, st.agent)
	}
}

// failFunc answers a refused call: JSON {"error"} for HTTP routes, a
// JSON-RPC error for MCP routes.
type failFunc func(w http.ResponseWriter, status int, msg string)

func httpFail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// inScope checks the call against the agent's declared scope. For a call
// outside it, it returns false with the entry's attribute set.
func (g *Gateway) inScope(c *call) bool {
	sc := c.sess.scope
	if sc.AllowsAction(c.rec.Action, c.rec.Tool, c.rec.Resource) && sc.AllowsTime(g.now()) {
		return true
	}
	c.rec.Attributes["gateway.scope"] = "outside"
	return false
}

// refuse records a call refused by scope=enforce and answers it.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, c *call, fail failFunc) {
	rec := c.rec.withOutcome(OutcomeDenied, map[string]any{"gateway.refused": "outside the agent's declared scope"})
	if rc, err := g.rec.append(r.Context(), c.cred, rec.encode()); err == nil {
		w.Header().Set(ReceiptHeader, rc.String())
		statsOf(r.Context()).outcome = OutcomeDenied
	} else {
		g.log.Warn("recording a refused call", "route", c.rt.Name, "agent", c.sess.agent, "err", err)
	}
	fail(w, http.StatusForbidden, fmt.Sprintf("agentlog: %s %s is outside agent %s's declared scope; the call was refused and recorded", c.rec.Action, c.rec.Tool, c.sess.agent))
}

// recordFailed answers a call whose entry could not be written: fail
// closed, or (fail_open, log down) go on unrecorded. It returns whether the
// call may go on.
func (g *Gateway) recordFailed(w http.ResponseWriter, c *call, err error, fail failFunc) bool {
	if errors.Is(err, errRefused) {
		fail(w, http.StatusUnauthorized, err.Error())
		return false
	}
	if c.rt.FailOpen {
		g.log.Warn("fail_open: the call goes on unrecorded", "route", c.rt.Name, "agent", c.sess.agent, "err", err)
		c.unrec = err.Error()
		return true
	}
	g.log.Warn("failing closed: the call's entry could not be written", "route", c.rt.Name, "agent", c.sess.agent, "err", err)
	fail(w, http.StatusBadGateway, "agentlog: the call could not be recorded in the log, so it was refused (fail closed)")
	return false
}

// readBody reads a call's request body, at most limit bytes, within the
// configured body_timeout. On failure it returns the status (413, 408 or
// 400) and the message of the answer.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, int, string) {
	// The body is held until the call ends (it is forwarded from
	// memory): its bytes are taken from max_body_bytes_in_flight, by its
	// declared length before it is read, or as it is read.
	st := statsOf(r.Context())
	overBudget := func() ([]byte, int, string) {
		w.Header().Set("Retry-After", "1")
		return nil, http.StatusServiceUnavailable, fmt.Sprintf("the gateway holds the most body bytes it may, in all (max_body_bytes_in_flight, %d) or for one agent (max_body_bytes_per_agent, %d); retry later", g.cfg.MaxBodyBytes, g.cfg.MaxBodyBytesAgent)
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 {
		if !g.takeBytes(st, min(r.ContentLength, limit)) {
			return overBudget()
		}
	} else {
		src = &budgetReader{r: src, g: g, st: st}
	}
	// A read deadline for the body only: the server has no read timeout,
	// since the answer (an event stream) may outlast any.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout))
	body, err := io.ReadAll(src)
	rc.SetReadDeadline(time.Time{})
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case err == nil:
		return body, 0, ""
	case errors.Is(err, errBodyBudget):
		return overBudget()
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		return nil, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s (body_timeout)", g.cfg.BodyTimeout)
	default:
		return nil, http.StatusBadRequest, "reading the request body: " + err.Error()
	}
}

// dotSegment reports whether the path p, decoded, has a "." or ".."
// segment: an upstream that resolves them would serve a path outside the
// route's, while the entry, and the scope check, name the path as sent.
func dotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request, rt *route, rest string) {
	if dotSegment(rest) {
		httpFail(w, http.StatusBadRequest, fmt.Sprintf("the path %q has a \".\" or \"..\" segment, which the upstream could resolve outside the route; send the path it names", r.URL.Path))
		return
	}
	se, cred, unrec, ok := g.admit(w, r, rt, httpFail)
	if !ok {
		return
	}
	start := g.now()
	body, status, msg := g.readBody(w, r, rt.maxRequest)
	if status != 0 {
		httpFail(w, status, msg)
		return
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	restRaw := "/" + strings.TrimPrefix(strings.TrimPrefix(r.URL.EscapedPath(), "/"+rt.Name), "/")
	c := &call{rt: rt, sess: se, cred: cred, start: start, unrec: unrec, restRaw: restRaw, st: statsOf(r.Context())}
	action := rt.Action
	if action == "" {
		action = "http." + strings.ToLower(r.Method)
	}
	c.rec = record{Record: agentlog.Record{Action: action, Tool: rt.Tool, Resource: rt.resource(rest)}, Attributes: map[string]any{
		"gateway.route":       rt.Name,
		"gateway.record":      recordMode(rt),
		"http.request.method": r.Method,
		"url.path":            clean(rest, 1024),
		"server.address":      rt.Upstream.Host,
		"request.sha256":      sha256Hex(body),
	}}
	if r.URL.RawQuery != "" {
		// The query string is forwarded but, as a body, may carry what
		// must not be in the log: its digest tells calls apart.
		c.rec.Attributes["url.query.sha256"] = sha256Hex([]byte(r.URL.RawQuery))
	}
	if rt.FailOpen {
		c.rec.Attributes["gateway.fail_open"] = true
	}
	traceAttrs(c.rec.Attributes, r.Header.Get("Traceparent"))
	if !g.inScope(c) && rt.Enforce {
		g.refuse(w, r, c, httpFail)
		return
	}
	if rt.Before && c.unrec == "" {
		rec := c.rec.withOutcome("", map[string]any{"gateway.phase": "request"})
		rc, err := g.rec.append(r.Context(), cred, rec.encode())
		if err != nil {
			if !g.recordFailed(w, c, err, httpFail) {
				return
			}
		} else {
			c.first = &rc
		}
	}
	rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
}

func recordMode(rt *route) string {
	if rt.Before {
		return "before"
	}
	return "after"
}

// resource derives an HTTP call's resource from its path.
func (rt *Route) resource(p string) string {
	for i := range rt.rules {
		if res, ok := rt.rules[i].match(p); ok {
			return res
		}
	}
	return strings.TrimPrefix(p, "/")
}

// traceAttrs records the W3C trace context of a traceparent value
// (version-traceid-parentid-flags), when it is well formed.
func traceAttrs(a map[string]any, tp string) {
	p := strings.Split(strings.TrimSpace(tp), "-")
	if len(p) < 4 || len(p[0]) != 2 || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 || p[0] == "ff" {
		return
	}
	for _, s := range p[:4] {
		if _, err := hex.DecodeString(s); err != nil || strings.ToLower(s) != s {
			return
		}
	}
	if strings.Trim(p[1], "0") == "" || strings.Trim(p[2], "0") == "" {
		return
	}
	a["trace_id"], a["span_id"] = p[1], p[2]
}

func (g *Gateway) rewrite(rt *route) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		c := callOf(pr.In.Context())
		if c != nil {
			c.sent = time.Now()
		}
		pr.Out.URL.Path, pr.Out.URL.RawPath = "", ""
		if c != nil && c.restRaw != "/" {
			pr.Out.URL.RawPath = c.restRaw
			pr.Out.URL.Path, _ = unescapePath(c.restRaw)
		}
		pr.SetURL(rt.Upstream)
		if rt.MCP {
			// An MCP route serves one endpoint: the upstream's URL as is.
			pr.Out.URL.Path, pr.Out.URL.RawPath = rt.Upstream.Path, rt.Upstream.RawPath
		}
		pr.Out.Header.Del("Authorization")
		if rt.upstreamHeader != "" {
			pr.Out.Header.Set(rt.upstreamHeader, rt.upstreamValue)
		}
	}
}

func unescapePath(p string) (string, error) { return url.PathUnescape(p) }

// modifyResponse records the upstream's answer before it is released
// (record=after), or arranges for its outcome to be recorded once it has
// passed (record=before).
func (g *Gateway) modifyResponse(resp *http.Response) error {
	c := callOf(resp.Request.Context())
	for _, h := range []string{ReceiptHeader, OutcomeReceiptHeader, UnrecordedHeader, ReceiptsInBodyHeader} {
		resp.Header.Del(h) // only the gateway says these
	}
	if c.passthrough {
		return nil
	}
	if c.unrec != "" {
		resp.Header.Set(UnrecordedHeader, clean(c.unrec, 512))
		return nil
	}
	status := map[string]any{"http.response.status_code": resp.StatusCode}
	outcome := OutcomeSuccess
	if resp.StatusCode >= 400 {
		outcome = OutcomeError
	}
	if c.rt.Before {
		resp.Header.Set(ReceiptHeader, c.first.String())
		if resp.Trailer == nil {
			resp.Trailer = http.Header{}
		}
		resp.Trailer[OutcomeReceiptHeader] = nil // announced; set at the end
		resp.Body = &tailReader{rc: resp.Body, h: sha256.New(), end: func(digest string, complete bool, readErr error) error {
			c.upstreamDone()
			a := map[string]any{"gateway.phase": "response", "gateway.request_index": c.first.Index, "duration_ms": g.ms(c.start)}
			for k, v := range status {
				a[k] = v
			}
			o := outcome
			if complete {
				a["response.sha256"] = digest
			} else {
				o = OutcomeUpstreamError
				a["gateway.response.complete"] = false
				if readErr != nil {
					a["error.type"] = clean(readErr.Error(), 256)
				}
			}
			rec := c.rec.withOutcome(o, a)
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LogTimeout)
			defer cancel()
			rc, err := g.rec.append(ctx, c.cred, rec.encode())
			if err != nil {
				if c.rt.FailOpen && errors.Is(err, errLogDown) {
					resp.Trailer.Set(UnrecordedHeader, clean(err.Error(), 512))
					return nil
				}
				g.log.Warn("failing closed: the outcome of a streamed call could not be recorded; the answer is broken off", "route", c.rt.Name, "agent", c.sess.agent, "err", err)
				return err
			}
			resp.Trailer.Set(OutcomeReceiptHeader, rc.String())
			c.st.outcome = o
			return nil
		}}
		return nil
	}
	a := map[string]any{}
	for k, v := range status {
		a[k] = v
	}
	if !isEventStream(resp.Header) && resp.ContentLength <= c.rt.maxBuffer {
		buf, err := io.ReadAll(io.LimitReader(g.holdAnswer(c.st, resp, c.rt.maxBuffer+1), c.rt.maxBuffer+1))
		overBudget := errors.Is(err, errBodyBudget)
		if err != nil && !overBudget {
			return &upstreamError{fmt.Errorf("reading the upstream's answer: %w", err)}
		}
		// An answer the budget cannot hold is streamed as a longer one is.
		if int64(len(buf)) <= c.rt.maxBuffer && !overBudget {
			a["response.sha256"] = sha256Hex(buf)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(buf))
		} else {
			a["gateway.streamed"] = true
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		}
	} else {
		a["gateway.streamed"] = true
	}
	a["duration_ms"] = g.ms(c.start)
	c.upstreamDone()
	rec := c.rec.withOutcome(outcome, a)
	rc, err := g.rec.append(resp.Request.Context(), c.cred, rec.encode())
	if err != nil {
		if c.rt.FailOpen && errors.Is(err, errLogDown) {
			resp.Header.Set(UnrecordedHeader, clean(err.Error(), 512))
			return nil
		}
		return &recordError{err}
	}
	resp.Header.Set(ReceiptHeader, rc.String())
	c.st.outcome = outcome
	return nil
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "text/event-stream")
}

// upstreamDone adds the time since the call was forwarded to the time
// spent waiting for the upstream, once.
func (c *call) upstreamDone() {
	if c.st != nil && !c.sent.IsZero() {
		c.st.upstream += time.Since(c.sent)
		c.sent = time.Time{}
	}
}

// recordError is a failure to write a call's entry, from modifyResponse.
type recordError struct{ err error }

func (e *recordError) Error() string { return e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

// upstreamError is a failure of the upstream found in modifyResponse.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// proxyError answers a call the proxy could not complete: a failure to
// record (fail closed) or an upstream that could not be reached, which is
// recorded as the call's outcome.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	c := callOf(r.Context())
	var re *recordError
	if errors.As(err, &re) {
		g.recordFailed(w, c, re.err, httpFail)
		return
	}
	if c.passthrough || c.unrec != "" {
		if c.unrec != "" {
			w.Header().Set(UnrecordedHeader, clean(c.unrec, 512))
		}
		httpFail(w, http.StatusBadGateway, g.upstreamFailed(c.rt, err))
		return
	}
	c.upstreamDone()
	a := map[string]any{"error.type": clean(err.Error(), 256), "duration_ms": g.ms(c.start)}
	if c.rt.Before {
		a["gateway.phase"], a["gateway.request_index"] = "response", c.first.Index
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.LogTimeout)
	defer cancel()
	rc, rerr := g.rec.append(ctx, c.cred, c.rec.withOutcome(OutcomeUpstreamError, a).encode())
	switch {
	case rerr != nil && !(c.rt.FailOpen && errors.Is(rerr, errLogDown)):
		g.recordFailed(w, c, rerr, httpFail)
		return
	case rerr != nil:
		w.Header().Set(UnrecordedHeader, clean(rerr.Error(), 512))
	case c.rt.Before:
		w.Header().Set(ReceiptHeader, c.first.String())
		w.Header().Set(OutcomeReceiptHeader, rc.String())
		c.st.outcome = OutcomeUpstreamError
	default:
		w.Header().Set(ReceiptHeader, rc.String())
		c.st.outcome = OutcomeUpstreamError
	}
	httpFail(w, http.StatusBadGateway, g.upstreamFailed(c.rt, err))
}

// tailReader hashes a streamed answer as it passes and calls end once:
// at its end (complete), or when it is closed or breaks off before. An
// error from end replaces the end of the stream, which breaks the answer
// off, so an agent never sees a complete answer whose outcome is not
// recorded.
type tailReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	end  func(digest string, complete bool, readErr error) error
	once sync.Once
	err  error
}

func (t *tailReader) finish(complete bool, readErr error) error {
	t.once.Do(func() { t.err = t.end(hex.EncodeToString(t.h.Sum(nil)), complete, readErr) })
	return t.err
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if ferr := t.finish(true, nil); ferr != nil {
			return n, ferr
		}
	case err != nil:
		t.finish(false, err)
	}
	return n, err
}

func (t *tailReader) Close() error {
	err := t.rc.Close()
	t.finish(false, nil)
	return err
}

// Describe is the configuration c serves on listen, as the log records it
// (POST /v1/gateway/config).
func (c *Config) Describe(listen string) agentlog.GatewayConfig {
	d := agentlog.GatewayConfig{Listen: listen}
	for _, r := range c.Routes {
		scope := "record"
		if r.Enforce {
			scope = "enforce"
		}
		d.Routes = append(d.Routes, agentlog.GatewayRoute{Name: r.Name, Upstream: r.Upstream.String(), MCP: r.MCP, Record: recordMode(&route{Route: r}), Scope: scope, FailOpen: r.FailOpen})
	}
	return d
}

// RecordConfig records the gateway's configuration (Describe) in the log
// with token, an operator token of role gateway, and returns the entry's
// receipt. The gateway calls it before serving, so that a fail_open route
// is on record before any call goes through it unrecorded.
func (g *Gateway) RecordConfig(ctx context.Context, token, listen string) (Receipt, error) {
	c, err := client.New(g.cfg.Log, client.WithToken(token), client.WithHTTPClient(g.rec.hc))
	if err != nil {
		return Receipt{}, err
	}
	a, err := c.RecordGatewayConfig(ctx, g.cfg.Describe(listen))
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{Index: a.Index, LeafHash: a.LeafHash}, nil
}

// FailOpen returns the names of the fail_open routes.
func (c *Config) FailOpen() []string { d := c.Describe(""); return d.FailOpen() }
