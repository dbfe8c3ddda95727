package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/agentlog/agentlog"
)

// AgentInfo is a registered agent as the server describes it.
type AgentInfo struct {
	ID           string          `json:"id"`
	Owner        string          `json:"owner"`
	Description  string          `json:"description,omitempty"`
	PublicKey    []byte          `json:"public_key"`
	Scope        json.RawMessage `json:"scope"`
	Status       string          `json:"status"` // pending, approved or revoked
	RegisteredBy string          `json:"registered_by"`
	Registered   time.Time       `json:"registered"`
	ApprovedBy   string          `json:"approved_by,omitempty"`
	Approved     *time.Time      `json:"approved,omitempty"`
	RevokedBy    string          `json:"revoked_by,omitempty"`
	Revoked      *time.Time      `json:"revoked,omitempty"`
	Config       string          `json:"config,omitempty"`        // digest of the approved configuration
	ConfigPolicy string          `json:"config_policy,omitempty"` // "enforce", or empty
}

// AgentRegistration is what registering an agent takes (admin).
type AgentRegistration struct {
	ID          string            `json:"id"`
	Owner       string            `json:"owner"`
	Description string            `json:"description,omitempty"`
	PublicKey   ed25519.PublicKey `json:"public_key"`
	// Scope is the declared scope as JSON (see docs/identity.md); nil
	// declares none.
	Scope json.RawMessage `json:"scope,omitempty"`
	// Config is the agent's first configuration document (see
	// LoadConfig), recorded as approved by the registering admin;
	// ConfigPolicy "enforce" refuses sessions under any other.
	Config       json.RawMessage `json:"config,omitempty"`
	ConfigPolicy string          `json:"config_policy,omitempty"`
}

// TokenInfo describes an operator token (never its secret).
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedBy string     `json:"created_by"`
	Created   time.Time  `json:"created"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	Revoked   *time.Time `json:"revoked,omitempty"`
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

// RegisterAgent registers an agent, pending approval (admin).
func (c *Client) RegisterAgent(ctx context.Context, reg AgentRegistration) (*AgentInfo, error) {
	var a AgentInfo
	return &a, c.call(ctx, http.MethodPost, "/v1/agents", reg, &a)
}

// ApproveAgent approves a pending agent (approver or admin).
func (c *Client) ApproveAgent(ctx context.Context, id string) (*AgentInfo, error) {
	var a AgentInfo
	return &a, c.call(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(id)+"/approve", nil, &a)
}

// RevokeAgent revokes an agent: its sessions stop working at once (admin).
func (c *Client) RevokeAgent(ctx context.Context, id string) (*AgentInfo, error) {
	var a AgentInfo
	return &a, c.call(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(id)+"/revoke", nil, &a)
}

// SetAgentScope replaces an agent's declared scope (admin).
func (c *Client) SetAgentScope(ctx context.Context, id string, scope json.RawMessage) (*AgentInfo, error) {
	var a AgentInfo
	return &a, c.call(ctx, http.MethodPut, "/v1/agents/"+url.PathEscape(id)+"/scope", scope, &a)
}

// Agent returns one agent (admin, approver or auditor).
func (c *Client) Agent(ctx context.Context, id string) (*AgentInfo, error) {
	var a AgentInfo
	return &a, c.call(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(id), nil, &a)
}

// Agents lists the agents (admin, approver or auditor).
func (c *Client) Agents(ctx context.Context) ([]AgentInfo, error) {
	var out struct{ Agents []AgentInfo }
	return out.Agents, c.call(ctx, http.MethodGet, "/v1/agents", nil, &out)
}

// CreateToken creates an operator token (admin); the returned credential
// is shown only this once.
func (c *Client) CreateToken(ctx context.Context, name, role string) (*TokenInfo, string, error) {
	var out struct {
		TokenInfo
		Token string `json:"token"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/tokens", map[string]string{"name": name, "role": role}, &out); err != nil {
		return nil, "", err
	}
	return &out.TokenInfo, out.Token, nil
}

// Tokens lists the operator tokens (admin).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out struct{ Tokens []TokenInfo }
	return out.Tokens, c.call(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// RevokeToken revokes an operator token by id (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) (*TokenInfo, error) {
	var t TokenInfo
	return &t, c.call(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, &t)
}

// SessionState describes a session as the server lists it.
type SessionState struct {
	ID      string    `json:"id"`
	Agent   string    `json:"agent"`
	Task    string    `json:"task"`
	Opened  time.Time `json:"opened"`
	Expires time.Time `json:"expires"`
	Closed  bool      `json:"closed,omitempty"`
}

// Sessions lists the sessions of agent (all agents if empty) the server
// remembers (admin or auditor).
func (c *Client) Sessions(ctx context.Context, agent string) ([]SessionState, error) {
	var out struct{ Sessions []SessionState }
	return out.Sessions, c.call(ctx, http.MethodGet, "/v1/sessions?agent="+url.QueryEscape(agent), nil, &out)
}

// EndSession ends one session by id (admin), without revoking its agent.
func (c *Client) EndSession(ctx context.Context, id string) (*SessionState, error) {
	var s SessionState
	return &s, c.call(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, &s)
}

// CurrentSession is what a session credential stands for, as the server
// answers GET /v1/sessions/current.
type CurrentSession struct {
	Agent   string          `json:"agent"`
	Session string          `json:"session"`
	Task    string          `json:"task"`
	Expires time.Time       `json:"expires"`
	Scope   json.RawMessage `json:"scope"` // the agent's declared scope
}

// CurrentSession asks the server what the client's session credential
// stands for (the credential itself). A refused credential gives an
// *HTTPError with status 401, and the server records the attempt.
func (c *Client) CurrentSession(ctx context.Context) (*CurrentSession, error) {
	var s CurrentSession
	return &s, c.call(ctx, http.MethodGet, "/v1/sessions/current", nil, &s)
}

// RecordGatewayConfig records a recording gateway's configuration in the
// log (POST /v1/gateway/config, an operator token of role gateway) and
// returns the entry's receipt.
func (c *Client) RecordGatewayConfig(ctx context.Context, cfg agentlog.GatewayConfig) (Appended, error) {
	var a Appended
	return a, c.call(ctx, http.MethodPost, "/v1/gateway/config", cfg, &a)
}

// Gateways reads each recording gateway's last recorded configuration
// (GET /v1/gateways, an auditor or admin token), derived from the log's
// gateway.configured entries.
func (c *Client) Gateways(ctx context.Context) (*agentlog.Gateways, error) {
	var g agentlog.Gateways
	return &g, c.call(ctx, http.MethodGet, "/v1/gateways", nil, &g)
}
