// Package anomaly raises alerts on agent actions that depart from what the
// agent declared or from normal activity (SOC 2 CC7.2). It follows the log
// after entries are committed, so appends never wait for it, and records
// each alert in the log itself as a leaf of kind "alert", in the same
// transaction as its own progress: an alert is raised exactly once, even
// across crashes. Alerts are then pushed to webhooks, at least once, each
// signed with HMAC-SHA256 (docs/anomaly.md).
//
// The rules:
//   - scope: the action, tool or resource is outside the agent's declared
//     scope (identity.Scope patterns);
//   - hours: the action is outside the agent's declared hours and weekdays;
//   - rate: the agent exceeds its declared rate in a window;
//   - off_hours: the action is outside the operator's business hours, for
//     every agent;
//   - first_access: the agent's first action on a resource;
//   - rate_spike: a minute far above the agent's own baseline;
//   - unapproved_config: an action in a session opened under a
//     configuration that was not the agent's approved one;
//   - undeclared_config: a session that declared no configuration though
//     its agent has an approved one (once, on its session.opened entry);
//   - sequence_gap: an action's seq skips or repeats its session's numbers;
//   - denied_burst: more than N refused requests from one agent or address
//     in a window.
package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/internal/secretfile"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = agentlog.Invalid("invalid anomaly configuration")

// Config is the anomaly configuration file (JSON).
type Config struct {
	Rules    Rules     `json:"rules"`
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// Rules says which rules run.
type Rules struct {
	Scope       bool `json:"scope"`
	Hours       bool `json:"hours"`
	Rate        bool `json:"rate"`
	FirstAccess bool `json:"first_access"`
	// Config raises unapproved_config for every action of a session
	// opened under a configuration that was not its agent's approved one,
	// and undeclared_config for a session that declared none though its
	// agent has one (docs/changes.md).
	Config bool `json:"config"`
	// SequenceGap raises sequence_gap when an action's seq skips or
	// repeats the numbers of its session.
	SequenceGap bool `json:"sequence_gap"`
	// DeniedBurst raises denied_burst when one agent or address is refused
	// more than Max times in a window.
	DeniedBurst *DeniedBurst `json:"denied_burst,omitempty"`
	OffHours    *OffHours    `json:"off_hours,omitempty"`
	RateSpike   *RateSpike   `json:"rate_spike,omitempty"`
}

// RateSpike flags a minute in which an agent acts far more than its own
// baseline: more than Factor times its average actions per minute
// (an exponentially weighted average over about the last hour, idle
// minutes included), and more than MinActions. An agent is judged only
// once WarmupMinutes have passed since its first action.
type RateSpike struct {
	Factor        float64 `json:"factor"`                   // default 5
	MinActions    int     `json:"min_actions"`              // default 60
	WarmupMinutes int     `json:"warmup_minutes,omitempty"` // default 30
}

// DeniedBurst flags more than Max refused requests (an agent's denied
// entries, and the counts of denied.summary entries) from one agent, or
// from one address when no identity was proven, in a window of
// WindowSeconds aligned to the clock; one alert per window.
type DeniedBurst struct {
	Max           int `json:"max"`                      // default 20
	WindowSeconds int `json:"window_seconds,omitempty"` // default 60
}

// OffHours is the operator's business hours: actions outside them raise
// an off_hours alert for any agent.
type OffHours struct {
	Window   string `json:"window"`             // "09:00-17:00"
	TZ       string `json:"tz,omitempty"`       // IANA zone, default UTC
	Weekdays string `json:"weekdays,omitempty"` // default mon-fri
}

// Webhook is an endpoint alerts are POSTed to.
type Webhook struct {
	URL string `json:"url"`
	// SecretFile holds the HMAC-SHA256 key that signs each delivery
	// (mode 0600); empty means unsigned deliveries.
	SecretFile string `json:"secret_file,omitempty"`
}

// DefaultConfig is what the server runs without a configuration file: the
// rules that compare actions with the agents' declared scopes.
func DefaultConfig() Config {
	return Config{Rules: Rules{Scope: true, Hours: true, Rate: true, Config: true, SequenceGap: true, DeniedBurst: &DeniedBurst{Max: 20, WindowSeconds: 60}}}
}

// maxConfigBytes caps a configuration file.
const maxConfigBytes = 64 << 10

// ParseConfig reads a configuration file's contents strictly: unknown keys,
// duplicate keys and invalid values are errors.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if len(b) > maxConfigBytes {
		return c, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(b), maxConfigBytes)
	}
	if err := jsonv2.Unmarshal(b, &c, jsonv2.RejectUnknownMembers(true)); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the configuration's values (not the secret files).
