package agentlog

import "time"

// Change is a configuration change of an agent (docs/changes.md) as the
// log's /v1/changes routes answer it: proposed, approved, rejected or
// superseded, with who proposed and decided it, when, and the indexes of
// the change entries that record each step.
type Change struct {
	ID          string `json:"id"`
	Agent       string `json:"agent"`
	Config      string `json:"config"`             // digest of the proposed configuration
	Previous    string `json:"previous,omitempty"` // the agent's approved configuration when proposed
	Policy      string `json:"config_policy,omitempty"`
	State       string `json:"state"`
	Description string `json:"description"`
	Testing     string `json:"testing"`
	Rollback    string `json:"rollback"`
	Risk        string `json:"risk,omitempty"`
	Ticket      string `json:"ticket,omitempty"`
	// RollbackOf is the earlier approved change whose configuration this
	// one restores.
	RollbackOf string `json:"rollback_of,omitempty"`
	// Initial marks the configuration given when the agent was registered.
	Initial       bool       `json:"initial,omitempty"`
	ProposedBy    string     `json:"proposed_by"`
	ProposerRole  string     `json:"proposer_role"`
	Proposed      time.Time  `json:"proposed"`
	ProposedIndex uint64     `json:"proposed_index"`
	DecidedBy     string     `json:"decided_by,omitempty"`
	DeciderRole   string     `json:"decider_role,omitempty"`
	Decided       *time.Time `json:"decided,omitempty"`
	DecidedIndex  *uint64    `json:"decided_index,omitempty"`
	Comment       string     `json:"comment,omitempty"`
	SupersededBy  string     `json:"superseded_by,omitempty"`
}
