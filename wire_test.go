package agentlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestRecordSignedBytes pins the documented example of the record signed
// bytes (docs/identity.md).
func TestRecordSignedBytes(t *testing.T) {
	rec := Record{Action: "a", Tool: "t", Resource: "r/1", Outcome: "ok", Attributes: []byte(`{"k":"v"}`), Seq: 9}
	got := RecordSignedBytes("bot-1", "0123456789abcdef", "task", &rec)
	const doc = "agentlog record v1\nagent bot-1\nsession 0123456789abcdef\ntask task\nseq 9\naction a\ntool t\nresource r/1\noutcome ok\nattributes {\"k\":\"v\"}\n"
	if string(got) != doc {
		t.Fatalf("signed bytes %q differ from the documented example", got)
	}
}

// TestLeafSignature signs a record, makes its leaf and checks the
// signature from the leaf alone, and that a changed field breaks it.
func TestLeafSignature(t *testing.T) {
	key, _ := GenerateAgentKey("bot-1")
	pub := key.Public().(ed25519.PublicKey)
	rec := Record{Action: "payments.refund", Tool: "stripe", Resource: "charges/9", Outcome: "success", Attributes: []byte(`{"amount":"12.50"}`), Seq: 3}
	SignRecord(key, "bot-1", "0123456789abcdef", "refund #7", &rec)
	l := Leaf{Time: time.Unix(1e9, 0), Kind: KindAction, Principal: "bot-1", Role: "agent", Agent: "bot-1", Session: "0123456789abcdef", Task: "refund #7",
		Seq: rec.Seq, Action: rec.Action, Tool: rec.Tool, Resource: rec.Resource, Outcome: rec.Outcome, Attributes: rec.Attributes, Sig: rec.Sig}
	parsed, err := ParseLeaf(l.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.VerifySignature(pub); err != nil {
		t.Fatal(err)
	}
	parsed.Resource = "charges/10"
	if parsed.VerifySignature(pub) == nil {
		t.Fatal("a changed resource still verifies")
	}
	parsed.Sig = nil
	if parsed.VerifySignature(pub) == nil {
		t.Fatal("a leaf without a signature verifies")
	}
}

// TestLeafEncoding holds the canonical encoder to encoding/json (without
// HTML escaping) and ParseLeaf to its inverse.
func TestLeafEncoding(t *testing.T) {
	l := Leaf{Time: time.Date(2026, 11, 28, 3, 4, 5, 6, time.UTC), Kind: KindAction, Principal: "bot-1", Role: "agent", Agent: "bot-1",
		Session: "0123456789abcdef", Task: "t \"q\" \\ <é> \u2028", Seq: 7, Action: "db.query", Tool: "sql", Resource: "customers/42",
		Outcome: "success", Attributes: []byte(`{"rows":3}`), Sig: bytes.Repeat([]byte{1}, 64)}
	got := l.Append(nil)
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	ref := l
	ref.Time = time.Time{}
	if err := enc.Encode(struct {
		Time string `json:"time"`
		*Leaf
	}{"2026-11-28T03:04:05.000000006Z", &ref}); err != nil {
		t.Fatal(err)
	}
	if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
		t.Fatalf("leaf\n got %s\nwant %s", got, w)
	}
	back, err := ParseLeaf(got)
	if err != nil || !back.Time.Equal(l.Time) || back.Task != l.Task || !bytes.Equal(back.Sig, l.Sig) || string(back.Attributes) != string(l.Attributes) {
		t.Fatalf("ParseLeaf = %+v, %v", back, err)
	}
	if tm, err := LeafTime(got); err != nil || !tm.Equal(l.Time) {
		t.Fatalf("LeafTime = %v, %v", tm, err)
	}
	var rf RawFields
	if ReadRawFields(got, &rf) {
		t.Fatal("ReadRawFields read a leaf with an escaped task")
	}
}

