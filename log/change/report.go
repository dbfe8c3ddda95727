package change

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/query"
)

// Report is the change-management answer for a period (GET
// /v1/changes/report): every change step recorded in it, the actions run
// under each configuration, and every action run under a configuration
// that was not the agent's approved one (or under none, for an agent that
// has one). It covers the entries [Start, End) of the tree of TreeSize:
// the evidence export of the same period proves it complete.
type Report struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	TreeSize uint64    `json:"tree_size"`
	Start    uint64    `json:"start"`
	End      uint64    `json:"end"`
	// Changes are the changes with a step in the period, in the order of
	// their first step.
	Changes []ReportChange `json:"changes"`
	// Configs counts the actions of the period by configuration ("" is
	// none declared).
	Configs []ConfigCount `json:"configs"`
	Actions int           `json:"actions"`
	// Unapproved lists the actions run in sessions whose configuration was
	// unapproved or undeclared (at most MaxReportItems; Omitted counts
	// the rest).
	Unapproved []ReportAction `json:"unapproved"`
	Omitted    int            `json:"unapproved_omitted,omitempty"`
	// ByAgent counts the actions of the period by agent (for
	// GET /v1/controls; not part of the report's JSON).
	ByAgent map[string]int `json:"-"`
}

// ReportChange is a change with the steps the period holds.
type ReportChange struct {
	*Change
	Steps []Step `json:"steps"`
}

// Step is one change leaf.
type Step struct {
	Index  uint64    `json:"index"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	By     string    `json:"by"`
	Role   string    `json:"role"`
}

// ConfigCount is the number of actions under one configuration.
type ConfigCount struct {
	Config string   `json:"config"`
	Agents []string `json:"agents"`
	// Actions counts the actions under the configuration; Unapproved and
	// Undeclared those of them in sessions opened under a configuration
	// that was not the agent's approved one, or under none.
	Actions    int `json:"actions"`
	Unapproved int `json:"unapproved_actions"`
	Undeclared int `json:"undeclared_actions"`
}

// ReportAction is an action under an unapproved or undeclared
// configuration.
type ReportAction struct {
	Index   uint64    `json:"index"`
	Time    time.Time `json:"time"`
	Agent   string    `json:"agent"`
	Session string    `json:"session"`
	Config  string    `json:"config,omitempty"`
	Status  string    `json:"config_status"`
	Action  string    `json:"action"`
}

// MaxReportItems caps the actions listed in a report.
const MaxReportItems = 10000

// Sessions remembers the configuration state of sessions, from their
// session.opened entries.
type Sessions struct {
	l     *alog.Log
	state map[string]string // session id -> config status ("" none)
}

// NewSessions returns an empty session memory over l.
func NewSessions(l *alog.Log) *Sessions { return &Sessions{l: l, state: map[string]string{}} }

// Observe records a session.opened leaf's state.
func (s *Sessions) Observe(session string, leaf []byte) {
	var e struct {
		Attributes struct {
			Status string `json:"config_status"`
		} `json:"attributes"`
	}
	if json.Unmarshal(leaf, &e) == nil {
		s.remember(session, e.Attributes.Status)
	}
}

// Set records the configuration state of session.
func (s *Sessions) Set(session, status string) { s.remember(session, status) }

func (s *Sessions) remember(session, status string) {
	if len(s.state) > 1<<20 {
		clear(s.state) // bound memory; misses read the log again
	}
	s.state[session] = status
}

// Status returns the configuration state of session as its session.opened
// entry (at an index below before) records it.
func (s *Sessions) Status(ctx context.Context, session string, before uint64) (string, error) {
	if st, ok := s.state[session]; ok {
		return st, nil
	}
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindSession}, {Field: "session", Value: session}, {Field: "action", Value: "session.opened"}}}
	st := ""
	_, err := s.l.Search(ctx, flt, 0, before, 1, func(_ uint64, leaf []byte) error {
		var e struct {
			Attributes struct {
				Status string `json:"config_status"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(leaf, &e); err != nil {
			return err
		}
		st = e.Attributes.Status
		return nil
	})
	if err != nil {
		return "", err
	}
	s.remember(session, st)
	return st, nil
}

