// Package change is agentlog's change management for agents (SOC 2
// CC8.1): a change to an agent's configuration (package config) is
// proposed with its description, testing and rollback plan, and approved
// or rejected by a second person; the approved configuration becomes the
// agent's, and sessions declare the configuration they run under.
//
// Every step is a leaf of kind "change" (docs/changes.md) naming who took
// it, the change id, the agent and the configuration digest (the leaf's
// top-level "config"): actions "change.proposed", "change.approved" and
// "change.rejected". The approval's leaf and the stored change are written
// in one transaction; the agent's configuration follows it, and is
// brought up to date at Open if the server stopped in between.
//
// Two-person rule: the approver must be another principal than the
// proposer, the bootstrap admin included, unless the store is opened with
// AllowSelfApproval (serve --allow-self-approval), a setting that
// [RecordSettings] records in the log whenever it changes. A proposer may
// reject (withdraw) their own change.
//
// State lives in the log's Badger database under "c/": "c/c/<change id>"
// (the change as JSON), "c/d/<digest>" (the canonical configuration
// document) and "c/settings".
package change

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/config"
	"github.com/agentlog/agentlog/log/identity"
)

// Errors. Invalid input, unknown changes and conflicts wrap the identity
// package's sentinels, so that the HTTP layer maps them as it maps those.
var (
	ErrInvalid  = identity.ErrInvalid
	ErrNotFound = identity.ErrNotFound
	ErrConflict = identity.ErrConflict
	// ErrSelfApproval refuses the proposer's own approval (403).
	ErrSelfApproval = errors.New("two-person rule")
)

// States of a change.
const (
	StateProposed   = "proposed"
	StateApproved   = "approved"   // the agent's current configuration
	StateRejected   = "rejected"   // rejected, or withdrawn by its proposer
	StateSuperseded = "superseded" // approved, then replaced by a later approved change
)

// Actions of the change leaves.
const (
	ActionProposed = "change.proposed"
	ActionApproved = "change.approved"
	ActionRejected = "change.rejected"
)

// Risk levels a proposal may state.
var risks = []string{"low", "medium", "high"}

// Change is a proposed, approved, rejected or superseded change; its
// JSON is the wire package's.
type Change = agentlog.Change

// Proposal is what proposing a change takes.
type Proposal struct {
	Agent       string         `json:"agent"`
	Config      jsontext.Value `json:"config"` // the configuration document
	Policy      string         `json:"config_policy,omitempty"`
	Description string         `json:"description"`
	Testing     string         `json:"testing"`
	Rollback    string         `json:"rollback"`
	Risk        string         `json:"risk,omitempty"`
	Ticket      string         `json:"ticket,omitempty"`
}

// Limits of proposal texts, in bytes.
const (
	maxText    = 4096
	maxComment = 1024
	maxTicket  = 2048
)

// Appender is the part of the log the store writes to.
type Appender interface {
	AppendWith(ctx context.Context, p alog.Principal, kind string, recs []alog.Record, extra alog.Extra) ([]alog.Appended, error)
}

// Options configures a Store.
type Options struct {
	// AllowSelfApproval lets a proposer approve their own change.
	AllowSelfApproval bool
	Now               func() time.Time // default time.Now
	// SaveDocument, if set, also stores each configuration document
	// elsewhere before the entry that names it is appended (package
	// mirror: the bucket), so that a standby's Replay can fetch it; an
	// error fails the step.
	SaveDocument func(digest string, canonical []byte) error
	// FetchDocument, if set, is where Replay reads the documents the
	// entries name that this store lacks (package mirror: the bucket).
	FetchDocument func(digest string) ([]byte, error)
	// Replica is a store rebuilt from another node's entries (a standby,
	// by Replay): Open appends nothing (RecordMissing waits for the
	// takeover), since the entries come from the log.
	Replica bool
}

// Store holds the changes. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	log Appender
	ids *identity.Store
	o   Options

	wmu     sync.Mutex // serializes steps
	mu      sync.RWMutex
	changes map[string]*Change
}

