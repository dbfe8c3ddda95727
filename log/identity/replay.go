package identity

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
)

// Replay applies one entry of the log to the store, as a standby rebuilds
// the identities of the log it copies (package mirror): agents from
// "agent.*" entries, operator tokens from "token.*" and sessions from
// "session.*". Entries of other kinds are ignored. Replaying a log's
// entries in order rebuilds the state of the node that wrote them, except
// tokens and sessions whose entries carry no "credential_sha256" (written
// before it was recorded), which cannot be authenticated and are skipped,
// and configuration approvals, which package change replays
// (change.Store.Replay). Sessions replayed are marked Replayed: an append
// retried in one after a failover is looked up in the log by its sequence
// numbers (retry.go). Nothing is appended to the log.
func (s *Store) Replay(leaf []byte) error {
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return err
	}
	switch l.Kind {
	case alog.KindAgent, alog.KindSession, alog.KindToken:
	case alog.KindAction:
		// A retry looked up before this entry arrived (replayedRetry)
		// must look again.
		s.mu.Lock()
		delete(s.seqHigh, l.Session)
		s.mu.Unlock()
		return nil
	default:
		return nil
	}
	var attrs struct {
		Owner       string            `json:"owner"`
		Description string            `json:"description"`
		PublicKey   ed25519.PublicKey `json:"public_key"`
		Scope       *Scope            `json:"scope"`
		Expires     time.Time         `json:"expires"`
		Credential  []byte            `json:"credential_sha256"`
		ID          string            `json:"id"`
		Name        string            `json:"name"`
		Role        string            `json:"role"`
		Policy      string            `json:"config_policy"`
		Status      string            `json:"config_status"`
	}
	if len(l.Attributes) > 0 {
		if err := json.Unmarshal(l.Attributes, &attrs); err != nil {
			return fmt.Errorf("%s entry: attributes: %w", l.Action, err)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t := l.Time.UTC()
	agent := func() (*Agent, error) {
		s.mu.RLock()
		a, ok := s.agents[l.Agent]
		s.mu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("%s entry for agent %q, which was never registered", l.Action, l.Agent)
		}
		return clone(a), nil
	}
	putAgent := func(a *Agent) error {
		if err := s.put("i/a/"+a.ID, a, 0); err != nil {
			return err
		}
		s.setLocked(func() { s.agents[a.ID] = a })
		return nil
	}
	switch l.Action {
	case "agent.registered":
		if len(attrs.PublicKey) != ed25519.PublicKeySize || attrs.Scope == nil {
			return fmt.Errorf("agent.registered entry for %q lacks its public key or scope", l.Agent)
		}
		return putAgent(&Agent{ID: l.Agent, Owner: attrs.Owner, Description: attrs.Description, PublicKey: attrs.PublicKey,
			Scope: *attrs.Scope, Status: StatusPending, RegisteredBy: l.Principal, Registered: t,
			Config: l.Config, ConfigPolicy: attrs.Policy})
	case "agent.approved":
		a, err := agent()
		if err != nil {
			return err
		}
		a.Status, a.ApprovedBy, a.Approved = StatusApproved, l.Principal, &t
		return putAgent(a)
	case "agent.scope_changed":
		a, err := agent()
		if err != nil {
			return err
		}
		if attrs.Scope == nil {
			return fmt.Errorf("agent.scope_changed entry for %q lacks the scope", l.Agent)
		}
		a.Scope = *attrs.Scope
		return putAgent(a)
	case "agent.revoked":
		a, err := agent()
		if err != nil {
			return err
		}
		a.Status, a.RevokedBy, a.Revoked = StatusRevoked, l.Principal, &t
		return putAgent(a)
	case "session.opened":
		if len(attrs.Credential) != 32 || l.Session == "" {
			return nil
		}
		se := &Session{ID: l.Session, Agent: l.Agent, Task: l.Task, Hash: attrs.Credential, Opened: t, Expires: attrs.Expires.UTC(),
			Config: l.Config, ConfigStatus: attrs.Status, Replayed: true}
		ttl := time.Until(se.Expires) + time.Hour
		if ttl <= 0 {
			return nil
		}
		if err := s.put("i/s/"+se.ID, se, ttl); err != nil {
			return err
		}
		s.setLocked(func() { s.sessions[se.ID] = se })
	case "session.closed":
		s.mu.RLock()
		se, ok := s.sessions[l.Session]
		s.mu.RUnlock()
		if !ok {
			return nil // expired, or opened without a recorded credential
		}
		n := clone(se)
		n.Closed = true
		if err := s.put("i/s/"+n.ID, n, time.Until(n.Expires)+time.Hour); err != nil {
			return err
		}
		s.setLocked(func() { s.sessions[n.ID] = n })
	case "token.created":
		if len(attrs.Credential) != 32 || attrs.ID == "" {
			return nil
		}
		tk := &Token{ID: attrs.ID, Name: attrs.Name, Role: attrs.Role, Hash: attrs.Credential, CreatedBy: l.Principal, Created: t}
		if err := s.put("i/t/"+tk.ID, tk, 0); err != nil {
			return err
		}
		s.setLocked(func() { s.tokens[tk.ID] = tk })
	case "token.revoked":
		s.mu.RLock()
		tk, ok := s.tokens[attrs.ID]
		s.mu.RUnlock()
		if !ok {
			return nil
		}
		n := clone(tk)
		n.Revoked, n.RevokedBy = &t, l.Principal
		if err := s.put("i/t/"+n.ID, n, 0); err != nil {
			return err
		}
		s.setLocked(func() { s.tokens[n.ID] = n })
	}
	return nil
}
