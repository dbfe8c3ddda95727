// Package vectors generates the test vectors in testdata/vectors that the
// Go, Python and TypeScript clients all run, so the three stay
// byte-compatible: agent key files (docs/identity.md), signed session-open
// requests and record signatures, RFC 6962 leaf hashes and inclusion and
// consistency proofs, C2SP signed checkpoints with timestamp and witness
// cosignatures (c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature,
// c2sp.org/tlog-policy), c2sp.org/tlog-proof files, and RFC 8785
// canonical forms and agent configuration digests (package log/config).
//
// Every key comes from a fixed seed and Ed25519 signatures are
// deterministic, so the output never changes unless the generator does.
// Regenerate with
//
//	go run ./internal/vectors/gen
//
// TestCommittedVectors fails when the committed files differ from a fresh
// generation. testdata/vectors/README.md describes the files and the
// reason codes of the invalid vectors.
//
// Proofs and roots are computed with golang.org/x/mod/sumdb/tlog, an
// implementation independent of the transparency-dev/merkle verifier the
// Go client uses, and invalid vectors are made by construction (each has
// one fault, named by its reason), never by asking a verifier.
package vectors

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
	"time"

	tproof "github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
)

// Origin is the log origin of every vector checkpoint.
const Origin = "vectors.agentlog.example/log"

// Generate returns the vector files by name (relative to testdata/vectors).
func Generate() (map[string][]byte, error) {
	g := &gen{files: map[string][]byte{}}
	steps := []func() error{g.agentKeys, g.sessionOpen, g.records, g.leafHashes, g.proofs, g.checkpoints, g.tlogProofs, g.configs, g.witnessKeys}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return g.files, nil
}

type gen struct {
	files map[string][]byte
	keys  *checkpoint.Keys
	wits  []*checkpoint.TimeSigner
	other *checkpoint.Keys // another log, same origin, different key
}

// seed is the fixed 32-byte seed of a named test key.
func seed(name string) []byte {
	h := sha256.Sum256([]byte("agentlog test vector key: " + name))
	return h[:]
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func (g *gen) write(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	g.files[name] = append(b, '\n')
	return nil
}

func agentKeyFile(agent string) (string, ed25519.PrivateKey) {
	k := ed25519.NewKeyFromSeed(seed("agent " + agent))
	return agentlog.FormatKeyFile(agent, k), k
}

// AgentKey is one vector of agent_keys.json.
type AgentKey struct {
	Name      string `json:"name"`
	File      string `json:"file"`
	Valid     bool   `json:"valid"`
	Agent     string `json:"agent,omitempty"`
	PublicKey string `json:"public_key,omitempty"` // base64 of the 32-byte Ed25519 public key
	Reason    string `json:"reason,omitempty"`
}

func (g *gen) agentKeys() error {
	var vs []AgentKey
	for _, a := range []string{"bot-1", "crm.agent_7", "A", strings.Repeat("a", 64)} {
		f, k := agentKeyFile(a)
		vs = append(vs, AgentKey{Name: "valid " + a, File: f, Valid: true, Agent: a, PublicKey: b64(k.Public().(ed25519.PublicKey))})
	}
	f, k := agentKeyFile("bot-1")
	pub := b64(k.Public().(ed25519.PublicKey))
	line := strings.TrimSuffix(f, "\n")
	vs = append(vs,
		AgentKey{Name: "no final newline", File: line, Valid: true, Agent: "bot-1", PublicKey: pub},
		AgentKey{Name: "surrounding whitespace", File: "  " + line + "\r\n\n", Valid: true, Agent: "bot-1", PublicKey: pub},
	)
	s := seed("agent bot-1")
	enc := b64(s)
	// The last base64 character of 32 bytes carries 2 bits; setting one of
	// the 4 padding bits gives a non-canonical encoding of the same bytes.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", enc[42])
	nonCanon := enc[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last|1]) + "="
	for _, c := range []struct{ name, file, reason string }{
		{"empty", "", "not-agent-key"},
		{"note private key", "PRIVATE+KEY+bot-1+01234567+" + enc, "not-agent-key"},
		{"lowercase prefix", "agentlog-agent-key+bot-1+" + enc, "not-agent-key"},
		{"no agent id", agentlog.KeyFilePrefix + "+" + enc, "no-agent-id"},
		{"no separator", agentlog.KeyFilePrefix + "bot-1", "no-agent-id"},
		{"agent id starting with a dash", agentlog.KeyFilePrefix + "-bot+" + enc, "no-agent-id"},
		{"agent id with a slash", agentlog.KeyFilePrefix + "bots/1+" + enc, "no-agent-id"},
		{"agent id of 65 characters", agentlog.KeyFilePrefix + strings.Repeat("a", 65) + "+" + enc, "no-agent-id"},
		{"short seed", agentlog.KeyFilePrefix + "bot-1+" + b64(s[:31]), "bad-seed"},
		{"long seed", agentlog.KeyFilePrefix + "bot-1+" + b64(append(s, 0)), "bad-seed"},
		{"unpadded seed", agentlog.KeyFilePrefix + "bot-1+" + strings.TrimRight(enc, "="), "bad-seed"},
		{"url-safe alphabet", agentlog.KeyFilePrefix + "bot-1+" + base64.URLEncoding.EncodeToString(seed("url")), "bad-seed"},
		{"non-canonical base64", agentlog.KeyFilePrefix + "bot-1+" + nonCanon, "bad-seed"},
		{"not base64", agentlog.KeyFilePrefix + "bot-1+" + strings.Repeat("!", 44), "bad-seed"},
	} {
		vs = append(vs, AgentKey{Name: c.name, File: c.file, Reason: c.reason})
	}
	// A seed with a url-safe character must not decode.
	if !strings.ContainsAny(base64.URLEncoding.EncodeToString(seed("url")), "-_") {
		return fmt.Errorf("agent keys: the url-safe seed has no url-safe character")
	}
	return g.write("agent_keys.json", map[string]any{
		"description": "Agent key files (docs/identity.md): " + agentlog.KeyFilePrefix + "<id>+<standard base64 of the 32-byte Ed25519 seed>, surrounding whitespace ignored, the id 1 to 64 ASCII letters, digits, ., _ or - starting with a letter or digit, base64 strict and canonical.",
		"vectors":     vs,
	})
}

