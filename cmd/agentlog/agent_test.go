package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/internal/proctest"
	alog "github.com/agentlog/agentlog/log"
)

// cli runs the agentlog binary and returns its stdout, stderr and exit code.
func cli(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	return proctest.Run(t, bin, args...)
}

func mustCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errs, code := cli(t, bin, args...)
	if code != 0 {
		t.Fatalf("agentlog %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// writeSecret writes s to a 0600 file in dir.
func writeSecret(t *testing.T, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProvisioningCLI drives the identity lifecycle through the real
// binary: operator tokens, registration and separate approval, the
// contract's one-step register, a session, an append, revocation, and
// then checks every resulting leaf.
func TestProvisioningCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	// The anomaly rules are off: bot-1's declared hours would raise an
	// alert, recorded whenever the rules get to it, and this test lists
	// the log's leaves exactly (TestAnomalyAlertsE2E covers alerts).
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms", "--anomaly=false")
	work := t.TempDir()
	admin := filepath.Join(data, "admin.token")
	s := "--server=" + srv.url

	// Operator tokens, shown once on stdout.
	auditor := strings.TrimSpace(mustCLI(t, bin, "token", "create", s, "--admin-token-file", admin, "--role", "auditor", "--name", "carol"))
	approver := strings.TrimSpace(mustCLI(t, bin, "token", "create", s, "--admin-token-file", admin, "--role", "approver", "--name", "alice"))
	if !strings.HasPrefix(auditor, agentlog.TokenPrefix) || strings.Count(auditor, "\n") != 0 {
		t.Fatalf("token create printed %q", auditor)
	}
	auditorFile, approverFile := writeSecret(t, work, "auditor", auditor), writeSecret(t, work, "approver", approver)
	if out, _, code := cli(t, bin, "token", "create", s, "--admin-token-file", auditorFile, "--role", "admin", "--name", "mallory"); code == 0 {
		t.Fatalf("an auditor created a token: %s", out)
	}
	if list := mustCLI(t, bin, "token", "list", s, "--admin-token-file", admin); !strings.Contains(list, "carol") || !strings.Contains(list, "approver") {
		t.Fatalf("token list:\n%s", list)
	}

	// Registration and approval as two steps, by two people.
	key1 := filepath.Join(work, "bot-1.key")
	mustCLI(t, bin, "agent", "register", s, "--admin-token-file", admin, "--id", "bot-1", "--owner", "payments", "--scope", "actions=db.*;tools=sql;resources=customers/*;hours=09:00-17:00;weekdays=mon-fri;rate=100/m", "--key-out", key1, "--no-approve")
	if st, err := os.Stat(key1); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if _, errs, code := cli(t, bin, "session", "open", s, "--agent-key", key1, "--task", "T-1"); code == 0 || !strings.Contains(errs, "403") {
		t.Fatalf("a pending agent opened a session: exit %d %s", code, errs)
	}
	mustCLI(t, bin, "agent", "approve", s, "--token-file", approverFile, "--id", "bot-1")

	// The contract's form: generate the key, register and approve.
	key2 := filepath.Join(work, "bot-2.key")
	mustCLI(t, bin, "agent", "register", s, "--admin-token-file", admin, "--id", "bot-2", "--scope", "actions=db.*", "--scope", "tools=sql", "--key-out", key2)
	if show := mustCLI(t, bin, "agent", "show", s, "--token-file", auditorFile, "--id", "bot-2"); !strings.Contains(show, `"status": "approved"`) || !strings.Contains(show, `"tools": [`) {
		t.Fatalf("agent show:\n%s", show)
	}

	// A session: the credential alone on stdout.
	out := mustCLI(t, bin, "session", "open", s, "--agent-key", key1, "--task", "T-1", "--ttl", "30m")
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, agentlog.SessionPrefix) {
		t.Fatalf("session open printed %q", out)
	}
	sess1 := strings.TrimSpace(out)
	sess2 := strings.TrimSpace(mustCLI(t, bin, "session", "open", s, "--agent-key", key2, "--task", "T-2"))
	mustCLI(t, bin, "append", s, "--session-token", sess1, "--action", "db.query", "--tool", "sql", "--resource", "customers/42", "--outcome", "success", "--attr", "rows=3")
	mustCLI(t, bin, "append", s, "--session-token", sess2, "--action", "db.write")
	if list := mustCLI(t, bin, "session", "list", s, "--token-file", auditorFile, "--agent", "bot-2"); !strings.Contains(list, `"T-2"`) || !strings.Contains(list, "open") {
		t.Fatalf("session list:\n%s", list)
	}
	mustCLI(t, bin, "session", "close", s, "--session-token", sess2)
	if _, errs, code := cli(t, bin, "append", s, "--session-token", sess2, "--action", "late"); code == 0 || !strings.Contains(errs, "401") {
		t.Fatalf("append on a closed session: exit %d %s", code, errs)
	}

	// Revocation stops the session at once.
	mustCLI(t, bin, "agent", "revoke", s, "--admin-token-file", admin, "--id", "bot-1")
	if _, errs, code := cli(t, bin, "append", s, "--session-token", sess1, "--action", "db.query"); code == 0 || !strings.Contains(errs, "401") {
		t.Fatalf("append after revocation: exit %d %s", code, errs)
	}
	if list := mustCLI(t, bin, "agent", "list", s, "--token-file", auditorFile); !strings.Contains(list, "revoked") {
		t.Fatalf("agent list:\n%s", list)
	}

	// The auditor reads the whole story back from the log.
	c := mustClient(t, srv.url, auditor)
	var got []string
	ctx := context.Background()
	for i := uint64(0); ; i++ {
		b, err := c.Entry(ctx, i)
		if err != nil {
			break
		}
		l, err := agentlog.ParseLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join([]string{l.Kind, l.Action, "by=" + l.Principal, "agent=" + l.Agent, "task=" + l.Task}, " ")
		if l.Kind == alog.KindAction && (l.Session == "" || l.Seq != 0) {
			t.Fatalf("action leaf %s", b)
		}
		got = append(got, line)
	}
	want := []string{
		"system anomaly.configured by=agentlog agent= task=", // --anomaly=false, on record
		"token token.created by=admin agent= task=",
		"token token.created by=admin agent= task=",
		"denied token.create by=carol agent= task=",
		"agent agent.registered by=admin agent=bot-1 task=",
		"denied session.open by= agent=bot-1 task=",
		"agent agent.approved by=alice agent=bot-1 task=",
		"agent agent.registered by=admin agent=bot-2 task=",
		"agent agent.approved by=admin agent=bot-2 task=",
		"session session.opened by=bot-1 agent=bot-1 task=T-1",
		"session session.opened by=bot-2 agent=bot-2 task=T-2",
		"action db.query by=bot-1 agent=bot-1 task=T-1",
		"action db.write by=bot-2 agent=bot-2 task=T-2",
		"session session.closed by=bot-2 agent=bot-2 task=T-2",
		"denied append by= agent=bot-2 task=",
		"agent agent.revoked by=admin agent=bot-1 task=",
		"denied append by= agent=bot-1 task=",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("leaves:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
