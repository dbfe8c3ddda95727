// Package identity holds agentlog's principals: operator tokens (admin,
// approver, auditor), registered agents with their Ed25519 keys and declared
// scopes, and the task sessions agents write with. It authenticates bearer
// credentials, opens sessions from signed single-use requests, and remembers
// idempotency keys so retried appends are never duplicated.
//
// Every change is itself a log entry naming who made it: kind "agent" for
// agent lifecycle events ("agent.registered", "agent.approved",
// "agent.scope_changed", "agent.revoked"), "session" for "session.opened"
// and "session.closed", "token" for "token.created" and "token.revoked".
// Grants are logged before they take effect and removals take effect before
// they are logged, so the log never shows less access than there was.
//
// State lives in the log's Badger database under "i/": "i/a/<agent>",
// "i/t/<token id>", "i/s/<session id>", "i/n/<agent>/<nonce>" and
// "i/k/<session id>/<idempotency key>" (the last three expire with Badger
// TTLs). It is loaded into memory at [Open]; authentication never reads
// the disk. Credential formats and signed bytes are in docs/identity.md.
package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/config"
)

// Errors callers branch on. The HTTP layer maps them to statuses.
var (
	ErrInvalid     = agentlog.ErrInvalid                 // 400
	ErrNotFound    = agentlog.NotFound("not found")      // 404
	ErrExists      = errors.New("already exists")        // 409
	ErrConflict    = errors.New("conflict")              // 409
	ErrNotApproved = errors.New("agent is not approved") // 403
	// ErrConfigRefused refuses a session whose declared configuration is
	// not the agent's approved one, under the policy config=enforce (403).
	ErrConfigRefused = errors.New("configuration not approved")
	// ErrDenied is wrapped by every *DeniedError: a credential or signed
	// request that must be refused (401).
	ErrDenied = errors.New("credential refused")
	// ErrUnknownCredential is returned by Authenticate for a credential
	// in no agentlog format that is not one of the static tokens either.
	ErrUnknownCredential = errors.New("unknown credential")
)

// Reasons a credential or session request is refused.
const (
	ReasonForged   = "forged"  // unknown id or wrong secret
	ReasonExpired  = "expired" // session past its expiry
	ReasonClosed   = "closed"  // session closed by its agent
	ReasonRevoked  = "revoked" // agent or token revoked
	ReasonUnknown  = "unknown agent"
	ReasonBadSig   = "bad signature"
	ReasonStale    = "stale request" // timestamp outside the window
	ReasonReplayed = "replayed request"
)

// DeniedError says why a credential was refused and, when it names a real
// agent or session, which.
type DeniedError struct {
	Reason  string
	Agent   string // the agent, when the credential or request proved it
	Session string
	Token   string // the operator token's name, for a real but revoked token
}

func (e *DeniedError) Error() string { return "credential refused: " + e.Reason }

// Is makes errors.Is(err, ErrDenied) hold.
func (e *DeniedError) Is(t error) bool { return t == ErrDenied }

// BootstrapAdmin is the principal name of the bootstrap admin token
// (DATA/admin.token); no operator token may take it.
const BootstrapAdmin = "admin"

// Roles of principals.
const (
	RoleAdmin    = "admin"
	RoleApprover = "approver"
	RoleAuditor  = "auditor"
	RoleAgent    = "agent"
	// RoleGateway may only record a recording gateway's configuration
	// (POST /v1/gateway/config, docs/gateway.md); it reads nothing.
	RoleGateway = "gateway"
)

// Agent statuses.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRevoked  = "revoked"
)

// Agent is a registered agent.
type Agent struct {
	ID           string            `json:"id"`
	Owner        string            `json:"owner"`
	Description  string            `json:"description,omitempty"`
	PublicKey    ed25519.PublicKey `json:"public_key"` // 32 bytes, base64 in JSON
	Scope        Scope             `json:"scope"`
	Status       string            `json:"status"`
	RegisteredBy string            `json:"registered_by"`
	Registered   time.Time         `json:"registered"`
	ApprovedBy   string            `json:"approved_by,omitempty"`
	Approved     *time.Time        `json:"approved,omitempty"`
	RevokedBy    string            `json:"revoked_by,omitempty"`
	Revoked      *time.Time        `json:"revoked,omitempty"`
	// Config is the digest of the agent's approved configuration
	// (package config; set at registration or by an approved change),
	// empty if it has none; ConfigPolicy is PolicyEnforce or empty
	// (sessions under another configuration are opened and alerted on).
	Config       string `json:"config,omitempty"`
	ConfigPolicy string `json:"config_policy,omitempty"`
}

