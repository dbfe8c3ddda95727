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