// SessionOpen is one vector of session_open.json.
type SessionOpen struct {
	Name        string `json:"name"`
	KeyFile     string `json:"key_file"`
	Agent       string `json:"agent"`
	Task        string `json:"task"`
	TTLSeconds  int64  `json:"ttl_seconds"`
	Time        string `json:"time"`
	Nonce       string `json:"nonce"`
	Config      string `json:"config"` // the configuration digest the session declares, or empty
	SignedBytes string `json:"signed_bytes"`
	Sig         string `json:"sig"`
	Body        string `json:"body"` // the request body the Go client sends
}

func (g *gen) sessionOpen() error {
	var vs []SessionOpen
	for i, c := range []struct {
		name, agent, task string
		ttl               time.Duration
		at                time.Time
		config            string
	}{
		{"default ttl", "bot-1", "T-1", 0, time.Date(2026, 11, 28, 10, 0, 0, 123000000, time.UTC), ""},
		{"30 minutes", "bot-1", "T-1", 30 * time.Minute, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), ""},
		{"nanoseconds", "crm.agent_7", "ticket 4711: refund", 12 * time.Hour, time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), ""},
		{"non-ASCII task", "A", "tâche «été» ☃", time.Second, time.Date(2027, 6, 30, 23, 59, 59, 999999999, time.UTC), ""},
		{"declared configuration", "bot-1", "T-2", time.Hour, time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC), fmt.Sprintf("sha256:%x", seed("config"))},
	} {
		f, k := agentKeyFile(c.agent)
		nonce := base64.RawURLEncoding.EncodeToString(seed(fmt.Sprint("nonce ", i))[:18])
		req := &agentlog.SessionRequest{Agent: c.agent, Task: c.task, TTL: int64(c.ttl / time.Second), Time: c.at.Format(time.RFC3339Nano), Nonce: nonce, Config: c.config}
		msg := req.SignedBytes()
		req.Sig = b64(ed25519.Sign(k, msg))
		body, err := json.Marshal(req)
		if err != nil {
			return err
		}
		vs = append(vs, SessionOpen{Name: c.name, KeyFile: f, Agent: c.agent, Task: c.task, TTLSeconds: int64(c.ttl / time.Second), Config: c.config,
			Time: c.at.Format(time.RFC3339Nano), Nonce: nonce, SignedBytes: string(msg), Sig: req.Sig, Body: string(body)})
	}
	return g.write("session_open.json", map[string]any{
		"description": "Signed session-open requests (POST /v1/sessions, docs/identity.md): from the key file, agent, task, ttl_seconds (0: left out of the body), time, nonce and config (a configuration digest: a seventh signed line and a body member; empty: neither), a client must produce exactly signed_bytes, sig and (as JSON, key order aside) body.",
		"vectors":     vs,
	})
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// RecordSig is one signing vector of records.json. Record holds the
// leaf fields the signature covers: agent, session, task, seq, action,
// tool, resource, outcome and attributes (its compact JSON text, or empty).
type RecordSig struct {
	Name        string         `json:"name"`
	KeyFile     string         `json:"key_file"`
	Record      map[string]any `json:"record"`
	SignedBytes string         `json:"signed_bytes"`
	Sig         string         `json:"signature"`
}

// rec is a record of a signing vector, signed in session sess of task tsk.
type rec struct {
	name, agent, sess, tsk string
	r                      agentlog.Record
}

// LeafSig is one leaf-verification vector of records.json.
type LeafSig struct {
	Name      string `json:"name"`
	Leaf      string `json:"leaf"`
	PublicKey string `json:"public_key"`
	Valid     bool   `json:"valid"`
	Reason    string `json:"reason,omitempty"`
}