// Configuration policies of an agent.
const (
	PolicyAlert   = "alert"   // sessions under another configuration raise alerts (the default)
	PolicyEnforce = "enforce" // such sessions are refused with 403
)

// Configuration states of a session, recorded in its session.opened entry.
const (
	ConfigApproved   = "approved"   // the agent's approved configuration
	ConfigUnapproved = "unapproved" // another configuration
	ConfigUndeclared = "undeclared" // none declared, though the agent has an approved one
)

// Token is an operator token as stored (its secret is never kept).
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Hash      []byte     `json:"hash,omitempty"` // SHA-256 of the secret
	CreatedBy string     `json:"created_by"`
	Created   time.Time  `json:"created"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
}

// Session is an open (or ended) task session.
type Session struct {
	ID      string    `json:"id"`
	Agent   string    `json:"agent"`
	Task    string    `json:"task"`
	Hash    []byte    `json:"hash,omitempty"`
	Opened  time.Time `json:"opened"`
	Expires time.Time `json:"expires"`
	Closed  bool      `json:"closed,omitempty"`
	// Config is the configuration digest the session declared and
	// ConfigStatus how it compared with the agent's approved one when
	// the session was opened (empty: the agent has none and declared none).
	Config       string `json:"config,omitempty"`
	ConfigStatus string `json:"config_status,omitempty"`
	// Replayed marks a session rebuilt from the log's entries (Replay):
	// opened on the node that wrote them, so its retried appends may
	// already be in the log without their idempotency keys here.
	Replayed bool `json:"replayed,omitempty"`
}

// Appender is the part of the log the store writes lifecycle entries to:
// each entry is committed in one Badger transaction with the state change
// it records (the extra key).
type Appender interface {
	AppendWith(ctx context.Context, p alog.Principal, kind string, recs []alog.Record, extra alog.Extra) ([]alog.Appended, error)
	// Acknowledge waits until entries committed earlier are acknowledged
	// (log.Log.Acknowledge): an idempotent retry answers with them.
	Acknowledge(ctx context.Context, res []alog.Appended) error
}

// Config configures a Store. Zero values take the defaults.
type Config struct {
	// DefaultTTL is a session's lifetime when the agent asks for none
	// (default 1h); MaxTTL the longest it may ask for (default 12h).
	DefaultTTL, MaxTTL time.Duration
	// Window is how far a session request's time may be from the
	// server's (default 2m); its nonce is remembered that long past it.
	Window time.Duration
	// IdempotencyTTL is how long an idempotency key is remembered
	// (default 15m; never more than an hour past its session's expiry).
	IdempotencyTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is the identity state. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	log Appender
	cfg Config

	// wmu serializes lifecycle changes (which wait for the log) so that
	// mu, which guards the maps, is only ever held briefly: authentication
	// never waits for an fsync.
	wmu       sync.Mutex
	mu        sync.RWMutex
	agents    map[string]*Agent
	tokens    map[string]*Token
	sessions  map[string]*Session
	nonces    map[string]time.Time // agent "/" nonce -> forget after
	idem      map[string]*idemEntry
	static    map[[32]byte]alog.Principal // SHA-256 of a static token -> its principal
	lastSweep time.Time
	seqHigh   map[string]uint64 // replayed session -> highest seq it had in the log (retry.go)
}

// Open loads the identity state from db; lifecycle entries go to log.
func Open(db *badger.DB, log Appender, cfg Config) (*Store, error) {
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = time.Hour
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 12 * time.Hour
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		cfg.DefaultTTL = cfg.MaxTTL
	}
	if cfg.Window <= 0 {
		cfg.Window = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 15 * time.Minute
	}
	s := &Store{db: db, log: log, cfg: cfg, agents: map[string]*Agent{}, tokens: map[string]*Token{},
		sessions: map[string]*Session{}, nonces: map[string]time.Time{}, idem: map[string]*idemEntry{},
		static: map[[32]byte]alog.Principal{}, seqHigh: map[string]uint64{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte("i/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if len(k) < 4 || k[:4] == "i/k/" {
				continue // idempotency keys are read when a request names one
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			switch k[:4] {
			case "i/a/":
				var a Agent
				if err := json.Unmarshal(v, &a); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				s.agents[a.ID] = &a
			case "i/t/":
				var t Token
				if err := json.Unmarshal(v, &t); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				s.tokens[t.ID] = &t
			case "i/s/":
				var se Session
				if err := json.Unmarshal(v, &se); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				s.sessions[se.ID] = &se
			case "i/n/":
				s.nonces[k[4:]] = time.Unix(int64(it.Item().ExpiresAt()), 0)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading identities: %w", err)
	}
	return s, nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// setLocked runs f, a map update, under mu.
func (s *Store) setLocked(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// put stores v as JSON under key, expiring after ttl if ttl > 0.
func (s *Store) put(key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	e := badger.NewEntry([]byte(key), b)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
		return fmt.Errorf("%w: storing %s: %w", alog.ErrStorage, key, err)
	}
	return nil
}

// commit appends one lifecycle entry and stores v as JSON under key
// (expiring after ttl if ttl > 0) in the same Badger transaction, so the
// change and its entry are durable together or not at all.
func (s *Store) commit(ctx context.Context, p alog.Principal, kind, action string, attrs any, key string, v any, ttl time.Duration) error {
	var raw json.RawMessage
	if attrs != nil {
		b, err := json.Marshal(attrs)
		if err != nil {
			return err
		}
		raw = b
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	extra := func([]alog.Appended) ([]byte, []byte, time.Duration) { return []byte(key), b, ttl }
	if _, err := s.log.AppendWith(ctx, p, kind, []alog.Record{{Action: action, Attributes: raw}}, extra); err != nil {
		return fmt.Errorf("recording %s: %w", action, err)
	}
	return nil
}

// authenticateStatic looks token up among the static tokens, comparing
// every hash in constant time so timing reveals nothing.
func (s *Store) authenticateStatic(token string) (alog.Principal, error) {
	h := sha256.Sum256([]byte(token))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, p := range s.static {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return p, nil
		}
	}
	return alog.Principal{}, ErrUnknownCredential
}

// AddStatic makes token, a bearer token in none of the agentlog
// credential formats (the bootstrap admin's DATA/admin.token), a
// credential of p. Only its SHA-256 is kept. It is not persisted: the
// server adds it at every start.
func (s *Store) AddStatic(token string, p alog.Principal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.static[sha256.Sum256([]byte(token))] = p
}

// Authenticate is the one authentication path of the server: it resolves
// an operator token or session credential (agentlog.ParseCredential), or
// a static token (AddStatic), to its principal. A malformed agentlog
// credential gives an error wrapping ErrInvalid; one that is refused
// gives a *DeniedError; any other unknown token ErrUnknownCredential.
func (s *Store) Authenticate(cred string) (alog.Principal, error) {
	if !strings.HasPrefix(cred, agentlog.TokenPrefix) && !strings.HasPrefix(cred, agentlog.SessionPrefix) {
		return s.authenticateStatic(cred)
	}
	kind, id, secret, err := agentlog.ParseCredential(cred)
	if err != nil {
		return alog.Principal{}, err
	}
	h := sha256.Sum256(secret)
	now := s.cfg.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kind == agentlog.CredToken {
		t := s.tokens[id]
		if t == nil || subtle.ConstantTimeCompare(t.Hash, h[:]) != 1 {
			return alog.Principal{}, &DeniedError{Reason: ReasonForged}
		}
		if t.Revoked != nil {
			return alog.Principal{}, &DeniedError{Reason: ReasonRevoked, Token: t.Name}
		}
		return alog.Principal{ID: t.Name, Role: t.Role, TokenID: t.ID}, nil
	}
	se := s.sessions[id]
	if se == nil || subtle.ConstantTimeCompare(se.Hash, h[:]) != 1 {
		return alog.Principal{}, &DeniedError{Reason: ReasonForged}
	}
	d := &DeniedError{Agent: se.Agent, Session: se.ID}
	switch a := s.agents[se.Agent]; {
	case a == nil || a.Status == StatusRevoked:
		d.Reason = ReasonRevoked
	case se.Closed:
		d.Reason = ReasonClosed
	case !now.Before(se.Expires):
		d.Reason = ReasonExpired
	default:
		return alog.Principal{ID: se.Agent, Role: RoleAgent, Agent: se.Agent, Session: se.ID, Task: se.Task, Config: se.Config}, nil
	}
	return alog.Principal{}, d
}

// CheckSignatures verifies the agent signatures records carry (those with
// a Sig) against the registered key of p's agent, over the signed bytes of
// each record in p's session ([agentlog.RecordSignedBytes]). A signature
// that does not verify is an error wrapping log.ErrInvalid naming the
// record.
func (s *Store) CheckSignatures(p alog.Principal, recs []alog.Record) error {
	var pub ed25519.PublicKey
	for i := range recs {
		if recs[i].Sig == nil {
			continue
		}
		if pub == nil {
			a, err := s.Agent(p.Agent)
			if err != nil {
				return err
			}
			pub = a.PublicKey
		}
		if !ed25519.Verify(pub, agentlog.RecordSignedBytes(p.Agent, p.Session, p.Task, &recs[i]), recs[i].Sig) {
			return fmt.Errorf("%w: entries[%d]: \"sig\" does not verify with the agent's registered key (signed bytes: docs/identity.md)", alog.ErrInvalid, i)
		}
	}
	return nil
}

// AgentSpec is what registering an agent takes.
type AgentSpec struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner"`
	Description string            `json:"description,omitempty"`
	PublicKey   ed25519.PublicKey `json:"public_key"`
	Scope       Scope             `json:"scope"`
	// Config is the agent's first configuration document (package
	// config), recorded as an approved change by the registering admin;
	// ConfigPolicy is PolicyEnforce, PolicyAlert or empty.
	Config       jsontext.Value `json:"config,omitempty"`
	ConfigPolicy string         `json:"config_policy,omitempty"`

	doc *config.Document // Config, parsed by validate
}