// BuildReport computes the report of [from, to) over the log's current
// size. It reads every entry of the period once.
func (s *Store) BuildReport(ctx context.Context, l *alog.Log, from, to time.Time) (*Report, error) {
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return nil, fmt.Errorf("%w: \"from\" must be before \"to\"", ErrInvalid)
	}
	size := l.Size()
	start, err := l.IndexAt(from, size)
	if err != nil {
		return nil, err
	}
	end := size
	if !to.IsZero() {
		if end, err = l.IndexAt(to, size); err != nil {
			return nil, err
		}
	}
	r := &Report{From: from, To: to, TreeSize: size, Start: start, End: end, Changes: []ReportChange{}, Unapproved: []ReportAction{}, ByAgent: map[string]int{}}
	sessions := NewSessions(l)
	steps := map[string]*ReportChange{}
	var order []string
	type cfgAgg struct {
		agents                map[string]bool
		n, unapproved, undecl int
	}
	cfgs := map[string]*cfgAgg{}
	var rf agentlog.RawFields
	err = l.ForEachEntry(ctx, start, end, func(i uint64, leaf []byte) error {
		var f *agentlog.Leaf
		if agentlog.ReadRawFields(leaf, &rf) && (string(rf.Kind) == alog.KindAction || string(rf.Kind) == "") {
			t, err := agentlog.LeafTime(leaf)
			if err != nil {
				return err
			}
			f = &agentlog.Leaf{Time: t, Kind: string(rf.Kind), Agent: string(rf.Agent), Session: string(rf.Session), Config: string(rf.Config), Action: string(rf.Action)}
		} else {
			if f, err = query.DecodeLeaf(leaf); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
		}
		switch f.Kind {
		case alog.KindSession:
			if f.Action == "session.opened" {
				sessions.Observe(f.Session, leaf)
			}
		case alog.KindChange:
			var e struct {
				Principal  string `json:"principal"`
				Role       string `json:"role"`
				Attributes struct {
					Change string `json:"change"`
				} `json:"attributes"`
			}
			if err := json.Unmarshal(leaf, &e); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			rc := steps[e.Attributes.Change]
			if rc == nil {
				c, err := s.Get(e.Attributes.Change)
				if err != nil {
					c = &Change{ID: e.Attributes.Change, Agent: f.Agent, Config: f.Config}
				}
				rc = &ReportChange{Change: c}
				steps[c.ID] = rc
				order = append(order, c.ID)
			}
			rc.Steps = append(rc.Steps, Step{Index: i, Time: f.Time, Action: f.Action, By: e.Principal, Role: e.Role})
		case alog.KindAction:
			r.Actions++
			r.ByAgent[f.Agent]++
			a := cfgs[f.Config]
			if a == nil {
				a = &cfgAgg{agents: map[string]bool{}}
				cfgs[f.Config] = a
			}
			a.n++
			a.agents[f.Agent] = true
			st, err := sessions.Status(ctx, f.Session, i)
			if err != nil {
				return err
			}
			if st != identity.ConfigUnapproved && st != identity.ConfigUndeclared {
				return nil
			}
			if st == identity.ConfigUnapproved {
				a.unapproved++
			} else {
				a.undecl++
			}
			if len(r.Unapproved) >= MaxReportItems {
				r.Omitted++
				return nil
			}
			r.Unapproved = append(r.Unapproved, ReportAction{Index: i, Time: f.Time, Agent: f.Agent, Session: f.Session, Config: f.Config, Status: st, Action: f.Action})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range order {
		r.Changes = append(r.Changes, *steps[id])
	}
	for digest, a := range cfgs {
		agents := make([]string, 0, len(a.agents))
		for ag := range a.agents {
			agents = append(agents, ag)
		}
		slices.Sort(agents)
		r.Configs = append(r.Configs, ConfigCount{Config: digest, Agents: agents, Actions: a.n, Unapproved: a.unapproved, Undeclared: a.undecl})
	}
	slices.SortFunc(r.Configs, func(a, b ConfigCount) int { return strings.Compare(a.Config, b.Config) })
	if r.Configs == nil {
		r.Configs = []ConfigCount{}
	}
	return r, nil
}

// StatementType and PredicateType identify the in-toto Statement an
// approval is exported as (docs/changes.md).
const (
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://github.com/agentlog/agentlog/blob/main/docs/changes.md#change-approval-v1"
)

// Statement is an in-toto Statement v1
// (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     *Approval `json:"predicate"`
}

// Subject is a Statement's subject: the configuration, by digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Approval is the predicate of a change-approval statement. LogIndex is
// the index of the change.approved entry in the log named by Origin, so
// the statement can be checked against the log with an inclusion proof.
type Approval struct {
	Change      string    `json:"change"`
	Agent       string    `json:"agent"`
	Config      string    `json:"config"`
	Previous    string    `json:"previous,omitempty"`
	RollbackOf  string    `json:"rollback_of,omitempty"`
	Description string    `json:"description"`
	Testing     string    `json:"testing"`
	Rollback    string    `json:"rollback"`
	Risk        string    `json:"risk,omitempty"`
	Ticket      string    `json:"ticket,omitempty"`
	ProposedBy  string    `json:"proposed_by"`
	Proposed    time.Time `json:"proposed"`
	ApprovedBy  string    `json:"approved_by"`
	Approved    time.Time `json:"approved"`
	Comment     string    `json:"comment,omitempty"`
	Origin      string    `json:"log_origin,omitempty"`
	LogIndex    uint64    `json:"log_index"`
}

// Attest returns the in-toto Statement of an approved (or since
// superseded) change.
func Attest(c *Change, origin string) (*Statement, error) {
	if c.State != StateApproved && c.State != StateSuperseded || c.Decided == nil || c.DecidedIndex == nil {
		return nil, fmt.Errorf("%w: change %s is %s: only approvals are attested", ErrConflict, c.ID, c.State)
	}
	hexDigest := strings.TrimPrefix(c.Config, "sha256:")
	if _, err := hex.DecodeString(hexDigest); err != nil {
		return nil, fmt.Errorf("change %s has a malformed digest", c.ID)
	}
	return &Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: "agent/" + c.Agent + "/config", Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: PredicateType,
		Predicate: &Approval{Change: c.ID, Agent: c.Agent, Config: c.Config, Previous: c.Previous, RollbackOf: c.RollbackOf,
			Description: c.Description, Testing: c.Testing, Rollback: c.Rollback, Risk: c.Risk, Ticket: c.Ticket,
			ProposedBy: c.ProposedBy, Proposed: c.Proposed, ApprovedBy: c.DecidedBy, Approved: *c.Decided, Comment: c.Comment,
			Origin: origin, LogIndex: *c.DecidedIndex},
	}, nil
}