func (g *gen) records() error {
	var rs []RecordSig
	recs := []rec{
		{"documented example", "bot-1", "0123456789abcdef", "task", agentlog.Record{Seq: 9, Action: "a", Tool: "t", Resource: "r/1", Outcome: "ok", Attributes: []byte(`{"k":"v"}`)}},
		{"action only", "bot-1", "00000000000000ff", "T-1", agentlog.Record{Action: "db.query"}},
		{"first of a session", "crm.agent_7", "fedcba9876543210", "ticket 4711: refund", agentlog.Record{Seq: 1, Action: "crm.lookup", Tool: "crm", Resource: "customers/42", Outcome: "ok", Attributes: []byte(`{"latency_ms":"12","query":"name = 'Zoë'"}`)}},
		{"escapes kept", "A", "1111111111111111", "t", agentlog.Record{Seq: 18446744073709551615, Action: "é ☃", Tool: "x", Resource: "a b/c?d=e&f", Outcome: "error: timeout", Attributes: []byte(`{"z":1,"a":{"nested":[true,null,"\u003c\/\u00e9\ud83d\ude00"]},"html":"<&>"}`)}},
	}
	for _, c := range recs {
		f, k := agentKeyFile(c.agent)
		msg := agentlog.RecordSignedBytes(c.agent, c.sess, c.tsk, &c.r)
		rs = append(rs, RecordSig{Name: c.name, KeyFile: f, SignedBytes: string(msg), Sig: b64(ed25519.Sign(k, msg)), Record: map[string]any{
			"agent": c.agent, "session": c.sess, "task": c.tsk, "seq": c.r.Seq, "action": c.r.Action,
			"tool": c.r.Tool, "resource": c.r.Resource, "outcome": c.r.Outcome, "attributes": string(c.r.Attributes),
		}})
	}
	// Leaves as the log writes them, signed by the agent.
	leaf := func(c rec, sig string, extra string) string {
		var b strings.Builder
		b.WriteString(`{"time":"2026-11-28T10:00:00.123456789Z","kind":"action","principal":` + q(c.agent) + `,"role":"agent","agent":` + q(c.agent) +
			`,"session":` + q(c.sess) + `,"task":` + q(c.tsk))
		if c.r.Seq != 0 {
			fmt.Fprintf(&b, `,"seq":%d`, c.r.Seq)
		}
		b.WriteString(`,"action":` + q(c.r.Action))
		for _, kv := range [][2]string{{"tool", c.r.Tool}, {"resource", c.r.Resource}, {"outcome", c.r.Outcome}} {
			if kv[1] != "" {
				b.WriteString(`,"` + kv[0] + `":` + q(kv[1]))
			}
		}
		if len(c.r.Attributes) > 0 {
			b.WriteString(`,"attributes":` + string(c.r.Attributes))
		}
		if sig != "" {
			b.WriteString(`,"sig":` + q(sig))
		}
		b.WriteString(extra + "}")
		return b.String()
	}
	var ls []LeafSig
	for i, r := range recs {
		_, k := agentKeyFile(r.agent)
		ls = append(ls, LeafSig{Name: r.name, Leaf: leaf(r, rs[i].Sig, ""), PublicKey: b64(k.Public().(ed25519.PublicKey)), Valid: true})
	}
	r := recs[3] // the one with escapes
	sig := rs[3].Sig
	_, k := agentKeyFile(r.agent)
	pub := b64(k.Public().(ed25519.PublicKey))
	_, otherKey := agentKeyFile("bot-1")
	flipped := mustB64(sig)
	flipped[10] ^= 0x20
	reencoded := strings.Replace(leaf(r, sig, ""), `\u003c`, `<`, 1) // same JSON value, other bytes
	ls = append(ls,
		LeafSig{Name: "unknown fields ignored", Leaf: leaf(r, sig, `,"config":"sha256:00"`), PublicKey: pub, Valid: true},
		LeafSig{Name: "no signature", Leaf: leaf(r, "", ""), PublicKey: pub, Reason: "no-signature"},
		LeafSig{Name: "flipped signature bit", Leaf: leaf(r, b64(flipped), ""), PublicKey: pub, Reason: "bad-signature"},
		LeafSig{Name: "other agent's key", Leaf: leaf(r, sig, ""), PublicKey: b64(otherKey.Public().(ed25519.PublicKey)), Reason: "bad-signature"},
		LeafSig{Name: "attributes re-encoded", Leaf: reencoded, PublicKey: pub, Reason: "bad-signature"},
		LeafSig{Name: "tampered outcome", Leaf: strings.Replace(leaf(r, sig, ""), `"error: timeout"`, `"ok"`, 1), PublicKey: pub, Reason: "bad-signature"},
		LeafSig{Name: "tampered seq", Leaf: strings.Replace(leaf(r, sig, ""), `"seq":18446744073709551615`, `"seq":1`, 1), PublicKey: pub, Reason: "bad-signature"},
		LeafSig{Name: "not JSON", Leaf: leaf(r, sig, "")[1:], PublicKey: pub, Reason: "malformed"},
	)
	return g.write("records.json", map[string]any{
		"description": "Record signatures (docs/identity.md). signing: from the key file and the record's fields (attributes as the compact JSON text given, or empty), a client must produce exactly signed_bytes and signature (standard base64). leaves: a leaf as the log stores it, to check against the agent's public key (base64); attributes are signed as the leaf's bytes, so a re-encoded leaf does not verify.",
		"signing":     rs,
		"leaves":      ls,
	})
}

// q quotes s as a JSON string the way encoding/json does.
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// LeafHash is one vector of leaf_hashes.json.
type LeafHash struct {
	Name string `json:"name"`
	Leaf string `json:"leaf"` // base64
	Hash string `json:"hash"` // base64 of SHA-256(0x00 || leaf)
}

// rfc6962Leaves are the leaves of the RFC 6962 test tree (the ones of
// testdata/merkle).
var rfc6962Leaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}

