package witness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/internal/httpstatus"
	"github.com/agentlog/agentlog/internal/listener"
	"github.com/agentlog/agentlog/witness/policy"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxBodyBytes caps an add-checkpoint request body: an old size
// line, 63 proof lines of 45 bytes and a checkpoint with room for many
// cosignatures.
const DefaultMaxBodyBytes = 64 << 10

// ServerConfig configures a [Server].
type ServerConfig struct {
	Witness      *Witness
	Clock        *clock.Clock         // for /healthz; may be nil (the clock registers its own metrics)
	Registry     *prometheus.Registry // nil means a new one, served at /metrics
	MaxBodyBytes int64                // default DefaultMaxBodyBytes
	Logger       *slog.Logger         // nil discards
}

// Server serves the c2sp.org/tlog-witness HTTP API of a Witness:
//
//	POST /add-checkpoint             cosign a checkpoint
//	GET  /<hex SHA-256 of origin>/checkpoint  latest cosigned checkpoint of a log
//	GET  /healthz                    JSON status (always 200: a witness without NTP still cosigns)
//	GET  /metrics                    Prometheus metrics
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	mux  *mux.Router
	reqs *prometheus.CounterVec
	size *prometheus.GaugeVec

	mu       sync.Mutex
	lastCosi time.Time
}

// NewServer returns a Server for cfg.Witness.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: mux.NewRouter()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentlog_witness_requests_total",
		Help: "HTTP requests to the witness by route and status code.",
	}, []string{"route", "code"})
	s.size = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "agentlog_witness_cosigned_size",
		Help: "Tree size of the latest checkpoint cosigned, by log origin.",
	}, []string{"origin"})
	cfg.Registry.MustRegister(s.reqs, s.size)
	for _, o := range cfg.Witness.Origins() {
		if b, err := cfg.Witness.Latest(o); err == nil && b != nil {
			if cp, err := parseBody(noteText(b)); err == nil {
				s.size.WithLabelValues(o).Set(float64(cp.Size))
			}
		}
	}
	s.route("add-checkpoint", http.MethodPost, "/add-checkpoint", s.addCheckpoint)
	s.route("checkpoint", http.MethodGet, "/{hash}/checkpoint", s.getCheckpoint)
	s.route("healthz", http.MethodGet, "/healthz", s.getHealth)
	s.mux.Handle("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// route registers h for method and path and counts its answers.
func (s *Server) route(name, method, path string, h http.HandlerFunc) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		sw := httpstatus.New(w)
		overflow := listener.Overflow(r.Context())
		if overflow {
			// A reserve connection (beyond the server's cap) is for
			// health checks: free it once answered.
			sw.Header().Set("Connection", "close")
		}
		if overflow && name != "healthz" {
			sw.Header().Set("Retry-After", "1")
			http.Error(sw, "too many connections are open; retry later", http.StatusServiceUnavailable)
		} else {
			h(sw, r)
		}
		s.reqs.WithLabelValues(name, strconv.Itoa(sw.Code)).Inc()
	}).Methods(method)
}

func (s *Server) addCheckpoint(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if !errors.As(err, &tooBig) {
			err = fmt.Errorf("%w: %v", errReadingBody, err)
		}
		s.writeError(w, err)
		return
	}
	req, err := ParseRequest(body)
	var sig []byte
	if err == nil {
		sig, err = s.cfg.Witness.Add(r.Context(), req)
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	if o, _, _ := cutLine(req.Checkpoint); o != "" {
		if cp, err := parseBody(noteText(req.Checkpoint)); err == nil {
			s.size.WithLabelValues(o).Set(float64(cp.Size))
		}
	}
	s.mu.Lock()
	s.lastCosi = time.Now()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(sig)
}

// Errors of the HTTP layer itself, for writeError.
var (
	errReadingBody  = errors.New("reading the request body")               // 400
	errNoCheckpoint = errors.New("no checkpoint cosigned for that origin") // 404
)

// writeError maps an error of a request (reading it, ParseRequest,
// Witness.Add, Witness.Latest) to its status: the one place where
// statuses are decided.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	var conflict *ConflictError
	var tooBig *http.MaxBytesError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
		return
	case errors.As(err, &conflict):
		w.Header().Set("Content-Type", "text/x.tlog.size")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", conflict.Size)
		return
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrOldTooLarge), errors.Is(err, errReadingBody):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnknownLog), errors.Is(err, errNoCheckpoint):
		code = http.StatusNotFound
	case errors.Is(err, ErrNotSigned):
		code = http.StatusForbidden
	case errors.Is(err, ErrBadProof), errors.Is(err, ErrRootMismatch):
		code = http.StatusUnprocessableEntity
	case errors.Is(err, ErrRateLimited):
		w.Header().Set("Retry-After", "1")
		code = http.StatusTooManyRequests
	default:
		s.log.Error("witness request failed", "err", err)
		http.Error(w, "internal error", code)
		return
	}
	http.Error(w, err.Error(), code)
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	h := mux.Vars(r)["hash"]
	for _, o := range s.cfg.Witness.Origins() {
		if policy.OriginHash(o) != h {
			continue
		}
		b, err := s.cfg.Witness.Latest(o)
		if err != nil {
			s.writeError(w, fmt.Errorf("reading the cosigned checkpoint of %s: %w", o, err))
			return
		}
		if b == nil {
			break
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
		return
	}
	s.writeError(w, errNoCheckpoint)
}

// Health is the body of the witness's /healthz.
type Health struct {
	Status       string        `json:"status"` // "ok" or "degraded" (NTP not synced)
	Name         string        `json:"name"`
	Logs         int           `json:"logs"`
	LastCosigned time.Time     `json:"last_cosigned,omitzero"`
	Clock        *clock.Status `json:"clock,omitempty"`
	Problems     []string      `json:"problems,omitempty"`
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Name: s.cfg.Witness.Name(), Logs: len(s.cfg.Witness.Origins())}
	s.mu.Lock()
	h.LastCosigned = s.lastCosi
	s.mu.Unlock()
	if s.cfg.Clock != nil {
		st := s.cfg.Clock.Status()
		h.Clock = &st
		if !st.Synced || st.Degraded {
			h.Status = "degraded"
			h.Problems = append(h.Problems, "the clock is not synchronized with NTP; cosignature times come from the host clock")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(h)
}

func cutLine(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", b, false
}