// Open loads the changes from db and brings each agent's approved
// configuration up to date with its approved change.
func Open(db *badger.DB, log Appender, ids *identity.Store, o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{db: db, log: log, ids: ids, o: o, changes: map[string]*Change{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte("c/c/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var c Change
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
				return fmt.Errorf("%s: %w", it.Item().Key(), err)
			}
			s.changes[c.ID] = &c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading changes: %w", err)
	}
	// A stop between an approval and the superseding of the change it
	// replaced leaves two approved changes: the later one holds.
	latest := map[string]*Change{}
	for _, c := range s.changes {
		if c.State != StateApproved {
			continue
		}
		if l := latest[c.Agent]; l == nil || *c.DecidedIndex > *l.DecidedIndex {
			latest[c.Agent] = c
		}
	}
	for _, c := range s.changes {
		if l := latest[c.Agent]; c.State == StateApproved && l != c {
			sup := clone(c)
			sup.State, sup.SupersededBy = StateSuperseded, l.ID
			if err := s.put(sup); err != nil {
				return nil, err
			}
		}
	}
	if !o.Replica {
		if err := s.RecordMissing(context.Background()); err != nil {
			return nil, err
		}
	}
	for _, c := range latest {
		if a, err := ids.Agent(c.Agent); err == nil && (a.Config != c.Config || c.Policy != "" && a.ConfigPolicy != c.Policy) {
			if _, err := ids.SetConfig(c.Agent, c.Config, c.Policy); err != nil {
				return nil, fmt.Errorf("applying change %s: %w", c.ID, err)
			}
		}
	}
	return s, nil
}

// RecordMissing records the change of every agent registered with a
// configuration that has none: a stop between the registration and the
// change recording it leaves the agent without one. It is recorded now, by
// the registering admin (registering is an admin's act). Open does it,
// except for a replica, which calls it once it takes over.
func (s *Store) RecordMissing(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	has := map[string]bool{}
	s.mu.RLock()
	for _, c := range s.changes {
		has[c.Agent] = true
	}
	s.mu.RUnlock()
	for _, a := range s.ids.Agents() {
		if a.Config == "" || has[a.ID] {
			continue
		}
		by := alog.Principal{ID: a.RegisteredBy, Role: identity.RoleAdmin}
		if _, err := s.recordInitialLocked(ctx, by, a, a.Config, true); err != nil {
			return fmt.Errorf("recording the configuration agent %s was registered with: %w", a.ID, err)
		}
	}
	return nil
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "chg-" + hex.EncodeToString(b[:])
}

func clone(c *Change) *Change { n := *c; return &n }

func validText(name, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%w: %q is required", ErrInvalid, name)
	case len(v) > max:
		return fmt.Errorf("%w: %q is %d bytes, at most %d", ErrInvalid, name, len(v), max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalid, name)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }):
		return fmt.Errorf("%w: %q contains a control character", ErrInvalid, name)
	}
	return nil
}

// validate checks a proposal and parses its configuration.
func (p *Proposal) validate() (*config.Document, error) {
	if !agentlog.ValidID(p.Agent) {
		return nil, fmt.Errorf("%w: \"agent\" must be a valid agent id", ErrInvalid)
	}
	if len(p.Config) == 0 {
		return nil, fmt.Errorf("%w: \"config\" (the configuration document) is required", ErrInvalid)
	}
	d, err := config.Parse(p.Config)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(d.Config.Scope) > 0 {
		if _, err := scopeOf(d); err != nil {
			return nil, err
		}
	}
	if err := identity.ValidPolicy(p.Policy); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"description", p.Description}, {"testing", p.Testing}, {"rollback", p.Rollback}} {
		if err := validText(f.name, f.v, maxText, true); err != nil {
			return nil, err
		}
	}
	if p.Risk != "" && !slices.Contains(risks, p.Risk) {
		return nil, fmt.Errorf("%w: \"risk\" %q: want low, medium or high", ErrInvalid, p.Risk)
	}
	if p.Ticket != "" {
		u, err := url.Parse(p.Ticket)
		if err := validText("ticket", p.Ticket, maxTicket, false); err != nil {
			return nil, err
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: \"ticket\" must be an http or https URL", ErrInvalid)
		}
	}
	return d, nil
}

// scopeOf decodes a configuration's declared scope.
func scopeOf(d *config.Document) (identity.Scope, error) {
	var sc identity.Scope
	dec := json.NewDecoder(bytes.NewReader(d.Config.Scope))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return sc, fmt.Errorf("%w: configuration \"scope\": %s", ErrInvalid, err)
	}
	if err := sc.Validate(); err != nil {
		return sc, fmt.Errorf("configuration \"scope\": %w", err)
	}
	return sc, nil
}