func (g *gen) leafHashes() error {
	var vs []LeafHash
	for i, h := range rfc6962Leaves {
		b := make([]byte, len(h)/2)
		fmt.Sscanf(h, "%x", &b)
		if h == "" {
			b = nil
		}
		vs = append(vs, LeafHash{Name: fmt.Sprintf("RFC 6962 test leaf %d", i), Leaf: b64(b), Hash: b64(client.LeafHash(b))})
	}
	for _, l := range []string{
		`{"time":"2026-11-28T10:00:00.123456789Z","kind":"action","agent":"bot-1","action":"db.query"}`,
		strings.Repeat("x", 1000),
	} {
		vs = append(vs, LeafHash{Name: fmt.Sprintf("%d-byte leaf", len(l)), Leaf: b64([]byte(l)), Hash: b64(client.LeafHash([]byte(l)))})
	}
	// An entry written under an operator token: it names the token's id.
	op := (&agentlog.Leaf{Time: time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC), Kind: agentlog.KindAgent, Principal: "alice", Role: "approver",
		TokenID: "3f2a9c01d4e5b6a7", Agent: "bot-1", Action: "agent.approved"}).Append(nil)
	vs = append(vs, LeafHash{Name: "operator entry with token_id", Leaf: b64(op), Hash: b64(client.LeafHash(op))})
	return g.write("leaf_hashes.json", map[string]any{
		"description": "RFC 6962 leaf hashes: SHA-256(0x00 || leaf), leaf and hash in base64.",
		"vectors":     vs,
	})
}

// tree is a tlog tree of n leaves "leaf <i>".
type tree struct {
	hashes []tlog.Hash
	leaves [][]byte
}

func newTree(n int) *tree {
	t := &tree{}
	for i := 0; i < n; i++ {
		t.add([]byte(fmt.Sprintf("leaf %d", i)))
	}
	return t
}

func (t *tree) add(leaf []byte) {
	hs, err := tlog.StoredHashes(int64(len(t.leaves)), leaf, t)
	if err != nil {
		panic(err)
	}
	t.hashes = append(t.hashes, hs...)
	t.leaves = append(t.leaves, leaf)
}

func (t *tree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.hashes[x]
	}
	return out, nil
}

func (t *tree) root(n int) []byte {
	if n == 0 {
		h := sha256.Sum256(nil)
		return h[:]
	}
	h, err := tlog.TreeHash(int64(n), t)
	if err != nil {
		panic(err)
	}
	return h[:]
}

func (t *tree) inclusion(index, size int) [][]byte {
	p, err := tlog.ProveRecord(int64(size), int64(index), t)
	if err != nil {
		panic(err)
	}
	return hashList(p)
}

func (t *tree) consistency(old, size int) [][]byte {
	if old == 0 {
		return nil
	}
	p, err := tlog.ProveTree(int64(size), int64(old), t)
	if err != nil {
		panic(err)
	}
	return hashList(p)
}

func hashList(p []tlog.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out
}

func b64s(hs [][]byte) []string {
	out := make([]string, len(hs)) // never nil: an empty proof is [] in JSON
	for i, h := range hs {
		out[i] = b64(h)
	}
	return out
}

// Inclusion is one vector of inclusion.json.
type Inclusion struct {
	Name     string   `json:"name"`
	Index    uint64   `json:"index"`
	Size     uint64   `json:"size"`
	LeafHash string   `json:"leaf_hash"`
	Root     string   `json:"root"`
	Proof    []string `json:"proof"`
	Valid    bool     `json:"valid"`
	Reason   string   `json:"reason,omitempty"`
}

// Consistency is one vector of consistency.json.
type Consistency struct {
	Name    string   `json:"name"`
	Old     uint64   `json:"old"`
	Size    uint64   `json:"size"`
	OldRoot string   `json:"old_root"`
	Root    string   `json:"root"`
	Proof   []string `json:"proof"`
	Valid   bool     `json:"valid"`
	Reason  string   `json:"reason,omitempty"`
}

// bigSizes are tree sizes around tile and power-of-two boundaries.
var bigSizes = []int{63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025}

// inclusionLen is the number of hashes in the inclusion proof of index in
// a tree of size leaves (RFC 9162, section 2.1.3.2).
func inclusionLen(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	return inner + bits.OnesCount64(index>>inner)
}

func flip(h []byte) []byte {
	c := append([]byte(nil), h...)
	c[0] ^= 1
	return c
}

