package agentlog

import "time"

// ControlsFormat names the layout of the control-status document.
const ControlsFormat = "agentlog-controls/v1"

// Control ids, in the order of [Controls.Controls]. They are stable: GRC
// tools key their tests on them (docs/siem.md).
const (
	ControlCheckpointVerified  = "checkpoint_verified"     // CC7.3: the published checkpoint verifies and is being renewed
	ControlCheckpointWitnessed = "checkpoint_witnessed"    // CC7.3: it carries the witness policy's quorum of cosignatures
	ControlConsistencyChecked  = "consistency_checked"     // CC7.3: every signing checked consistency with the last checkpoint
	ControlNTPSynchronized     = "ntp_synchronized"        // CC7.3: the log's clock is disciplined by NTP
	ControlAgentsOwnedScoped   = "agents_owned_scoped"     // CC6.2: every live agent has an owner and a declared scope
	ControlApprovalsCurrent    = "approvals_current"       // CC6.2: no active agent's approval is older than the review period
	ControlConfigsApproved     = "configurations_approved" // CC8.1: no action in the window ran under an unapproved configuration
	ControlAlertsOpen          = "alerts_open"             // CC7.2: no health episode is open and no alert was raised in the window
)

// Controls is the control-status document of GET /v1/controls and
// agentlog controls: the state of each criterion now, for a GRC tool to
// ingest daily (docs/siem.md, "continuous control evidence").
//
// Controls is flat on purpose: each [Control] has the same fields of
// plain types (string, boolean, integer), as custom resources of GRC tools
// require; the sections after it hold the details behind each one.
type Controls struct {
	Format    string    `json:"format"` // ControlsFormat
	Origin    string    `json:"origin"`
	Generated time.Time `json:"generated"`
	// The window is [WindowFrom, Generated): activity (actions, alerts)
	// is judged over it.
	WindowSeconds int64     `json:"window_seconds"`
	WindowFrom    time.Time `json:"window_from"`
	TreeSize      uint64    `json:"tree_size"`
	// Passing is true when every control passes.
	Passing  bool      `json:"passing"`
	Controls []Control `json:"controls"`

	Checkpoint ControlsCheckpoint `json:"checkpoint"`
	Clock      ControlsClock      `json:"clock"`
	Agents     []ControlsAgent    `json:"agents"`
	Configs    ControlsConfigs    `json:"configurations"`
	Alerts     ControlsAlerts     `json:"alerts"`
}

// Control is the state of one control.
type Control struct {
	ID        string `json:"id"`        // one of the Control* constants
	Criterion string `json:"criterion"` // SOC 2 criterion, "CC7.3"
	Title     string `json:"title"`
	Passing   bool   `json:"passing"`
	Status    string `json:"status"`   // "pass" or "fail"
	Findings  int    `json:"findings"` // problems found (0 when passing, except a control failing as a whole)
	Detail    string `json:"detail"`   // one sentence: what was checked, or what is wrong
}

// ControlsCheckpoint is the log's published checkpoint as the server
// checked it.
type ControlsCheckpoint struct {
	Published  bool      `json:"published"` // a checkpoint is served at /checkpoint
	Verified   bool      `json:"verified"`  // its log signature and timestamp verify with the log's keys
	Size       uint64    `json:"size"`
	SignedAt   time.Time `json:"signed_at,omitzero"`
	AgeSeconds int64     `json:"age_seconds"`
	// Cosigners are the names of the witnesses of the policy whose
	// cosignature on it verifies; QuorumMet whether they meet its quorum
	// (false without a witness policy).
	Cosigners  []string  `json:"cosigners"`
	Witnesses  int       `json:"witnesses"` // witnesses in the policy
	QuorumMet  bool      `json:"quorum_met"`
	Stale      bool      `json:"stale"`    // the tree grew and the signing loop has not completed a round in time
	Refusing   bool      `json:"refusing"` // the last signing was refused (inconsistent tree, NTP required, superseded)
	LastError  string    `json:"last_error,omitempty"`
	CheckedAt  time.Time `json:"consistency_checked_at,omitzero"` // last signing round that checked the tree against the last checkpoint
	Signatures uint64    `json:"signed_since_start"`
}

// ControlsClock is the state of the log's NTP-disciplined clock.
type ControlsClock struct {
	Configured bool      `json:"configured"`
	Synced     bool      `json:"synced"`
	Degraded   bool      `json:"degraded"`
	OffsetNS   int64     `json:"offset_ns"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	Servers    int       `json:"servers"`
	Answered   int       `json:"answered"`
	LastError  string    `json:"last_error,omitempty"`
}

// ControlsAgent is a live (not revoked) agent and what is wrong with it.
type ControlsAgent struct {
	ID     string `json:"id"`
	Owner  string `json:"owner"`
	Status string `json:"status"`
	Scoped bool   `json:"scoped"` // the scope names actions, tools or resources
	// Approved is when the agent was approved; ApprovalAgeSeconds its age.
	Approved           *time.Time `json:"approved,omitempty"`
	ApprovalAgeSeconds int64      `json:"approval_age_seconds,omitempty"`
	Active             bool       `json:"active"` // acted in the window or holds an open session
	Actions            int        `json:"actions"`
	OpenSessions       int        `json:"open_sessions"`
	Findings           []string   `json:"findings"`
}

// ControlsConfigs is the configuration state of the window's actions.
type ControlsConfigs struct {
	Actions    int `json:"actions"`
	Unapproved int `json:"unapproved_actions"` // in sessions opened under another configuration than the agent's approved one
	Undeclared int `json:"undeclared_actions"` // in sessions that declared none, of agents that have one
	// Listed are the first of those actions (Omitted counts the rest).
	Listed  []ControlsAction `json:"listed"`
	Omitted int              `json:"omitted,omitempty"`
}

// ControlsAction is an action under an unapproved or undeclared
// configuration.
type ControlsAction struct {
	Index  uint64    `json:"index"`
	Time   time.Time `json:"time"`
	Agent  string    `json:"agent"`
	Config string    `json:"config,omitempty"`
	Status string    `json:"config_status"` // "unapproved" or "undeclared"
}

// ControlsAlerts are the alerts open now: the log's health episodes
// raised and not cleared, and every alert raised in the window, by rule.
type ControlsAlerts struct {
	Open   int              `json:"open"`
	ByRule []ControlsRule   `json:"by_rule"`
	Health []ControlsHealth `json:"health_episodes"`
}

// ControlsRule counts a rule's alerts raised in the window.
type ControlsRule struct {
	Rule  string `json:"rule"`
	Count int    `json:"count"`
	Last  uint64 `json:"last_index"` // index of the newest alert entry
}

// ControlsHealth is an open health episode.
type ControlsHealth struct {
	Rule   string    `json:"rule"`
	Index  uint64    `json:"index"` // of the entry that raised it
	Raised time.Time `json:"raised"`
}
