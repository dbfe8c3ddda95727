package api

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// queryEnv is a server holding entries of two agents and a published
// checkpoint covering them.
func queryEnv(t *testing.T) (*env, *checkpoint.Keys) {
	t.Helper()
	e := newEnv(t, Config{})
	for _, id := range []string{"bot-a", "bot-b"} {
		tok := e.openSession(t, e.agent(t, id), id, "task-"+id, time.Hour)
		for i := 0; i < 12; i++ {
			body := fmt.Sprintf(`{"entries":[{"action":"db.query","resource":"customers/%d"},{"action":"db.write","tool":"sql","resource":"orders/%d"}]}`, i, i)
			if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", tok, body); code != 200 {
				t.Fatalf("append: %d %s", code, b)
			}
		}
	}
	keys, _, err := checkpoint.LoadOrCreateKeys(t.TempDir(), "query.test/log")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := checkpoint.SignAt(keys, e.l.Size(), e.l.Tree().Root(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(raw, keys.LogVerifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Publish(cp)
	return e, keys
}

type queryAnswer struct {
	matches []agentlog.QueryMatch
	summary agentlog.QuerySummary
}

func runQuery(t *testing.T, e *env, tok, params string) (int, queryAnswer, []byte) {
	t.Helper()
	code, h, b := do(t, "GET", e.hs.URL+"/v1/query?"+params, tok, "")
	if code != 200 {
		return code, queryAnswer{}, b
	}
	if ct := h.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	var a queryAnswer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"summary":`)) {
			var s map[string]agentlog.QuerySummary
			if err := json.Unmarshal(line, &s); err != nil {
				t.Fatal(err)
			}
			a.summary = s["summary"]
			continue
		}
		var m agentlog.QueryMatch
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		a.matches = append(a.matches, m)
	}
	return code, a, b
}

// TestQuery checks answers against a brute-force filter over every leaf,
// paging with the cursor, proofs against the published checkpoint, and the
// credentials and inputs the route refuses.
func TestQuery(t *testing.T) {
	e, keys := queryEnv(t)
	size := e.l.Size()
	for _, params := range []string{
		"agent=bot-a", "agent=bot-b&action=db.write", "resource=customers/*", "action=db.*&agent=bot-a",
		"kind=agent", "kind=session", "tool=sql&resource=orders/1*", "task=task-bot-b&outcome=nope",
		"from=2000-01-01T00:00:00Z", "outside_hours=00:00-00:01&tz=Europe/Paris&weekdays=mon-sun",
	} {
		q, _ := url.ParseQuery(params)
		f, err := query.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for i := uint64(0); i < size; i++ {
			leaf, _ := e.l.Entry(i)
			if ok, _ := alog.LeafMatches(f, leaf); ok {
				want = append(want, i)
			}
		}
		// Page through with limit 5 and the cursor.
		var got []uint64
		p := params + "&limit=5"
		for pages := 0; ; pages++ {
			code, a, b := runQuery(t, e, auditorTok, p)
			if code != 200 {
				t.Fatalf("%s: %d %s", p, code, b)
			}
			if a.summary.TreeSize != size || len(a.matches) > 5 {
				t.Fatalf("%s: summary %+v with %d matches", p, a.summary, len(a.matches))
			}
			for _, m := range a.matches {
				got = append(got, m.Index)
			}
			if a.summary.Cursor == "" {
				break
			}
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			p = params + "&limit=5&cursor=" + a.summary.Cursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %v, brute force %v", params, got, want)
		}
	}

	// proof=true: every match verifies against the summary's checkpoint.
	code, a, b := runQuery(t, e, adminTok, "agent=bot-a&proof=true")
	if code != 200 || len(a.matches) == 0 {
		t.Fatalf("proof query: %d %s", code, b)
	}
	cp, err := checkpoint.Open([]byte(a.summary.Checkpoint), keys.LogVerifier, nil)
	if err != nil {
		t.Fatalf("summary checkpoint: %v", err)
	}
	for _, m := range a.matches {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, m.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(m.Entry), m.InclusionProof, cp.Root); err != nil {
			t.Fatalf("match %d: %v", m.Index, err)
		}
		var l agentlog.Leaf
		json.Unmarshal(m.Entry, &l)
		if l.Agent != "bot-a" {
			t.Fatalf("match %d is by %q", m.Index, l.Agent)
		}
	}

	for _, tc := range []struct {
		tok, params string
		want        int
	}{
		{"", "agent=bot-a", 401},
		{"wrong", "agent=bot-a", 401},
		{sessionTokOf(t, e), "agent=bot-a", 403},
		{agentTok, "agent=bot-a", 403},
		{auditorTok, "agent=bot-a&agent=bot-b", 400},
		{auditorTok, "colour=blue", 400},
		{auditorTok, "limit=0", 400},
		{auditorTok, "limit=100001", 400},
		{auditorTok, "proof=maybe", 400},
		{auditorTok, "cursor=%%%", 400},
		{auditorTok, "cursor=" + encodeCursor(size+100, 0), 400},
		{auditorTok, "outside_hours=9-5", 400},
		{auditorTok, "tz=Europe/Paris", 400},
	} {
		code, _, b := runQuery(t, e, tc.tok, tc.params)
		if code != tc.want {
			t.Errorf("%q %s: %d %s, want %d", tc.tok, tc.params, code, b, tc.want)
		}
		if code != 200 && !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: error answer %q is not JSON", tc.params, b)
		}
	}
}

func sessionTokOf(t *testing.T, e *env) string {
	t.Helper()
	return e.openSession(t, e.agent(t, "bot-q"), "bot-q", "probe", time.Hour)
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(10, 3))
	f.Add("")
	f.Add("djE6MTA6MTE")
	f.Fuzz(func(t *testing.T, c string) {
		size, next, err := decodeCursor(c)
		if err != nil {
			return
		}
		if next > size {
			t.Fatalf("cursor %q decodes to next %d > size %d", c, next, size)
		}
		if s2, n2, err := decodeCursor(encodeCursor(size, next)); err != nil || s2 != size || n2 != next {
			t.Fatalf("round trip of %d/%d failed", size, next)
		}
	})
}

// TestHostZoneRefused: "Local", the host's time zone, is no IANA name: a
// query window, an agent's declared hours or a report in it would depend
// on the host (a standby, an auditor recomputing offline). A query or a
// registration naming it gets 400 and writes nothing.
func TestHostZoneRefused(t *testing.T) {
	e := newEnv(t, Config{})
	before := e.l.Size()
	if code, _, b := do(t, "GET", e.hs.URL+"/v1/query?outside_hours=09:00-17:00&tz=Local", adminTok, ""); code != 400 {
		t.Errorf("query with tz=Local: %d %s", code, b)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(map[string]any{"id": "bot-local", "public_key": []byte(pub), "scope": map[string]any{"hours": "09:00-17:00", "tz": "Local"}})
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents", adminTok, string(body)); code != 400 {
		t.Errorf("registration with scope tz Local: %d %s", code, b)
	}
	if e.l.Size() != before {
		t.Errorf("%d entries written", e.l.Size()-before)
	}
	if code, _, b := do(t, "GET", e.hs.URL+"/v1/query?outside_hours=09:00-17:00&tz=Europe/Paris&limit=1", adminTok, ""); code != 200 {
		t.Errorf("query with an IANA zone: %d %s", code, b)
	}
}
