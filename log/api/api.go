// Package api is agentlog's HTTP interface: the C2SP read endpoints
// (c2sp.org/tlog-tiles: /checkpoint, /tile/...), the JSON append, entry and
// proof endpoints under /v1, /healthz and /metrics. docs/api.md documents
// every route, its credential and its answers.
//
// Handlers parse the request, call the log core and map the result; errors
// become statuses in exactly one place ([writeError]). Every request body is
// capped.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/httpstatus"
	"github.com/agentlog/agentlog/internal/listener"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/mirror"
	"github.com/agentlog/agentlog/log/sink"
	"github.com/agentlog/agentlog/tree"
	"github.com/agentlog/agentlog/witness"
)

// Errors the handlers return; writeError maps them to statuses.
var (
	ErrUnauthorized = errors.New("missing or invalid credential")
	ErrForbidden    = errors.New("credential not allowed here")
	errBadRequest   = errors.New("bad request")
	errUnavailable  = errors.New("not available yet")
	errOverBudget   = errors.New("server is busy")
)

// Roles of principals.
const (
	RoleAdmin    = identity.RoleAdmin
	RoleApprover = identity.RoleApprover
	RoleAuditor  = identity.RoleAuditor
	RoleAgent    = identity.RoleAgent
	RoleGateway  = identity.RoleGateway
)

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(a) <= len(p) || !strings.EqualFold(a[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(a[len(p):]), true
}

// Config configures a Server.
type Config struct {
	Log *alog.Log
	// Identity, if set, authenticates every credential (the bootstrap
	// admin's static token, operator tokens and agent sessions) and serves
	// the /v1/tokens, /v1/agents and /v1/sessions routes. Without it every
	// request that needs a credential is refused.
	Identity *identity.Store
	// Changes, if set (with Identity), serves /v1/changes and /v1/configs
	// and records the configuration agents are registered with.
	Changes *change.Store
	// Origin is the log's checkpoint origin, named in attestations.
	Origin string
	// DeniedRate and DeniedBurst bound how many denied-attempt entries
	// the log records for one identity (per second, and at once); defaults
	// 1 and 20. Its denials beyond them, and every denial that proves no
	// identity, are counted in the summary written every DeniedInterval
	// (default 1m) by Run (denied.go).
	DeniedRate     float64
	DeniedBurst    int
	DeniedInterval time.Duration
	// InflightBytes and InflightBytesPerAgent bound the bytes of append
	// request bodies in flight (from authentication to the answer, so
	// decoding and the wait for the commit included), for the server and
	// for each agent; beyond them an append gets 503 with Retry-After.
	// Defaults DefaultInflightBytes and DefaultInflightBytesPerAgent;
	// both are raised to at least one largest request.
	InflightBytes         int64
	InflightBytesPerAgent int64
	Clock                 *clock.Clock // may be nil
	Loop                  *signer.Loop // may be nil before checkpoints are wired
	// Witnesses, if set, is the client collecting witness cosignatures;
	// /healthz reports its state, degraded while the newest checkpoint lacks
	// its quorum for longer than the client tolerates, failing if the
	// client holds such checkpoints back from /checkpoint.
	Witnesses *witness.Client
	// Anomaly, if set, is reported in /healthz.
	Anomaly *anomaly.Watcher
	// OTLPRecordOther: OTLP trace ingest records the spans that are
	// neither GenAI nor MCP (action "otel.span", docs/otlp.md) instead of
	// ignoring them.
	OTLPRecordOther bool
	// Sinks, if set, are reported in /healthz: degraded while one fails
	// or lags beyond its limit.
	Sinks *sink.Set
	// Mirror, if set, is reported in /healthz: failing once superseded,
	// degraded while its oldest unmirrored entry is older than
	// MirrorLagLimit (default 1m).
	Mirror         *mirror.Mirror
	MirrorLagLimit time.Duration
	// StaleAfter: /healthz fails when the tree has grown past the last
	// checkpoint and the signing loop has not completed a round for this
	// long (default 30s).
	StaleAfter time.Duration
	// LogVerifier and TimeVerifier check the published checkpoint for
	// GET /v1/controls; ApprovalMaxAge is its review period of agent
	// approvals (default DefaultApprovalMaxAge).
	LogVerifier    note.Verifier
	TimeVerifier   note.Verifier
	ApprovalMaxAge time.Duration
	Now            func() time.Time // default time.Now
	Registry       *prometheus.Registry
	Logger         *slog.Logger
}

// Server serves the log over HTTP.
type Server struct {
	cfg    Config
	denied deniedRecorder
	router *mux.Router
	// appendHandler serves POST /v1/entries without the router.
	appendHandler http.Handler
	log           *slog.Logger
	latest        atomic.Pointer[checkpoint.Signed]
	rules         atomic.Pointer[anomaly.Watcher] // SetAnomaly's, else cfg.Anomaly
	sinks         atomic.Pointer[sink.Set]        // SetSinks', else cfg.Sinks
	budget        *budget
	reqDur        *prometheus.HistogramVec
}

// SetAnomaly reports w in /healthz from now on, for rules started after
// the server (a standby's, once it takes over).
func (s *Server) SetAnomaly(w *anomaly.Watcher) { s.rules.Store(w) }

// SetSinks reports set in /healthz from now on, for sinks started after
// the server (a standby's, once it takes over).
func (s *Server) SetSinks(set *sink.Set) { s.sinks.Store(set) }

func (s *Server) sinkSet() *sink.Set {
	if set := s.sinks.Load(); set != nil {
		return set
	}
	return s.cfg.Sinks
}

func (s *Server) anomaly() *anomaly.Watcher {
	if w := s.rules.Load(); w != nil {
		return w
	}
	return s.cfg.Anomaly
}

// statusClientClosed is the status recorded in metrics for a request
// whose client disconnected before the answer.
const statusClientClosed = 499

// maxBodyBytes caps request bodies other than appends.
const maxBodyBytes = 1 << 10

// New returns a Server. Publish must be called with each new checkpoint.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ApprovalMaxAge <= 0 {
		cfg.ApprovalMaxAge = DefaultApprovalMaxAge
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 30 * time.Second
	}
	if cfg.DeniedRate <= 0 {
		cfg.DeniedRate = 1
	}
	if cfg.DeniedBurst <= 0 {
		cfg.DeniedBurst = 20
	}
	if cfg.DeniedInterval <= 0 {
		cfg.DeniedInterval = time.Minute
	}
	if cfg.InflightBytes <= 0 {
		cfg.InflightBytes = DefaultInflightBytes
	}
	if cfg.InflightBytesPerAgent <= 0 {
		cfg.InflightBytesPerAgent = DefaultInflightBytesPerAgent
	}
	cfg.InflightBytesPerAgent = max(cfg.InflightBytesPerAgent, alog.MaxRequestBytes)
	cfg.InflightBytes = max(cfg.InflightBytes, cfg.InflightBytesPerAgent)
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.budget = newBudget(cfg.InflightBytes, cfg.InflightBytesPerAgent, cfg.Registry)
	s.denied.init(cfg.DeniedRate, cfg.DeniedBurst, time.Now())
	s.reqDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "agentlog_http_request_seconds",
		Help:    "HTTP request latency by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route", "code"})
	cfg.Registry.MustRegister(s.reqDur)

	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(s.log, w, fmt.Errorf("%w: no such route %s %s", alog.ErrNotFound, r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
	})
	s.handle(r, "checkpoint", "/checkpoint", http.MethodGet, s.getCheckpoint)
	s.handle(r, "tile", "/tile/{path:.+}", http.MethodGet, s.getTile)
	s.appendHandler = s.handle(r, "append", "/v1/entries", http.MethodPost, s.postEntries)
	s.handle(r, "entry", "/v1/entries/{index}", http.MethodGet, s.getEntry)
	s.handle(r, "inclusion", "/v1/proof/inclusion", http.MethodGet, s.getInclusion)
	s.handle(r, "consistency", "/v1/proof/consistency", http.MethodGet, s.getConsistency)
	s.handle(r, "query", "/v1/query", http.MethodGet, s.getQuery)
	s.handle(r, "otlp", "/v1/otlp/v1/traces", http.MethodPost, s.postOTLPTraces)
	s.handle(r, "healthz", "/healthz", http.MethodGet, s.getHealth)
	if cfg.Identity != nil {
		s.identityRoutes(r)
	}
	if cfg.Changes != nil {
		s.changeRoutes(r)
	}
	if cfg.Identity != nil {
		s.handle(r, "controls", "/v1/controls", http.MethodGet, s.getControls)
		s.handle(r, "gateway.config", "/v1/gateway/config", http.MethodPost, s.postGatewayConfig)
		s.handle(r, "gateways", "/v1/gateways", http.MethodGet, s.getGateways)
	}
	r.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	s.router = r
	return s
}

