package query

import (
	"errors"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// LeafFields are the fields of a leaf that filters and indexes read. The
// leaf format is package log's (docs/api.md).
type LeafFields struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Agent    string    `json:"agent"`
	Session  string    `json:"session"`
	Task     string    `json:"task"`
	Action   string    `json:"action"`
	Tool     string    `json:"tool"`
	Resource string    `json:"resource"`
	Outcome  string    `json:"outcome"`
}

// DecodeLeaf reads the filterable fields of a leaf.
func DecodeLeaf(leaf []byte) (*LeafFields, error) {
	var m LeafFields
	if err := jsonv2.Unmarshal(leaf, &m); err != nil {
		return nil, fmt.Errorf("the leaf cannot be decoded: %w", err)
	}
	if m.Time.IsZero() {
		return nil, errors.New("the leaf has no time")
	}
	return &m, nil
}

// Get returns the value of a field of [Fields] ("" if absent or unknown).
func (m *LeafFields) Get(field string) string {
	switch field {
	case "agent":
		return m.Agent
	case "action":
		return m.Action
	case "tool":
		return m.Tool
	case "resource":
		return m.Resource
	case "outcome":
		return m.Outcome
	case "kind":
		return m.Kind
	case "session":
		return m.Session
	case "task":
		return m.Task
	}
	return ""
}

// MatchLeaf reports whether a leaf satisfies f.
func (f *Filter) MatchLeaf(leaf []byte) (bool, error) {
	m, err := DecodeLeaf(leaf)
	if err != nil {
		return false, err
	}
	return f.MatchEntry(m.Time, m.Get), nil
}
