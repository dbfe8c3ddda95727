package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/gorilla/mux"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// maxIdentityBodyBytes caps the body of token, agent and session requests.
const maxIdentityBodyBytes = 64 << 10

// authenticate resolves the request's bearer credential through the
// identity store, the one authentication path.
func (s *Server) authenticate(r *http.Request) (alog.Principal, error) {
	tok, ok := bearer(r)
	if !ok {
		return alog.Principal{}, fmt.Errorf("%w: send Authorization: Bearer <credential>", ErrUnauthorized)
	}
	if s.cfg.Identity == nil {
		return alog.Principal{}, ErrUnauthorized
	}
	p, err := s.cfg.Identity.Authenticate(tok)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, identity.ErrUnknownCredential):
		return alog.Principal{}, ErrUnauthorized
	case errors.Is(err, identity.ErrInvalid):
		err = &identity.DeniedError{Reason: identity.ReasonForged}
	}
	return alog.Principal{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
}

// checkSignatures verifies the agent signatures records carry
// ([identity.Store.CheckSignatures]).
func (s *Server) checkSignatures(p alog.Principal, recs []alog.Record) error {
	if s.cfg.Identity == nil {
		for i := range recs {
			if recs[i].Sig != nil {
				return fmt.Errorf("%w: entries[%d]: this server cannot check agent signatures", alog.ErrInvalid, i)
			}
		}
		return nil
	}
	return s.cfg.Identity.CheckSignatures(p, recs)
}

func (s *Server) identityRoutes(r *mux.Router) {
	s.handle(r, "identity.tokens", "/v1/tokens", http.MethodPost, s.postToken)
	s.handle(r, "identity.tokens", "/v1/tokens", http.MethodGet, s.getTokens)
	s.handle(r, "identity.token", "/v1/tokens/{id}", http.MethodDelete, s.deleteToken)
	s.handle(r, "identity.agents", "/v1/agents", http.MethodPost, s.postAgent)
	s.handle(r, "identity.agents", "/v1/agents", http.MethodGet, s.getAgents)
	s.handle(r, "identity.agent", "/v1/agents/{id}", http.MethodGet, s.getAgent)
	s.handle(r, "identity.approve", "/v1/agents/{id}/approve", http.MethodPost, s.postApprove)
	s.handle(r, "identity.revoke", "/v1/agents/{id}/revoke", http.MethodPost, s.postRevoke)
	s.handle(r, "identity.scope", "/v1/agents/{id}/scope", http.MethodPut, s.putScope)
	s.handle(r, "identity.sessions", "/v1/sessions", http.MethodPost, s.postSession)
	s.handle(r, "identity.session", "/v1/sessions/current", http.MethodDelete, s.deleteSession)
	s.handle(r, "identity.session", "/v1/sessions/current", http.MethodGet, s.getCurrentSession)
	s.handle(r, "identity.sessions", "/v1/sessions", http.MethodGet, s.getSessions)
	s.handle(r, "identity.session", "/v1/sessions/{id}", http.MethodDelete, s.deleteSessionByID)
}

// decodeStrict decodes a JSON body, refusing unknown members, duplicate
// names and invalid UTF-8.
func decodeStrict(r *http.Request, v any) error {
	b, err := readBody(r.Body, -1)
	if err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(b, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return fmt.Errorf("%w: %s", errBadRequest, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func jsonMarshal(v any) ([]byte, error) { return jsonv2.Marshal(v) }

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// TokenCreated is the answer to POST /v1/tokens; Token is shown only here.
type TokenCreated struct {
	*identity.Token
	Credential string `json:"token"`
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "token.create", RoleAdmin)
	if err != nil {
		return err
	}
	var req TokenRequest
	if err := decodeStrict(r, &req); err != nil {
		return err
	}
	t, cred, err := s.cfg.Identity.CreateToken(r.Context(), p, req.Name, req.Role)
	if err != nil {
		return err
	}
	return writeJSON(w, TokenCreated{Token: t, Credential: cred})
}

func (s *Server) getTokens(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "token.list", RoleAdmin); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"tokens": s.cfg.Identity.Tokens()})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "token.revoke", RoleAdmin)
	if err != nil {
		return err
	}
	t, err := s.cfg.Identity.RevokeToken(r.Context(), p, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, t)
}

