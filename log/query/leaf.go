package query

import (
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
)

// DecodeLeaf decodes a leaf strictly (valid UTF-8, exact member names, no
// duplicates) for the filters and indexes; the leaf format is package
// agentlog's.
func DecodeLeaf(leaf []byte) (*agentlog.Leaf, error) {
	var m agentlog.Leaf
	if err := jsonv2.Unmarshal(leaf, &m); err != nil {
		return nil, fmt.Errorf("the leaf cannot be decoded: %w", err)
	}
	if m.Time.IsZero() {
		return nil, errors.New("the leaf has no time")
	}
	return &m, nil
}

// MatchLeaf reports whether a leaf satisfies f.
func (f *Filter) MatchLeaf(leaf []byte) (bool, error) {
	m, err := DecodeLeaf(leaf)
	if err != nil {
		return false, err
	}
	return f.MatchEntry(m.Time, m.Field), nil
}