func (g *gen) proofs() error {
	t := newTree(1025)
	var inc []Inclusion
	addInc := func(index, size int) {
		inc = append(inc, Inclusion{Name: fmt.Sprintf("index %d size %d", index, size), Index: uint64(index), Size: uint64(size),
			LeafHash: b64(t.hashes[tlog.StoredHashIndex(0, int64(index))][:]), Root: b64(t.root(size)), Proof: b64s(t.inclusion(index, size)), Valid: true})
	}
	for size := 1; size <= 20; size++ {
		for i := 0; i < size; i++ {
			addInc(i, size)
		}
	}
	for _, size := range bigSizes {
		for _, i := range []int{0, 1, size/2 - 1, size / 2, size - 2, size - 1} {
			addInc(i, size)
		}
	}
	valid := len(inc)
	bad := func(base Inclusion, name, reason string, edit func(*Inclusion)) {
		v := base
		v.Proof = append(base.Proof[:0:0], base.Proof...)
		edit(&v)
		v.Name = base.Name + ": " + name
		v.Valid, v.Reason = false, reason
		inc = append(inc, v)
	}
	for _, base := range inc[:valid] {
		if base.Size < 5 && base.Size != 1 || base.Size == 1000 || base.Size == 257 {
			p := base.Proof
			if len(p) > 0 {
				bad(base, "flipped first proof hash", "root-mismatch", func(v *Inclusion) { v.Proof[0] = b64(flip(mustB64(p[0]))) })
				bad(base, "flipped last proof hash", "root-mismatch", func(v *Inclusion) { v.Proof[len(p)-1] = b64(flip(mustB64(p[len(p)-1]))) })
				bad(base, "truncated proof", "wrong-proof-size", func(v *Inclusion) { v.Proof = v.Proof[:len(p)-1] })
			}
			bad(base, "extra proof hash", "wrong-proof-size", func(v *Inclusion) { v.Proof = append(v.Proof, base.Root) })
			bad(base, "wrong leaf hash", "root-mismatch", func(v *Inclusion) { v.LeafHash = b64(flip(mustB64(base.LeafHash))) })
			bad(base, "wrong root", "root-mismatch", func(v *Inclusion) { v.Root = b64(flip(mustB64(base.Root))) })
			bad(base, "index beyond size", "index-out-of-range", func(v *Inclusion) { v.Index = v.Size })
			if n := base.Index ^ 1; n < base.Size && inclusionLen(n, base.Size) == len(p) {
				bad(base, "neighbour's index", "root-mismatch", func(v *Inclusion) { v.Index ^= 1 })
			}
		}
	}
	bad(Inclusion{Name: "empty tree", Root: b64(t.root(0)), LeafHash: b64(t.hashes[0][:]), Proof: []string{}}, "index 0", "index-out-of-range", func(*Inclusion) {})
	if err := g.write("inclusion.json", map[string]any{
		"description": "RFC 6962 inclusion proofs of the tree whose leaf i is the ASCII text \"leaf <i>\"; hashes in base64. Reasons: index-out-of-range (index >= size), wrong-proof-size (not the number of hashes the index and size need), root-mismatch (the proof does not lead to root).",
		"vectors":     inc,
	}); err != nil {
		return err
	}

	var con []Consistency
	addCon := func(old, size int) {
		con = append(con, Consistency{Name: fmt.Sprintf("old %d size %d", old, size), Old: uint64(old), Size: uint64(size),
			OldRoot: b64(t.root(old)), Root: b64(t.root(size)), Proof: b64s(t.consistency(old, size)), Valid: true})
	}
	for size := 1; size <= 17; size++ {
		for old := 0; old <= size; old++ {
			addCon(old, size)
		}
	}
	for _, size := range bigSizes {
		for _, old := range []int{1, 2, size / 2, size - 1, size} {
			addCon(old, size)
		}
	}
	for _, c := range [][2]int{{64, 1025}, {255, 1024}, {256, 1024}, {257, 1025}, {1000, 1025}} {
		addCon(c[0], c[1])
	}
	valid = len(con)
	badC := func(base Consistency, name, reason string, edit func(*Consistency)) {
		v := base
		v.Proof = append(base.Proof[:0:0], base.Proof...)
		edit(&v)
		v.Name = base.Name + ": " + name
		v.Valid, v.Reason = false, reason
		con = append(con, v)
	}
	for _, base := range con[:valid] {
		if base.Size > 8 && base.Size != 1000 && base.Size != 257 {
			continue
		}
		p := base.Proof
		switch {
		case base.Old == base.Size:
			badC(base, "non-empty proof", "wrong-proof-size", func(v *Consistency) { v.Proof = []string{base.Root} })
			badC(base, "other root", "root-mismatch", func(v *Consistency) { v.Root = b64(flip(mustB64(base.Root))) })
		case base.Old == 0:
			badC(base, "non-empty proof", "wrong-proof-size", func(v *Consistency) { v.Proof = []string{base.Root} })
		default:
			badC(base, "flipped first proof hash", "root-mismatch", func(v *Consistency) { v.Proof[0] = b64(flip(mustB64(p[0]))) })
			badC(base, "flipped last proof hash", "root-mismatch", func(v *Consistency) { v.Proof[len(p)-1] = b64(flip(mustB64(p[len(p)-1]))) })
			badC(base, "truncated proof", "wrong-proof-size", func(v *Consistency) { v.Proof = v.Proof[:len(p)-1] })
			badC(base, "extra proof hash", "wrong-proof-size", func(v *Consistency) { v.Proof = append(v.Proof, base.Root) })
			badC(base, "wrong old root", "root-mismatch", func(v *Consistency) { v.OldRoot = b64(flip(mustB64(base.OldRoot))) })
			badC(base, "wrong new root", "root-mismatch", func(v *Consistency) { v.Root = b64(flip(mustB64(base.Root))) })
			badC(base, "sizes swapped", "size-order", func(v *Consistency) {
				v.Old, v.Size, v.OldRoot, v.Root = v.Size, v.Old, v.Root, v.OldRoot
			})
		}
	}
	return g.write("consistency.json", map[string]any{
		"description": "RFC 6962 consistency proofs between two sizes of the tree whose leaf i is the ASCII text \"leaf <i>\"; hashes in base64. old 0 and old = size need an empty proof (and for old = size equal roots). Reasons: size-order (old > size), wrong-proof-size, root-mismatch (the proof does not lead to one of the roots).",
		"vectors":     con,
	})
}

// vectorTime is the time of every vector timestamp and cosignature.
var vectorTime = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// witnessNames are the names of the vector witnesses' keys.
var witnessNames = []string{"w1.witness.example", "w2.witness.example", "w3.witness.example"}

