package agentlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MaxLeafSize is the largest leaf, in bytes: the limit of the 2-byte length
// prefix of a c2sp.org/tlog-tiles entry bundle.
const MaxLeafSize = 65535

// Kinds of leaves. Agents append KindAction; the others are written by the
// log itself.
const (
	KindAction  = "action"
	KindAgent   = "agent"
	KindSession = "session"
	KindDenied  = "denied"
	KindToken   = "token"
	KindAlert   = "alert"  // raised by the anomaly rules
	KindSystem  = "system" // the log's own configuration changes
	KindChange  = "change" // configuration changes of agents (docs/changes.md)
)

// TimeLayout is the leaf time format: RFC 3339 in UTC with fixed-width
// nanoseconds, so leaf times sort and compare as text.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// leafHead starts every leaf.
const leafHead = `{"time":"`

// LeafHeadLen is the length of `{"time":"<time>",`, the part of a leaf
// before its kind.
const LeafHeadLen = len(leafHead) + len(TimeLayout) + len(`",`)

// Leaf is a leaf decoded. Its JSON form (encoding/json) is the leaf's, but
// only [Leaf.Append] writes the canonical bytes the log hashes.
type Leaf struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Principal and Role are who appended the entry: an operator token's
	// name or an agent id, and its role.
	Principal string `json:"principal,omitempty"`
	Role      string `json:"role,omitempty"`
	// TokenID is the id of the operator token the entry was written
	// under (the ID of its credential, which a name reused after the
	// token's revocation does not share); empty for agents, the log itself
	// and the bootstrap admin of DATA/admin.token.
	TokenID string `json:"token_id,omitempty"`
	// Agent is the agent the entry is by (an action) or about (a
	// lifecycle event); Session and Task are the session's id and task.
	Agent   string `json:"agent,omitempty"`
	Session string `json:"session,omitempty"`
	Task    string `json:"task,omitempty"`
	// Config is the digest ("sha256:<hex>" of the RFC 8785 form) of the
	// agent configuration the session declared, or a change entry is
	// about (docs/changes.md).
	Config string `json:"config,omitempty"`
	// Seq is the record's number in its session (1 <= Seq), 0 for none.
	Seq      uint64 `json:"seq,omitempty"`
	Action   string `json:"action,omitempty"`
	Tool     string `json:"tool,omitempty"`
	Resource string `json:"resource,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	// Attributes is a compact JSON object, nil for none.
	Attributes json.RawMessage `json:"attributes,omitempty"`
	// Sig is the agent's Ed25519 signature (64 bytes) over the record's
	// [RecordSignedBytes], base64 in the leaf; nil for none.
	Sig []byte `json:"sig,omitempty"`
}

// ParseLeaf decodes a leaf. It fails if b is not a JSON object with a time
// and a kind.
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

// Field returns the value of one of the leaf's string fields by its JSON
// name (the filterable fields of [QueryFields]); "" if absent or unknown.
func (l *Leaf) Field(name string) string {
	switch name {
	case "agent":
		return l.Agent
	case "action":
		return l.Action
	case "tool":
		return l.Tool
	case "resource":
		return l.Resource
	case "outcome":
		return l.Outcome
	case "kind":
		return l.Kind
	case "session":
		return l.Session
	case "task":
		return l.Task
	case "config":
		return l.Config
	}
	return ""
}

// Record returns the record the leaf was appended from: the fields its
// agent signed.
func (l *Leaf) Record() *Record {
	return &Record{Action: l.Action, Tool: l.Tool, Resource: l.Resource, Outcome: l.Outcome, Attributes: l.Attributes, Seq: l.Seq, Sig: l.Sig}
}

// Append appends the canonical encoding of l to dst: [AppendLeafHead] of
// its time, then [AppendLeafTail].
func (l *Leaf) Append(dst []byte) []byte {
	return AppendLeafTail(AppendLeafHead(dst, l.Time), l)
}

// AppendLeafHead appends `{"time":"<t>",` to dst, t in [TimeLayout].
func AppendLeafHead(dst []byte, t time.Time) []byte {
	dst = append(dst, leafHead...)
	dst = t.UTC().AppendFormat(dst, TimeLayout)
	return append(dst, `",`...)
}

