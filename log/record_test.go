package log

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
)

func TestParseAppendRequest(t *testing.T) {
	big := strings.Repeat("a", MaxLeafSize)
	for _, tc := range []struct {
		name string
		body string
		ok   bool
		n    int
	}{
		{"one", `{"entries":[{"action":"db.query"}]}`, true, 1},
		{"all fields", `{"entries":[{"action":"a","tool":"t","resource":"r/1","outcome":"success","attributes":{"k":"v","n":1}}]}`, true, 1},
		{"two", `{"entries":[{"action":"a"},{"action":"b"}]}`, true, 2},
		{"null attributes", `{"entries":[{"action":"a","attributes":null}]}`, true, 1},
		{"empty entries", `{"entries":[]}`, false, 0},
		{"no entries", `{}`, false, 0},
		{"empty action", `{"entries":[{"action":""}]}`, false, 0},
		{"blank action", `{"entries":[{"action":"  "}]}`, false, 0},
		{"missing action", `{"entries":[{"tool":"x"}]}`, false, 0},
		{"one bad of two", `{"entries":[{"action":"a"},{"action":""}]}`, false, 0},
		{"unknown field", `{"entries":[{"action":"a","agent":"forged"}]}`, false, 0},
		{"wrong case", `{"entries":[{"ACTION":"a"}]}`, false, 0},
		{"duplicate name", `{"entries":[{"action":"a","action":"b"}]}`, false, 0},
		{"duplicate in attributes", `{"entries":[{"action":"a","attributes":{"k":1,"k":2}}]}`, false, 0},
		{"unknown top field", `{"entries":[{"action":"a"}],"x":1}`, false, 0},
		{"action not string", `{"entries":[{"action":5}]}`, false, 0},
		{"attributes not object", `{"entries":[{"action":"a","attributes":[1]}]}`, false, 0},
		{"attributes string", `{"entries":[{"action":"a","attributes":"x"}]}`, false, 0},
		{"control char", `{"entries":[{"action":"a\u0000b"}]}`, false, 0},
		{"not json", `action=a`, false, 0},
		{"trailing", `{"entries":[{"action":"a"}]} {}`, false, 0},
		{"invalid utf8", "{\"entries\":[{\"action\":\"a\xff\"}]}", false, 0},
		{"oversize attributes", `{"entries":[{"action":"a","attributes":{"k":"` + big + `"}}]}`, true, 1}, // rejected later at encoding
		{"oversize action", `{"entries":[{"action":"` + strings.Repeat("a", 300) + `"}]}`, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := ParseAppendRequest([]byte(tc.body))
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseAppendRequest: %v", err)
				}
				if len(recs) != tc.n {
					t.Fatalf("got %d records, want %d", len(recs), tc.n)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseAppendRequest accepted %q", tc.body)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestTooManyEntries(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"entries":[`)
	for i := 0; i <= MaxEntriesPerRequest; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"action":"a"}`)
	}
	b.WriteString(`]}`)
	if _, err := ParseAppendRequest(b.Bytes()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid for %d entries", err, MaxEntriesPerRequest+1)
	}
}

func TestLeafEncoding(t *testing.T) {
	recs, err := ParseAppendRequest([]byte(`{"entries":[{"action":"db.query","tool":"sql","resource":"customers/42","outcome":"success","attributes":{ "rows" : 3 }}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tail, err := encodeTail(KindAction, Principal{ID: "admin", Role: "admin"}, &recs[0])
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 28, 3, 4, 5, 6, time.UTC)
	leaf := appendLeaf(nil, ts, tail)
	want := `{"time":"2026-11-28T03:04:05.000000006Z","kind":"action","principal":"admin","role":"admin","action":"db.query","tool":"sql","resource":"customers/42","outcome":"success","attributes":{"rows":3}}`
	if string(leaf) != want {
		t.Fatalf("leaf\n got %s\nwant %s", leaf, want)
	}
	if !json.Valid(leaf) {
		t.Fatal("leaf is not valid JSON")
	}
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Time.Equal(ts) || l.Action != "db.query" || l.Principal != "admin" {
		t.Fatalf("ParseLeaf = %+v", l)
	}
	lt, err := leafTime(leaf)
	if err != nil || !lt.Equal(ts) {
		t.Fatalf("leafTime = %v, %v", lt, err)
	}
	// A non-UTC time is written in UTC.
	leaf2 := appendLeaf(nil, ts.In(time.FixedZone("x", 3600)), tail)
	if !bytes.Equal(leaf, leaf2) {
		t.Fatalf("time zone leaked into leaf: %s", leaf2)
	}
}