func (g *gen) setupKeys() error {
	if g.keys != nil {
		return nil
	}
	logSKey, _, err := note.GenerateKey(bytes.NewReader(seed("log")), Origin)
	if err != nil {
		return err
	}
	timeSKey, _, err := checkpoint.GenerateTimeKey(bytes.NewReader(seed("time")), Origin+checkpoint.TimeKeySuffix)
	if err != nil {
		return err
	}
	now := func() time.Time { return vectorTime }
	if g.keys, err = checkpoint.NewKeys(Origin, logSKey, timeSKey, now); err != nil {
		return err
	}
	otherSKey, _, err := note.GenerateKey(bytes.NewReader(seed("other log")), Origin)
	if err != nil {
		return err
	}
	if g.other, err = checkpoint.NewKeys(Origin, otherSKey, timeSKey, now); err != nil {
		return err
	}
	for _, n := range witnessNames {
		skey, _, err := checkpoint.GenerateTimeKey(bytes.NewReader(seed("witness "+n)), n)
		if err != nil {
			return err
		}
		w, err := checkpoint.NewTimeSigner(skey, now)
		if err != nil {
			return err
		}
		g.wits = append(g.wits, w)
	}
	return nil
}

// policies are the witness policies (c2sp.org/tlog-policy) of the vectors.
func (g *gen) policies() map[string]string {
	logLine := "log " + g.keys.LogVKey + "\n"
	var wl strings.Builder
	for i, w := range g.wits {
		fmt.Fprintf(&wl, "witness w%d %s\n", i+1, w.VerifierKey())
	}
	w := wl.String()
	return map[string]string{
		"none":   "# the log alone\n" + logLine + "quorum none\n",
		"any":    logLine + w + "group g any w1 w2\nquorum g\n",
		"2of3":   logLine + w + "group g 2 w1 w2 w3\nquorum g\n",
		"all":    logLine + w + "group g all w1 w2 w3\nquorum g\n",
		"nested": logLine + w + "group both all w1 w2\ngroup g any both w3\nquorum g\n",
		"w3":     logLine + w + "quorum w3\n",
		"other":  "log " + g.other.LogVKey + "\n" + w + "quorum none\n",
	}
}

// Checkpoint is one vector of checkpoints.json.
type Checkpoint struct {
	Name       string `json:"name"`
	Checkpoint string `json:"checkpoint"`
	// TimeKey says whether to verify with the log's timestamp key too.
	TimeKey bool `json:"time_key"`
	// Policy names the policy of the file's "policies" to apply ("": only
	// the log key, no witnesses).
	Policy    string   `json:"policy"`
	Valid     bool     `json:"valid"`
	Size      uint64   `json:"size,omitempty"`
	Root      string   `json:"root,omitempty"`
	Time      int64    `json:"time,omitempty"`      // POSIX seconds of the timestamp signature (with time_key)
	Cosigners []string `json:"cosigners,omitempty"` // the policy names of the witnesses whose cosignature verified
	Reason    string   `json:"reason,omitempty"`
}

// signNote signs text with the signers, in order.
func signNote(text string, signers ...note.Signer) string {
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// flipSig corrupts the signature on line i (0-based) of the signature
// block of a signed note.
func flipSig(signed string, i int) string {
	text, sigs, _ := strings.Cut(signed, "\n\n")
	lines := strings.Split(strings.TrimSuffix(sigs, "\n"), "\n")
	sp := strings.LastIndex(lines[i], " ")
	b := mustB64(lines[i][sp+1:])
	b[len(b)-1] ^= 1
	lines[i] = lines[i][:sp+1] + b64(b)
	return text + "\n\n" + strings.Join(lines, "\n") + "\n"
}

func body(origin string, size uint64, root []byte) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, b64(root))
}