// Document returns the spec's parsed configuration (nil without one, or
// if it is invalid, which Register refuses).
func (sp *AgentSpec) Document() *config.Document {
	if sp.doc == nil && len(sp.Config) > 0 {
		sp.doc, _ = config.Parse(sp.Config)
	}
	return sp.doc
}

// ValidPolicy checks a configuration policy.
func ValidPolicy(p string) error {
	if p != "" && p != PolicyAlert && p != PolicyEnforce {
		return fmt.Errorf("%w: configuration policy %q: want %q or %q", ErrInvalid, p, PolicyAlert, PolicyEnforce)
	}
	return nil
}

func (sp *AgentSpec) validate() error {
	if !agentlog.ValidID(sp.ID) {
		return fmt.Errorf("%w: agent id %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, sp.ID)
	}
	if err := validText("owner", sp.Owner, maxTextLen, true); err != nil {
		return err
	}
	if err := validText("description", sp.Description, maxTextLen, false); err != nil {
		return err
	}
	if len(sp.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: \"public_key\" must be a %d-byte Ed25519 public key", ErrInvalid, ed25519.PublicKeySize)
	}
	if err := ValidPolicy(sp.ConfigPolicy); err != nil {
		return err
	}
	if len(sp.Config) > 0 {
		d, err := config.Parse(sp.Config)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		sp.doc = d
	} else if sp.ConfigPolicy == PolicyEnforce {
		return fmt.Errorf("%w: config_policy %q needs a configuration", ErrInvalid, PolicyEnforce)
	}
	return sp.Scope.Validate()
}