func TestOversizeLeafRejected(t *testing.T) {
	big := strings.Repeat("a", MaxLeafSize)
	recs, err := ParseAppendRequest([]byte(`{"entries":[{"action":"a","attributes":{"k":"` + big + `"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := encodeTail(KindAction, Principal{ID: "admin"}, &recs[0]); !errors.Is(err, ErrInvalid) {
		t.Fatalf("encodeTail of an oversize leaf: %v, want ErrInvalid", err)
	}
	// Just under the limit is fine.
	small := strings.Repeat("a", MaxLeafSize-200)
	recs, err = ParseAppendRequest([]byte(`{"entries":[{"action":"a","attributes":{"k":"` + small + `"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tail, err := encodeTail(KindAction, Principal{ID: "admin"}, &recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := len(appendLeaf(nil, time.Now(), tail)); n > MaxLeafSize {
		t.Fatalf("leaf of %d bytes accepted", n)
	}
}

func FuzzParseAppendRequest(f *testing.F) {
	for _, s := range []string{
		`{"entries":[{"action":"db.query"}]}`,
		`{"entries":[{"action":"a","tool":"t","resource":"r","outcome":"o","attributes":{"k":[1,2,{"x":null}]}}]}`,
		`{"entries":[{"action":"q\\"uo\\\\te <&> \u2028 \u00e9","resource":"a/b"}]}`,
		`{"entries":[{"action":""}]}`,
		`{"entries":[{"action":"a","seq":7,"sig":"` + strings.Repeat("A", 86) + `=="}]}`,
		`{"entries":[{"action":"a","seq":-1}]}`,
		`{"entries":null}`,
		"{\"entries\":[{\"action\":\"\xff\"}]}",
		`[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := ParseAppendRequest(body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for i := range recs {
			tail, err := encodeTail(KindAction, fuzzPrincipal, &recs[i])
			if err != nil {
				continue
			}
			leaf := appendLeaf(nil, time.Unix(1, 0), tail)
			if !json.Valid(leaf) || len(leaf) > MaxLeafSize {
				t.Fatalf("bad leaf %q", leaf)
			}
			l, err := agentlog.ParseLeaf(leaf)
			if err != nil {
				t.Fatalf("agentlog.ParseLeaf(%q): %v", leaf, err)
			}
			if l.Action != recs[i].Action || l.Tool != recs[i].Tool || l.Resource != recs[i].Resource || l.Outcome != recs[i].Outcome ||
				l.Seq != recs[i].Seq || !bytes.Equal(l.Sig, recs[i].Sig) || l.Agent != fuzzPrincipal.Agent || l.Task != fuzzPrincipal.Task {
				t.Fatalf("fields changed: %+v -> %+v", recs[i], l)
			}
			if want := stdTail(t, &recs[i]); !bytes.Equal(tail, want) {
				t.Fatalf("leaf tail differs from encoding/json:\n got %s\nwant %s", tail, want)
			}
		}
	})
}

// fuzzPrincipal has every principal field, with characters that need
// escaping in the task.
var fuzzPrincipal = Principal{ID: "bot-1", Role: "agent", Agent: "bot-1", Session: "s_0123", Task: `t "q" \   <é>`, Config: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}

// stdTail encodes a leaf tail with encoding/json, the reference for the
// hand-written encoder: same keys, same order.
func stdTail(t *testing.T, r *Record) []byte {
	t.Helper()
	type body struct {
		Kind       string          `json:"kind"`
		Principal  string          `json:"principal,omitempty"`
		Role       string          `json:"role,omitempty"`
		Agent      string          `json:"agent,omitempty"`
		Session    string          `json:"session,omitempty"`
		Task       string          `json:"task,omitempty"`
		Config     string          `json:"config,omitempty"`
		Seq        uint64          `json:"seq,omitempty"`
		Action     string          `json:"action,omitempty"`
		Tool       string          `json:"tool,omitempty"`
		Resource   string          `json:"resource,omitempty"`
		Outcome    string          `json:"outcome,omitempty"`
		Attributes json.RawMessage `json:"attributes,omitempty"`
		Sig        []byte          `json:"sig,omitempty"`
	}
	p := fuzzPrincipal
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body{KindAction, p.ID, p.Role, p.Agent, p.Session, p.Task, p.Config, r.Seq, r.Action, r.Tool, r.Resource, r.Outcome, r.Attributes, r.Sig}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))[1:]
}

func BenchmarkParseAppendRequest(b *testing.B) {
	body := []byte(`{"entries":[{"action":"db.query","tool":"sql","resource":"customers/42","outcome":"success","attributes":{"pad":"` + strings.Repeat("x", 400) + `"}}]}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		recs, err := ParseAppendRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := encodeTail(KindAction, admin, &recs[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAgentLeafEncoding pins the documented key order of a leaf with every
// field (docs/api.md).
func TestAgentLeafEncoding(t *testing.T) {
	body := `{"entries":[{"action":"db.query","tool":"sql","resource":"customers/42","outcome":"success","attributes":{"rows":3},"seq":7,"sig":"` + strings.Repeat("A", 86) + `=="}]}`
	recs, err := ParseAppendRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{ID: "bot-1", Role: "agent", Agent: "bot-1", Session: "0123456789abcdef", Task: "T-1", Config: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	tail, err := encodeTail(KindAction, p, &recs[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf := appendLeaf(nil, time.Date(2026, 11, 28, 3, 4, 5, 6, time.UTC), tail)
	want := `{"time":"2026-11-28T03:04:05.000000006Z","kind":"action","principal":"bot-1","role":"agent","agent":"bot-1","session":"0123456789abcdef","task":"T-1","config":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","seq":7,"action":"db.query","tool":"sql","resource":"customers/42","outcome":"success","attributes":{"rows":3},"sig":"` + strings.Repeat("A", 86) + `=="}`
	if string(leaf) != want {
		t.Fatalf("leaf\n got %s\nwant %s", leaf, want)
	}
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil || l.Seq != 7 || len(l.Sig) != 64 || l.Session != p.Session || l.Task != "T-1" || l.Config != p.Config {
		t.Fatalf("ParseLeaf = %+v, %v", l, err)
	}
	for _, bad := range []string{`"sig":"AAAA"`, `"sig":"` + strings.Repeat("A", 88) + `"`, `"seq":-1`, `"seq":1.5`} {
		if _, err := ParseAppendRequest([]byte(`{"entries":[{"action":"a",` + bad + `}]}`)); !errors.Is(err, ErrInvalid) {
			t.Errorf("accepted %s", bad)
		}
	}
}