func (g *gen) checkpoints() error {
	if err := g.setupKeys(); err != nil {
		return err
	}
	t := newTree(1025)
	root := t.root(1025)
	k := g.keys
	ts := k.TimeSigner.At(vectorTime)
	w1, w2, w3 := g.wits[0], g.wits[1], g.wits[2]
	text := body(Origin, 1025, root)
	full := signNote(text, k.LogSigner, ts, w1, w2)
	strangerSKey, _, _ := note.GenerateKey(bytes.NewReader(seed("stranger")), "stranger.example")
	stranger, _ := note.NewSigner(strangerSKey)
	rootB64 := b64(root)
	nonCanonRoot := rootB64[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", rootB64[42])|1]) + "="
	if nonCanonRoot == rootB64 {
		return fmt.Errorf("checkpoints: the non-canonical root equals the canonical one")
	}
	ok := func(name, cp string, timeKey bool, policy string, size uint64, root []byte, cosigners ...string) Checkpoint {
		c := Checkpoint{Name: name, Checkpoint: cp, TimeKey: timeKey, Policy: policy, Valid: true, Size: size, Root: b64(root), Cosigners: cosigners}
		if timeKey {
			c.Time = vectorTime.Unix()
		}
		return c
	}
	no := func(name, cp string, timeKey bool, policy, reason string) Checkpoint {
		return Checkpoint{Name: name, Checkpoint: cp, TimeKey: timeKey, Policy: policy, Reason: reason}
	}
	vs := []Checkpoint{
		ok("log key only", full, false, "", 1025, root),
		ok("log and timestamp keys", full, true, "", 1025, root),
		ok("quorum none", full, true, "none", 1025, root),
		ok("any of w1 w2", full, true, "any", 1025, root, "w1", "w2"),
		ok("2 of 3", full, true, "2of3", 1025, root, "w1", "w2"),
		ok("nested groups, both of w1 w2", full, true, "nested", 1025, root, "w1", "w2"),
		ok("nested groups, w3", signNote(text, k.LogSigner, ts, w3), true, "nested", 1025, root, "w3"),
		ok("single witness quorum", signNote(text, k.LogSigner, ts, w3, w1), true, "w3", 1025, root, "w1", "w3"),
		ok("signatures in another order", signNote(text, w2, ts, k.LogSigner, w1), true, "2of3", 1025, root, "w1", "w2"),
		ok("unknown signer ignored", signNote(text, k.LogSigner, stranger, ts, w1), true, "any", 1025, root, "w1"),
		ok("bad cosignature of one witness does not count", flipSig(full, 3), true, "any", 1025, root, "w1"),
		ok("bad timestamp signature ignored without the time key", flipSig(full, 1), false, "", 1025, root),
		ok("empty tree", signNote(body(Origin, 0, t.root(0)), k.LogSigner, ts), true, "none", 0, t.root(0)),
		ok("one leaf", signNote(body(Origin, 1, t.root(1)), k.LogSigner, ts), true, "", 1, t.root(1)),
		no("bad cosignature of one witness, quorum of both", flipSig(full, 3), true, "2of3", "quorum"),
		no("no cosignature", signNote(text, k.LogSigner, ts), true, "any", "quorum"),
		no("1 of 3, need 2", signNote(text, k.LogSigner, ts, w3), true, "2of3", "quorum"),
		no("2 of 3, need all", full, true, "all", "quorum"),
		no("nested groups, w1 alone", signNote(text, k.LogSigner, ts, w1), true, "nested", "quorum"),
		no("tampered size", strings.Replace(full, "\n1025\n", "\n1026\n", 1), false, "", "bad-signature"),
		no("tampered root", strings.Replace(full, rootB64, b64(flip(root)), 1), false, "", "bad-signature"),
		no("tampered log signature", flipSig(full, 0), false, "", "bad-signature"),
		no("tampered timestamp signature", flipSig(full, 1), true, "", "bad-signature"),
		no("tampered timestamp signature, policy", flipSig(full, 1), true, "any", "bad-signature"),
		no("no timestamp signature", signNote(text, k.LogSigner, w1, w2), true, "", "no-timestamp"),
		no("timestamp signature only", signNote(text, ts, w1, w2), false, "", "no-log-signature"),
		no("another log's key of the same origin", signNote(text, g.other.LogSigner, ts, w1, w2), false, "", "no-log-signature"),
		no("policy of another log", full, false, "other", "no-log-signature"),
		no("witnesses only", signNote(text, w1, w2), false, "any", "no-log-signature"),
		no("extension line", signNote(text+"extension\n", k.LogSigner, ts), false, "", "extension-lines"),
		no("leading zero in size", signNote(strings.Replace(text, "\n1025\n", "\n01025\n", 1), k.LogSigner, ts), false, "", "non-canonical"),
		no("non-canonical base64 root", signNote(strings.Replace(text, rootB64, nonCanonRoot, 1), k.LogSigner, ts), false, "", "non-canonical"),
		no("31-byte root", signNote(body(Origin, 1025, root[:31]), k.LogSigner, ts), false, "", "bad-root"),
		no("size not a number", signNote(strings.Replace(text, "\n1025\n", "\nmany\n", 1), k.LogSigner, ts), false, "", "malformed"),
		no("root not base64", signNote(strings.Replace(text, rootB64, "not base64!", 1), k.LogSigner, ts), false, "", "malformed"),
		no("no root line", signNote(Origin+"\n1025\n", k.LogSigner, ts), false, "", "malformed"),
		no("origin differs from the key name", signNote(body("vectors.agentlog.example/other", 1025, root), k.LogSigner, ts), false, "", "origin-mismatch"),
		no("empty", "", false, "", "malformed"),
		no("no signatures", text+"\n", false, "", "malformed"),
		no("no blank line", text+strings.SplitN(full, "\n\n", 2)[1], false, "", "malformed"),
		no("carriage returns", strings.ReplaceAll(full, "\n", "\r\n"), false, "", "malformed"),
		no("signature line without the em dash", strings.Replace(full, "— ", "- ", 1), false, "", "malformed"),
		no("truncated signature", strings.Replace(full, "\n— "+Origin+" ", "\n— "+Origin+" AAAA", 1)[:len(full)-80]+"\n", false, "", "malformed"),
	}
	// A checkpoint of 101 signatures is malformed (c2sp.org/signed-note
	// allows verifiers to stop at 100).
	many := []note.Signer{k.LogSigner}
	for i := 0; i < 100; i++ {
		s, _, _ := note.GenerateKey(bytes.NewReader(seed(fmt.Sprint("many ", i))), fmt.Sprintf("many%d.example", i))
		sg, _ := note.NewSigner(s)
		many = append(many, sg)
	}
	vs = append(vs, no("101 signatures", signNote(text, many...), false, "", "malformed"))
	pol := g.policies()
	return g.write("checkpoints.json", map[string]any{
		"description": "C2SP signed checkpoints: the log's Ed25519 note signature (log_vkey, whose name is the origin), its timestamp signature in the tlog-cosignature v1 format (time_vkey, used when time_key is true) and witness cosignatures v1, with a tlog-policy (policies[policy]) deciding the quorum. Reasons: malformed (not a signed note, or a body that is not origin, decimal size, base64 root), bad-signature (a signature by a key being checked does not verify), no-log-signature, no-timestamp, extension-lines, non-canonical (leading zeros, non-canonical base64), bad-root (not 32 bytes), origin-mismatch, quorum. Signatures by other keys are ignored, and so is a witness cosignature that does not verify.",
		"log_vkey":    k.LogVKey,
		"time_vkey":   k.TimeVKey,
		"witnesses":   map[string]string{"w1": w1.VerifierKey(), "w2": w2.VerifierKey(), "w3": w3.VerifierKey()},
		"policies":    pol,
		"vectors":     vs,
	})
}

// TLogProof is one vector of tlog_proofs.json.
type TLogProof struct {
	Name   string `json:"name"`
	Entry  string `json:"entry"` // the leaf (UTF-8 text)
	Index  uint64 `json:"index"` // the index the verifier expects
	Proof  string `json:"proof"` // the c2sp.org/tlog-proof@v1 file
	Policy string `json:"policy"`
	Valid  bool   `json:"valid"`
	Size   uint64 `json:"size,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (g *gen) tlogProofs() error {
	if err := g.setupKeys(); err != nil {
		return err
	}
	k := g.keys
	ts := k.TimeSigner.At(vectorTime)
	t := &tree{}
	for i := 0; i < 7; i++ {
		t.add([]byte(fmt.Sprintf(`{"time":"2026-11-28T10:00:00.%09dZ","kind":"action","agent":"bot-1","session":"0123456789abcdef","task":"T-1","seq":%d,"action":"db.query","resource":"customers/%d"}`, i, i+1, 40+i)))
	}
	cpFor := func(size int, signers ...note.Signer) string {
		return signNote(body(Origin, uint64(size), t.root(size)), signers...)
	}
	file := func(index, size int, cp string) string {
		p := tproof.TLogProof{Index: uint64(index), Checkpoint: []byte(cp)}
		for _, h := range t.inclusion(index, size) {
			p.Hashes = append(p.Hashes, [32]byte(h))
		}
		return string(p.Marshal())
	}
	cp7 := cpFor(7, k.LogSigner, ts, g.wits[0], g.wits[1])
	var vs []TLogProof
	for _, i := range []int{0, 3, 6} {
		vs = append(vs, TLogProof{Name: fmt.Sprintf("entry %d of 7", i), Entry: string(t.leaves[i]), Index: uint64(i), Proof: file(i, 7, cp7), Policy: "any", Valid: true, Size: 7})
	}
	cp1 := cpFor(1, k.LogSigner, ts, g.wits[2])
	vs = append(vs, TLogProof{Name: "entry 0 of 1 (no hashes)", Entry: string(t.leaves[0]), Proof: file(0, 1, cp1), Policy: "w3", Valid: true, Size: 1})
	f3 := file(3, 7, cp7)
	head, rest, _ := strings.Cut(f3, "\nindex 3\n")
	hashes, cp, _ := strings.Cut(rest, "\n\n")
	hl := strings.Split(hashes, "\n")
	no := func(name, entry string, index int, proof, policy, reason string) TLogProof {
		return TLogProof{Name: name, Entry: entry, Index: uint64(index), Proof: proof, Policy: policy, Reason: reason}
	}
	e3 := string(t.leaves[3])
	vs = append(vs,
		no("other entry", string(t.leaves[4]), 3, f3, "any", "root-mismatch"),
		no("tampered entry", strings.Replace(e3, "customers/43", "customers/44", 1), 3, f3, "any", "root-mismatch"),
		no("flipped proof hash", e3, 3, head+"\nindex 3\n"+b64(flip(mustB64(hl[0])))+"\n"+strings.Join(hl[1:], "\n")+"\n\n"+cp, "any", "root-mismatch"),
		no("truncated proof", e3, 3, head+"\nindex 3\n"+strings.Join(hl[1:], "\n")+"\n\n"+cp, "any", "wrong-proof-size"),
		no("proof of another index", e3, 4, f3, "any", "index-mismatch"),
		no("index beyond the checkpoint", string(t.leaves[6]), 6, strings.Replace(file(5, 6, cpFor(6, k.LogSigner, ts, g.wits[0])), "\nindex 5\n", "\nindex 6\n", 1), "any", "index-out-of-range"),
		no("quorum not met", e3, 3, f3, "all", "quorum"),
		no("policy of another log", e3, 3, f3, "other", "no-log-signature"),
		no("tampered checkpoint", e3, 3, strings.Replace(f3, "\n7\n", "\n8\n", 1), "any", "bad-signature"),
		no("leading zero in the index", e3, 3, strings.Replace(f3, "\nindex 3\n", "\nindex 03\n", 1), "any", "non-canonical"),
		no("extra line", e3, 3, strings.Replace(f3, "\nindex 3\n", "\nextra AAAA\nindex 3\n", 1), "any", "extra-data"),
		no("wrong header", e3, 3, strings.Replace(f3, "c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "any", "malformed"),
		no("carriage returns", e3, 3, strings.ReplaceAll(f3, "\n", "\r\n"), "any", "malformed"),
		no("no checkpoint", e3, 3, head+"\nindex 3\n"+hashes+"\n\n", "any", "malformed"),
		no("hash not 32 bytes", e3, 3, head+"\nindex 3\nAAAA\n"+strings.Join(hl[1:], "\n")+"\n\n"+cp, "any", "malformed"),
	)
	return g.write("tlog_proofs.json", map[string]any{
		"description": "c2sp.org/tlog-proof@v1 files proving an entry (its leaf text) at the index the verifier expects, under a checkpoint checked against policies[policy] (the same keys and policies as checkpoints.json). A verifier checks the file's form (canonical, no extra line: agentlog never writes one), the index, the checkpoint and quorum, then the inclusion proof. Reasons: malformed, non-canonical, extra-data, index-mismatch, index-out-of-range, wrong-proof-size, root-mismatch, and the checkpoint reasons of checkpoints.json.",
		"log_vkey":    k.LogVKey,
		"time_vkey":   k.TimeVKey,
		"policies":    g.policies(),
		"vectors":     vs,
	})
}