// Register records a new agent, pending approval.
func (s *Store) Register(ctx context.Context, by alog.Principal, sp AgentSpec) (*Agent, error) {
	if err := sp.validate(); err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.nameFreeLocked("agent id", sp.ID); err != nil {
		return nil, err
	}
	a := &Agent{ID: sp.ID, Owner: sp.Owner, Description: sp.Description, PublicKey: sp.PublicKey, Scope: sp.Scope,
		Status: StatusPending, RegisteredBy: by.ID, Registered: s.cfg.Now().UTC()}
	attrs := map[string]any{"owner": a.Owner, "public_key": a.PublicKey, "scope": a.Scope}
	if a.Description != "" {
		attrs["description"] = a.Description
	}
	pa := principalAbout(by, a.ID)
	if sp.doc != nil {
		a.Config, a.ConfigPolicy = sp.doc.Digest, sp.ConfigPolicy
		pa.Config = a.Config
		if a.ConfigPolicy != "" {
			attrs["config_policy"] = a.ConfigPolicy
		}
	}
	if err := s.commit(ctx, pa, alog.KindAgent, "agent.registered", attrs, "i/a/"+a.ID, a, 0); err != nil {
		return nil, err
	}
	s.setLocked(func() { s.agents[a.ID] = a })
	return clone(a), nil
}

func principalAbout(by alog.Principal, agent string) alog.Principal {
	return alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID, Agent: agent}
}

func clone[T any](v *T) *T { c := *v; return &c }

// Approve approves a pending agent: from then on it may open sessions.
func (s *Store) Approve(ctx context.Context, by alog.Principal, id string) (*Agent, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	if a.Status != StatusPending {
		return nil, fmt.Errorf("%w: agent %q is %s, not pending", ErrConflict, id, a.Status)
	}
	n := clone(a)
	now := s.cfg.Now().UTC()
	n.Status, n.ApprovedBy, n.Approved = StatusApproved, by.ID, &now
	if err := s.commit(ctx, principalAbout(by, id), alog.KindAgent, "agent.approved", nil, "i/a/"+id, n, 0); err != nil {
		return nil, err
	}
	s.setLocked(func() { s.agents[id] = n })
	return clone(n), nil
}

