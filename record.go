package agentlog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Limits of an append request.
const (
	// MaxEntriesPerRequest caps how many records one append request may
	// carry.
	MaxEntriesPerRequest = 10000
	// MaxRequestBytes caps the body of one append request.
	MaxRequestBytes = 16 << 20
)

// Record is one agent action as a client sends it in an [AppendRequest].
// The log adds the time, kind and principal fields when it makes the leaf.
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
	// [RecordSignedBytes], standard base64 in JSON; nil means none.
	Sig []byte `json:"sig,omitempty"`
}

// AppendRequest is the body of POST /v1/entries: 1 to
// [MaxEntriesPerRequest] records, all appended or none.
type AppendRequest struct {
	Entries []Record `json:"entries"`
}

// AppendResponse is the answer to POST /v1/entries, sent once every entry
// is durable: one receipt per record, in order.
type AppendResponse struct {
	Entries []Appended `json:"entries"`
}

// AppendJSON appends r's JSON encoding to dst: the bytes encoding/json
// writes for it (what the log answers on its busiest route, without
// reflection). Times are RFC 3339 strings, which need no escaping.
func (r *AppendResponse) AppendJSON(dst []byte) []byte {
	if r.Entries == nil {
		return append(dst, `{"entries":null}`...)
	}
	dst = append(dst, `{"entries":[`...)
	for i := range r.Entries {
		a := &r.Entries[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"index":`...)
		dst = strconv.AppendUint(dst, a.Index, 10)
		if a.LeafHash == nil {
			dst = append(dst, `,"leaf_hash":null`...)
		} else {
			dst = append(dst, `,"leaf_hash":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, a.LeafHash)
			dst = append(dst, '"')
		}
		dst = AppendString(append(dst, `,"time":`...), a.Time)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// Appended is the receipt for one durable entry.
type Appended struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leaf_hash"` // RFC 6962 leaf hash, base64 in JSON
	Time     string `json:"time"`      // the leaf's time, RFC 3339
}

// EntryResponse is the answer to GET /v1/entries/{index}.
type EntryResponse struct {
	Index    uint64          `json:"index"`
	LeafHash []byte          `json:"leaf_hash"`
	Entry    json.RawMessage `json:"entry"` // the leaf
}

// ProofResponse is the answer to GET /v1/proof/inclusion (with Index) and
// GET /v1/proof/consistency (with Old). Hashes are base64 in JSON.
type ProofResponse struct {
	Index  *uint64  `json:"index,omitempty"`
	Old    *uint64  `json:"old,omitempty"`
	Size   uint64   `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// RecordSignedBytes is the message an agent signs for one record, built
// from fields that all appear in the record's leaf, so anyone holding the
// leaf and the agent's registered key can check it. Ten lines, each
// ending in "\n":
//
//	agentlog record v1
//	agent <agent>
//	session <session id>
//	task <task>
//	seq <seq, decimal; 0 when none>
//	action <action>
//	tool <tool>
//	resource <resource>
//	outcome <outcome>
//	attributes <attributes as compact JSON, member order kept; empty when none>
//
// None of the values can contain a newline: the log refuses control
// characters in strings and compact JSON has none. r.Sig is not read.
func RecordSignedBytes(agent, session, task string, r *Record) []byte {
	var b bytes.Buffer
	b.Grow(128 + len(agent) + len(session) + len(task) + len(r.Action) + len(r.Tool) + len(r.Resource) + len(r.Outcome) + len(r.Attributes))
	b.WriteString("agentlog record v1\n")
	for _, f := range [...][2]string{
		{"agent", agent}, {"session", session}, {"task", task}, {"seq", strconv.FormatUint(r.Seq, 10)},
		{"action", r.Action}, {"tool", r.Tool}, {"resource", r.Resource}, {"outcome", r.Outcome},
		{"attributes", string(r.Attributes)},
	} {
		b.WriteString(f[0])
		b.WriteByte(' ')
		b.WriteString(f[1])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// SignRecord sets r.Sig to key's signature of the record's signed bytes
// for the given agent, session and task.
func SignRecord(key ed25519.PrivateKey, agent, session, task string, r *Record) {
	r.Sig = ed25519.Sign(key, RecordSignedBytes(agent, session, task, r))
}

// VerifySignature checks the agent signature a leaf carries against the
// agent's registered Ed25519 public key. It fails if the leaf has no
// signature or the signature does not verify.
func (l *Leaf) VerifySignature(pub ed25519.PublicKey) error {
	if len(l.Sig) == 0 {
		return errors.New("leaf carries no agent signature")
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, RecordSignedBytes(l.Agent, l.Session, l.Task, l.Record()), l.Sig) {
		return fmt.Errorf("agent signature of the leaf does not verify with the key of %q", l.Agent)
	}
	return nil
}