// AppendLeafTail appends the part of l's leaf after its time to dst: its
// keys from kind on, in the leaf order, empty ones left out, and the
// closing brace. l.Time is not read, so a log can encode the tail before
// it knows the time. Strings must be valid UTF-8 without control
// characters and Attributes compact JSON (the log checks both where they
// enter); the result is then what encoding/json produces without its HTML
// escaping.
func AppendLeafTail(dst []byte, l *Leaf) []byte {
	dst = appendField(dst, `"kind":`, l.Kind)
	for _, f := range [...]struct{ key, v string }{
		{`,"principal":`, l.Principal}, {`,"role":`, l.Role}, {`,"token_id":`, l.TokenID}, {`,"agent":`, l.Agent},
		{`,"session":`, l.Session}, {`,"task":`, l.Task}, {`,"config":`, l.Config},
	} {
		if f.v != "" {
			dst = appendField(dst, f.key, f.v)
		}
	}
	if l.Seq != 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, l.Seq, 10)
	}
	for _, f := range [...]struct{ key, v string }{
		{`,"action":`, l.Action}, {`,"tool":`, l.Tool}, {`,"resource":`, l.Resource}, {`,"outcome":`, l.Outcome},
	} {
		if f.v != "" {
			dst = appendField(dst, f.key, f.v)
		}
	}
	if len(l.Attributes) > 0 {
		dst = append(dst, `,"attributes":`...)
		dst = append(dst, l.Attributes...)
	}
	if len(l.Sig) > 0 {
		dst = append(dst, `,"sig":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, l.Sig)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// LeafTailSize bounds the length of AppendLeafTail's output for l when
// its strings need no escaping (the usual case), for sizing a buffer: its
// values, plus leafTailKeys for the keys, quotes, seq and brace.
func LeafTailSize(l *Leaf) int {
	return leafTailKeys + len(l.Kind) + len(l.Principal) + len(l.Role) + len(l.TokenID) + len(l.Agent) + len(l.Session) + len(l.Task) + len(l.Config) +
		len(l.Action) + len(l.Tool) + len(l.Resource) + len(l.Outcome) + len(l.Attributes) + base64.StdEncoding.EncodedLen(len(l.Sig))
}

// leafTailKeys is the length of every key AppendLeafTail may write, with
// the strings' quotes, the longest seq and the closing brace (198 bytes),
// rounded up.
const leafTailKeys = 208

// appendField appends key and v as a JSON string.
func appendField(b []byte, key, v string) []byte {
	return AppendString(append(b, key...), v)
}

// AppendString appends s to dst as a JSON string the way leaves escape
// them: quotes, backslashes, and U+2028 and U+2029 (as encoding/json does,
// so leaves are safe to embed in JavaScript). s must be valid UTF-8
// without control characters. Escaping goes character by character, so
// it preserves prefixes: a leaf's escaped value starts with the escaped
// form of a prefix of the value.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			dst = append(dst, `\u202`...)
			dst = append(dst, "89"[s[i+2]-0xa8])
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// LeafStamp returns the bytes of a canonical leaf's time (nil if it does
// not start with one): leaves with equal stamps have equal times.
func LeafStamp(leaf []byte) []byte {
	if len(leaf) < len(leafHead)+len(TimeLayout) || string(leaf[:len(leafHead)]) != leafHead {
		return nil
	}
	return leaf[len(leafHead) : len(leafHead)+len(TimeLayout)]
}

// LeafTime reads the time of a canonical leaf without decoding the rest.
func LeafTime(leaf []byte) (time.Time, error) {
	s := LeafStamp(leaf)
	if s == nil {
		return time.Time{}, errors.New("leaf does not start with its time")
	}
	return time.Parse(TimeLayout, string(s))
}

// RawFields are a leaf's top-level string fields as slices of the leaf,
// nil when absent.
type RawFields struct {
	Kind, Agent, Session, Task, Config, Action, Tool, Resource, Outcome []byte
}

// ReadRawFields fills r from a canonical leaf in one pass over its
// top-level keys, without decoding it. It returns false when a value
// before "attributes" is escaped (holds a backslash) or the leaf is not in
// canonical form: the caller then decodes the leaf instead.
func ReadRawFields(leaf []byte, r *RawFields) bool {
	*r = RawFields{}
	if len(leaf) < LeafHeadLen || leaf[0] != '{' {
		return false
	}
	b := leaf[1:]
	for len(b) > 0 && b[0] == '"' {
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 || len(b) < end+3 || b[end+2] != ':' {
			return false
		}
		key := b[1 : end+1]
		b = b[end+3:]
		if string(key) == "attributes" {
			return true
		}
		var v []byte
		if len(b) > 0 && b[0] == '"' {
			e := bytes.IndexByte(b[1:], '"')
			if e < 0 {
				return false
			}
			v = b[1 : e+1 : e+1]
			if bytes.IndexByte(v, '\\') >= 0 {
				return false
			}
			b = b[e+2:]
		} else {
			// A number (seq): up to the next comma or the end.
			e := bytes.IndexAny(b, ",}")
			if e < 0 {
				return false
			}
			b = b[e:]
		}
		switch string(key) {
		case "kind":
			r.Kind = v
		case "agent":
			r.Agent = v
		case "session":
			r.Session = v
		case "task":
			r.Task = v
		case "config":
			r.Config = v
		case "action":
			r.Action = v
		case "tool":
			r.Tool = v
		case "resource":
			r.Resource = v
		case "outcome":
			r.Outcome = v
		}
		if len(b) == 0 || b[0] != ',' {
			return len(b) > 0 && b[0] == '}'
		}
		b = b[1:]
	}
	return false
}
