package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// TestAuthorizationMatrix sends every identity-checked route every kind
// of credential, in every state, and checks the status and whether a
// "denied" entry was recorded. Each case gets fresh credentials and
// objects, so cases do not depend on each other.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t, Config{})
	keyA := e.agent(t, "agent-a")
	keyB := e.agent(t, "agent-b")
	create := func(name, role string) string {
		code, _, b := do(t, "POST", e.hs.URL+"/v1/tokens", adminTok, fmt.Sprintf(`{"name":%q,"role":%q}`, name, role))
		if code != 200 {
			t.Fatalf("create token: %d %s", code, b)
		}
		var tc struct{ ID, Token string }
		json.Unmarshal(b, &tc)
		return tc.Token
	}
	adminT, approverT, auditorT := create("ops-admin", "admin"), create("ops-approver", "approver"), create("ops-auditor", "auditor")
	gatewayT := create("ops-gateway", "gateway")
	revokedT := create("gone", "auditor")
	{
		_, id, _, _ := agentlog.ParseCredential(revokedT)
		if code, _, b := do(t, "DELETE", e.hs.URL+"/v1/tokens/"+id, adminTok, ""); code != 200 {
			t.Fatalf("revoke token: %d %s", code, b)
		}
	}
	n := 0
	fresh := func(p string) string { n++; return fmt.Sprintf("%s-%d", p, n) }

	// Credentials: a name, its role ("" for refused ones) and a maker.
	type cred struct {
		name, role string
		make       func(t *testing.T) string
	}
	static := func(s string) func(*testing.T) string { return func(*testing.T) string { return s } }
	creds := []cred{
		{"bootstrap admin", RoleAdmin, static(adminTok)},
		{"admin token", RoleAdmin, static(adminT)},
		{"approver token", RoleApprover, static(approverT)},
		{"auditor token", RoleAuditor, static(auditorT)},
		{"gateway token", RoleGateway, static(gatewayT)},
		{"revoked token", "", static(revokedT)},
		{"forged token", "", func(*testing.T) string { return agentlog.TokenPrefix + "0123456789abcdef." + randSecret() }},
		{"session valid", RoleAgent, func(t *testing.T) string { return e.openSession(t, keyA, "agent-a", "task-1", 0) }},
		{"session of another agent", RoleAgent, func(t *testing.T) string { return e.openSession(t, keyB, "agent-b", "task-b", 0) }},
		{"session expired", "", func(t *testing.T) string {
			s := e.openSession(t, keyA, "agent-a", "task-1", time.Minute)
			e.clock.advance(time.Minute)
			return s
		}},
		{"session closed", "", func(t *testing.T) string {
			s := e.openSession(t, keyA, "agent-a", "task-1", 0)
			if code, _, b := do(t, "DELETE", e.hs.URL+"/v1/sessions/current", s, ""); code != 200 {
				t.Fatalf("close: %d %s", code, b)
			}
			return s
		}},
		{"session of revoked agent", "", func(t *testing.T) string {
			id := fresh("revoked")
			s := e.openSession(t, e.agent(t, id), id, "task-r", 0)
			if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents/"+id+"/revoke", adminTok, ""); code != 200 {
				t.Fatalf("revoke: %d %s", code, b)
			}
			return s
		}},
		{"session forged", "", func(t *testing.T) string {
			s := e.openSession(t, keyA, "agent-a", "task-1", 0)
			return s[:strings.LastIndexByte(s, '.')+1] + randSecret()
		}},
		{"garbage", "", static("not-a-credential")},
		{"none", "", static("")},
	}

	// Routes: allowed roles and a maker of the path and body (run before
	// the request, so setup entries are not counted).
	type route struct {
		name, method string
		roles        []string
		make         func(t *testing.T) (path, body string)
	}
	fixed := func(p, b string) func(*testing.T) (string, string) {
		return func(*testing.T) (string, string) { return p, b }
	}
	routes := []route{
		{"append", "POST", []string{RoleAgent}, fixed("/v1/entries", `{"entries":[{"action":"db.query"}]}`)},
		{"read entry", "GET", []string{RoleAuditor, RoleAdmin}, fixed("/v1/entries/0", "")},
		{"read bundle", "GET", []string{RoleAuditor, RoleAdmin}, fixed("/tile/entries/000.p/1", "")},
		{"query", "GET", []string{RoleAuditor, RoleAdmin}, fixed("/v1/query?agent=agent-a&limit=5", "")},
		{"create token", "POST", []string{RoleAdmin}, func(*testing.T) (string, string) {
			return "/v1/tokens", fmt.Sprintf(`{"name":%q,"role":"auditor"}`, fresh("tok"))
		}},
		{"list tokens", "GET", []string{RoleAdmin}, fixed("/v1/tokens", "")},
		{"revoke token", "DELETE", []string{RoleAdmin}, func(t *testing.T) (string, string) {
			_, id, _, _ := agentlog.ParseCredential(create(fresh("victim"), "auditor"))
			return "/v1/tokens/" + id, ""
		}},
		{"register agent", "POST", []string{RoleAdmin}, func(*testing.T) (string, string) {
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			return "/v1/agents", fmt.Sprintf(`{"id":%q,"owner":"o","public_key":%q}`, fresh("new"), base64.StdEncoding.EncodeToString(pub))
		}},
		{"controls", "GET", []string{RoleAuditor, RoleAdmin}, fixed("/v1/controls", "")},
		{"list agents", "GET", []string{RoleAdmin, RoleApprover, RoleAuditor}, fixed("/v1/agents", "")},
		{"show agent", "GET", []string{RoleAdmin, RoleApprover, RoleAuditor}, fixed("/v1/agents/agent-a", "")},
		{"approve agent", "POST", []string{RoleApprover, RoleAdmin}, func(t *testing.T) (string, string) {
			id := fresh("pending")
			e.pendingAgent(t, id)
			return "/v1/agents/" + id + "/approve", ""
		}},
		{"revoke agent", "POST", []string{RoleAdmin}, func(t *testing.T) (string, string) {
			id := fresh("victim")
			e.agent(t, id)
			return "/v1/agents/" + id + "/revoke", ""
		}},
		{"change scope", "PUT", []string{RoleAdmin}, fixed("/v1/agents/agent-b/scope", `{"actions":["db.*"]}`)},
		{"record gateway config", "POST", []string{RoleGateway}, fixed("/v1/gateway/config", `{"listen":"127.0.0.1:8091","routes":[{"name":"tools","upstream":"http://127.0.0.1:9000","record":"after","scope":"record","fail_open":true}]}`)},
		{"recorded gateways", "GET", []string{RoleAuditor, RoleAdmin}, fixed("/v1/gateways", "")},
		{"show session", "GET", []string{RoleAgent}, fixed("/v1/sessions/current", "")},
		{"close session", "DELETE", []string{RoleAgent}, fixed("/v1/sessions/current", "")},
		{"list sessions", "GET", []string{RoleAdmin, RoleAuditor}, fixed("/v1/sessions?agent=agent-a", "")},
		{"end session", "DELETE", []string{RoleAdmin}, func(t *testing.T) (string, string) {
			_, id, _, _ := agentlog.ParseCredential(e.openSession(t, keyA, "agent-a", "task-x", 0))
			return "/v1/sessions/" + id, ""
		}},
	}
	for _, rt := range routes {
		for _, c := range creds {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				tok := c.make(t)
				path, body := rt.make(t)
				want, wantDenied := 200, false
				switch {
				case c.name == "none":
					want = 401
				case c.role == "":
					// A forged credential proves no identity: it is only
					// counted in the next summary (TestDeniedSummary).
					want, wantDenied = 401, !strings.Contains(c.name, "forged") && c.name != "garbage"
				case !contains(rt.roles, c.role):
					want, wantDenied = 403, true
				}
				before := e.l.Size()
				code, _, b := do(t, rt.method, e.hs.URL+path, tok, body)
				if code != want {
					t.Fatalf("%s %s: %d %s, want %d", rt.method, path, code, b, want)
				}
				var denied []*agentlog.Leaf
				for _, l := range e.leaves(t, before) {
					if l.Kind == alog.KindDenied {
						denied = append(denied, l)
					}
				}
				if wantDenied != (len(denied) == 1) || len(denied) > 1 {
					t.Fatalf("%d denied entries, want %v", len(denied), wantDenied)
				}
				if wantDenied {
					d := denied[0]
					if d.Outcome != "denied" || d.Action == "" || !strings.Contains(string(d.Attributes), `"status":`+fmt.Sprint(want)) {
						t.Fatalf("denied entry %+v", d)
					}
					// A real credential names its agent.
					if c.name == "revoked token" && !strings.Contains(string(d.Attributes), `"token":"gone"`) {
						t.Fatalf("denied entry of a revoked token does not name it: %s", d.Attributes)
					}
					if (c.name == "session expired" || c.name == "session closed") && d.Agent != "agent-a" {
						t.Fatalf("denied entry of a real session names agent %q", d.Agent)
					}
				}
				if rt.name == "show session" && want == 200 {
					wantAgent := map[string]string{"session valid": "agent-a", "session of another agent": "agent-b"}[c.name]
					var cs CurrentSession
					if err := json.Unmarshal([]byte(b), &cs); err != nil || cs.Agent != wantAgent || cs.Session == "" || cs.Task == "" || cs.Expires.IsZero() {
						t.Fatalf("current session %s, want agent %s", b, wantAgent)
					}
				}
				if rt.name == "record gateway config" && want == 200 {
					ls := e.leaves(t, before)
					if len(ls) != 1 || ls[0].Kind != alog.KindSystem || ls[0].Action != "gateway.configured" || ls[0].Principal != "ops-gateway" || ls[0].Role != RoleGateway || ls[0].Agent != "" {
						t.Fatalf("gateway configuration leaves %+v", ls)
					}
					var a struct {
						Listen   string
						Routes   []agentlog.GatewayRoute
						FailOpen []string `json:"fail_open"`
					}
					if err := json.Unmarshal(ls[0].Attributes, &a); err != nil || a.Listen != "127.0.0.1:8091" || len(a.Routes) != 1 || !a.Routes[0].FailOpen || len(a.FailOpen) != 1 || a.FailOpen[0] != "tools" {
						t.Fatalf("gateway configuration attributes %s (%v)", ls[0].Attributes, err)
					}
				}
				if rt.name == "append" && want == 200 {
					ls := e.leaves(t, before)
					wantAgent := map[string]string{"session valid": "agent-a", "session of another agent": "agent-b"}[c.name]
					if len(ls) != 1 || ls[0].Agent != wantAgent || ls[0].Principal != wantAgent || ls[0].Session == "" || ls[0].Task == "" {
						t.Fatalf("appended leaf %+v, want agent %s", ls[0], wantAgent)
					}
				}
			})
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func randSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestSessionOpen covers the signed session request: replays, stale and
// forged requests, another agent's key, unapproved and revoked agents, all
// refused and recorded; the TTL maximum.
func TestSessionOpen(t *testing.T) {
	e := newEnv(t, Config{})
	keyA := e.agent(t, "agent-a")
	keyB := e.agent(t, "agent-b")
	pendingKey := e.pendingAgent(t, "agent-p")
	revokedKey := e.agent(t, "agent-r")
	do(t, "POST", e.hs.URL+"/v1/agents/agent-r/revoke", adminTok, "")
	now := e.clock.now()
	replayed := string(client.SignSessionRequest("agent-a", "t", 0, now, keyA))
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", replayed); code != 200 {
		t.Fatalf("first use: %d %s", code, b)
	}
	tampered := strings.Replace(string(client.SignSessionRequest("agent-a", "t", 0, now, keyA)), `"task":"t"`, `"task":"u"`, 1)
	for _, tc := range []struct {
		name, body string
		want       int
		denied     bool
		reason     string
	}{
		{"replay", replayed, 401, true, identity.ReasonReplayed},
		{"stale", string(client.SignSessionRequest("agent-a", "t", 0, now.Add(-10*time.Minute), keyA)), 401, true, identity.ReasonStale},
		{"future", string(client.SignSessionRequest("agent-a", "t", 0, now.Add(10*time.Minute), keyA)), 401, true, identity.ReasonStale},
		// Requests that prove no identity are only counted in the summary.
		{"tampered", tampered, 401, false, identity.ReasonBadSig},
		{"another agent's key", string(client.SignSessionRequest("agent-a", "t", 0, now, keyB)), 401, false, identity.ReasonBadSig},
		{"unknown agent", string(client.SignSessionRequest("ghost", "t", 0, now, keyA)), 401, false, identity.ReasonUnknown},
		{"pending agent", string(client.SignSessionRequest("agent-p", "t", 0, now, pendingKey)), 403, true, "agent not approved"},
		{"revoked agent", string(client.SignSessionRequest("agent-r", "t", 0, now, revokedKey)), 401, true, identity.ReasonRevoked},
		{"ttl above max", string(client.SignSessionRequest("agent-a", "t", 3*time.Hour, now, keyA)), 400, false, ""},
		{"malformed", `{"agent":"agent-a"}`, 400, false, ""},
		{"unknown field", `{"agent":"agent-a","task":"t","time":"x","nonce":"x","sig":"x","extra":1}`, 400, false, ""},
		{"ok with ttl", string(client.SignSessionRequest("agent-a", "t", 90*time.Minute, now, keyA)), 200, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.l.Size()
			code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", tc.body)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, b, tc.want)
			}
			ls := e.leaves(t, before)
			if tc.denied {
				if len(ls) != 1 || ls[0].Kind != alog.KindDenied || !strings.Contains(string(ls[0].Attributes), tc.reason) {
					t.Fatalf("want one denied entry with reason %q, got %+v", tc.reason, ls)
				}
				return
			}
			if tc.want == 200 {
				if len(ls) != 1 || ls[0].Kind != alog.KindSession || ls[0].Action != "session.opened" || ls[0].Agent != "agent-a" || ls[0].Task != "t" {
					t.Fatalf("session entry %+v", ls)
				}
				var o agentlog.SessionInfo
				json.Unmarshal(b, &o)
				if got := o.Expires.Sub(now); got != 90*time.Minute {
					t.Fatalf("session lasts %v, want 90m", got)
				}
				return
			}
			if len(ls) != 0 {
				t.Fatalf("bad request wrote %d entries", len(ls))
			}
		})
	}
}