// TestLeafTokenID: an entry written under an operator token carries the
// token's id after its role, in encoding/json's order, and reads back.
func TestLeafTokenID(t *testing.T) {
	l := Leaf{Time: time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC), Kind: KindAgent, Principal: "alice", Role: "approver",
		TokenID: "3f2a9c01d4e5b6a7", Agent: "bot-1", Action: "agent.approved"}
	got := string(l.Append(nil))
	want := `{"time":"2026-12-02T01:02:03.000000000Z","kind":"agent","principal":"alice","role":"approver","token_id":"3f2a9c01d4e5b6a7","agent":"bot-1","action":"agent.approved"}`
	if got != want {
		t.Fatalf("leaf\n got %s\nwant %s", got, want)
	}
	ref := l
	ref.Time = time.Time{}
	b, err := json.Marshal(struct {
		Time string `json:"time"`
		*Leaf
	}{"2026-12-02T01:02:03.000000000Z", &ref})
	if err != nil || string(b) != want {
		t.Fatalf("encoding/json gives %s, %v", b, err)
	}
	back, err := ParseLeaf([]byte(got))
	if err != nil || back.TokenID != l.TokenID || back.Principal != "alice" {
		t.Fatalf("ParseLeaf = %+v, %v", back, err)
	}
	var rf RawFields
	if !ReadRawFields([]byte(got), &rf) || string(rf.Agent) != "bot-1" || string(rf.Action) != "agent.approved" {
		t.Fatalf("ReadRawFields = %+v", rf)
	}
}

func TestKeyFile(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	text := FormatKeyFile("bot-1", key)
	id, k, err := ParseKeyFile(text)
	if err != nil || id != "bot-1" || !k.Equal(key) {
		t.Fatalf("ParseKeyFile: %v %v", id, err)
	}
	for _, bad := range []string{"", KeyFilePrefix + "bot", KeyFilePrefix + "+" + strings.Repeat("A", 43) + "=", KeyFilePrefix + "-bot+" + strings.Repeat("A", 43) + "=", KeyFilePrefix + "bot+AAAA"} {
		if _, _, err := ParseKeyFile(bad); err == nil {
			t.Errorf("ParseKeyFile(%q) accepted", bad)
		}
	}
}

func TestSessionRequest(t *testing.T) {
	key, _ := GenerateAgentKey("bot-1")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r := NewSessionRequest("bot-1", "deploy", 90*time.Second, now, key)
	want := "agentlog session open v1\nagent bot-1\ntask deploy\nttl 90\ntime 2026-01-02T03:04:05.000000006Z\nnonce " + r.Nonce + "\n"
	if string(r.SignedBytes()) != want {
		t.Fatalf("signed bytes %q, want %q", r.SignedBytes(), want)
	}
	b, _ := json.Marshal(r)
	if !strings.HasPrefix(string(b), `{"agent":"bot-1","task":"deploy","ttl_seconds":90,"time":"2026-01-02T03:04:05.000000006Z","nonce":"`) {
		t.Fatalf("session request JSON %s", b)
	}
}

