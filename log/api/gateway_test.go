package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agentlog/agentlog"
)

// TestGatewayConfigBadInput: a gateway token's malformed configuration is
// refused with 400 and a sentence, and writes nothing.
func TestGatewayConfigBadInput(t *testing.T) {
	e := newEnv(t, Config{})
	code, _, b := do(t, "POST", e.hs.URL+"/v1/tokens", adminTok, `{"name":"gw","role":"gateway"}`)
	if code != 200 {
		t.Fatalf("create token: %d %s", code, b)
	}
	var tc struct{ Token string }
	json.Unmarshal(b, &tc)
	route := func(s string) string {
		return `{"listen":"127.0.0.1:1","routes":[` + s + `]}`
	}
	ok := `{"name":"tools","upstream":"http://127.0.0.1:9000","record":"after","scope":"record"}`
	for _, c := range []struct{ name, body, want string }{
		{"not json", `{`, ""},
		{"unknown member", `{"listen":"x","routes":[` + ok + `],"extra":1}`, "extra"},
		{"no routes", `{"listen":"x","routes":[]}`, "0 routes"},
		{"bad name", route(`{"name":"a b","upstream":"http://h","record":"after","scope":"record"}`), "name"},
		{"twice", route(ok + "," + ok), "twice"},
		{"bad record", route(`{"name":"t","upstream":"http://h","record":"later","scope":"record"}`), "record"},
		{"bad scope", route(`{"name":"t","upstream":"http://h","record":"after","scope":"all"}`), "scope"},
		{"credentials in upstream", route(`{"name":"t","upstream":"http://u:p@h","record":"after","scope":"record"}`), "upstream"},
		{"not http", route(`{"name":"t","upstream":"file:///etc","record":"after","scope":"record"}`), "upstream"},
		{"control in listen", `{"listen":"a\u0007","routes":[` + ok + `]}`, "listen"},
		{"too large", `{"listen":"` + strings.Repeat("x", maxGatewayBodyBytes) + `","routes":[]}`, "larger"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.l.Size()
			code, _, b := do(t, "POST", e.hs.URL+"/v1/gateway/config", tc.Token, c.body)
			want := 400
			if c.name == "too large" {
				want = 413
			}
			var er struct{ Error string }
			if code != want || json.Unmarshal(b, &er) != nil || er.Error == "" || !strings.Contains(er.Error, c.want) {
				t.Fatalf("%d %s, want %d with an error naming %q", code, b, want, c.want)
			}
			if n := e.l.Size(); n != before {
				t.Fatalf("the log grew from %d to %d entries", before, n)
			}
		})
	}
	// A good one is answered with its receipt.
	before := e.l.Size()
	code, _, b = do(t, "POST", e.hs.URL+"/v1/gateway/config", tc.Token, route(ok))
	var a agentlog.Appended
	if code != 200 || json.Unmarshal(b, &a) != nil || a.Index != before || len(a.LeafHash) != 32 {
		t.Fatalf("%d %s, want a receipt for index %d", code, b, before)
	}
	if ls := e.leaves(t, before); len(ls) != 1 || fmt.Sprint(ls[0].Resource) != "127.0.0.1:1" {
		t.Fatalf("leaves %+v", ls)
	}
}

// TestRecordedGateways: GET /v1/gateways answers, for each gateway token
// and listen address, the newest configuration it recorded, with its
// entry, its fail_open routes and how many times it was recorded.
func TestRecordedGateways(t *testing.T) {
	e := newEnv(t, Config{})
	token := func(name string) string {
		code, _, b := do(t, "POST", e.hs.URL+"/v1/tokens", adminTok, `{"name":"`+name+`","role":"gateway"}`)
		if code != 200 {
			t.Fatalf("create token: %d %s", code, b)
		}
		var tc struct{ Token string }
		json.Unmarshal(b, &tc)
		return tc.Token
	}
	gw1, gw2 := token("gw-1"), token("gw-2")
	get := func() agentlog.Gateways {
		t.Helper()
		code, _, b := do(t, "GET", e.hs.URL+"/v1/gateways", auditorTok, "")
		var g agentlog.Gateways
		if code != 200 || json.Unmarshal(b, &g) != nil {
			t.Fatalf("%d %s", code, b)
		}
		return g
	}
	if g := get(); len(g.Gateways) != 0 || g.Gateways == nil {
		t.Fatalf("before any gateway: %+v", g)
	}
	cfg := func(listen string, failOpen bool) string {
		return fmt.Sprintf(`{"listen":%q,"routes":[{"name":"tools","upstream":"http://127.0.0.1:9000","record":"after","scope":"record"},`+
			`{"name":"crm","upstream":"http://127.0.0.1:9001/mcp","mcp":true,"record":"before","scope":"enforce","fail_open":%v}]}`, listen, failOpen)
	}
	var last agentlog.Appended
	for _, c := range []struct{ tok, body string }{
		{gw1, cfg("10.0.0.1:8091", false)}, {gw2, cfg("10.0.0.2:8091", false)},
		{gw1, cfg("10.0.0.1:8091", true)}, {gw1, cfg("10.0.0.1:8092", false)},
	} {
		code, _, b := do(t, "POST", e.hs.URL+"/v1/gateway/config", c.tok, c.body)
		if code != 200 || json.Unmarshal(b, &last) != nil {
			t.Fatalf("%d %s", code, b)
		}
	}
	g := get()
	if g.TreeSize != e.l.Size() || len(g.Gateways) != 3 {
		t.Fatalf("%+v", g)
	}
	a, b, c := g.Gateways[0], g.Gateways[1], g.Gateways[2]
	if a.Principal != "gw-1" || a.Listen != "10.0.0.1:8091" || a.Recorded != 2 || fmt.Sprint(a.FailOpen) != "[crm]" || len(a.Routes) != 2 ||
		a.Routes[1] != (agentlog.GatewayRoute{Name: "crm", Upstream: "http://127.0.0.1:9001/mcp", MCP: true, Record: "before", Scope: "enforce", FailOpen: true}) {
		t.Fatalf("gw-1 at 8091: %+v", a)
	}
	if b.Principal != "gw-1" || b.Listen != "10.0.0.1:8092" || b.Recorded != 1 || b.Index != last.Index || b.Time != last.Time || len(b.FailOpen) != 0 || b.FailOpen == nil {
		t.Fatalf("gw-1 at 8092: %+v, want entry %+v", b, last)
	}
	if c.Principal != "gw-2" || c.Recorded != 1 || len(c.FailOpen) != 0 || a.Index >= b.Index || c.Index >= a.Index {
		t.Fatalf("gw-2: %+v (gw-1's at %d and %d)", c, a.Index, b.Index)
	}
	// The entry it names is the configuration's.
	l, err := e.l.Entry(a.Index)
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := agentlog.ParseLeaf(l)
	if lf.Action != "gateway.configured" || lf.Principal != "gw-1" || !strings.Contains(string(lf.Attributes), `"fail_open":["crm"]`) {
		t.Fatalf("entry %d: %s", a.Index, l)
	}
}
