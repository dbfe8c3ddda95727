package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/identity"
)

func getControls(t *testing.T, e *env, query string) *agentlog.Controls {
	t.Helper()
	code, _, b := do(t, "GET", e.hs.URL+"/v1/controls"+query, auditorTok, "")
	if code != 200 {
		t.Fatalf("GET /v1/controls%s: %d %s", query, code, b)
	}
	var c agentlog.Controls
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	order := []string{agentlog.ControlCheckpointVerified, agentlog.ControlCheckpointWitnessed, agentlog.ControlConsistencyChecked, agentlog.ControlNTPSynchronized,
		agentlog.ControlAgentsOwnedScoped, agentlog.ControlApprovalsCurrent, agentlog.ControlConfigsApproved, agentlog.ControlAlertsOpen}
	if c.Format != agentlog.ControlsFormat || len(c.Controls) != len(order) {
		t.Fatalf("document %s", b)
	}
	passing := true
	for i, k := range c.Controls {
		if k.ID != order[i] || k.Criterion == "" || k.Title == "" || k.Detail == "" || k.Passing != (k.Status == "pass") || k.Passing && k.Findings != 0 {
			t.Fatalf("control %d: %+v", i, k)
		}
		passing = passing && k.Passing
	}
	if c.Passing != passing {
		t.Fatalf("document passing %v, controls %v", c.Passing, passing)
	}
	return &c
}