func FuzzParseCredential(f *testing.F) {
	_, tok, _ := NewCredential(TokenPrefix)
	_, sess, _ := NewCredential(SessionPrefix)
	for _, s := range []string{tok, sess, "", TokenPrefix, SessionPrefix + "x.y", TokenPrefix + "0123456789abcdef.", "Bearer x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, id, secret, err := ParseCredential(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if (kind != CredToken && kind != CredSession) || !validHexID(id) || len(secret) != credSecretLen {
			t.Fatalf("accepted %q as %s %s", s, kind, id)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(FormatKeyFile("bot", key))
	f.Add(KeyFilePrefix + "a+")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, k, err := ParseKeyFile(s)
		if err != nil {
			return
		}
		if !ValidID(id) || len(k) != ed25519.PrivateKeySize {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzParseLeaf: never a panic, and what parses has a time and a kind.
func FuzzParseLeaf(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-28T03:04:05.000000006Z","kind":"action","agent":"a","seq":1,"action":"x","attributes":{"k":1},"sig":"AAAA"}`))
	f.Add([]byte(`{"time":"x","kind":"action"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var rf RawFields
		ReadRawFields(b, &rf)
		l, err := ParseLeaf(b)
		if err != nil {
			return
		}
		if l.Time.IsZero() || l.Kind == "" {
			t.Fatalf("ParseLeaf(%q) = %+v without a time or a kind", b, l)
		}
	})
}

// TestErrorKinds: a package's sentinel keeps its text, matches the shared
// kind, and stays distinct from another package's with the same text.
func TestErrorKinds(t *testing.T) {
	a, b := Invalid("invalid record"), Invalid("invalid record")
	wrapped := fmt.Errorf("entries[3]: %w: too long", a)
	if !errors.Is(wrapped, ErrInvalid) || !errors.Is(wrapped, a) || errors.Is(wrapped, b) || errors.Is(wrapped, ErrNotFound) {
		t.Fatalf("errors.Is does not tell the kinds apart: %v", wrapped)
	}
	if wrapped.Error() != "entries[3]: invalid record: too long" {
		t.Fatalf("text %q", wrapped)
	}
	if nf := NotFound("tree: not found"); !errors.Is(nf, ErrNotFound) || errors.Is(nf, ErrInvalid) || nf.Error() != "tree: not found" {
		t.Fatalf("NotFound: %v", nf)
	}
}

// TestLeafTailSize: LeafTailSize bounds the tail of a leaf with every
// field set, none needing escapes, so building it needs one allocation.
func TestLeafTailSize(t *testing.T) {
	sig := make([]byte, 64)
	l := &Leaf{Kind: KindAction, Principal: "p", Role: "agent", TokenID: "0123456789abcdef", Agent: "a", Session: "s", Task: "t", Config: "sha256:00",
		Seq: math.MaxUint64, Action: "x", Tool: "y", Resource: "r", Outcome: "o", Attributes: []byte(`{"k":"v"}`), Sig: sig}
	for _, n := range []int{0, 1, 100, 1000} {
		l.Attributes = []byte(`{"pad":"` + strings.Repeat("x", n) + `"}`)
		if got, max := len(AppendLeafTail(nil, l)), LeafTailSize(l); got > max {
			t.Errorf("attributes of %d bytes: tail of %d bytes, LeafTailSize %d", len(l.Attributes), got, max)
		}
	}
	l.Sig, l.Seq, l.TokenID, l.Config = nil, 0, "", ""
	if got, max := len(AppendLeafTail(nil, l)), LeafTailSize(l); got > max {
		t.Errorf("tail of %d bytes, LeafTailSize %d", got, max)
	}
}

// TestAppendResponseJSON: AppendJSON writes what encoding/json writes.
func TestAppendResponseJSON(t *testing.T) {
	h := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:32]
	for _, r := range []AppendResponse{
		{},
		{Entries: []Appended{}},
		{Entries: []Appended{{Index: 0, LeafHash: h, Time: "2026-12-02T01:02:03.123456789Z"}}},
		{Entries: []Appended{{Index: math.MaxUint64, LeafHash: nil, Time: ""}, {Index: 7, LeafHash: []byte{}, Time: "2026-12-02T01:02:03Z"}, {Index: 8, LeafHash: h[:5], Time: "x"}}},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON([]byte("prefix")); string(got) != "prefix"+string(want) {
			t.Errorf("AppendJSON %s\nencoding/json %s", got, want)
		}
	}
}

func TestLoadZone(t *testing.T) {
	for _, name := range []string{"UTC", "Europe/Paris", "America/New_York"} {
		if _, err := LoadZone(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"Local", "../../etc/passwd", "/etc/localtime", "Nowhere/Land"} {
		if _, err := LoadZone(name); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
