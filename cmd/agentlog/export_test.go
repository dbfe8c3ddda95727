package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/ocsf/ocsftest"
)

// TestExportOCSF runs the real binary: a server with an agent acting and
// refused, then export ocsf by an auditor, every line validated against
// the OCSF schema of its class; the role matrix of the export; --limit,
// --out and a wrong log key.
func TestExportOCSF(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--origin", "ocsf.e2e/log")
	adminFile := filepath.Join(data, "admin.token")
	adminTok, err := os.ReadFile(adminFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auditor := filepath.Join(dir, "auditor.token")
	approver := filepath.Join(dir, "approver.token")
	mustCLI(t, bin, "token", "create", "--server", srv.url, "--admin-token-file", adminFile, "--role", "auditor", "--name", "siem", "--out", auditor)
	mustCLI(t, bin, "token", "create", "--server", srv.url, "--admin-token-file", adminFile, "--role", "approver", "--name", "alice", "--out", approver)

	sess := provisionSession(t, srv.url, string(adminTok), "billing-bot", "refund-7731")
	agent := mustClient(t, srv.url, sess)
	for _, r := range []client.Record{
		{Action: "payment.refund", Tool: "stripe", Resource: "ch_1", Outcome: "success", Attributes: json.RawMessage(`{"model":{"provider":"anthropic","name":"claude-sonnet"}}`)},
		{Action: "db.query", Tool: "sql", Resource: "customers/42", Outcome: "error"},
	} {
		if _, err := agent.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	// Refused: an agent's session cannot query (a denied entry), nor export.
	sessFile := filepath.Join(dir, "session.token")
	if err := os.WriteFile(sessFile, []byte(sess), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{sessFile, approver} {
		if out, errs, code := cli(t, bin, "export", "ocsf", "--server", srv.url, "--token-file", tok); code == 0 || out != "" || !strings.Contains(errs, "403") {
			t.Errorf("export with %s: exit %d, stdout %q, stderr %q", filepath.Base(tok), code, out, errs)
		}
	}
	logPub := filepath.Join(data, "log.pub")
	logKey, _ := os.ReadFile(logPub)
	timeKey, _ := os.ReadFile(filepath.Join(data, "time.pub"))
	v, err := client.NewVerifier(string(logKey), string(timeKey))
	if err != nil {
		t.Fatal(err)
	}
	// The denied entries are written before the refusal is answered: a
	// checkpoint covering this append covers them.
	last, err := agent.Append(t.Context(), client.Record{Action: "session.note", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, mustClient(t, srv.url, string(adminTok)), v, last[0].Index+1)

	val, err := ocsftest.New()
	if err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, bin, "export", "ocsf", "--server", srv.url, "--token-file", auditor, "--log-key", logPub)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	classes := map[string]int{}
	var kinds []string
	for _, line := range lines {
		if err := val.Validate([]byte(line)); err != nil {
			t.Fatalf("%v\n%s", err, line)
		}
		var e struct {
			ClassUID int    `json:"class_uid"`
			RawData  string `json:"raw_data"`
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
			Unmapped struct {
				Agentlog struct {
					Kind       string `json:"kind"`
					Checkpoint string `json:"checkpoint"`
				} `json:"agentlog"`
			} `json:"unmapped"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.Metadata.UID, "ocsf.e2e/log/") || !strings.HasPrefix(e.Unmapped.Agentlog.Checkpoint, "ocsf.e2e/log\n") {
			t.Errorf("event %s: checkpoint %q", e.Metadata.UID, e.Unmapped.Agentlog.Checkpoint)
		}
		k := e.Unmapped.Agentlog.Kind
		classes[k] = e.ClassUID
		kinds = append(kinds, k)
	}
	for k, want := range map[string]int{"token": 3001, "agent": 3001, "session": 3002, "action": 6003, "denied": 6003} {
		if classes[k] != want {
			t.Errorf("kind %s: class %d, want %d (kinds %v)", k, classes[k], want, kinds)
		}
	}
	// The query flags select; --limit stops; --out writes a 0600 file.
	file := filepath.Join(dir, "actions.ndjson")
	_, errs, code := cli(t, bin, "export", "ocsf", "--server", srv.url, "--token-file", auditor, "--kind", "action", "--limit", "1", "--out", file, "--log-key", logPub)
	b, _ := os.ReadFile(file)
	st, _ := os.Stat(file)
	if code != 0 || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), `"operation":"payment.refund"`) || st.Mode().Perm() != 0o600 || !strings.Contains(errs, "wrote 1 OCSF event") {
		t.Errorf("--out: exit %d, %s, %q", code, b, errs)
	}
	// A key that is not the log's: nothing is written.
	otherKey := filepath.Join(dir, "other.pub")
	_, otherVKey, err := note.GenerateKey(nil, "ocsf.e2e/log")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherKey, []byte(otherVKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := cli(t, bin, "export", "ocsf", "--server", srv.url, "--token-file", auditor, "--log-key", otherKey, "--time-key", filepath.Join(data, "time.pub")); code == 0 || out != "" {
		t.Errorf("wrong key: exit %d, %q, %q", code, out, errs)
	}
	if _, errs, code := cli(t, bin, "export", "ocsf", "--server", srv.url); code != 2 || !strings.Contains(errs, "--token-file") {
		t.Errorf("no token: exit %d, %q", code, errs)
	}
}
