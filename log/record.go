package log

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/agentlog/agentlog"
)

// Limits of the wire formats (package agentlog).
const (
	MaxLeafSize          = agentlog.MaxLeafSize
	MaxEntriesPerRequest = agentlog.MaxEntriesPerRequest
	MaxRequestBytes      = agentlog.MaxRequestBytes
)

// Field limits, in bytes. They keep a single leaf readable and bound the
// cost of indexing it.
const (
	maxNameLen = 256  // action, tool, outcome
	maxResLen  = 2048 // resource
)

// ErrInvalid is wrapped by every validation error: the request is bad and
// nothing was written.
var ErrInvalid = agentlog.Invalid("invalid record")

// Kinds of leaves (package agentlog). Agents append KindAction; the others
// are written by the log itself.
const (
	KindAction  = agentlog.KindAction
	KindAgent   = agentlog.KindAgent
	KindSession = agentlog.KindSession
	KindDenied  = agentlog.KindDenied
	KindToken   = agentlog.KindToken
	KindAlert   = agentlog.KindAlert
	KindSystem  = agentlog.KindSystem
	KindChange  = agentlog.KindChange
)

// Record is one agent action as submitted by a client: the wire type
// [agentlog.Record].
type Record = agentlog.Record

// Principal names who appended an entry and on whose behalf. The log
// writes these fields into the leaf; they never come from a request body.
type Principal struct {
	ID   string // who authenticated: an operator token's name or an agent id
	Role string // admin, auditor, approver, agent
	// TokenID is the operator token's id (agentlog.Leaf.TokenID); empty
	// for agents, the log and the bootstrap admin.
	TokenID string
	// Agent is the agent the entry is by (an agent's action) or about (a
	// lifecycle event written by an operator); empty otherwise.
	Agent string
	// Session and Task are the session credential's id and task, for
	// entries written with a session.
	Session string
	Task    string
	// Config is the digest ("sha256:<hex>", package config) of the agent
	// configuration the session declared, or a change entry is about.
	Config string
}

// wireRecord is a record as the strict decoder reads it: attributes stay
// raw JSON and the signature text is checked by ParseAppendRequest, so
// its error can name the field.
type wireRecord struct {
	agentlog.Record
	Attributes jsontext.Value `json:"attributes,omitempty"`
	Sig        string         `json:"sig,omitempty"`
}

// ParseAppendRequest reads and validates an append request body. The JSON
// must be strict: valid UTF-8, known member names with their exact case,
// no duplicate names, nothing after the object. Every record must be valid
// for the request to be accepted; the error names the first bad record.
func ParseAppendRequest(body []byte) ([]Record, error) {
	var req struct {
		Entries []wireRecord `json:"entries"`
	}
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
		recs[i] = w.Record
		recs[i].Attributes = []byte(w.Attributes)
		if w.Sig != "" {
			sig, err := base64.StdEncoding.Strict().DecodeString(w.Sig)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return nil, fmt.Errorf("entries[%d]: %w: \"sig\" must be a %d-byte Ed25519 signature in standard base64", i, ErrInvalid, ed25519.SignatureSize)
			}
			recs[i].Sig = sig
		}
		if err := validate(&recs[i]); err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
	}
	return recs, nil
}

// jsonErrText shortens the decoder's error to what a client needs.
func jsonErrText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func validate(r *Record) error {
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

// leafPrefixLen is the length of `{"time":"<time>",` that the sequencer
// prepends to a leafTail.
const leafPrefixLen = agentlog.LeafHeadLen

// encodeTail encodes the leaf of record r appended by p as kind, after its
// time ([agentlog.AppendLeafTail]). The strings were validated (UTF-8, no
// control characters) and attributes compacted by ParseAppendRequest, or
// come from the log itself and are validated where they enter.
func encodeTail(kind string, p Principal, r *Record) (leafTail, error) {
	l := agentlog.Leaf{Kind: kind, Principal: p.ID, Role: p.Role, TokenID: p.TokenID, Agent: p.Agent, Session: p.Session, Task: p.Task, Config: p.Config,
		Seq: r.Seq, Action: r.Action, Tool: r.Tool, Resource: r.Resource, Outcome: r.Outcome, Attributes: r.Attributes, Sig: r.Sig}
	b := agentlog.AppendLeafTail(make([]byte, 0, agentlog.LeafTailSize(&l)), &l)
	if leafPrefixLen+len(b) > MaxLeafSize {
		return nil, fmt.Errorf("%w: the record's leaf would be %d bytes, at most %d allowed", ErrInvalid, leafPrefixLen+len(b), MaxLeafSize)
	}
	return b, nil
}

// LeafTail returns the part after its time of the leaf an append of r by p
// as kind writes (a retry is compared with the entry it repeats this way).
func LeafTail(kind string, p Principal, r *Record) ([]byte, error) { return encodeTail(kind, p, r) }

// appendLeaf writes the leaf for tail at time t into dst.
func appendLeaf(dst []byte, t time.Time, tail leafTail) []byte {
	return append(agentlog.AppendLeafHead(dst, t), tail...)
}

// leafTime reads the time of a leaf written by appendLeaf without decoding
// the whole leaf.
func leafTime(b []byte) (time.Time, error) { return agentlog.LeafTime(b) }
