package log

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	KindToken   = "token"
	KindAlert   = "alert"  // raised by the anomaly rules (package anomaly)
	KindSystem  = "system" // the log's own configuration changes
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
	// Seq is the record's per-session sequence number as the agent
	// numbered it (1 <= Seq); 0 means none. Gaps reveal dropped records.
	Seq uint64 `json:"seq,omitempty"`
	// Sig is the agent's Ed25519 signature (64 bytes) over the record's
	// signed bytes (docs/identity.md); nil means none.
	Sig []byte `json:"sig,omitempty"`
}

// Principal names who appended an entry and on whose behalf. The log
// writes these fields into the leaf; they never come from a request body.
type Principal struct {
	ID   string // who authenticated: an operator token's name or an agent id
	Role string // admin, auditor, approver, agent
	// Agent is the agent the entry is by (an agent's action) or about (a
	// lifecycle event written by an operator); empty otherwise.
	Agent string
	// Session and Task are the session credential's id and task, for
	// entries written with a session.
	Session string
	Task    string
}

// wireRequest is the append body as decoded; attributes stay raw JSON.
type wireRequest struct {
	Entries []wireRecord `json:"entries"`
}

type wireRecord struct {
	Action     string         `json:"action"`
	Tool       string         `json:"tool,omitempty"`
	Resource   string         `json:"resource,omitempty"`
	Outcome    string         `json:"outcome,omitempty"`
	Attributes jsontext.Value `json:"attributes,omitempty"`
	Seq        uint64         `json:"seq,omitempty"`
	Sig        string         `json:"sig,omitempty"`
}

// ParseAppendRequest reads and validates an append request body. The JSON
// must be strict: valid UTF-8, known member names with their exact case,
// no duplicate names, nothing after the object. Every record must be valid
// for the request to be accepted; the error names the first bad record.
func ParseAppendRequest(body []byte) ([]Record, error) {
	var req wireRequest
	if err := jsonv2.Unmarshal(body, &req, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: request body is not a valid append request: %s", ErrInvalid, jsonErrText(err))
	}
	if len(req.Entries) == 0 {
		return nil, fmt.Errorf("%w: \"entries\" must hold at least one record", ErrInvalid)
	}
	if len(req.Entries) > MaxEntriesPerRequest {
		return nil, fmt.Errorf("%w: %d records in one request, at most %d allowed", ErrInvalid, len(req.Entries), MaxEntriesPerRequest)
	}
	recs := make([]Record, len(req.Entries))
	for i, w := range req.Entries {
		recs[i] = Record{Action: w.Action, Tool: w.Tool, Resource: w.Resource, Outcome: w.Outcome, Attributes: []byte(w.Attributes), Seq: w.Seq}
		if w.Sig != "" {
			sig, err := base64.StdEncoding.Strict().DecodeString(w.Sig)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return nil, fmt.Errorf("entries[%d]: %w: \"sig\" must be a %d-byte Ed25519 signature in standard base64", i, ErrInvalid, ed25519.SignatureSize)
			}
			recs[i].Sig = sig
		}
		if err := recs[i].validate(); err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	return recs, nil
}

// jsonErrText shortens the decoder's error to what a client needs.
func jsonErrText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
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
		v := jsontext.Value(r.Attributes)
		switch v.Kind() {
		case 'n':
			r.Attributes = nil
		case '{':
			if err := v.Compact(); err != nil {
				return fmt.Errorf("%w: \"attributes\": %s", ErrInvalid, err)
			}
			r.Attributes = []byte(v)
		default:
			return fmt.Errorf("%w: \"attributes\" must be a JSON object", ErrInvalid)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// leafTail is the part of a leaf after its time: the sequencer only has to
// prepend the time, so JSON encoding happens on the request goroutines and
// not on the append hot path.
type leafTail []byte

// timeLayout is the leaf time format: RFC 3339 in UTC with fixed-width
// nanoseconds, so leaves sort and compare as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// leafTimeLen is the length of a formatted leaf time.
const leafTimeLen = len(timeLayout)

// leafPrefixLen is the length of `{"time":"<time>",` that the sequencer
// prepends to a leafTail.
const leafPrefixLen = len(`{"time":"`) + leafTimeLen + len(`",`)

// encodeTail writes the leaf's keys after "time" in their fixed order:
// kind, principal, role, agent, session, task, seq, action, tool, resource,
// outcome, attributes, sig; empty ones are left out. The strings were
// validated (UTF-8, no control characters) and attributes compacted by
// ParseAppendRequest, or come from the log itself, so only quotes and
// backslashes need escaping; the result is what encoding/json would produce
// without its HTML escaping (a fuzz test checks the two agree).
func encodeTail(kind string, p Principal, r *Record) (leafTail, error) {
	n := 128 + len(kind) + len(p.ID) + len(p.Role) + len(p.Agent) + len(p.Session) + len(p.Task) +
		len(r.Action) + len(r.Tool) + len(r.Resource) + len(r.Outcome) + len(r.Attributes) + 2*len(r.Sig)
	b := make([]byte, 0, n)
	b = appendField(b, `"kind":`, kind)
	for _, f := range [...]struct{ key, v string }{
		{`,"principal":`, p.ID}, {`,"role":`, p.Role}, {`,"agent":`, p.Agent},
		{`,"session":`, p.Session}, {`,"task":`, p.Task},
	} {
		if f.v != "" {
			b = appendField(b, f.key, f.v)
		}
	}
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	for _, f := range [...]struct{ key, v string }{
		{`,"action":`, r.Action}, {`,"tool":`, r.Tool}, {`,"resource":`, r.Resource}, {`,"outcome":`, r.Outcome},
	} {
		if f.v != "" {
			b = appendField(b, f.key, f.v)
		}
	}
	if len(r.Attributes) > 0 {
		b = append(b, `,"attributes":`...)
		b = append(b, r.Attributes...)
	}
	if len(r.Sig) > 0 {
		b = append(b, `,"sig":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Sig)
		b = append(b, '"')
	}
	b = append(b, '}')
	if leafPrefixLen+len(b) > MaxLeafSize {
		return nil, fmt.Errorf("%w: the record's leaf would be %d bytes, at most %d allowed", ErrInvalid, leafPrefixLen+len(b), MaxLeafSize)
	}
	return b, nil
}

// appendField appends key and v as a JSON string. v must be valid UTF-8
// without control characters (ParseAppendRequest checks record fields;
// every other string comes from the log itself and is validated where it
// enters).
func appendField(b []byte, key, v string) []byte {
	b = append(b, key...)
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == 0xe2 && i+2 < len(v) && v[i+1] == 0x80 && (v[i+2] == 0xa8 || v[i+2] == 0xa9):
			// U+2028 and U+2029, escaped as encoding/json does so leaves
			// are safe to embed in JavaScript.
			b = append(b, `\u202`...)
			b = append(b, "89"[v[i+2]-0xa8])
			i += 2
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
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
	Agent      string          `json:"agent,omitempty"`
	Session    string          `json:"session,omitempty"`
	Task       string          `json:"task,omitempty"`
	Seq        uint64          `json:"seq,omitempty"`
	Action     string          `json:"action,omitempty"`
	Tool       string          `json:"tool,omitempty"`
	Resource   string          `json:"resource,omitempty"`
	Outcome    string          `json:"outcome,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Sig        []byte          `json:"sig,omitempty"` // base64 in the leaf
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