// ServeHTTP implements http.Handler. Appends, the busiest route, go
// straight to their handler: the router would match every route before
// them and copy the request twice to carry the route and its (no) vars.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/entries" {
		s.appendHandler.ServeHTTP(w, r)
		return
	}
	s.router.ServeHTTP(w, r)
}

// Publish makes c the checkpoint served at /checkpoint.
func (s *Server) Publish(c *checkpoint.Signed) { s.latest.Store(c) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h, wrapping it with body capping, error mapping and
// latency metrics, and returns the wrapped handler.
func (s *Server) handle(r *mux.Router, name, path, method string, h handlerFunc) http.Handler {
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := httpstatus.New(w)
		var bodyLimit int64 // identity, change and gateway bodies: taken from the budget
		switch {
		case name == "append", name == "otlp": // capped by their handlers
		case strings.HasPrefix(name, "identity."):
			req.Body = http.MaxBytesReader(sw, req.Body, maxIdentityBodyBytes)
			bodyLimit = maxIdentityBodyBytes
		case strings.HasPrefix(name, "change."):
			req.Body = http.MaxBytesReader(sw, req.Body, maxChangeBodyBytes)
			bodyLimit = maxChangeBodyBytes
		case name == "gateway.config":
			req.Body = http.MaxBytesReader(sw, req.Body, maxGatewayBodyBytes)
			bodyLimit = maxGatewayBodyBytes
		default:
			req.Body = http.MaxBytesReader(sw, req.Body, maxBodyBytes)
		}
		if listener.Overflow(req.Context()) {
			// Free the reserve place once answered.
			sw.Header().Set("Connection", "close")
		}
		err := s.checkRequest(req, name)
		if err == nil && bodyLimit > 0 {
			var resv *reservation
			if resv, err = s.budget.takeBody(req, bodyLimit); resv != nil {
				defer resv.release()
			}
		}
		if err == nil {
			err = h(sw, req)
		}
		switch {
		case err == nil:
		case req.Context().Err() != nil && errors.Is(err, context.Canceled):
			// The client went away: nobody reads the answer, and it is
			// not the server's failure (499, as nginx counts it).
			writeJSONError(sw, statusClientClosed, "the client closed the request")
		default:
			writeError(s.log, sw, err)
		}
		s.reqDur.WithLabelValues(name, strconv.Itoa(sw.Code)).Observe(time.Since(start).Seconds())
	})
	r.Handle(path, wrapped).Methods(method)
	return wrapped
}