// SetScope changes an agent's declared scope.
func (s *Store) SetScope(ctx context.Context, by alog.Principal, id string, sc Scope) (*Agent, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	if a.Status == StatusRevoked {
		return nil, fmt.Errorf("%w: agent %q is revoked", ErrConflict, id)
	}
	n := clone(a)
	n.Scope = sc
	if err := s.commit(ctx, principalAbout(by, id), alog.KindAgent, "agent.scope_changed", map[string]any{"scope": sc, "previous": a.Scope}, "i/a/"+id, n, 0); err != nil {
		return nil, err
	}
	s.setLocked(func() { s.agents[id] = n })
	return clone(n), nil
}

// Revoke deprovisions an agent: every session of it stops working at once
// and it can open no more.
func (s *Store) Revoke(ctx context.Context, by alog.Principal, id string) (*Agent, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	if a.Status == StatusRevoked {
		return nil, fmt.Errorf("%w: agent %q is already revoked", ErrConflict, id)
	}
	n := clone(a)
	now := s.cfg.Now().UTC()
	n.Status, n.RevokedBy, n.Revoked = StatusRevoked, by.ID, &now
	// The revocation takes effect in memory before it is committed, so no
	// session authenticates while it is being logged, and it stays in
	// effect if the commit fails (fail closed: the commit may still land,
	// and the admin is told to retry).
	s.setLocked(func() { s.agents[id] = n })
	open := 0
	s.mu.RLock()
	for _, se := range s.sessions {
		if se.Agent == id && !se.Closed && now.Before(se.Expires) {
			open++
		}
	}
	s.mu.RUnlock()
	if err := s.commit(ctx, principalAbout(by, id), alog.KindAgent, "agent.revoked", map[string]any{"sessions_ended": open}, "i/a/"+id, n, 0); err != nil {
		return nil, err
	}
	return clone(n), nil
}

// Agent returns the agent with id.
func (s *Store) Agent(id string) (*Agent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	return clone(a), nil
}

// Session returns the session with id (its hash left out).
func (s *Store) Session(id string) (*Session, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	se, ok := s.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	return publicSession(se), nil
}

// Now is the store's clock: session expiry and approval times are by it.
func (s *Store) Now() time.Time { return s.cfg.Now() }

// Agents returns every agent, sorted by id.
func (s *Store) Agents() []*Agent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, clone(a))
	}
	slices.SortFunc(out, func(a, b *Agent) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// CreateToken creates an operator token for role (admin, approver,
// auditor or gateway) and returns it with the credential, which is not kept.
func (s *Store) CreateToken(ctx context.Context, by alog.Principal, name, role string) (*Token, string, error) {
	if !agentlog.ValidID(name) {
		return nil, "", fmt.Errorf("%w: token name %q must be 1 to 64 letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	if strings.EqualFold(name, BootstrapAdmin) || strings.EqualFold(name, systemPrincipal) {
		return nil, "", fmt.Errorf("%w: token name %q is reserved", ErrInvalid, name)
	}
	if role != RoleAdmin && role != RoleApprover && role != RoleAuditor && role != RoleGateway {
		return nil, "", fmt.Errorf("%w: role %q: want admin, approver, auditor or gateway (agents use sessions)", ErrInvalid, role)
	}
	id, cred, h := newCredential(agentlog.TokenPrefix)
	t := &Token{ID: id, Name: name, Role: role, Hash: h[:], CreatedBy: by.ID, Created: s.cfg.Now().UTC()}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.nameFreeLocked("token name", name); err != nil {
		return nil, "", err
	}
	if err := s.commit(ctx, alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID}, alog.KindToken, "token.created", map[string]any{"id": id, "name": name, "role": role, "credential_sha256": h[:]}, "i/t/"+id, t, 0); err != nil {
		return nil, "", err
	}
	s.setLocked(func() { s.tokens[id] = t })
	return publicToken(t), cred, nil
}

// systemPrincipal is the principal of the entries the log writes by
// itself (package anomaly's alerts and configuration).
const systemPrincipal = "agentlog"

// nameFreeLocked checks that name can identify a new token or agent: a
// principal in the log is a token's name or an agent's id, so no two live
// tokens, no token and agent, and no two agents (revoked ones included,
// since their entries stay) may share one, compared case-insensitively;
// nor may one be named like the bootstrap admin or the log itself. Call
// with s.wmu held.
func (s *Store) nameFreeLocked(what, name string) error {
	if strings.EqualFold(name, BootstrapAdmin) || strings.EqualFold(name, systemPrincipal) {
		return fmt.Errorf("%w: %s %q is reserved", ErrExists, what, name)
	}
	for _, t := range s.tokens {
		if t.Revoked == nil && strings.EqualFold(t.Name, name) {
			return fmt.Errorf("%s %q: %w: operator token %s is named %q", what, name, ErrExists, t.ID, t.Name)
		}
	}
	for id := range s.agents {
		if strings.EqualFold(id, name) {
			return fmt.Errorf("%s %q: %w: agent %q is registered", what, name, ErrExists, id)
		}
	}
	return nil
}

func publicToken(t *Token) *Token { c := clone(t); c.Hash = nil; return c }

// Tokens lists the operator tokens (without hashes), oldest first.
func (s *Store) Tokens() []*Token {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, publicToken(t))
	}
	slices.SortFunc(out, func(a, b *Token) int { return a.Created.Compare(b.Created) })
	return out
}

