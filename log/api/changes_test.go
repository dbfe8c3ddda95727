package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/config"
)

const (
	cfgV1 = `{"model":{"provider":"anthropic","name":"claude-sonnet","version":"4.5"},"prompts":{"system":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},"scope":{"actions":["db.*"]}}`
	cfgV2 = `{"model":{"provider":"anthropic","name":"claude-sonnet","version":"4.6"},"prompts":{"system":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},"scope":{"actions":["db.*","http.get"]}}`
)

func digestOf(t *testing.T, doc string) string {
	t.Helper()
	d, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// configuredAgent registers and approves an agent with a configuration.
func (e *env) configuredAgent(t *testing.T, id, doc, policy string) ed25519.PrivateKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(map[string]any{"id": id, "owner": "team-a", "public_key": []byte(pub), "config": json.RawMessage(doc), "config_policy": policy})
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents", adminTok, string(body)); code != 200 {
		t.Fatalf("register %s: %d %s", id, code, b)
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents/"+id+"/approve", adminTok, ""); code != 200 {
		t.Fatalf("approve %s: %d %s", id, code, b)
	}
	return priv
}

func proposal(agent, doc string) string {
	b, _ := json.Marshal(map[string]any{"agent": agent, "config": json.RawMessage(doc), "description": "model update to 4.6",
		"testing": "eval suite v3 passed", "rollback": "propose the previous digest", "risk": "medium", "ticket": "https://tickets.example/CHG-1"})
	return string(b)
}

func (e *env) token(t *testing.T, name, role string) string {
	t.Helper()
	code, _, b := do(t, "POST", e.hs.URL+"/v1/tokens", adminTok, fmt.Sprintf(`{"name":%q,"role":%q}`, name, role))
	if code != 200 {
		t.Fatalf("create token: %d %s", code, b)
	}
	var tc struct{ Token string }
	json.Unmarshal(b, &tc)
	return tc.Token
}

