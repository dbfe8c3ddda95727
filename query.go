package agentlog

import (
	"encoding/json"
	"fmt"
	"time"
)

// QueryFields are the leaf fields GET /v1/query matches, in the order of
// the query API's parameters. A value matches exactly, or as a prefix
// when it ends in '*'.
var QueryFields = []string{"agent", "action", "tool", "resource", "outcome", "kind", "session", "task", "config"}

// QueryParams are the parameters GET /v1/query accepts besides
// [QueryFields].
var QueryParams = []string{"from", "to", "outside_hours", "tz", "weekdays", "limit", "cursor", "proof"}

// QueryMatch is one NDJSON line of a query answer.
type QueryMatch struct {
	Index uint64          `json:"index"`
	Entry json.RawMessage `json:"entry"` // the leaf
	// InclusionProof proves the entry under the summary's checkpoint
	// (with proof=true).
	InclusionProof [][]byte `json:"inclusion_proof,omitempty"`
}

// QuerySummary is the last NDJSON line of a query answer, as
// {"summary": QuerySummary}. An answer without it is incomplete.
type QuerySummary struct {
	TreeSize uint64 `json:"tree_size"` // the answer is complete for this tree size
	// Start and End bound the index range the time filters select; every
	// match lies in it, and entries below Next were all examined.
	Start   uint64 `json:"start"`
	End     uint64 `json:"end"`
	Next    uint64 `json:"next"`
	Matches int    `json:"matches"`
	// Cursor continues the query where this page stopped; empty when the
	// range is exhausted.
	Cursor string `json:"cursor,omitempty"`
	// Checkpoint is the signed checkpoint of TreeSize the proofs refer to
	// (with proof=true).
	Checkpoint string `json:"checkpoint,omitempty"`
	Error      string `json:"error,omitempty"` // set if the stream broke off
}

// QuerySummaryLine is the form of the summary line.
type QuerySummaryLine struct {
	Summary QuerySummary `json:"summary"`
}

// LoadZone is time.LoadLocation for the IANA time zone names a client
// gives (a query's tz, an agent scope's, a report's), refusing "Local":
// the host's zone is no name, and whatever depended on it (the hours of an
// alert rule, a query's window, a report an auditor recomputes offline)
// would differ from one host to another.
func LoadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf("%q is the host's time zone, not an IANA time zone name", name)
	}
	return time.LoadLocation(name)
}