func (c Config) Validate() error {
	if oh := c.Rules.OffHours; oh != nil {
		if _, err := query.ParseHours(oh.Window, oh.TZ, oh.Weekdays); err != nil {
			return fmt.Errorf("%w: off_hours: %v", ErrInvalid, err)
		}
	}
	if rs := c.Rules.RateSpike; rs != nil {
		if rs.Factor != 0 && (rs.Factor < 1 || rs.Factor > 1e6) {
			return fmt.Errorf("%w: rate_spike factor %v: want 1 to 1e6", ErrInvalid, rs.Factor)
		}
		if rs.MinActions < 0 || rs.WarmupMinutes < 0 || rs.WarmupMinutes > 7*24*60 {
			return fmt.Errorf("%w: rate_spike min_actions and warmup_minutes must be positive (warmup at most a week)", ErrInvalid)
		}
	}
	if db := c.Rules.DeniedBurst; db != nil && (db.Max < 0 || db.WindowSeconds < 0 || db.WindowSeconds > 86400) {
		return fmt.Errorf("%w: denied_burst max and window_seconds must be positive (the window at most a day)", ErrInvalid)
	}
	if len(c.Webhooks) > 16 {
		return fmt.Errorf("%w: %d webhooks, at most 16", ErrInvalid, len(c.Webhooks))
	}
	seen := map[string]bool{}
	for _, h := range c.Webhooks {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: webhook url %q: want an http or https URL", ErrInvalid, h.URL)
		}
		if seen[h.URL] {
			return fmt.Errorf("%w: webhook url %q given twice", ErrInvalid, h.URL)
		}
		seen[h.URL] = true
	}
	return nil
}

// ReadConfigFile reads and checks a configuration file, including that
// every webhook secret file can be read, so that a server can refuse a bad
// one before it writes anything.
func ReadConfigFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading the anomaly configuration: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, h := range c.Webhooks {
		if h.SecretFile != "" {
			if _, err := readSecret(h.SecretFile); err != nil {
				return Config{}, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return c, nil
}

// readSecret reads a webhook secret file, refusing one others can read
// or one too short to be a key.
func readSecret(path string) ([]byte, error) {
	s, err := secretfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	if len(s) < 16 {
		return nil, fmt.Errorf("webhook secret file %s holds %d characters; use at least 16", path, len(s))
	}
	return []byte(s), nil
}

// configKey holds the last alerting configuration recorded in the log.
var configKey = []byte("a/config")

// RecordConfig records the alerting configuration the server runs with in
// the log (kind "system", action "anomaly.configured") whenever it differs
// from the last one recorded, so that an auditor sees when rules or
// webhooks were changed or alerting was turned off. A log with no such
// record has always run [DefaultConfig]. c nil means off. Webhook secrets
// are never recorded, only their URLs.
func RecordConfig(ctx context.Context, l *alog.Log, c *Config) (bool, error) {
	b, err := configRecord(c)
	if err != nil {
		return false, err
	}
	def := DefaultConfig()
	last, err := configRecord(&def)
	if err != nil {
		return false, err
	}
	changed, err := l.RecordSetting(ctx, Principal, configKey, "anomaly.configured", b, last)
	if err != nil {
		return false, fmt.Errorf("the alerting configuration: %w", err)
	}
	return changed, nil
}

// configRecord is the recorded form of a configuration (nil: off).
func configRecord(c *Config) ([]byte, error) {
	type hookRec struct {
		URL    string `json:"url"`
		Signed bool   `json:"signed"`
	}
	rec := struct {
		Enabled  bool      `json:"enabled"`
		Rules    *Rules    `json:"rules,omitempty"`
		Webhooks []hookRec `json:"webhooks,omitempty"`
	}{Enabled: c != nil}
	if c != nil {
		rec.Rules = &c.Rules
		for _, h := range c.Webhooks {
			rec.Webhooks = append(rec.Webhooks, hookRec{URL: h.URL, Signed: h.SecretFile != ""})
		}
	}
	return json.Marshal(rec)
}
