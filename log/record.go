package log

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxLeafSize is the largest leaf the log stores, in bytes. It is the limit
// of the 2-byte length prefix of a C2SP entry bundle.
const MaxLeafSize = 65535

// MaxEntriesPerRequest caps how many records one append request may carry.
const MaxEntriesPerRequest = 10000

// MaxRequestBytes caps the body of one append request.
const MaxRequestBytes = 16 << 20

// Field limits, in bytes. They keep a single leaf readable and bound the
// cost of indexing it.
const (
	maxNameLen = 256  // action, tool, outcome
	maxResLen  = 2048 // resource
)

// ErrInvalid is wrapped by every validation error: the request is bad and
// nothing was written.
var ErrInvalid = errors.New("invalid record")

// Kinds of leaves. Agents append KindAction; the others are written by the
// log itself.
const (
	KindAction  = "action"
	KindAgent   = "agent"
	KindSession = "session"
	KindDenied  = "denied"
)

// Record is one agent action as submitted by a client. Field names follow
// the OpenTelemetry GenAI conventions where one fits (see docs/api.md).
type Record struct {
	// Action is what the agent did, e.g. "db.query" (required).
	Action string `json:"action"`
	// Tool is the tool the agent used (gen_ai.tool.name).
	Tool string `json:"tool,omitempty"`
	// Resource is what the action touched, e.g. "customers/42".
	Resource string `json:"resource,omitempty"`
	// Outcome is the result, e.g. "success", "error", "denied".
	Outcome string `json:"outcome,omitempty"`
	// Attributes is a JSON object of further detail.
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// AppendRequest is the body of POST /v1/entries.
type AppendRequest struct {
	Entries []Record `json:"entries"`
}

// Principal names who appended an entry. Until agent identities exist the
// bootstrap admin is the only writer.
type Principal struct {
	ID   string // stable identifier, e.g. "admin"
	Role string // admin, auditor, approver, agent
}

// ParseAppendRequest reads and validates an append request body. Every
// record must be valid for the request to be accepted; the error names the
// first bad record.
func ParseAppendRequest(body []byte) ([]Record, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: request body is not valid UTF-8", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req AppendRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: request body is not a valid append request: %s", ErrInvalid, jsonErrText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if len(req.Entries) == 0 {
		return nil, fmt.Errorf("%w: \"entries\" must hold at least one record", ErrInvalid)
	}
	if len(req.Entries) > MaxEntriesPerRequest {
		return nil, fmt.Errorf("%w: %d records in one request, at most %d allowed", ErrInvalid, len(req.Entries), MaxEntriesPerRequest)
	}
	for i := range req.Entries {
		if err := req.Entries[i].validate(); err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	return req.Entries, nil
}

func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type.String(), te.Value)
	}
	return err.Error()
}

func (r *Record) validate() error {
	if strings.TrimSpace(r.Action) == "" {
		return fmt.Errorf("%w: \"action\" is required and must not be blank", ErrInvalid)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"action", r.Action, maxNameLen}, {"tool", r.Tool, maxNameLen}, {"outcome", r.Outcome, maxNameLen}, {"resource", r.Resource, maxResLen}} {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrInvalid, f.name, len(f.v), f.max)
		}
		if strings.ContainsFunc(f.v, isControl) {
			return fmt.Errorf("%w: %q contains a control character", ErrInvalid, f.name)
		}
	}
	if len(r.Attributes) > 0 {
		trimmed := bytes.TrimSpace(r.Attributes)
		if bytes.Equal(trimmed, []byte("null")) {
			r.Attributes = nil
		} else {
			if len(trimmed) == 0 || trimmed[0] != '{' {
				return fmt.Errorf("%w: \"attributes\" must be a JSON object", ErrInvalid)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, trimmed); err != nil {
				return fmt.Errorf("%w: \"attributes\": %s", ErrInvalid, err)
			}
			r.Attributes = buf.Bytes()
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// leafTail is the part of a leaf after its time: the sequencer only has to
// prepend the time, so JSON encoding happens on the request goroutines and
// not on the append hot path.
type leafTail []byte

// leafBody is the JSON shape of a leaf without its time. The field order is
// the order of the leaf's keys.
type leafBody struct {
	Kind       string          `json:"kind"`
	Principal  string          `json:"principal,omitempty"`
	Role       string          `json:"role,omitempty"`
	Action     string          `json:"action,omitempty"`
	Tool       string          `json:"tool,omitempty"`
	Resource   string          `json:"resource,omitempty"`
	Outcome    string          `json:"outcome,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// timeLayout is the leaf time format: RFC 3339 in UTC with fixed-width
// nanoseconds, so leaves sort and compare as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// leafTimeLen is the length of a formatted leaf time.
const leafTimeLen = len(timeLayout)

// leafPrefixLen is the length of `{"time":"<time>",` that the sequencer
// prepends to a leafTail.
const leafPrefixLen = len(`{"time":"`) + leafTimeLen + len(`",`)

func encodeTail(kind string, p Principal, r *Record) (leafTail, error) {
	b, err := json.Marshal(leafBody{
		Kind:       kind,
		Principal:  p.ID,
		Role:       p.Role,
		Action:     r.Action,
		Tool:       r.Tool,
		Resource:   r.Resource,
		Outcome:    r.Outcome,
		Attributes: r.Attributes,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	// Drop the opening brace: the sequencer writes `{"time":"...",`.
	tail := b[1:]
	if leafPrefixLen+len(tail) > MaxLeafSize {
		return nil, fmt.Errorf("%w: the record's leaf would be %d bytes, at most %d allowed", ErrInvalid, leafPrefixLen+len(tail), MaxLeafSize)
	}
	return tail, nil
}

// appendLeaf writes the leaf for tail at time t into dst.
func appendLeaf(dst []byte, t time.Time, tail leafTail) []byte {
	dst = append(dst, `{"time":"`...)
	dst = t.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `",`...)
	return append(dst, tail...)
}

// Leaf is a stored entry decoded for readers.
type Leaf struct {
	Time       time.Time       `json:"time"`
	Kind       string          `json:"kind"`
	Principal  string          `json:"principal,omitempty"`
	Role       string          `json:"role,omitempty"`
	Action     string          `json:"action,omitempty"`
	Tool       string          `json:"tool,omitempty"`
	Resource   string          `json:"resource,omitempty"`
	Outcome    string          `json:"outcome,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// ParseLeaf decodes a stored leaf.
func ParseLeaf(b []byte) (*Leaf, error) {
	var l Leaf
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("leaf is not valid JSON: %w", err)
	}
	if l.Time.IsZero() || l.Kind == "" {
		return nil, errors.New("leaf lacks a time or a kind")
	}
	return &l, nil
}

// leafTime reads the time of a leaf written by appendLeaf without decoding
// the whole leaf.
func leafTime(b []byte) (time.Time, error) {
	const p = `{"time":"`
	if len(b) < len(p)+leafTimeLen || string(b[:len(p)]) != p {
		return time.Time{}, errors.New("leaf does not start with its time")
	}
	return time.Parse(timeLayout, string(b[len(p):len(p)+leafTimeLen]))
}