func (e *env) propose(t *testing.T, tok, agent, doc string) *change.Change {
	t.Helper()
	code, _, b := do(t, "POST", e.hs.URL+"/v1/changes", tok, proposal(agent, doc))
	if code != 200 {
		t.Fatalf("propose: %d %s", code, b)
	}
	var c change.Change
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

// changeLeaves counts the leaves of kind change from index from.
func (e *env) changeLeaves(t *testing.T, from uint64) int {
	n := 0
	for _, l := range e.leaves(t, from) {
		if l.Kind == alog.KindChange {
			n++
		}
	}
	return n
}

// TestChangeRoleMatrix checks every role against propose, approve and
// reject, and the two-person rule for every role that may approve: a
// proposer approving their own change gets 403 and no change entry is
// written (the refusal is recorded as a denied entry).
func TestChangeRoleMatrix(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.configuredAgent(t, "bot-1", cfgV1, "")
	admin2, approver, approver2, auditor := e.token(t, "ops-admin", "admin"), e.token(t, "ops-approver", "approver"), e.token(t, "ops-approver-2", "approver"), e.token(t, "ops-auditor", "auditor")
	session := e.openSession(t, key, "bot-1", "t", 0)
	forged := agentlog.TokenPrefix + "0123456789abcdef." + randSecret()
	type role struct {
		name, tok string
		status    int // for propose, approve and reject of another's change
	}
	roles := []role{
		{"bootstrap admin", adminTok, 200}, {"admin token", admin2, 200}, {"approver token", approver, 200},
		{"auditor token", auditor, 403}, {"agent session", session, 403}, {"forged", forged, 401}, {"none", "", 401},
	}
	n := 0
	// A distinct configuration for each proposal, so none conflicts.
	doc := func() string {
		n++
		return fmt.Sprintf(`{"model":{"name":"m","version":"%d"}}`, n)
	}
	for _, r := range roles {
		t.Run(r.name, func(t *testing.T) {
			before := e.l.Size()
			code, _, b := do(t, "POST", e.hs.URL+"/v1/changes", r.tok, proposal("bot-1", doc()))
			if code != r.status {
				t.Fatalf("propose: %d %s, want %d", code, b, r.status)
			}
			if code != 200 && e.changeLeaves(t, before) != 0 {
				t.Fatal("a refused proposal wrote a change entry")
			}
			// Approve and reject a change someone else proposed.
			other := approver2
			if r.tok == approver2 {
				other = approver
			}
			for _, verb := range []string{"approve", "reject"} {
				c := e.propose(t, other, "bot-1", doc())
				before := e.l.Size()
				code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/"+verb, r.tok, `{"comment":"ok"}`)
				if code != r.status {
					t.Fatalf("%s another's change: %d %s, want %d", verb, code, b, r.status)
				}
				if got, want := e.changeLeaves(t, before), map[bool]int{true: 1, false: 0}[code == 200]; got != want {
					t.Fatalf("%s: %d change entries, want %d", verb, got, want)
				}
			}
			if r.status != 200 {
				return
			}
			// The two-person rule: the proposer may not approve, but may
			// withdraw.
			c := e.propose(t, r.tok, "bot-1", doc())
			before = e.l.Size()
			code, _, b = do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/approve", r.tok, "")
			if code != 403 || !strings.Contains(string(b), "two-person rule") {
				t.Fatalf("self-approval: %d %s, want 403", code, b)
			}
			ls := e.leaves(t, before)
			if len(ls) != 1 || ls[0].Kind != alog.KindDenied || !strings.Contains(string(ls[0].Attributes), "self-approval") {
				t.Fatalf("self-approval wrote %+v, want one denied entry", ls)
			}
			if got, _ := e.srv.cfg.Changes.Get(c.ID); got.State != change.StateProposed {
				t.Fatalf("after a refused self-approval the change is %s", got.State)
			}
			if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/reject", r.tok, `{"comment":"withdrawn"}`); code != 200 {
				t.Fatalf("withdrawing: %d %s", code, b)
			}
		})
	}
	// Reading changes: admin, approver, auditor; the report: auditor and
	// admin only.
	approved := e.propose(t, approver, "bot-1", doc())
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+approved.ID+"/approve", approver2, ""); code != 200 {
		t.Fatalf("approve: %d %s", code, b)
	}
	reads := []struct {
		path    string
		readers map[string]bool
	}{
		{"/v1/changes", nil},
		{"/v1/changes/" + approved.ID, nil},
		{"/v1/changes/" + approved.ID + "/attestation", nil},
		{"/v1/configs/" + approved.Config, nil},
		{"/v1/changes/report", map[string]bool{"bootstrap admin": true, "admin token": true, "auditor token": true}},
	}
	for _, rd := range reads {
		for _, r := range roles {
			want := r.status
			if r.name == "auditor token" {
				want = 200
			}
			if rd.readers != nil && want != 401 {
				want = map[bool]int{true: 200, false: 403}[rd.readers[r.name]]
			}
			before := e.l.Size()
			code, _, b := do(t, "GET", e.hs.URL+rd.path, r.tok, "")
			if code != want {
				t.Errorf("%s GET %s: %d %s, want %d", r.name, rd.path, code, b, want)
			}
			if code == 200 && e.l.Size() != before {
				t.Errorf("%s GET %s wrote %d entries", r.name, rd.path, e.l.Size()-before)
			}
		}
	}
}

func TestSelfApprovalAllowed(t *testing.T) {
	e := newEnvWith(t, Config{}, change.Options{AllowSelfApproval: true})
	e.configuredAgent(t, "bot-1", cfgV1, "")
	c := e.propose(t, adminTok, "bot-1", cfgV2)
	before := e.l.Size()
	code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/approve", adminTok, "")
	if code != 200 {
		t.Fatalf("self-approval with the flag: %d %s", code, b)
	}
	ls := e.leaves(t, before)
	if len(ls) == 0 || ls[0].Action != change.ActionApproved || !strings.Contains(string(ls[0].Attributes), `"self_approved":true`) {
		t.Fatalf("approval leaf %+v does not say it was self-approved", ls)
	}
}

