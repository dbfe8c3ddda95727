package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentlog/agentlog"
)

// ErrSessionEnded is returned when the session credential is refused and
// the Agent cannot open a new session (it has no key, or the agent was
// revoked).
var ErrSessionEnded = errors.New("session credential refused")

// AgentConfig configures an Agent. Give either Key (the Agent opens and
// renews sessions itself) or Credential (an existing session, used until
// it ends).
type AgentConfig struct {
	// ID is the registered agent id (required with Key).
	ID string
	// Key is the agent's Ed25519 private key, as registered.
	Key ed25519.PrivateKey
	// Credential is an existing session credential, used when Key is nil.
	Credential string
	// Task names the task sessions are opened for (required with Key).
	Task string
	// TTL is the session lifetime to ask for (0: the server's default).
	TTL time.Duration
	// Config is the digest ("sha256:<hex>") of the agent configuration the
	// sessions run under (ConfigDigest computes it; docs/changes.md);
	// every action appended in them carries it. Empty declares none.
	Config string
	// RenewBefore renews the session when less than this is left
	// (default 1 minute).
	RenewBefore time.Duration
	// BatchSize is how many records Add buffers before sending them in
	// one request (default 100, at most 10000).
	BatchSize int
	// MaxRetries bounds the retries of one request after a network error,
	// a 5xx or backpressure (default 5). Retries reuse the request's
	// idempotency key, so a retried request is never appended twice.
	MaxRetries int
	// Sign adds the agent's Ed25519 signature to every record (needs Key).
	Sign bool
	// Sequence numbers the records of each session 1, 2, 3, ... so an
	// auditor can see a dropped record as a gap (default on; set
	// NoSequence to turn it off).
	NoSequence bool
	// HTTPClient is the HTTP client (default: 30 s timeout).
	HTTPClient *http.Client
	// Servers are other servers of the same log (standbys of a
	// replicated log, docs/replication.md). After a network error or a
	// 503 the Agent sends the next attempt to the next server in turn, so
	// it follows a failover; give MaxRetries enough attempts to outlast
	// the lease (10 for the default 6 s). A retried request whose first
	// attempt the old server committed and replicated is answered by the
	// new active with the original receipts, recognized by its sequence
	// numbers (so not with NoSequence, nor without a Key).
	Servers []string
}

// Agent appends an agent's records under task sessions: it opens and
// renews sessions with the agent's key, numbers and optionally signs
// records, batches them, and retries with an idempotency key. It is safe
// for concurrent use.
type Agent struct {
	base  string
	bases []string     // base, then the Servers
	cur   atomic.Int64 // index in bases of the server in use
	cfg   AgentConfig
	hc    *http.Client

	mu      sync.Mutex
	session *SessionInfo
	seq     uint64   // last sequence number given in this session
	buf     []Record // records Add has buffered
}

// SessionInfo describes an open session (the wire type).
type SessionInfo = agentlog.SessionInfo

