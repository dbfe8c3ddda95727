package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/config"
)

// maxChangeBodyBytes caps the body of a change request: a configuration
// document and its texts.
const maxChangeBodyBytes = config.MaxSize + 64<<10

func (s *Server) changeRoutes(r *mux.Router) {
	s.handle(r, "change.report", "/v1/changes/report", http.MethodGet, s.getChangesReport)
	s.handle(r, "change.list", "/v1/changes", http.MethodPost, s.postChange)
	s.handle(r, "change.list", "/v1/changes", http.MethodGet, s.getChanges)
	s.handle(r, "change.show", "/v1/changes/{id}", http.MethodGet, s.getChange)
	s.handle(r, "change.approve", "/v1/changes/{id}/approve", http.MethodPost, s.postChangeDecision(true))
	s.handle(r, "change.reject", "/v1/changes/{id}/reject", http.MethodPost, s.postChangeDecision(false))
	s.handle(r, "change.attestation", "/v1/changes/{id}/attestation", http.MethodGet, s.getChangeAttestation)
	s.handle(r, "change.config", "/v1/configs/{digest}", http.MethodGet, s.getConfig)
}

// ChangeDetail is the answer to GET /v1/changes/{id}: the change, its
// configuration document and what it changes, field by field.
type ChangeDetail struct {
	*change.Change
	Document json.RawMessage `json:"document"`
	Diff     []config.Change `json:"diff"`
}

// DecisionRequest is the body of POST /v1/changes/{id}/approve and /reject.
type DecisionRequest struct {
	Comment string `json:"comment,omitempty"`
}

func (s *Server) postChange(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "change.propose", RoleAdmin, RoleApprover)
	if err != nil {
		return err
	}
	var req change.Proposal
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	c, err := s.cfg.Changes.Propose(r.Context(), p, req)
	if err != nil {
		return err
	}
	return writeJSON(w, c)
}

func (s *Server) getChanges(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "change.list", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	q := r.URL.Query()
	list, err := s.cfg.Changes.List(q.Get("agent"), q.Get("state"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []*change.Change{}
	}
	return writeJSON(w, map[string]any{"changes": list})
}

func (s *Server) getChange(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "change.show", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	c, err := s.cfg.Changes.Get(mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	doc, err := s.cfg.Changes.Document(c.Config)
	if err != nil {
		return err
	}
	diff, err := s.cfg.Changes.Diff(c)
	if err != nil {
		return err
	}
	if diff == nil {
		diff = []config.Change{}
	}
	return writeJSON(w, ChangeDetail{Change: c, Document: doc, Diff: diff})
}

func (s *Server) postChangeDecision(approve bool) handlerFunc {
	route := "change.reject"
	if approve {
		route = "change.approve"
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authorize(r, route, RoleAdmin, RoleApprover)
		if err != nil {
			return err
		}
		var req DecisionRequest
		if r.ContentLength != 0 {
			if err := decodeStrict(r, &req); err != nil {
				return err
			}
		}
		id := mux.Vars(r)["id"]
		var c *change.Change
		if approve {
			c, err = s.cfg.Changes.Approve(r.Context(), p, id, req.Comment)
		} else {
			c, err = s.cfg.Changes.Reject(r.Context(), p, id, req.Comment)
		}
		if errors.Is(err, change.ErrSelfApproval) {
			s.recordDenied(r, route, p, err)
		}
		if err != nil {
			return err
		}
		return writeJSON(w, c)
	}
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "change.config", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	doc, err := s.cfg.Changes.Document(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(doc)
	return err
}

func (s *Server) getChangesReport(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "change.report", RoleAuditor, RoleAdmin); err != nil {
		return err
	}
	q := r.URL.Query()
	var from, to time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return fmt.Errorf("%w: %q must be an RFC 3339 time", errBadRequest, p.name)
			}
			*p.t = t
		}
	}
	rep, err := s.cfg.Changes.BuildReport(r.Context(), s.cfg.Log, from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}

func (s *Server) getChangeAttestation(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "change.attestation", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	c, err := s.cfg.Changes.Get(mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	st, err := change.Attest(c, s.cfg.Origin)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/vnd.in-toto+json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(st)
}