// record returns an Extra that stores c (with the index of the last
// appended entry set by set) in the append's transaction, and the
// configuration document beside it.
func (s *Store) record(c *Change, set func(c *Change, idx uint64)) alog.Extra {
	return func(res []alog.Appended) ([]byte, []byte, time.Duration) {
		set(c, res[len(res)-1].Index)
		b, _ := json.Marshal(c)
		return []byte("c/c/" + c.ID), b, 0
	}
}

func (s *Store) putDocument(d *config.Document) error {
	if s.o.SaveDocument != nil {
		if err := s.o.SaveDocument(d.Digest, d.Canonical); err != nil {
			return fmt.Errorf("replicating configuration %s: %w", d.Digest, err)
		}
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte("c/d/"+d.Digest), d.Canonical)
	})
}

// Document returns the canonical configuration document of digest.
func (s *Store) Document(digest string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("c/d/" + digest))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("configuration %s: %w", digest, ErrNotFound)
	}
	return out, err
}

func attrs(m map[string]any) json.RawMessage {
	for k, v := range m {
		if s, ok := v.(string); ok && s == "" {
			delete(m, k)
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// Propose records a proposed change of an agent's configuration by p.
func (s *Store) Propose(ctx context.Context, by alog.Principal, p Proposal) (*Change, error) {
	d, err := p.validate()
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	a, err := s.ids.Agent(p.Agent)
	if err != nil {
		return nil, err
	}
	if a.Status == identity.StatusRevoked {
		return nil, fmt.Errorf("%w: agent %q is revoked", ErrConflict, a.ID)
	}
	if d.Digest == a.Config && (p.Policy == "" || p.Policy == a.ConfigPolicy) {
		return nil, fmt.Errorf("%w: %s is already agent %q's approved configuration", ErrConflict, d.Digest, a.ID)
	}
	c := &Change{ID: newID(), Agent: a.ID, Config: d.Digest, Previous: a.Config, Policy: p.Policy, State: StateProposed,
		Description: p.Description, Testing: p.Testing, Rollback: p.Rollback, Risk: p.Risk, Ticket: p.Ticket,
		ProposedBy: by.ID, ProposerRole: by.Role, Proposed: s.o.Now().UTC()}
	if d.Digest != a.Config {
		c.RollbackOf = s.earlierApproval(a.ID, d.Digest)
	}
	if err := s.putDocument(d); err != nil {
		return nil, err
	}
	rec := alog.Record{Action: ActionProposed, Attributes: proposalAttrs(c)}
	pr := alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID, Agent: a.ID, Config: c.Config}
	if _, err := s.log.AppendWith(ctx, pr, alog.KindChange, []alog.Record{rec}, s.record(c, func(c *Change, i uint64) { c.ProposedIndex = i })); err != nil {
		return nil, fmt.Errorf("recording the proposal: %w", err)
	}
	s.mu.Lock()
	s.changes[c.ID] = c
	s.mu.Unlock()
	return clone(c), nil
}

func proposalAttrs(c *Change) json.RawMessage {
	return attrs(map[string]any{"change": c.ID, "previous": c.Previous, "config_policy": c.Policy, "description": c.Description,
		"testing": c.Testing, "rollback": c.Rollback, "risk": c.Risk, "ticket": c.Ticket, "rollback_of": c.RollbackOf})
}

// earlierApproval returns the newest superseded change of agent that
// approved digest, or "".
func (s *Store) earlierApproval(agent, digest string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Change
	for _, c := range s.changes {
		if c.Agent == agent && c.Config == digest && c.State == StateSuperseded && (best == nil || *c.DecidedIndex > *best.DecidedIndex) {
			best = c
		}
	}
	if best == nil {
		return ""
	}
	return best.ID
}

// RecordInitial records an agent's first configuration, given when it was
// registered, as a change proposed and approved by the registering admin:
// the agent's approval is the approval of its configuration.
//
// Registration and this record are two transactions: [Open] records the
// change of an agent registered with a configuration that has none (a
// stop between the two), so the approval is never missing; the document
// is kept if the stop came after it was stored.
func (s *Store) RecordInitial(ctx context.Context, by alog.Principal, a *identity.Agent, d *config.Document) (*Change, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.putDocument(d); err != nil {
		return nil, err
	}
	return s.recordInitialLocked(ctx, by, a, d.Digest, false)
}

func (s *Store) recordInitialLocked(ctx context.Context, by alog.Principal, a *identity.Agent, digest string, repaired bool) (*Change, error) {
	now := s.o.Now().UTC()
	c := &Change{ID: newID(), Agent: a.ID, Config: digest, Policy: a.ConfigPolicy, State: StateApproved, Initial: true,
		Description: "configuration at registration", Testing: "-", Rollback: "-",
		ProposedBy: by.ID, ProposerRole: by.Role, Proposed: now, DecidedBy: by.ID, DeciderRole: by.Role, Decided: &now}
	recs := []alog.Record{
		{Action: ActionProposed, Attributes: attrs(map[string]any{"change": c.ID, "initial": true, "config_policy": c.Policy, "description": c.Description})},
		{Action: ActionApproved, Attributes: attrs(map[string]any{"change": c.ID, "initial": true, "proposed_by": c.ProposedBy})},
	}
	if repaired {
		// Recorded when the store was opened again, after a stop between
		// the registration and its change.
		for i := range recs {
			var m map[string]any
			json.Unmarshal(recs[i].Attributes, &m)
			m["repaired"] = true
			recs[i].Attributes = attrs(m)
		}
	}
	pr := alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID, Agent: a.ID, Config: c.Config}
	_, err := s.log.AppendWith(ctx, pr, alog.KindChange, recs, s.record(c, func(c *Change, i uint64) {
		c.ProposedIndex, c.DecidedIndex = i-1, &i
	}))
	if err != nil {
		return nil, fmt.Errorf("recording the initial configuration: %w", err)
	}
	s.mu.Lock()
	s.changes[c.ID] = c
	s.mu.Unlock()
	return clone(c), nil
}

// Approve approves a proposed change: its configuration becomes the
// agent's (with its policy, and its scope as the agent's declared scope),
// and the change it replaces is superseded.
func (s *Store) Approve(ctx context.Context, by alog.Principal, id, comment string) (*Change, error) {
	return s.decide(ctx, by, id, comment, true)
}

// Reject rejects a proposed change; its proposer may reject it too.
func (s *Store) Reject(ctx context.Context, by alog.Principal, id, comment string) (*Change, error) {
	return s.decide(ctx, by, id, comment, false)
}

func (s *Store) decide(ctx context.Context, by alog.Principal, id, comment string, approve bool) (*Change, error) {
	if err := validText("comment", comment, maxComment, false); err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	old, ok := s.changes[id]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	if old.State != StateProposed {
		return nil, fmt.Errorf("%w: change %s is %s, not proposed", ErrConflict, id, old.State)
	}
	if approve && by.ID == old.ProposedBy && !s.o.AllowSelfApproval {
		return nil, fmt.Errorf("%w: %q proposed change %s and may not approve it; another approver or admin must", ErrSelfApproval, by.ID, id)
	}
	a, err := s.ids.Agent(old.Agent)
	if err != nil {
		return nil, err
	}
	var sc *identity.Scope
	var current *Change
	if approve {
		if a.Status == identity.StatusRevoked {
			return nil, fmt.Errorf("%w: agent %q is revoked", ErrConflict, a.ID)
		}
		doc, err := s.Document(old.Config)
		if err != nil {
			return nil, err
		}
		d, err := config.Parse(doc)
		if err != nil {
			return nil, err
		}
		if len(d.Config.Scope) > 0 {
			v, err := scopeOf(d)
			if err != nil {
				return nil, err
			}
			sc = &v
		}
		current = s.approvedOf(a.ID)
	}
	c := clone(old)
	now := s.o.Now().UTC()
	c.DecidedBy, c.DeciderRole, c.Decided, c.Comment = by.ID, by.Role, &now, comment
	action, state := ActionRejected, StateRejected
	m := map[string]any{"change": c.ID, "proposed_by": c.ProposedBy, "comment": comment}
	if approve {
		action, state = ActionApproved, StateApproved
		m["previous"] = a.Config
		if current != nil {
			m["supersedes"] = current.ID
		}
		if c.RollbackOf != "" {
			m["rollback_of"] = c.RollbackOf
		}
		if s.o.AllowSelfApproval && by.ID == c.ProposedBy {
			m["self_approved"] = true
		}
	}
	c.State = state
	pr := alog.Principal{ID: by.ID, Role: by.Role, TokenID: by.TokenID, Agent: c.Agent, Config: c.Config}
	rec := alog.Record{Action: action, Attributes: attrs(m)}
	if _, err := s.log.AppendWith(ctx, pr, alog.KindChange, []alog.Record{rec}, s.record(c, func(c *Change, i uint64) { c.DecidedIndex = &i })); err != nil {
		return nil, fmt.Errorf("recording the decision: %w", err)
	}
	s.mu.Lock()
	s.changes[c.ID] = c
	s.mu.Unlock()
	if !approve {
		return clone(c), nil
	}
	if current != nil {
		sup := clone(current)
		sup.State, sup.SupersededBy = StateSuperseded, c.ID
		if err := s.put(sup); err != nil {
			return nil, err
		}
	}
	if _, err := s.ids.SetConfig(c.Agent, c.Config, c.Policy); err != nil {
		return nil, fmt.Errorf("applying change %s: %w", c.ID, err)
	}
	if sc != nil && !sameScope(*sc, a.Scope) {
		if _, err := s.ids.SetScope(ctx, by, c.Agent, *sc); err != nil {
			return nil, fmt.Errorf("applying the scope of change %s: %w", c.ID, err)
		}
	}
	return clone(c), nil
}

func sameScope(a, b identity.Scope) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (s *Store) put(c *Change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("c/c/"+c.ID), b) }); err != nil {
		return fmt.Errorf("storing change %s: %w", c.ID, err)
	}
	s.mu.Lock()
	s.changes[c.ID] = c
	s.mu.Unlock()
	return nil
}

