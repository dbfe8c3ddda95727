package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/config"
)

// LoadConfig reads an agent configuration file (docs/changes.md),
// replacing prompts given by file with their SHA-256, and returns its
// canonical form (RFC 8785) and digest ("sha256:<hex>"), the value
// sessions declare in AgentConfig.Config.
func LoadConfig(path string) (canonical []byte, digest string, err error) {
	d, err := config.Load(path)
	if err != nil {
		return nil, "", err
	}
	return d.Canonical, d.Digest, nil
}

func validDigest(s string) bool { return config.ValidDigest(s) }

// ChangeProposal is what proposing a configuration change takes.
type ChangeProposal struct {
	Agent        string          `json:"agent"`
	Config       json.RawMessage `json:"config"` // the configuration document
	ConfigPolicy string          `json:"config_policy,omitempty"`
	Description  string          `json:"description"`
	Testing      string          `json:"testing"`
	Rollback     string          `json:"rollback"`
	Risk         string          `json:"risk,omitempty"`
	Ticket       string          `json:"ticket,omitempty"`
}

// ChangeInfo is a change as the server describes it (docs/changes.md).
type ChangeInfo = agentlog.Change

// ChangeDetail is a change with its configuration document and its
// differences from the configuration it replaces, field by field.
type ChangeDetail struct {
	ChangeInfo
	Document json.RawMessage `json:"document"`
	Diff     []ConfigChange  `json:"diff"`
}

// ConfigChange is one differing value: its JSON path and its canonical
// JSON before and after ("" when absent).
type ConfigChange struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// ProposeChange proposes a configuration change (admin or approver).
func (c *Client) ProposeChange(ctx context.Context, p ChangeProposal) (*ChangeInfo, error) {
	var out ChangeInfo
	return &out, c.call(ctx, http.MethodPost, "/v1/changes", p, &out)
}

// ApproveChange approves a change; the approver must not be its proposer
// (admin or approver).
func (c *Client) ApproveChange(ctx context.Context, id, comment string) (*ChangeInfo, error) {
	var out ChangeInfo
	return &out, c.call(ctx, http.MethodPost, "/v1/changes/"+url.PathEscape(id)+"/approve", map[string]string{"comment": comment}, &out)
}

// RejectChange rejects (or, for its proposer, withdraws) a change.
func (c *Client) RejectChange(ctx context.Context, id, comment string) (*ChangeInfo, error) {
	var out ChangeInfo
	return &out, c.call(ctx, http.MethodPost, "/v1/changes/"+url.PathEscape(id)+"/reject", map[string]string{"comment": comment}, &out)
}

// Changes lists changes, of one agent and in one state when not empty.
func (c *Client) Changes(ctx context.Context, agent, state string) ([]ChangeInfo, error) {
	q := url.Values{}
	if agent != "" {
		q.Set("agent", agent)
	}
	if state != "" {
		q.Set("state", state)
	}
	var out struct{ Changes []ChangeInfo }
	return out.Changes, c.call(ctx, http.MethodGet, "/v1/changes?"+q.Encode(), nil, &out)
}

// Change returns one change with its document and diff.
func (c *Client) Change(ctx context.Context, id string) (*ChangeDetail, error) {
	var out ChangeDetail
	return &out, c.call(ctx, http.MethodGet, "/v1/changes/"+url.PathEscape(id), nil, &out)
}

// ChangeAttestation returns the in-toto Statement v1 of an approved
// change, as JSON.
func (c *Client) ChangeAttestation(ctx context.Context, id string) (json.RawMessage, error) {
	b, err := c.do(ctx, http.MethodGet, "/v1/changes/"+url.PathEscape(id)+"/attestation", nil)
	return b, err
}

// ChangesReport returns the change-management report of [from, to) as
// JSON (GET /v1/changes/report; auditor or admin). Zero times are
// unbounded.
func (c *Client) ChangesReport(ctx context.Context, from, to time.Time) (json.RawMessage, error) {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339Nano))
	}
	return c.do(ctx, http.MethodGet, "/v1/changes/report?"+q.Encode(), nil)
}