// RevokeToken revokes the operator token with id.
func (s *Store) RevokeToken(ctx context.Context, by alog.Principal, id string) (*Token, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil, fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	if t.Revoked != nil {
		return nil, fmt.Errorf("%w: token %q is already revoked", ErrConflict, id)
	}
	n := clone(t)
	now := s.cfg.Now().UTC()
	n.Revoked, n.RevokedBy = &now, by.ID
	s.setLocked(func() { s.tokens[id] = n }) // refused at once, and still if the commit fails (fail closed)
	if err := s.commit(ctx, alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID}, alog.KindToken, "token.revoked", map[string]string{"id": id, "name": t.Name, "role": t.Role}, "i/t/"+id, n, 0); err != nil {
		return nil, err
	}
	return publicToken(n), nil
}

// OpenSession checks a parsed session request (see ParseOpenRequest): the
// agent's signature, the request time within the window, the nonce never
// seen before, the agent approved and not revoked; then it records the
// session and returns its credential.
func (s *Store) OpenSession(ctx context.Context, r *agentlog.SessionRequest, t time.Time, sig []byte) (*agentlog.SessionInfo, error) {
	now := s.cfg.Now()
	s.mu.RLock()
	a, ok := s.agents[r.Agent]
	s.mu.RUnlock()
	if !ok {
		return nil, &DeniedError{Reason: ReasonUnknown}
	}
	if !ed25519.Verify(a.PublicKey, r.SignedBytes(), sig) {
		return nil, &DeniedError{Reason: ReasonBadSig}
	}
	// From here the request is the agent's own.
	d := &DeniedError{Agent: a.ID}
	if t.Before(now.Add(-s.cfg.Window)) || t.After(now.Add(s.cfg.Window)) {
		d.Reason = ReasonStale
		return nil, d
	}
	ttl := time.Duration(r.TTL) * time.Second
	if r.TTL == 0 {
		ttl = s.cfg.DefaultTTL
	}
	if ttl > s.cfg.MaxTTL || r.TTL > int64(s.cfg.MaxTTL/time.Second) {
		return nil, fmt.Errorf("%w: ttl %ds is above the maximum %v", ErrInvalid, r.TTL, s.cfg.MaxTTL)
	}
	// Serialize with revocations, so no session is opened (or logged as
	// opened) after its agent's revocation.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a = s.agents[r.Agent]
	switch a.Status {
	case StatusRevoked:
		d.Reason = ReasonRevoked
		return nil, d
	case StatusPending:
		return nil, fmt.Errorf("%w: agent %q awaits approval", ErrNotApproved, a.ID)
	}
	if a.ConfigPolicy == PolicyEnforce && r.Config != a.Config {
		declared := "no configuration"
		if r.Config != "" {
			declared = "configuration " + r.Config
		}
		return nil, fmt.Errorf("%w: the session declares %s, but agent %q runs only under its approved configuration %s (policy config=enforce)", ErrConfigRefused, declared, a.ID, a.Config)
	}
	// Remember the nonce until the request could no longer be fresh. It
	// is taken in memory first, so two concurrent replays cannot both pass.
	nk := a.ID + "/" + r.Nonce
	forget := t.Add(s.cfg.Window)
	s.mu.Lock()
	if exp, seen := s.nonces[nk]; seen && now.Before(exp) {
		s.mu.Unlock()
		d.Reason = ReasonReplayed
		return nil, d
	}
	s.nonces[nk] = forget
	s.sweepLocked(now)
	s.mu.Unlock()

	id, cred, h := newCredential(agentlog.SessionPrefix)
	se := &Session{ID: id, Agent: a.ID, Task: r.Task, Hash: h[:], Opened: now.UTC(), Expires: now.Add(ttl).UTC(),
		Config: r.Config, ConfigStatus: configStatus(a, r.Config)}
	p := alog.Principal{ID: a.ID, Role: RoleAgent, Agent: a.ID, Session: id, Task: r.Task, Config: r.Config}
	attrs := map[string]any{"expires": se.Expires, "ttl_seconds": int64(ttl / time.Second), "credential_sha256": se.Hash}
	if se.ConfigStatus != "" {
		attrs["config_status"] = se.ConfigStatus
	}
	if se.ConfigStatus != ConfigApproved && se.ConfigStatus != "" && a.Config != "" {
		attrs["approved_config"] = a.Config
	}
	// The nonce is stored first, in its own transaction, so a replay is
	// refused even after a crash; the session is committed with its entry.
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(badger.NewEntry([]byte("i/n/"+nk), []byte("true")).WithTTL(forget.Sub(now) + time.Second))
	}); err != nil {
		return nil, fmt.Errorf("%w: storing the nonce of session %s: %w", alog.ErrStorage, id, err)
	}
	if err := s.commit(ctx, p, alog.KindSession, "session.opened", attrs, "i/s/"+id, se, ttl+time.Hour); err != nil {
		return nil, err
	}
	s.setLocked(func() { s.sessions[id] = se })
	return &agentlog.SessionInfo{Session: id, Credential: cred, Agent: a.ID, Task: r.Task, Expires: se.Expires}, nil
}