// stalledRetryAfter is the Retry-After of a 503 for an append withdrawn
// because the storage is stalled: a stall lasts seconds at least (a flush
// Badger retries every second, a hung fsync), and clients retrying at
// once would only queue behind it again.
const stalledRetryAfter = "5"

// writeError is the one place where errors become HTTP statuses.
func writeError(l *slog.Logger, w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	var ie *checkpoint.InconsistentError
	switch {
	case errors.As(err, &mbe):
		writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.Is(err, errBodyTimeout):
		w.Header().Set("Connection", "close")
		writeJSONError(w, http.StatusRequestTimeout, err.Error())
	case errors.Is(err, errMediaType):
		writeJSONError(w, http.StatusUnsupportedMediaType, err.Error())
	case errors.Is(err, errOverBudget):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, ErrUnauthorized), errors.Is(err, identity.ErrDenied):
		w.Header().Set("WWW-Authenticate", `Bearer realm="agentlog"`)
		writeJSONError(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrForbidden), errors.Is(err, identity.ErrNotApproved), errors.Is(err, identity.ErrConfigRefused), errors.Is(err, change.ErrSelfApproval):
		writeJSONError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, agentlog.ErrInvalid), errors.Is(err, errBadRequest):
		writeJSONError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, agentlog.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, identity.ErrExists), errors.Is(err, identity.ErrConflict):
		writeJSONError(w, http.StatusConflict, err.Error())
	case errors.Is(err, alog.ErrDiskFull):
		// Not err's text: the data directory and its free space are the
		// operator's (/healthz says how much is needed).
		w.Header().Set("Retry-After", "10")
		writeJSONError(w, http.StatusInsufficientStorage, alog.ErrDiskFull.Error()+"; nothing of this request was written, retry later")
	case errors.Is(err, alog.ErrStorage) && errors.Is(err, syscall.ENOSPC):
		w.Header().Set("Retry-After", "10")
		writeJSONError(w, http.StatusInsufficientStorage, "the database could not write: no space left on the device; nothing of this request was acknowledged")
	case errors.Is(err, alog.ErrStorage):
		l.Warn("storage failure", "err", err)
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "the database failed to write; nothing of this request was acknowledged, retry")
	case errors.Is(err, alog.ErrStalled):
		// The append was withdrawn from the queue before its commit
		// started: a retry cannot duplicate it.
		w.Header().Set("Retry-After", stalledRetryAfter)
		writeJSONError(w, http.StatusServiceUnavailable, "storage is stalled: the append waited longer than the commit-wait budget for its commit to start and was NOT written; retry later")
	case errors.Is(err, alog.ErrNotAcknowledged) && !errors.Is(err, context.Canceled):
		// Written here, not (yet) where the durability setting asks:
		// say so, so that a retry is made with the same key.
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error()+"; they were NOT acknowledged: retry with the same Idempotency-Key to get their receipts once they are (a retry without one appends them again)")
	case errors.Is(err, alog.ErrPushback):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, alog.ErrClosed), errors.Is(err, alog.ErrFenced), errors.Is(err, errUnavailable):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeJSONError(w, http.StatusServiceUnavailable, "request ended before it completed")
	case errors.As(err, &ie):
		l.Error("refusing to serve an inconsistent tree", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal error")
	default:
		l.Error("internal error", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(v)
}

// authorize authenticates the request and checks the principal's role. A
// request that presented a credential and is refused (401 or 403) is
// recorded in the log as a "denied" entry, rate-limited.
func (s *Server) authorize(r *http.Request, route string, roles ...string) (alog.Principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		s.recordDenied(r, route, p, err)
		return alog.Principal{}, err
	}
	for _, role := range roles {
		if p.Role == role {
			return p, nil
		}
	}
	err = fmt.Errorf("%w: role %q may not %s %s", ErrForbidden, p.Role, r.Method, r.URL.Path)
	s.recordDenied(r, route, p, err)
	return alog.Principal{}, err
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) error {
	c := s.latest.Load()
	if c == nil {
		return fmt.Errorf("%w: no checkpoint has been signed yet", errUnavailable)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(c.Raw)
	return err
}

func (s *Server) getTile(w http.ResponseWriter, r *http.Request) error {
	p, err := agentlog.ParseTilePath(mux.Vars(r)["path"])
	if err != nil {
		return err
	}
	var data []byte
	if p.Entries {
		if _, err := s.authorize(r, "bundle", RoleAuditor, RoleAdmin); err != nil {
			return err
		}
		data, err = s.bundle(p)
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		data, err = s.cfg.Log.Tree().Tile(p.Level, p.Index, p.Width)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	if err != nil {
		w.Header().Del("Cache-Control")
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err = w.Write(data)
	return err
}

// bundle assembles a C2SP entry bundle: each entry as a 2-byte big-endian
// length and its bytes.
func (s *Server) bundle(p agentlog.TilePath) ([]byte, error) {
	// WidthAt compares the index with size/TileWidth, so an index of 2^56
	// or more cannot wrap around in the multiplication below.
	size := s.cfg.Log.Size()
	if agentlog.TileWidthAt(0, p.Index, size) < p.Width {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w (tree size %d)", p.Index, p.Width, tree.ErrNotFound, size)
	}
	return s.cfg.Log.EntryBundle(p.Index*agentlog.TileWidth, uint64(p.Width))
}

func (s *Server) postEntries(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "append", RoleAgent)
	if err != nil {
		return err
	}
	if p.Session == "" {
		// Only session credentials carry the agent, session and task a
		// leaf must name.
		err := fmt.Errorf("%w: appending takes an agent session credential", ErrForbidden)
		s.recordDenied(r, "append", p, err)
		return err
	}
	// Reserve the body's bytes before reading them (as they are read when
	// the length is not declared), and hold them until the answer.
	if r.ContentLength > alog.MaxRequestBytes {
		return &http.MaxBytesError{Limit: alog.MaxRequestBytes}
	}
	resv, err := s.budget.take(p.Agent, max(r.ContentLength, 0))
	if err != nil {
		// Read the body through (into no buffer) before answering: a
		// client still sending it would otherwise see its connection
		// reset instead of the 503.
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, alog.MaxRequestBytes))
		return err
	}
	defer resv.release()
	var rd io.Reader = http.MaxBytesReader(w, r.Body, alog.MaxRequestBytes)
	if r.ContentLength < 0 {
		rd = &reader{r: rd, res: resv}
	}
	body, err := readBody(rd, r.ContentLength)
	if errors.Is(err, errOverBudget) {
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, alog.MaxRequestBytes))
	}
	if err != nil {
		return err
	}
	recs, err := alog.ParseAppendRequest(body)
	if err != nil {
		return err
	}
	if err := s.checkSignatures(p, recs); err != nil {
		return err
	}
	var res []alog.Appended
	if key := r.Header.Get("Idempotency-Key"); key != "" && s.cfg.Identity != nil {
		res, err = s.cfg.Identity.AppendIdempotent(r.Context(), p, key, body, alog.KindAction, recs)
	} else {
		res, err = s.cfg.Log.Append(r.Context(), p, alog.KindAction, recs)
	}
	if err != nil {
		return err
	}
	out := agentlog.AppendResponse{Entries: make([]agentlog.Appended, len(res))}
	for i, a := range res {
		out.Entries[i] = agentlog.Appended{Index: a.Index, LeafHash: a.LeafHash[:], Time: a.Time.UTC().Format(time.RFC3339Nano)}
	}
	// The same bytes as writeJSON, without reflection (AppendJSON).
	b := append(out.AppendJSON(make([]byte, 0, 16+96*len(res))), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(b)
	return err
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "entry", RoleAuditor, RoleAdmin); err != nil {
		return err
	}
	i, err := parseUint(mux.Vars(r)["index"], "index")
	if err != nil {
		return err
	}
	leaf, err := s.cfg.Log.Entry(i)
	if err != nil {
		return err
	}
	h := sha256.Sum256(append([]byte{0}, leaf...))
	// The entry must be the leaf byte for byte (its hash is the leaf hash):
	// encoding/json's default HTML escaping would rewrite "<", ">", "&",
	// U+2028 and U+2029 inside it.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(agentlog.EntryResponse{Index: i, LeafHash: h[:], Entry: leaf})
}