func (s *Server) postAgent(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "agent.register", RoleAdmin)
	if err != nil {
		return err
	}
	var spec identity.AgentSpec
	if err := decodeStrict(r, &spec); err != nil {
		return err
	}
	if len(spec.Config) > 0 && s.cfg.Changes == nil {
		return fmt.Errorf("%w: this server does not manage agent configurations", errBadRequest)
	}
	// A stop between the registration and its change is repaired when
	// the change store is opened again (change.Open).
	a, err := s.cfg.Identity.Register(r.Context(), p, spec)
	if err != nil {
		return err
	}
	if d := spec.Document(); d != nil {
		if _, err := s.cfg.Changes.RecordInitial(r.Context(), p, a, d); err != nil {
			return err
		}
	}
	return writeJSON(w, a)
}

func (s *Server) getAgents(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "agent.list", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"agents": s.cfg.Identity.Agents()})
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "agent.show", RoleAdmin, RoleApprover, RoleAuditor); err != nil {
		return err
	}
	a, err := s.cfg.Identity.Agent(mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, a)
}

func (s *Server) postApprove(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "agent.approve", RoleApprover, RoleAdmin)
	if err != nil {
		return err
	}
	a, err := s.cfg.Identity.Approve(r.Context(), p, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, a)
}

func (s *Server) postRevoke(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "agent.revoke", RoleAdmin)
	if err != nil {
		return err
	}
	a, err := s.cfg.Identity.Revoke(r.Context(), p, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, a)
}

func (s *Server) putScope(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "agent.scope", RoleAdmin)
	if err != nil {
		return err
	}
	var sc identity.Scope
	if err := decodeStrict(r, &sc); err != nil {
		return err
	}
	a, err := s.cfg.Identity.SetScope(r.Context(), p, mux.Vars(r)["id"], sc)
	if err != nil {
		return err
	}
	return writeJSON(w, a)
}

func (s *Server) postSession(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r.Body, -1)
	if err != nil {
		return err
	}
	req, t, sig, err := identity.ParseOpenRequest(body)
	if err != nil {
		return err
	}
	o, err := s.cfg.Identity.OpenSession(r.Context(), req, t, sig)
	switch {
	case errors.Is(err, identity.ErrNotApproved), errors.Is(err, identity.ErrConfigRefused):
		// The request's signature verified: it is the agent's own.
		s.recordDenied(r, "session.open", alog.Principal{Agent: req.Agent, Config: req.Config}, err)
	case errors.Is(err, identity.ErrDenied):
		s.recordDenied(r, "session.open", alog.Principal{}, err)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, o)
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "session.close", RoleAgent)
	if err != nil {
		return err
	}
	if p.Session == "" {
		err := fmt.Errorf("%w: closing a session takes its session credential", ErrForbidden)
		s.recordDenied(r, "session.close", p, err)
		return err
	}
	if err := s.cfg.Identity.CloseSession(r.Context(), p); err != nil {
		return err
	}
	return writeJSON(w, map[string]string{"closed": p.Session})
}

// CurrentSession is the answer to GET /v1/sessions/current: what a session
// credential stands for, so that a component acting for the agent (the
// gateway) can check it and the agent's declared scope before acting.
type CurrentSession struct {
	Agent   string         `json:"agent"`
	Session string         `json:"session"`
	Task    string         `json:"task"`
	Expires time.Time      `json:"expires"`
	Scope   identity.Scope `json:"scope"`
	// Config is the configuration digest the session declared, if any.
	Config string `json:"config,omitempty"`
}

func (s *Server) getCurrentSession(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "session.show", RoleAgent)
	if err != nil {
		return err
	}
	if p.Session == "" {
		err := fmt.Errorf("%w: this route takes a session credential", ErrForbidden)
		s.recordDenied(r, "session.show", p, err)
		return err
	}
	se, err := s.cfg.Identity.Session(p.Session)
	if err != nil {
		return err
	}
	a, err := s.cfg.Identity.Agent(p.Agent)
	if err != nil {
		return err
	}
	return writeJSON(w, CurrentSession{Agent: p.Agent, Session: p.Session, Task: p.Task, Expires: se.Expires, Scope: a.Scope, Config: se.Config})
}

func (s *Server) getSessions(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "session.list", RoleAdmin, RoleAuditor); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"sessions": s.cfg.Identity.Sessions(r.URL.Query().Get("agent"))})
}

func (s *Server) deleteSessionByID(w http.ResponseWriter, r *http.Request) error {
	p, err := s.authorize(r, "session.end", RoleAdmin)
	if err != nil {
		return err
	}
	se, err := s.cfg.Identity.EndSession(r.Context(), p, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, se)
}