func control(t *testing.T, c *agentlog.Controls, id string) agentlog.Control {
	t.Helper()
	for _, k := range c.Controls {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("no control %s in %+v", id, c.Controls)
	return agentlog.Control{}
}

// TestControlsKnownProblems builds a log with known problems, one of each
// kind the document reports on agents, configurations and alerts, next to
// agents without any, and checks that /v1/controls reports exactly them.
func TestControlsKnownProblems(t *testing.T) {
	e := newEnv(t, Config{ApprovalMaxAge: 90 * 24 * time.Hour})
	ctx := context.Background()

	// Before any problem: the agent, configuration and alert controls pass.
	c := getControls(t, e, "")
	for _, id := range []string{agentlog.ControlAgentsOwnedScoped, agentlog.ControlApprovalsCurrent, agentlog.ControlConfigsApproved, agentlog.ControlAlertsOpen} {
		if k := control(t, c, id); !k.Passing || k.Findings != 0 {
			t.Fatalf("empty log: %+v", k)
		}
	}
	// This server has no signing loop, clock or witnesses: those fail,
	// and so the document does.
	for _, id := range []string{agentlog.ControlCheckpointVerified, agentlog.ControlCheckpointWitnessed, agentlog.ControlConsistencyChecked, agentlog.ControlNTPSynchronized} {
		if k := control(t, c, id); k.Passing || k.Status != "fail" || k.Detail == "" {
			t.Fatalf("without a loop, clock and witnesses: %+v", k)
		}
	}
	if c.Passing {
		t.Fatal("document passing with failing controls")
	}

	// The anomaly rules follow the log from here.
	w, err := anomaly.New(anomaly.Options{Log: e.l, Config: anomaly.Config{Rules: anomaly.Rules{Scope: true, Config: true}},
		Scope: func(a string) (identity.Scope, bool) {
			ag, err := e.ids.Agent(a)
			if err != nil {
				return identity.Scope{}, false
			}
			return ag.Scope, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(wctx)
	// Approved 100 days ago: "old-active" acts, "old-idle" does not.
	e.clock.ns.Store(time.Now().Add(-100 * 24 * time.Hour).UnixNano())
	oldActive := e.agent(t, "old-active")
	e.agent(t, "old-idle")
	e.clock.ns.Store(time.Now().UnixNano())
	fresh := e.agent(t, "fresh")
	// No scope: registered without one.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(map[string]any{"id": "unscoped", "owner": "team-b", "public_key": []byte(pub)})
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents", adminTok, string(body)); code != 200 {
		t.Fatalf("register: %d %s", code, b)
	}
	// Revoked agents are not live: no finding for an unscoped revoked one.
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	body, _ = json.Marshal(map[string]any{"id": "gone", "owner": "team-b", "public_key": []byte(pub2)})
	do(t, "POST", e.hs.URL+"/v1/agents", adminTok, string(body))
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents/gone/revoke", adminTok, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	// A configured agent acting under its approved configuration, then
	// under another one.
	cfgKey := e.configuredAgent(t, "cfg-bot", cfgV1, "")
	ag, _ := e.ids.Agent("cfg-bot")
	appendAs := func(tok, action string) {
		t.Helper()
		if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", tok, fmt.Sprintf(`{"entries":[{"action":%q}]}`, action)); code != 200 {
			t.Fatalf("append: %d %s", code, b)
		}
	}
	openCfg := func(digest string) string {
		t.Helper()
		code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(client.SignSessionRequestConfig("cfg-bot", "t", digest, 0, e.clock.now(), cfgKey)))
		if code != 200 {
			t.Fatalf("session: %d %s", code, b)
		}
		var o agentlog.SessionInfo
		json.Unmarshal(b, &o)
		return o.Credential
	}
	appendAs(openCfg(ag.Config), "db.query")
	other := "sha256:" + fmt.Sprintf("%064x", 7)
	appendAs(openCfg(other), "db.query")
	appendAs(openCfg(other), "db.write")
	appendAs(openCfg(""), "db.query") // undeclared
	// The old agent acts in scope; the fresh one out of it (an alert).
	appendAs(e.openSession(t, oldActive, "old-active", "t", 0), "db.query")
	appendAs(e.openSession(t, fresh, "fresh", "t", 0), "fs.delete")

	// Everything is examined; then the health watcher raises an episode.
	size := e.l.Size()
	deadline := time.Now().Add(30 * time.Second)
	for w.Status().Examined < size {
		if time.Now().After(deadline) {
			t.Fatal("the anomaly rules did not examine the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	bad := true
	hw := anomaly.NewHealthWatcher(anomaly.HealthOptions{Log: e.l, After: time.Nanosecond,
		Checks: map[string]anomaly.Check{anomaly.RuleNTPUnsynced: func() (bool, string) { return bad, "no NTP" }}})
	for range 2 { // the first tick starts the episode, the second raises it
		if err := hw.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}

	c = getControls(t, e, "")
	findings := map[string][]string{}
	for _, a := range c.Agents {
		if len(a.Findings) > 0 {
			findings[a.ID] = a.Findings
		}
		if a.ID == "gone" {
			t.Fatal("a revoked agent is listed")
		}
	}
	want := map[string][]string{
		"unscoped":   {findingNoScope},
		"old-active": {findingApprovalExpired},
		"cfg-bot":    {findingNoScope}, // its configuration declares no scope
	}
	if fmt.Sprint(findings) != fmt.Sprint(want) {
		t.Fatalf("agent findings %v, want %v", findings, want)
	}
	if k := control(t, c, agentlog.ControlAgentsOwnedScoped); k.Passing || k.Findings != 2 {
		t.Fatalf("%+v", k)
	}
	if k := control(t, c, agentlog.ControlApprovalsCurrent); k.Passing || k.Findings != 1 {
		t.Fatalf("%+v", k)
	}
	cf := c.Configs
	if cf.Actions != 6 || cf.Unapproved != 2 || cf.Undeclared != 1 || len(cf.Listed) != 3 {
		t.Fatalf("configurations %+v", cf)
	}
	for _, a := range cf.Listed {
		if a.Agent != "cfg-bot" || (a.Status == identity.ConfigUnapproved) != (a.Config == other) {
			t.Fatalf("listed action %+v", a)
		}
	}
	if k := control(t, c, agentlog.ControlConfigsApproved); k.Passing || k.Findings != 3 {
		t.Fatalf("%+v", k)
	}
	rules := map[string]int{}
	for _, r := range c.Alerts.ByRule {
		rules[r.Rule] = r.Count
	}
	wantRules := map[string]int{"scope": 1, "unapproved_config": 2, "undeclared_config": 1, anomaly.RuleNTPUnsynced: 1}
	if fmt.Sprint(rules) != fmt.Sprint(wantRules) {
		t.Fatalf("alerts by rule %v, want %v", rules, wantRules)
	}
	if len(c.Alerts.Health) != 1 || c.Alerts.Health[0].Rule != anomaly.RuleNTPUnsynced || c.Alerts.Open != 5 {
		t.Fatalf("alerts %+v", c.Alerts)
	}
	if k := control(t, c, agentlog.ControlAlertsOpen); k.Passing || k.Findings != 5 {
		t.Fatalf("%+v", k)
	}

	// The episode cleared: it is no longer open, its raising stays in the
	// window's count. A window that starts after everything holds none.
	bad = false
	for range 2 { // good from the first tick, cleared at the second
		if err := hw.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c = getControls(t, e, "")
	if len(c.Alerts.Health) != 0 || c.Alerts.Open != 5 {
		t.Fatalf("after clearing: %+v", c.Alerts)
	}
	if !slices.ContainsFunc(c.Agents, func(a agentlog.ControlsAgent) bool {
		return a.ID == "old-active" && a.Active && a.Actions == 1 && a.OpenSessions == 1
	}) {
		t.Fatalf("agents %+v", c.Agents)
	}
}

// TestControlsWindow checks the window parameter's bounds.
func TestControlsWindow(t *testing.T) {
	e := newEnv(t, Config{})
	for _, q := range []string{"?window=0s", "?window=30s", "?window=2161h", "?window=day", "?window=-1h"} {
		if code, _, b := do(t, "GET", e.hs.URL+"/v1/controls"+q, auditorTok, ""); code != 400 {
			t.Errorf("%s: %d %s, want 400", q, code, b)
		}
	}
	c := getControls(t, e, "?window=1h")
	if c.WindowSeconds != 3600 || !c.WindowFrom.Equal(c.Generated.Add(-time.Hour)) {
		t.Fatalf("window %d from %s, generated %s", c.WindowSeconds, c.WindowFrom, c.Generated)
	}
}