func (s *Server) getInclusion(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	i, err := parseUint(q.Get("index"), "index")
	if err != nil {
		return err
	}
	size, err := parseUint(q.Get("size"), "size")
	if err != nil {
		return err
	}
	if i >= size {
		return fmt.Errorf("%w: index %d must be below size %d", errBadRequest, i, size)
	}
	if size > s.cfg.Log.Size() {
		return fmt.Errorf("%w: size %d is beyond the tree size %d", tree.ErrNotFound, size, s.cfg.Log.Size())
	}
	hashes, err := s.cfg.Log.Tree().InclusionProof(i, size)
	if err != nil {
		return err
	}
	return writeJSON(w, agentlog.ProofResponse{Index: &i, Size: size, Hashes: nonNil(hashes)})
}

func (s *Server) getConsistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	old, err := parseUint(q.Get("old"), "old")
	if err != nil {
		return err
	}
	size, err := parseUint(q.Get("size"), "size")
	if err != nil {
		return err
	}
	if old > size {
		return fmt.Errorf("%w: old %d must not exceed size %d", errBadRequest, old, size)
	}
	if size > s.cfg.Log.Size() {
		return fmt.Errorf("%w: size %d is beyond the tree size %d", tree.ErrNotFound, size, s.cfg.Log.Size())
	}
	hashes, err := s.cfg.Log.Tree().ConsistencyProof(old, size)
	if err != nil {
		return err
	}
	return writeJSON(w, agentlog.ProofResponse{Old: &old, Size: size, Hashes: nonNil(hashes)})
}

