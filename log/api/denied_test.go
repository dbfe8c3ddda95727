package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
)

// TestDeniedSummary: a flood of denials that prove no identity (junk and
// forged tokens, session requests of unknown agents) writes nothing until
// the interval's summary, which counts them exactly by source, reason and
// route; meanwhile a real identity's denial is written at once (its own
// bucket), and its denials beyond its bucket are counted exactly too.
func TestDeniedSummary(t *testing.T) {
	e := newEnv(t, Config{DeniedRate: 1e-9, DeniedBurst: 2})
	key := e.agent(t, "agent-a")
	pendingKey := e.pendingAgent(t, "agent-p")
	before := e.l.Size()
	for i := range 300 {
		if code, _, _ := do(t, "POST", e.hs.URL+"/v1/entries", fmt.Sprintf("junk-%d", i), `{"entries":[{"action":"a"}]}`); code != 401 {
			t.Fatalf("junk token: %d", code)
		}
		forged := agentlog.TokenPrefix + "0123456789abcdef." + randSecret()
		if code, _, _ := do(t, "GET", e.hs.URL+"/v1/entries/0", forged, ""); code != 401 {
			t.Fatalf("forged token: %d", code)
		}
		ghost := string(client.SignSessionRequest("ghost", "t", 0, e.clock.now(), key))
		if code, _, _ := do(t, "POST", e.hs.URL+"/v1/sessions", "", ghost); code != 401 {
			t.Fatalf("unknown agent: %d", code)
		}
	}
	if e.l.Size() != before {
		t.Fatalf("900 unauthenticated denials wrote %d entries", e.l.Size()-before)
	}
	// Real denials during the flood: written at once, attributed.
	for i := range 5 {
		if code, _, _ := do(t, "GET", e.hs.URL+"/v1/entries/0", agentTok, ""); code != 403 {
			t.Fatalf("agent role reading: %d", code)
		}
		body := string(client.SignSessionRequest("agent-p", fmt.Sprint(i), 0, e.clock.now(), pendingKey))
		if code, _, _ := do(t, "POST", e.hs.URL+"/v1/sessions", "", body); code != 403 {
			t.Fatalf("pending agent: %d", code)
		}
	}
	ls := e.leaves(t, before)
	byWho := map[string]int{}
	for _, l := range ls {
		if l.Kind != alog.KindDenied {
			t.Fatalf("entry %+v", l)
		}
		byWho[l.Principal+"/"+l.Agent]++
	}
	if len(ls) != 4 || byWho["bot/"] != 2 || byWho["/agent-p"] != 2 {
		t.Fatalf("identified denials written %v, want each identity's burst of 2", byWho)
	}
	before = e.l.Size()
	if err := e.srv.FlushDenied(t.Context()); err != nil {
		t.Fatal(err)
	}
	ls = e.leaves(t, before)
	if len(ls) != 1 || ls[0].Kind != alog.KindDenied || ls[0].Action != "denied.summary" || ls[0].Principal != "" || ls[0].Agent != "" {
		t.Fatalf("summary entries %+v", ls)
	}
	var sum DeniedSummary
	if err := json.Unmarshal(ls[0].Attributes, &sum); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, g := range sum.Groups {
		got[g.Identity+"|"+g.Remote+"|"+g.Reason+"|"+g.Route] = g.Count
	}
	want := map[string]int{
		"|127.0.0.1|unknown credential|append":           300,
		"|127.0.0.1|forged|entry":                        300,
		"|127.0.0.1|unknown agent|session.open":          300,
		"bot||role not allowed|entry":                    3,
		"agent:agent-p||agent not approved|session.open": 3,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || sum.Total != 906 || sum.Others != 0 || !sum.From.Before(sum.To) {
		t.Fatalf("summary %s\ngot  %v\nwant %v", ls[0].Attributes, got, want)
	}
	// Nothing more to summarize: no entry.
	before = e.l.Size()
	if err := e.srv.FlushDenied(t.Context()); err != nil || e.l.Size() != before {
		t.Fatalf("empty flush: %v, %d entries", err, e.l.Size()-before)
	}
}

// TestDeniedSummaryBounded: however many sources, a summary lists at most
// 200 groups and adds up the rest, so it fits in one leaf; memory holds at
// most 10,000 groups.
func TestDeniedSummaryBounded(t *testing.T) {
	var d deniedRecorder
	t0 := time.Unix(1000, 0)
	d.init(1, 1, t0)
	for i := range maxDeniedGroups + 500 {
		d.count(deniedKey{Remote: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Reason: "forged", Route: "append"})
	}
	d.count(deniedKey{Remote: "10.0.0.0", Reason: "forged", Route: "append"})
	sum := d.take(t0.Add(time.Minute))
	if sum.Total != maxDeniedGroups+501 || len(sum.Groups) != maxSummaryGroups || sum.Groups[0].Count != 2 {
		t.Fatalf("total %d, %d groups, first %+v", sum.Total, len(sum.Groups), sum.Groups[0])
	}
	listed := 0
	for _, g := range sum.Groups {
		listed += g.Count
	}
	if listed+sum.Others != sum.Total {
		t.Fatalf("listed %d + others %d != total %d", listed, sum.Others, sum.Total)
	}
	b, _ := jsonMarshal(sum)
	if len(b) > 60000 || !strings.Contains(string(b), `"others":`) {
		t.Fatalf("summary is %d bytes", len(b))
	}
	if len(d.groups) != 0 || d.take(t0.Add(2*time.Minute)) != nil {
		t.Fatal("take did not start a new interval")
	}
}

// TestDeniedBucket: each identity's bucket refills at its rate.
func TestDeniedBucket(t *testing.T) {
	var d deniedRecorder
	t0 := time.Unix(1000, 0)
	d.init(1, 2, t0)
	for i, want := range []bool{true, true, false, false} {
		if d.allow("a", t0) != want {
			t.Fatalf("attempt %d: want %v", i, want)
		}
	}
	if !d.allow("b", t0) {
		t.Fatal("another identity's bucket is shared")
	}
	if !d.allow("a", t0.Add(time.Second)) || d.allow("a", t0.Add(time.Second)) {
		t.Fatal("one token a second")
	}
}