func TestChangeLifecycle(t *testing.T) {
	e := newEnv(t, Config{})
	approver := e.token(t, "ops-approver", "approver")
	auditor := e.token(t, "ops-auditor", "auditor")
	start := e.l.Size()
	key := e.configuredAgent(t, "bot-1", cfgV1, "")
	d1, d2 := digestOf(t, cfgV1), digestOf(t, cfgV2)

	// Registration recorded the first configuration as approved.
	list, err := e.srv.cfg.Changes.List("bot-1", change.StateApproved)
	if err != nil || len(list) != 1 || list[0].Config != d1 || !list[0].Initial || list[0].DecidedBy != "admin" {
		t.Fatalf("after registration: %+v %v", list, err)
	}
	var reg *agentlog.Leaf
	for _, l := range e.leaves(t, start) {
		if l.Action == "agent.registered" {
			reg = l
		}
	}
	if reg == nil || reg.Config != d1 {
		t.Fatalf("agent.registered leaf %+v lacks config %s", reg, d1)
	}

	// Propose, show the diff, approve by a second person.
	c := e.propose(t, adminTok, "bot-1", cfgV2)
	if c.Previous != d1 || c.Config != d2 || c.State != change.StateProposed {
		t.Fatalf("proposal %+v", c)
	}
	code, _, b := do(t, "GET", e.hs.URL+"/v1/changes/"+c.ID, auditor, "")
	if code != 200 || !strings.Contains(string(b), `"path":"model.version","old":"\"4.5\"","new":"\"4.6\""`) || !strings.Contains(string(b), `"path":"scope.actions[1]"`) {
		t.Fatalf("show: %d %s", code, b)
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes", adminTok, proposal("bot-1", cfgV1)); code != 409 {
		t.Fatalf("proposing the approved configuration: %d %s, want 409", code, b)
	}
	before := e.l.Size()
	code, _, b = do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/approve", approver, `{"comment":"looks good"}`)
	if code != 200 {
		t.Fatalf("approve: %d %s", code, b)
	}
	a, _ := e.ids.Agent("bot-1")
	if a.Config != d2 || len(a.Scope.Actions) != 2 {
		t.Fatalf("after approval the agent is %+v", a)
	}
	ls := e.leaves(t, before)
	if ls[0].Kind != alog.KindChange || ls[0].Action != change.ActionApproved || ls[0].Principal != "ops-approver" || ls[0].Config != d2 || ls[0].Agent != "bot-1" {
		t.Fatalf("approval leaf %+v", ls[0])
	}
	if ls[1].Action != "agent.scope_changed" {
		t.Fatalf("the approved scope was not applied: %+v", ls[1])
	}
	if old, _ := e.srv.cfg.Changes.List("bot-1", change.StateSuperseded); len(old) != 1 || old[0].Config != d1 || old[0].SupersededBy != c.ID {
		t.Fatalf("superseded: %+v", old)
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+c.ID+"/approve", adminTok, ""); code != 409 {
		t.Fatalf("approving twice: %d %s, want 409", code, b)
	}

	// Sessions: the approved digest, the old one, an unknown one, none.
	statuses := map[string]string{}
	for name, digest := range map[string]string{"new": d2, "old": d1, "unknown": "sha256:" + strings.Repeat("ab", 32), "none": ""} {
		body := client.SignSessionRequestConfig("bot-1", "task-"+name, digest, 0, e.clock.now(), key)
		code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(body))
		if code != 200 {
			t.Fatalf("session %s: %d %s", name, code, b)
		}
		var o agentlog.SessionInfo
		json.Unmarshal(b, &o)
		before := e.l.Size()
		if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", o.Credential, `{"entries":[{"action":"db.query"}]}`); code != 200 {
			t.Fatalf("append: %d %s", code, b)
		}
		act := e.leaves(t, before)[0]
		if act.Config != digest {
			t.Fatalf("action of session %s carries config %q, want %q", name, act.Config, digest)
		}
		for _, se := range e.ids.Sessions("bot-1") {
			if se.ID == o.Session {
				statuses[name] = se.ConfigStatus
			}
		}
	}
	want := map[string]string{"new": "approved", "old": "unapproved", "unknown": "unapproved", "none": "undeclared"}
	for k, v := range want {
		if statuses[k] != v {
			t.Errorf("session %s: config status %q, want %q", k, statuses[k], v)
		}
	}

	// The declared configuration is signed: swapping it breaks the signature.
	body := client.SignSessionRequestConfig("bot-1", "task-z", d1, 0, e.clock.now(), key)
	tampered := strings.Replace(string(body), d1, d2, 1)
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", tampered); code != 401 || !strings.Contains(string(b), "bad signature") {
		t.Fatalf("session request with a swapped config: %d %s, want 401", code, b)
	}

	// A rollback to the first configuration says so; with config=enforce
	// only the approved digest opens sessions.
	rb := e.propose(t, approver, "bot-1", cfgV1)
	if rb.RollbackOf != list[0].ID {
		t.Fatalf("rollback proposal %+v does not name %s", rb, list[0].ID)
	}
	body, _ = json.Marshal(map[string]any{"agent": "bot-1", "config": json.RawMessage(cfgV1), "config_policy": "enforce", "description": "roll back to 4.5", "testing": "n/a", "rollback": "re-approve 4.6"})
	code, _, b = do(t, "POST", e.hs.URL+"/v1/changes", approver, string(body))
	if code != 200 {
		t.Fatalf("propose enforce: %d %s", code, b)
	}
	var enf change.Change
	json.Unmarshal(b, &enf)
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes/"+enf.ID+"/approve", adminTok, ""); code != 200 {
		t.Fatalf("approve enforce: %d %s", code, b)
	}
	before = e.l.Size()
	body = client.SignSessionRequestConfig("bot-1", "task-x", d2, 0, e.clock.now(), key)
	code, _, b = do(t, "POST", e.hs.URL+"/v1/sessions", "", string(body))
	if code != 403 || !strings.Contains(string(b), "config=enforce") {
		t.Fatalf("session under a superseded configuration with enforce: %d %s, want 403", code, b)
	}
	ls = e.leaves(t, before)
	if len(ls) != 1 || ls[0].Kind != alog.KindDenied || ls[0].Agent != "bot-1" || ls[0].Config != d2 {
		t.Fatalf("a refused session wrote %+v, want one denied entry naming the agent and the configuration", ls)
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(client.SignSessionRequestConfig("bot-1", "task-y", d1, 0, e.clock.now(), key))); code != 200 {
		t.Fatalf("session under the approved configuration: %d %s", code, b)
	}

	// Attestation of an approval.
	code, _, b = do(t, "GET", e.hs.URL+"/v1/changes/"+c.ID+"/attestation", auditor, "")
	var st change.Statement
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Type != change.StatementType || st.Subject[0].Digest["sha256"] != strings.TrimPrefix(d2, "sha256:") || st.Predicate.ApprovedBy != "ops-approver" || st.Predicate.ProposedBy != "admin" {
		t.Fatalf("attestation: %d %s", code, b)
	}
	if code, _, _ := do(t, "GET", e.hs.URL+"/v1/changes/"+rb.ID+"/attestation", auditor, ""); code != 409 {
		t.Fatalf("attestation of a proposal: %d, want 409", code)
	}

	// Bad input: 4xx and nothing written.
	before = e.l.Size()
	for _, bad := range []string{
		`{"agent":"bot-1","config":{"model":{}},"description":"d","testing":"t","rollback":"r"}`,
		`{"agent":"bot-1","config":{"model":{"name":"x"}},"description":"","testing":"t","rollback":"r"}`,
		`{"agent":"bot-1","config":{"model":{"name":"x"}},"description":"d","testing":"t","rollback":"r","risk":"extreme"}`,
		`{"agent":"bot-1","config":{"model":{"name":"x"}},"description":"d","testing":"t","rollback":"r","ticket":"javascript:alert(1)"}`,
		`{"agent":"bot-1","config":{"model":{"name":"x"},"scope":{"rate":"lots"}},"description":"d","testing":"t","rollback":"r"}`,
		`{"agent":"nobody","config":{"model":{"name":"x"}},"description":"d","testing":"t","rollback":"r"}`,
		`{"agent":"bot-1","config":{"model":{"name":"x"}},"description":"d","testing":"t","rollback":"r","extra":1}`,
	} {
		if code, _, b := do(t, "POST", e.hs.URL+"/v1/changes", adminTok, bad); code/100 != 4 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("proposal %s: %d %s, want 4xx", bad, code, b)
		}
	}
	if code, _, _ := do(t, "POST", e.hs.URL+"/v1/changes", adminTok, `{"agent":"bot-1","config":{"model":{"name":"`+strings.Repeat("x", 200<<10)+`"}}}`); code != 413 {
		t.Errorf("oversized proposal: %d, want 413", code)
	}
	if e.l.Size() != before {
		t.Fatalf("bad proposals wrote %d entries", e.l.Size()-before)
	}
}