// configStatus compares a session's declared configuration with the
// agent's approved one.
func configStatus(a *Agent, declared string) string {
	switch {
	case declared == "" && a.Config == "":
		return ""
	case declared == "":
		return ConfigUndeclared
	case declared == a.Config:
		return ConfigApproved
	}
	return ConfigUnapproved
}

// SetConfig makes digest the agent's approved configuration and, when
// policy is not empty, sets its configuration policy. It writes no entry:
// the approved change that calls it is the record (package change).
func (s *Store) SetConfig(id, digest, policy string) (*Agent, error) {
	if err := ValidPolicy(policy); err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	n := clone(a)
	n.Config = digest
	if policy != "" {
		n.ConfigPolicy = policy
	}
	if n.Config == a.Config && n.ConfigPolicy == a.ConfigPolicy {
		return n, nil
	}
	if err := s.put("i/a/"+id, n, 0); err != nil {
		return nil, err
	}
	s.setLocked(func() { s.agents[id] = n })
	return clone(n), nil
}

// CloseSession ends the session p authenticated with.
func (s *Store) CloseSession(ctx context.Context, p alog.Principal) error {
	if p.Session == "" {
		return fmt.Errorf("%w: not a session credential", ErrInvalid)
	}
	_, err := s.closeSession(ctx, p, p.Session)
	return err
}

// EndSession ends session id on an operator's behalf (by), for example a
// credential that leaked, without revoking the agent.
func (s *Store) EndSession(ctx context.Context, by alog.Principal, id string) (*Session, error) {
	return s.closeSession(ctx, by, id)
}

func (s *Store) closeSession(ctx context.Context, by alog.Principal, id string) (*Session, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	se, ok := s.sessions[id]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("session %q: %w", id, ErrNotFound)
	}
	if se.Closed {
		return nil, fmt.Errorf("%w: session %q is already closed", ErrConflict, se.ID)
	}
	n := clone(se)
	n.Closed = true
	s.setLocked(func() { s.sessions[se.ID] = n }) // refused at once, and still if the commit fails (fail closed)
	p := alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID, Agent: se.Agent, Session: se.ID, Task: se.Task}
	if err := s.commit(ctx, p, alog.KindSession, "session.closed", nil, "i/s/"+se.ID, n, time.Until(se.Expires)+time.Hour); err != nil {
		return nil, err
	}
	return publicSession(n), nil
}

func publicSession(se *Session) *Session { c := clone(se); c.Hash, c.Replayed = nil, false; return c }

// Sessions lists the sessions the store still remembers (open ones, and
// ended ones until an hour past their expiry) of agent, or of every agent
// if agent is empty, oldest first.
func (s *Store) Sessions(agent string) []*Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Session
	for _, se := range s.sessions {
		if agent == "" || se.Agent == agent {
			out = append(out, publicSession(se))
		}
	}
	slices.SortFunc(out, func(a, b *Session) int { return a.Opened.Compare(b.Opened) })
	return out
}