// TestAttributedAppends checks that the leaf names the credential's agent,
// session and task and never the body's; signatures, sequence numbers and
// idempotency keys.
func TestAttributedAppends(t *testing.T) {
	e := newEnv(t, Config{})
	keyA := e.agent(t, "agent-a")
	e.agent(t, "agent-b")
	sess := e.openSession(t, keyA, "agent-a", "refund #7", 0)
	_, sid, _, _ := agentlog.ParseCredential(sess)

	// The body cannot name an agent, session or task.
	for _, f := range []string{`"agent":"agent-b"`, `"session":"x"`, `"task":"x"`, `"principal":"agent-b"`, `"kind":"agent"`, `"time":"2020-01-01T00:00:00Z"`} {
		if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", sess, `{"entries":[{"action":"a",`+f+`}]}`); code != 400 {
			t.Fatalf("body with %s: %d %s", f, code, b)
		}
	}

	// A signed, numbered record verifies from the leaf and the registered key.
	attrs := []byte(`{"amount":"12.50","note":"<&>"}`)
	msg := agentlog.RecordSignedBytes("agent-a", sid, "refund #7", &agentlog.Record{Seq: 1, Action: "payments.refund", Tool: "stripe", Resource: "charges/9", Outcome: "success", Attributes: attrs})
	sig := ed25519.Sign(keyA, msg)
	body := fmt.Sprintf(`{"entries":[{"action":"payments.refund","tool":"stripe","resource":"charges/9","outcome":"success","attributes":{ "amount" : "12.50", "note":"<&>" },"seq":1,"sig":%q}]}`, base64.StdEncoding.EncodeToString(sig))
	before := e.l.Size()
	code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", sess, body)
	if code != 200 {
		t.Fatalf("signed append: %d %s", code, b)
	}
	ls := e.leaves(t, before)
	if len(ls) != 1 {
		t.Fatalf("%d leaves", len(ls))
	}
	l := ls[0]
	if l.Kind != alog.KindAction || l.Agent != "agent-a" || l.Session != sid || l.Task != "refund #7" || l.Seq != 1 || l.Role != RoleAgent {
		t.Fatalf("leaf %+v", l)
	}
	a, _ := e.ids.Agent("agent-a")
	if err := l.VerifySignature(a.PublicKey); err != nil {
		t.Fatalf("signature does not verify from the leaf: %v", err)
	}
	b2, _ := e.ids.Agent("agent-b")
	if err := l.VerifySignature(b2.PublicKey); err == nil {
		t.Fatal("signature verifies with another agent's key")
	}
	// A bad signature is refused and writes nothing.
	bad := strings.Replace(body, `"seq":1`, `"seq":2`, 1)
	before = e.l.Size()
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", sess, bad); code != 400 || e.l.Size() != before {
		t.Fatalf("bad signature: %d %s (size %d -> %d)", code, b, before, e.l.Size())
	}

	// Idempotency: a retry returns the original receipts and writes nothing.
	post := func(key, body string) (int, []agentlog.Appended) {
		req := `{"entries":[` + body + `]}`
		code, _, b := doHeaders(t, "POST", e.hs.URL+"/v1/entries", sess, req, map[string]string{"Idempotency-Key": key})
		var r agentlog.AppendResponse
		json.Unmarshal(b, &r)
		return code, r.Entries
	}
	c1, r1 := post("k1", `{"action":"a"},{"action":"b"}`)
	size := e.l.Size()
	c2, r2 := post("k1", `{"action":"a"},{"action":"b"}`)
	if c1 != 200 || c2 != 200 || len(r2) != 2 || r1[0].Index != r2[0].Index || r1[1].Index != r2[1].Index || e.l.Size() != size {
		t.Fatalf("retry: %d %v then %d %v; size %d -> %d", c1, r1, c2, r2, size, e.l.Size())
	}
	if c3, _ := post("k1", `{"action":"other"}`); c3 != 409 {
		t.Fatalf("key reused with another body: %d, want 409", c3)
	}
	// Another session's identical key is its own.
	sess2 := e.openSession(t, keyA, "agent-a", "refund #8", 0)
	code, _, b = doHeaders(t, "POST", e.hs.URL+"/v1/entries", sess2, `{"entries":[{"action":"a"},{"action":"b"}]}`, map[string]string{"Idempotency-Key": "k1"})
	var r4 agentlog.AppendResponse
	json.Unmarshal(b, &r4)
	if code != 200 || r4.Entries[0].Index == r1[0].Index {
		t.Fatalf("other session with the same key: %d %s", code, b)
	}
}