func nonNil(h [][]byte) [][]byte {
	if h == nil {
		return [][]byte{}
	}
	return h
}

// parseUint parses a decimal query or path value strictly: digits only,
// no sign, no leading zeros, no overflow.
func parseUint(v, name string) (uint64, error) {
	if v == "" {
		return 0, fmt.Errorf("%w: %q is required", errBadRequest, name)
	}
	if len(v) > 1 && v[0] == '0' {
		return 0, fmt.Errorf("%w: %q has leading zeros", errBadRequest, name)
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q must be a non-negative decimal integer", errBadRequest, name)
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is out of range", errBadRequest, name)
	}
	return n, nil
}

// Health is the body of /healthz.
type Health struct {
	Status     string                `json:"status"` // "ok", "degraded" or "failing"
	TreeSize   uint64                `json:"tree_size"`
	QueueDepth int64                 `json:"queue_entries"`
	Checkpoint *checkpointHealth     `json:"checkpoint,omitempty"`
	Clock      *clock.Status         `json:"clock,omitempty"`
	Witnesses  *witness.ClientStatus `json:"witnesses,omitempty"`
	Anomaly    *anomaly.Status       `json:"anomaly,omitempty"`
	Disk       alog.DiskStatus       `json:"disk"`
	Storage    alog.StorageStatus    `json:"storage"`
	Mirror     *mirror.Status        `json:"mirror,omitempty"`
	Sinks      []sink.Status         `json:"sinks,omitempty"`
	Problems   []string              `json:"problems,omitempty"`
}