// approvedOf returns the agent's approved change, or nil.
func (s *Store) approvedOf(agent string) *Change {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.changes {
		if c.Agent == agent && c.State == StateApproved {
			return c
		}
	}
	return nil
}

// Get returns the change with id.
func (s *Store) Get(id string) (*Change, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.changes[id]
	if !ok {
		return nil, fmt.Errorf("change %q: %w", id, ErrNotFound)
	}
	return clone(c), nil
}

// List returns the changes of agent (every agent if empty) in state
// (every state if empty), oldest first.
func (s *Store) List(agent, state string) ([]*Change, error) {
	if state != "" && !slices.Contains([]string{StateProposed, StateApproved, StateRejected, StateSuperseded}, state) {
		return nil, fmt.Errorf("%w: state %q: want proposed, approved, rejected or superseded", ErrInvalid, state)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Change
	for _, c := range s.changes {
		if (agent == "" || c.Agent == agent) && (state == "" || c.State == state) {
			out = append(out, clone(c))
		}
	}
	slices.SortFunc(out, func(a, b *Change) int { return int64Cmp(a.ProposedIndex, b.ProposedIndex) })
	return out, nil
}

func int64Cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Diff compares a change's configuration with the agent's current
// approved one, field by field (prompts by digest).
func (s *Store) Diff(c *Change) ([]config.Change, error) {
	a, err := s.ids.Agent(c.Agent)
	if err != nil {
		return nil, err
	}
	against := a.Config
	if c.State == StateApproved || c.State == StateSuperseded {
		against = c.Previous // show what the change changed
	}
	var old []byte
	if against != "" {
		if old, err = s.Document(against); err != nil {
			return nil, err
		}
	}
	doc, err := s.Document(c.Config)
	if err != nil {
		return nil, err
	}
	return config.Diff(old, doc)
}

// settingsKey holds the change-management settings last recorded.
var settingsKey = []byte("c/settings")

// SystemPrincipal records the log's own settings.
var SystemPrincipal = alog.Principal{ID: "agentlog", Role: "system"}

// RecordSettings records in the log (kind "system", action
// "changes.configured") whether self-approval is allowed, whenever it
// differs from what was last recorded; a log with no such record has
// never allowed it.
func RecordSettings(ctx context.Context, l *alog.Log, allowSelfApproval bool) (bool, error) {
	b, _ := json.Marshal(map[string]bool{"allow_self_approval": allowSelfApproval})
	return l.RecordSetting(ctx, SystemPrincipal, settingsKey, "changes.configured", b, []byte(`{"allow_self_approval":false}`))
}