// TestEndSession: an admin ends one leaked session; the agent's other
// sessions keep working.
func TestEndSession(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.agent(t, "agent-a")
	leaked := e.openSession(t, key, "agent-a", "t1", 0)
	other := e.openSession(t, key, "agent-a", "t2", 0)
	_, id, _, _ := agentlog.ParseCredential(leaked)
	code, _, b := do(t, "GET", e.hs.URL+"/v1/sessions?agent=agent-a", auditorTok, "")
	if code != 200 || strings.Count(string(b), `"agent":"agent-a"`) != 2 || strings.Contains(string(b), "hash") {
		t.Fatalf("session list: %d %s", code, b)
	}
	before := e.l.Size()
	if code, _, b := do(t, "DELETE", e.hs.URL+"/v1/sessions/"+id, adminTok, ""); code != 200 {
		t.Fatalf("end session: %d %s", code, b)
	}
	ls := e.leaves(t, before)
	if len(ls) != 1 || ls[0].Action != "session.closed" || ls[0].Principal != "admin" || ls[0].Agent != "agent-a" || ls[0].Session != id || ls[0].Task != "t1" {
		t.Fatalf("entry %+v", ls)
	}
	if code, _, _ := do(t, "POST", e.hs.URL+"/v1/entries", leaked, `{"entries":[{"action":"a"}]}`); code != 401 {
		t.Fatalf("ended session appended: %d", code)
	}
	if code, _, _ := do(t, "POST", e.hs.URL+"/v1/entries", other, `{"entries":[{"action":"a"}]}`); code != 200 {
		t.Fatalf("other session refused: %d", code)
	}
	if code, _, _ := do(t, "DELETE", e.hs.URL+"/v1/sessions/"+id, adminTok, ""); code != 409 {
		t.Fatalf("ending twice: %d", code)
	}
	if code, _, _ := do(t, "DELETE", e.hs.URL+"/v1/sessions/0000000000000000", adminTok, ""); code != 404 {
		t.Fatalf("ending an unknown session: %d", code)
	}
}