type checkpointHealth struct {
	Size       uint64    `json:"size"`
	SignedAt   time.Time `json:"signed_at"`
	AgeSeconds float64   `json:"age_seconds"`
	Refusing   bool      `json:"refusing"`
	LastError  string    `json:"last_error,omitempty"`
}

// health computes the server's health. It is failing when checkpoints stop
// being signed for a grown tree, and degraded when the clock has no NTP.
func (s *Server) health() Health {
	h := Health{Status: "ok", TreeSize: s.cfg.Log.Size(), QueueDepth: s.cfg.Log.QueueDepth(), Disk: s.cfg.Log.Disk()}
	if h.Disk.Full {
		h.Status = "failing"
		h.Problems = append(h.Problems, fmt.Sprintf("disk full: %d MiB free, appends need %d MiB; appends are refused (507) until space is freed, reads and proofs are served", h.Disk.FreeBytes>>20, h.Disk.NeedBytes>>20))
	}
	h.Storage = s.cfg.Log.Storage()
	switch {
	case h.Storage.Failing:
		h.Status = "failing"
		h.Problems = append(h.Problems, fmt.Sprintf("storage writes are failing since %s (%s): appends are refused (503) and retried by the log every 0.5 s until a write succeeds; reads and proofs are served", h.Storage.FailingSince.Format(time.RFC3339), h.Storage.LastError))
	case h.Storage.Slow:
		if h.Status == "ok" {
			h.Status = "degraded"
		}
		h.Problems = append(h.Problems, fmt.Sprintf("storage is slow: a commit (write and fsync) took %.1f s; appends wait for it, and those whose commit has not started within the commit-wait budget (%g s) are refused (503) with nothing written", h.Storage.CommitSeconds, h.Storage.CommitWaitSeconds))
	case h.Storage.Stalled:
		// No commit was slow, yet appends waited out the budget: the
		// queue holds more than a commit can take at once.
		if h.Status == "ok" {
			h.Status = "degraded"
		}
		h.Problems = append(h.Problems, fmt.Sprintf("appends were refused (503) in the last 30 s with nothing written: their commit did not start within the commit-wait budget (%g s), with no commit slow; the log commits slower than appends arrive (%d entries queued)", h.Storage.CommitWaitSeconds, h.QueueDepth))
	}
	if h.Storage.Unreadable > 0 {
		h.Status = "failing"
		h.Problems = append(h.Problems, fmt.Sprintf("%d entries cannot be read (the first at index %d) after the database's background writes failed: the database lost data; rebuild this node from the mirror or a backup (docs/operations.md, Storage errors)", h.Storage.Unreadable, *h.Storage.FirstUnreadable))
	}
	if h.Storage.BackgroundError != "" {
		if h.Status == "ok" {
			h.Status = "degraded"
		}
		h.Problems = append(h.Problems, fmt.Sprintf("the database's background writes are failing (last at %s: %s): it retries by itself; while a memtable flush fails, the commit under way waits once its memtables are full, and appends behind it are refused (503) after the commit-wait budget; acknowledged entries are safe in its write-ahead log", h.Storage.BackgroundErrorAt.Format(time.RFC3339), h.Storage.BackgroundError))
	}
	if s.cfg.Clock != nil {
		st := s.cfg.Clock.Status()
		h.Clock = &st
		if st.Degraded || !st.Synced {
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Problems = append(h.Problems, "clock is not synchronized with NTP")
		}
	}
	if s.cfg.Loop != nil {
		ls := s.cfg.Loop.Status()
		ch := &checkpointHealth{Size: ls.Size, SignedAt: ls.LastSigned, Refusing: ls.Refusing, LastError: ls.LastError}
		if !ls.LastSigned.IsZero() {
			ch.AgeSeconds = time.Since(ls.LastSigned).Seconds()
		}
		h.Checkpoint = ch
		// The tree grew past the last checkpoint and the loop has not
		// completed a round for StaleAfter. (The checkpoint's own age says
		// nothing: after an idle spell it is old by design, and the first
		// append only waits for the next tick.)
		stale := ls.Checked.IsZero() || time.Since(ls.Checked) > s.cfg.StaleAfter
		switch {
		case ls.Refusing || (h.TreeSize > ls.Size && stale):
			h.Status = "failing"
			h.Problems = append(h.Problems, "checkpoints are not being signed")
		case ls.LastError != "":
			// Say so at once (a checkpoint file that cannot be written),
			// not only once the checkpoint is stale.
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Problems = append(h.Problems, fmt.Sprintf("the last checkpoint signing failed (%s): it is retried every interval, and /checkpoint serves the previous checkpoint", ls.LastError))
		}
	}
	if s.cfg.Witnesses != nil {
		st := s.cfg.Witnesses.Status()
		h.Witnesses = &st
		if st.Lagging {
			switch {
			case st.HoldBack:
				h.Status = "failing"
				h.Problems = append(h.Problems, "no witness quorum for the newest checkpoint: /checkpoint serves an older cosigned one")
			case h.Status == "ok":
				h.Status = "degraded"
				fallthrough
			default:
				h.Problems = append(h.Problems, "no witness quorum for the newest checkpoint: /checkpoint serves it log-signed only")
			}
		}
	}
	if s.cfg.Mirror != nil {
		st := s.cfg.Mirror.Status()
		h.Mirror = &st
		limit := s.cfg.MirrorLagLimit
		if limit <= 0 {
			limit = time.Minute
		}
		switch {
		case st.Superseded != "":
			h.Status = "failing"
			h.Problems = append(h.Problems, "superseded: another node holds the log's lock; this node refuses appends and never signs again (docs/replication.md)")
		case st.LagSeconds > limit.Seconds():
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Problems = append(h.Problems, fmt.Sprintf("the mirror is lagging: %d entries, the oldest %.0fs old", st.LagEntries, st.LagSeconds))
		}
	}
	if w := s.anomaly(); w != nil {
		st := w.Status()
		h.Anomaly = &st
		if p := st.Problems(); len(p) > 0 {
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Problems = append(h.Problems, p...)
		}
	}
	if set := s.sinkSet(); set != nil {
		h.Sinks = set.Status()
		if p := sink.Problems(h.Sinks); len(p) > 0 {
			if h.Status == "ok" {
				h.Status = "degraded"
			}
			h.Problems = append(h.Problems, p...)
		}
	}
	return h
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	h := s.health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status == "failing" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return json.NewEncoder(w).Encode(h)
}