// sweepLocked forgets expired nonces, sessions and idempotency keys from
// memory now and then (Badger expires them on disk).
func (s *Store) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < 10*time.Second {
		return
	}
	s.lastSweep = now
	for k, exp := range s.nonces {
		if !now.Before(exp) {
			delete(s.nonces, k)
		}
	}
	for k, se := range s.sessions {
		if now.After(se.Expires.Add(time.Hour)) {
			delete(s.sessions, k)
		}
	}
	for k, e := range s.idem {
		if e.Expires.Before(now) && isClosed(e.done) {
			delete(s.idem, k)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// idemEntry is one idempotency key's outcome.
type idemEntry struct {
	BodyHash []byte          `json:"body_hash"`
	Result   []alog.Appended `json:"result"`
	Expires  time.Time       `json:"expires"`
	done     chan struct{}   // closed once Result is set or the attempt failed
	failed   bool
}

// MaxIdempotencyKey is the longest idempotency key accepted, in bytes.
const MaxIdempotencyKey = 128

// AppendIdempotent appends recs as kind for p, at most once per (session,
// key): a request that repeats a key gets the first request's result; one
// that repeats it while the first is still running waits for it. A key
// reused with a different body is a conflict. A failed attempt does not
// use the key up. Keys are remembered for Config.IdempotencyTTL (and at
// most an hour past the session's expiry). The result is stored in the
// same transaction as the entries, so a retry after a crash finds it
// whenever the entries exist.
func (s *Store) AppendIdempotent(ctx context.Context, p alog.Principal, key string, body []byte, kind string, recs []alog.Record) ([]alog.Appended, error) {
	if err := validText("Idempotency-Key", key, MaxIdempotencyKey, true); err != nil {
		return nil, err
	}
	h := sha256.Sum256(body)
	k := p.Session + "/" + key
	// A result written before a restart is read outside the lock.
	stored, hasStored := s.storedIdem(k)
	for {
		now := s.cfg.Now()
		s.mu.Lock()
		e, ok := s.idem[k]
		if ok && now.After(e.Expires) && isClosed(e.done) {
			delete(s.idem, k)
			ok = false
		}
		if !ok && hasStored {
			e, ok, hasStored = stored, true, false
			s.idem[k] = e
		}
		if !ok {
			expires := now.Add(s.cfg.IdempotencyTTL)
			if se := s.sessions[p.Session]; se != nil && se.Expires.Add(time.Hour).Before(expires) {
				expires = se.Expires.Add(time.Hour)
			}
			e = &idemEntry{BodyHash: h[:], Expires: expires, done: make(chan struct{})}
			s.idem[k] = e
			s.sweepLocked(now)
			s.mu.Unlock()
			bodyHash, exp := e.BodyHash, e.Expires
			// Unknown here, the key may still be a retry of an attempt the
			// old active of a failover committed (retry.go).
			res, found, err := s.replayedRetry(ctx, p, recs)
			if err == nil && !found {
				res, err = s.log.AppendWith(ctx, p, kind, recs, func(res []alog.Appended) ([]byte, []byte, time.Duration) {
					b, _ := json.Marshal(&idemEntry{BodyHash: bodyHash, Result: res, Expires: exp})
					return []byte("i/k/" + k), b, max(exp.Sub(s.cfg.Now()), time.Minute)
				})
			}
			var na *alog.NotAcknowledgedError
			s.mu.Lock()
			switch {
			case errors.As(err, &na):
				// Committed (with the key's result) but not acknowledged:
				// the key keeps its entries, and a retry waits for them to
				// be acknowledged instead of appending them again.
				e.Result = na.Entries
			case err != nil:
				e.failed = true
				delete(s.idem, k)
			default:
				e.Result = res
			}
			close(e.done)
			s.mu.Unlock()
			return res, err
		}
		s.mu.Unlock()
		if subtle.ConstantTimeCompare(e.BodyHash, h[:]) != 1 {
			return nil, fmt.Errorf("%w: Idempotency-Key %q was used with a different request body", ErrConflict, key)
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !e.failed {
			// The first attempt's entries, answered once acknowledged
			// (with replicated durability: in the bucket), as they were
			// not when a gate failed or the server restarted.
			if err := s.log.Acknowledge(ctx, e.Result); err != nil {
				return nil, err
			}
			return e.Result, nil
		}
		// The first attempt failed: try again.
	}
}

// storedIdem reads an idempotency result written to Badger.
func (s *Store) storedIdem(k string) (*idemEntry, bool) {
	var e idemEntry
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("i/k/" + k))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &e) })
	})
	if err != nil || s.cfg.Now().After(e.Expires) {
		return nil, false
	}
	e.done = closedChan
	return &e, true
}

// Close releases the store. Idempotency results are written with the
// entries they describe, so nothing is left to write; it is kept so
// callers need not change if the store holds resources again.
func (s *Store) Close() error { return nil }