func TestRevokeStopsSessionsAtOnce(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.agent(t, "agent-a")
	s1 := e.openSession(t, key, "agent-a", "t1", 0)
	s2 := e.openSession(t, key, "agent-a", "t2", 0)
	for _, s := range []string{s1, s2} {
		if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", s, `{"entries":[{"action":"a"}]}`); code != 200 {
			t.Fatalf("append: %d %s", code, b)
		}
	}
	before := e.l.Size()
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents/agent-a/revoke", adminTok, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	ls := e.leaves(t, before)
	if len(ls) != 1 || ls[0].Kind != alog.KindAgent || ls[0].Action != "agent.revoked" || ls[0].Principal != "admin" || ls[0].Agent != "agent-a" || string(ls[0].Attributes) != `{"sessions_ended":2}` {
		t.Fatalf("revocation entry %+v", ls)
	}
	for _, s := range []string{s1, s2} {
		if code, _, _ := do(t, "POST", e.hs.URL+"/v1/entries", s, `{"entries":[{"action":"a"}]}`); code != 401 {
			t.Fatalf("append after revoke: %d", code)
		}
	}
	body := client.SignSessionRequest("agent-a", "t3", 0, e.clock.now(), key)
	if code, _, _ := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(body)); code != 401 {
		t.Fatalf("session after revoke: %d", code)
	}
}