// NewAgent returns an Agent of the server at baseURL. It opens no session
// until the first append (or Open).
func NewAgent(baseURL string, cfg AgentConfig) (*Agent, error) {
	c, err := New(baseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Key != nil && (cfg.ID == "" || strings.TrimSpace(cfg.Task) == ""):
		return nil, errors.New("an agent with a key needs its ID and a Task")
	case cfg.Key != nil && len(cfg.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("agent key is not an Ed25519 private key")
	case cfg.Key == nil && !strings.HasPrefix(cfg.Credential, agentlog.SessionPrefix):
		return nil, errors.New("an agent needs its Key or a session Credential")
	case cfg.Key == nil && cfg.Sign:
		return nil, errors.New("signing records needs the agent's Key")
	case cfg.Config != "" && !validDigest(cfg.Config):
		return nil, errors.New("the configuration digest must be sha256: and 64 lowercase hex digits")
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = time.Minute
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	cfg.BatchSize = min(cfg.BatchSize, 10000)
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	a := &Agent{base: c.base, bases: []string{c.base}, cfg: cfg, hc: c.hc}
	for _, u := range cfg.Servers {
		o, err := New(u)
		if err != nil {
			return nil, err
		}
		a.bases = append(a.bases, o.base)
	}
	if cfg.HTTPClient != nil {
		a.hc = cfg.HTTPClient
	}
	if cfg.Key == nil {
		a.session = &SessionInfo{Credential: strings.TrimSpace(cfg.Credential)}
	}
	return a, nil
}

// client returns a Client using credential cred.
func (a *Agent) client(cred string) *Client {
	return &Client{base: a.bases[int(a.cur.Load())%len(a.bases)], token: cred, hc: a.hc}
}

// failover moves to the next server, if there is more than one.
func (a *Agent) failover() {
	if len(a.bases) > 1 {
		a.cur.Add(1)
	}
}

// Open opens a new session now (closing none). Appends open one when
// needed, so calling Open is optional.
func (a *Agent) Open(ctx context.Context) (*SessionInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.openLocked(ctx)
}

func (a *Agent) openLocked(ctx context.Context) (*SessionInfo, error) {
	if a.cfg.Key == nil {
		return nil, fmt.Errorf("%w: no agent key to open a new session with", ErrSessionEnded)
	}
	body := SignSessionRequestConfig(a.cfg.ID, a.cfg.Task, a.cfg.Config, a.cfg.TTL, time.Now(), a.cfg.Key)
	b, err := a.client("").do(ctx, http.MethodPost, "/v1/sessions", body)
	if err != nil {
		return nil, err
	}
	var s SessionInfo
	if err := json.Unmarshal(b, &s); err != nil || !strings.HasPrefix(s.Credential, agentlog.SessionPrefix) {
		return nil, fmt.Errorf("decoding the session answer: %v", err)
	}
	a.session, a.seq = &s, 0
	return &s, nil
}

// Session returns the current session, or nil before one is open.
func (a *Agent) Session() *SessionInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.session == nil {
		return nil
	}
	s := *a.session
	return &s
}

// Add buffers rec and sends the buffer once it holds BatchSize records.
// Records that were sent are returned with their receipts.
func (a *Agent) Add(ctx context.Context, rec Record) ([]Appended, error) {
	a.mu.Lock()
	a.buf = append(a.buf, rec)
	full := len(a.buf) >= a.cfg.BatchSize
	a.mu.Unlock()
	if !full {
		return nil, nil
	}
	return a.Flush(ctx)
}

// Flush sends the buffered records in one request. If it fails the records
// stay buffered for the next Flush.
func (a *Agent) Flush(ctx context.Context) ([]Appended, error) {
	a.mu.Lock()
	recs := a.buf
	a.buf = nil
	a.mu.Unlock()
	if len(recs) == 0 {
		return nil, nil
	}
	res, err := a.Append(ctx, recs...)
	if err != nil {
		a.mu.Lock()
		a.buf = append(recs, a.buf...)
		a.mu.Unlock()
	}
	return res, err
}

// Close flushes the buffer and closes the session.
func (a *Agent) Close(ctx context.Context) error {
	if _, err := a.Flush(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.session == nil {
		return nil
	}
	_, err := a.client(a.session.Credential).do(ctx, http.MethodDelete, "/v1/sessions/current", nil)
	if a.cfg.Key != nil {
		a.session = nil
	}
	return err
}

// Append sends recs in one request, all appended or none, and returns
// their receipts. It opens or renews the session as needed, and retries
// network errors, 5xx answers and backpressure with the same idempotency
// key, waiting as the server asks (Retry-After) or backing off; when
// retries run out after backpressure the error satisfies
// errors.Is(err, ErrPushback). It stops when ctx ends.
func (a *Agent) Append(ctx context.Context, recs ...Record) (res []Appended, err error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var (
		body    []byte
		cred    string
		key     string
		renewed bool
		// sid and seqEnd identify the sequence numbers this request took;
		// maybeWritten is set once an attempt may have been appended
		// (its answer was lost), after which they must not be reused.
		sid          string
		seqEnd       uint64
		maybeWritten bool
	)
	defer func() {
		if err == nil || maybeWritten {
			return
		}
		// Nothing was appended: give the sequence numbers back, unless
		// another request took numbers since, so no gap appears that is
		// not a dropped record.
		a.mu.Lock()
		if a.session != nil && a.session.Session == sid && a.seq == seqEnd && !a.cfg.NoSequence && a.cfg.Key != nil {
			a.seq -= uint64(len(recs))
		}
		a.mu.Unlock()
	}()
	prepare := func(forceNew bool) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		s := a.session
		if forceNew || s == nil || (a.cfg.Key != nil && time.Until(s.Expires) < a.cfg.RenewBefore) {
			var err error
			if s, err = a.openLocked(ctx); err != nil {
				return err
			}
		}
		var err error
		body, err = a.encodeLocked(s, recs)
		if err != nil {
			return err
		}
		cred, key = s.Credential, newIdempotencyKey()
		sid, seqEnd, maybeWritten = s.Session, a.seq, false
		return nil
	}
	if err := prepare(false); err != nil {
		return nil, err
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := a.post(ctx, cred, key, body)
		if err == nil {
			return res, nil
		}
		var he *HTTPError
		isHTTP := errors.As(err, &he)
		if !isHTTP || he.Status/100 == 5 && he.Status != http.StatusServiceUnavailable {
			maybeWritten = true
		}
		switch {
		case ctx.Err() != nil:
			maybeWritten = true // the request may have been sent
			return nil, err
		case isHTTP && he.Status == http.StatusUnauthorized:
			// Expired or closed session: open a new one once, if we can.
			if renewed || a.cfg.Key == nil {
				return nil, fmt.Errorf("%w: %w", ErrSessionEnded, err)
			}
			renewed = true
			if perr := prepare(true); perr != nil {
				return nil, perr
			}
			continue
		case isHTTP && he.Status/100 == 4:
			return nil, err // the request itself is wrong: retrying cannot help
		case attempt >= a.cfg.MaxRetries:
			return nil, err
		}
		wait := backoff
		if isHTTP && he.RetryAfter > 0 {
			wait = he.RetryAfter
		}
		if !isHTTP || he.Status == http.StatusServiceUnavailable {
			a.failover()
		}
		backoff = min(2*backoff, 5*time.Second)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (after: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (a *Agent) post(ctx context.Context, cred, key string, body []byte) ([]Appended, error) {
	c := a.client(cred)
	b, err := c.doHeaders(ctx, http.MethodPost, "/v1/entries", body, map[string]string{"Idempotency-Key": key})
	if err != nil {
		return nil, err
	}
	return decodeAppended(b)
}

// encodeLocked numbers, signs and encodes recs for session s.
func (a *Agent) encodeLocked(s *SessionInfo, recs []Record) ([]byte, error) {
	w := make([]agentlog.Record, len(recs))
	for i, r := range recs {
		w[i] = agentlog.Record{Action: r.Action, Tool: r.Tool, Resource: r.Resource, Outcome: r.Outcome}
		if len(r.Attributes) > 0 {
			b, err := json.Marshal(r.Attributes)
			if err != nil {
				return nil, err
			}
			w[i].Attributes = b
		}
		if !a.cfg.NoSequence && a.cfg.Key != nil {
			a.seq++
			w[i].Seq = a.seq
		}
		if a.cfg.Sign {
			agentlog.SignRecord(a.cfg.Key, s.Agent, s.Session, s.Task, &w[i])
		}
	}
	return json.Marshal(agentlog.AppendRequest{Entries: w})
}

func newIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SignSessionRequest returns the JSON body of a session-open request
// (POST /v1/sessions) signed with the agent's key at time now
// ([agentlog.NewSessionRequest]).
func SignSessionRequest(agent, task string, ttl time.Duration, now time.Time, key ed25519.PrivateKey) []byte {
	return SignSessionRequestConfig(agent, task, "", ttl, now, key)
}

// SignSessionRequestConfig is SignSessionRequest for a session that
// declares the configuration digest config ("" declares none;
// [agentlog.NewConfiguredSessionRequest]).
func SignSessionRequestConfig(agent, task, config string, ttl time.Duration, now time.Time, key ed25519.PrivateKey) []byte {
	b, _ := json.Marshal(agentlog.NewConfiguredSessionRequest(agent, task, config, ttl, now, key))
	return b
}
