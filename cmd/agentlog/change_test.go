package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChangeManagementE2E walks CC8.1 through the real binary: register an
// agent with a configuration, propose a model update, refuse its
// proposer's approval, approve it by a second person, open sessions under
// the new digest (accepted), the old one and an unknown one (alerts), and
// none (alert); with config=enforce a session under another configuration
// is refused. The changes report of the period lists exactly these, and
// its evidence export verifies offline.
func TestChangeManagementE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms")
	work := t.TempDir()
	admin := filepath.Join(data, "admin.token")
	s := "--server=" + srv.url
	from := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)

	alice := writeSecret(t, work, "alice.token", strings.TrimSpace(mustCLI(t, bin, "token", "create", s, "--admin-token-file", admin, "--role", "approver", "--name", "alice")))
	bob := writeSecret(t, work, "bob.token", strings.TrimSpace(mustCLI(t, bin, "token", "create", s, "--admin-token-file", admin, "--role", "approver", "--name", "bob")))
	carol := writeSecret(t, work, "carol.token", strings.TrimSpace(mustCLI(t, bin, "token", "create", s, "--admin-token-file", admin, "--role", "auditor", "--name", "carol")))

	// Configurations; the system prompt is in a file and only its digest
	// leaves the machine.
	writeSecret(t, work, "system.txt", "You are the billing agent. Never refund above 100 EUR.")
	v1 := writeSecret(t, work, "v1.json", `{"model": {"provider": "anthropic", "name": "claude-sonnet", "version": "4.5"},
  "prompts": {"system": {"file": "system.txt"}}, "scope": {"actions": ["db.*"]}, "parameters": {"temperature": 0.2}}`)
	v2 := writeSecret(t, work, "v2.json", `{"parameters": {"temperature": 0.2}, "scope": {"actions": ["db.*"]},
  "prompts": {"system": {"file": "system.txt"}}, "model": {"version": "4.6", "name": "claude-sonnet", "provider": "anthropic"}}`)
	key := filepath.Join(work, "bot.key")
	reg := mustCLI(t, bin, "agent", "register", s, "--admin-token-file", admin, "--id", "billing-bot", "--config", v1, "--key-out", key)
	d1 := digestIn(t, reg)

	// The proposal prints its id alone on the last line.
	out := mustCLI(t, bin, "change", "propose", s, "--token-file", admin, "--agent", "billing-bot", "--config", v2,
		"--description", "model update to 4.6", "--testing", "eval suite v3: 412/412", "--rollback", "propose v1 again", "--risk", "medium")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := lines[len(lines)-1]
	if !strings.HasPrefix(id, "chg-") || strings.Contains(id, " ") {
		t.Fatalf("change propose printed %q", out)
	}
	show := mustCLI(t, bin, "change", "show", s, "--token-file", alice, "--id", id)
	if !strings.Contains(show, `~ model.version: "4.5" -> "4.6"`) || strings.Count(show, "\n  ") != 1 {
		t.Fatalf("change show (the only difference is the model version):\n%s", show)
	}
	d2 := digestIn(t, show)
	if dg := strings.TrimSpace(mustCLI(t, bin, "change", "digest", "--config", v2)); dg != d2 {
		t.Fatalf("change digest %s, the server's %s", dg, d2)
	}
	if _, errs, code := cli(t, bin, "change", "approve", s, "--token-file", admin, "--id", id); code == 0 || !strings.Contains(errs, "403") || !strings.Contains(errs, "two-person rule") {
		t.Fatalf("the proposer approved their own change: exit %d %s", code, errs)
	}
	mustCLI(t, bin, "change", "approve", s, "--token-file", alice, "--id", id, "--comment", "eval report reviewed")

	open := func(args ...string) (string, string, int) {
		out, errs, code := cli(t, bin, append([]string{"session", "open", s, "--agent-key", key, "--task", "refunds"}, args...)...)
		return strings.TrimSpace(out), errs, code
	}
	act := func(sess, action string) {
		t.Helper()
		mustCLI(t, bin, "append", s, "--session-token", sess, "--action", action)
	}
	newSess, errs, code := open("--config", v2)
	if code != 0 || !strings.Contains(errs, d2) {
		t.Fatalf("session under the approved configuration: exit %d %s", code, errs)
	}
	act(newSess, "db.query")
	oldSess, _, code := open("--config", v1)
	if code != 0 {
		t.Fatal("session under the old configuration refused without enforce")
	}
	act(oldSess, "db.old")
	unknown := "sha256:" + strings.Repeat("0f", 32)
	unkSess, _, code := open("--config-digest", unknown)
	if code != 0 {
		t.Fatal("session under an unknown configuration refused without enforce")
	}
	act(unkSess, "db.unknown")
	noneSess, _, code := open()
	if code != 0 {
		t.Fatal("session without a configuration refused")
	}
	act(noneSess, "db.none")

	// config=enforce, by a change approved by a second approver.
	out = mustCLI(t, bin, "change", "propose", s, "--token-file", bob, "--agent", "billing-bot", "--config", v2, "--policy", "config=enforce",
		"--description", "enforce the approved configuration", "--testing", "n/a", "--rollback", "propose config=alert")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	enforce := lines[len(lines)-1]
	mustCLI(t, bin, "change", "approve", s, "--token-file", alice, "--id", enforce)
	if _, errs, code := open("--config", v1); code == 0 || !strings.Contains(errs, "403") || !strings.Contains(errs, "config=enforce") {
		t.Fatalf("session under the old configuration with enforce: exit %d %s", code, errs)
	}

	// The alerts: unapproved_config for the two actions, undeclared_config
	// for the session without one.
	var alerts []string
	waitFor(t, "the configuration alerts", func() bool {
		q, _, _ := runBin(t, bin, "query", s, "--token-file", carol, "--kind", "alert", "--json")
		alerts = nil
		for _, l := range strings.Split(strings.TrimSpace(q), "\n") {
			var m struct{ Entry struct{ Action string } }
			if json.Unmarshal([]byte(l), &m) == nil && m.Entry.Action != "" {
				alerts = append(alerts, m.Entry.Action)
			}
		}
		return len(alerts) >= 3
	})
	slices.Sort(alerts)
	if want := []string{"alert.unapproved_config", "alert.unapproved_config", "alert.undeclared_config"}; !slices.Equal(alerts, want) {
		t.Fatalf("alerts %v, want %v", alerts, want)
	}

	// query --config and --kind change.
	q := mustCLI(t, bin, "query", s, "--token-file", carol, "--config", d2, "--kind", "action", "--json")
	if strings.Count(q, `"action":"db.query"`) != 1 || strings.Count(q, "\n") != 2 {
		t.Fatalf("query --config %s:\n%s", d2, q)
	}
	q = mustCLI(t, bin, "query", s, "--token-file", carol, "--kind", "change", "--json")
	if n := strings.Count(q, `"kind":"change"`); n != 6 { // initial proposed+approved, two proposals, two approvals
		t.Fatalf("query --kind change: %d change entries:\n%s", n, q)
	}

	// The report of the period, with its evidence.
	to := time.Now().UTC().Add(time.Second).Format(time.RFC3339Nano)
	dir := filepath.Join(work, "cc81")
	out = mustCLI(t, bin, "changes", "report", s, "--token-file", carol, "--from", from, "--to", to, "--out", dir, "--log-key", filepath.Join(data, "log.pub"))
	if !strings.Contains(out, "3 changes") || !strings.Contains(out, "3 actions under an unapproved or undeclared configuration") || !strings.Contains(out, "complete: true") {
		t.Fatalf("changes report:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Changes []struct {
			ID         string `json:"id"`
			Config     string `json:"config"`
			State      string `json:"state"`
			ProposedBy string `json:"proposed_by"`
			DecidedBy  string `json:"decided_by"`
			Testing    string `json:"testing"`
			Rollback   string `json:"rollback"`
		} `json:"changes"`
		Configs []struct {
			Config     string `json:"config"`
			Actions    int    `json:"actions"`
			Unapproved int    `json:"unapproved_actions"`
			Undeclared int    `json:"undeclared_actions"`
		} `json:"configs"`
		Unapproved []struct {
			Action string `json:"action"`
			Status string `json:"config_status"`
			Config string `json:"config"`
		} `json:"unapproved"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range raw.Changes {
		got = append(got, c.State+" "+c.Config+" "+c.ProposedBy+">"+c.DecidedBy)
	}
	want := []string{"superseded " + d1 + " admin>admin", "superseded " + d2 + " admin>alice", "approved " + d2 + " bob>alice"}
	if !slices.Equal(got, want) || raw.Changes[1].Testing != "eval suite v3: 412/412" || raw.Changes[1].Rollback != "propose v1 again" {
		t.Fatalf("report changes:\n got %v\nwant %v\n%s", got, want, b)
	}
	var un []string
	for _, a := range raw.Unapproved {
		un = append(un, a.Action+" "+a.Status+" "+a.Config)
	}
	if want := []string{"db.old unapproved " + d1, "db.unknown unapproved " + unknown, "db.none undeclared "}; !slices.Equal(un, want) {
		t.Fatalf("report unapproved:\n got %q\nwant %q", un, want)
	}
	counts := map[string][3]int{}
	for _, c := range raw.Configs {
		counts[c.Config] = [3]int{c.Actions, c.Unapproved, c.Undeclared}
	}
	if want := map[string][3]int{d2: {1, 0, 0}, d1: {1, 1, 0}, unknown: {1, 1, 0}, "": {1, 0, 1}}; !mapsEqual(counts, want) {
		t.Fatalf("report configs %v, want %v", counts, want)
	}
	for _, c := range raw.Changes[1:] {
		st, err := os.ReadFile(filepath.Join(dir, "attestations", c.ID+".intoto.json"))
		if err != nil {
			t.Fatal(err)
		}
		var stmt struct {
			Type    string `json:"_type"`
			Subject []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			PredicateType string `json:"predicateType"`
		}
		if err := json.Unmarshal(st, &stmt); err != nil || stmt.Type != "https://in-toto.io/Statement/v1" || "sha256:"+stmt.Subject[0].Digest["sha256"] != c.Config || stmt.PredicateType == "" {
			t.Fatalf("attestation %s: %v %s", c.ID, err, st)
		}
	}
	if out, errs, code := cli(t, bin, "evidence", "verify", filepath.Join(dir, "evidence"), "--log-key", filepath.Join(data, "log.pub")); code != 0 {
		t.Fatalf("evidence verify: exit %d\n%s%s", code, out, errs)
	}
}

// digestIn finds the first configuration digest in text.
func digestIn(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, "sha256:")
	if i < 0 || len(text) < i+71 {
		t.Fatalf("no digest in %q", text)
	}
	return text[i : i+71]
}

func mapsEqual(a, b map[string][3]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
