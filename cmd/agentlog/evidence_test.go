package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
)

// TestEvidenceCLI runs the real binary: a server with an agent session
// appending, an auditor's evidence export for the agent's time range
// through the CLI, then an offline verify after the server has stopped,
// and verifies that edited evidence fails with a message naming the file.
func TestEvidenceCLI(t *testing.T) {
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
	srv := startServer(t, bin, "--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--origin", "evidence.e2e/log")
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(data, "admin.token")
	logPub := filepath.Join(data, "log.pub")

	sess := provisionSession(t, srv.url, string(tok), "billing-bot", "invoice-run")
	other := provisionSession(t, srv.url, string(tok), "support-bot", "triage")
	var first, last client.Appended
	for i, s := range []string{sess, other, sess, sess, other, sess} {
		res, err := mustClient(t, srv.url, s).Append(t.Context(), client.Record{Action: "db.read", Tool: "sql", Resource: "customers/" + string(rune('a'+i)), Outcome: "success"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res[0]
		}
		last = res[0]
	}
	// A later entry outside the time range.
	mustCLI(t, bin, "append", "--server", srv.url, "--session-token", sess, "--action", "db.write", "--resource", "customers/z")
	logKey, _ := os.ReadFile(logPub)
	timeKey, _ := os.ReadFile(filepath.Join(data, "time.pub"))
	v, err := client.NewVerifier(string(logKey), string(timeKey))
	if err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, mustClient(t, srv.url, string(tok)), v, last.Index+2)

	lastTime, err := time.Parse(time.RFC3339Nano, last.Time)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "evidence")
	stdout := mustCLI(t, bin, "evidence", "export", "--server", srv.url, "--token-file", tokFile,
		"--agent", "billing-bot", "--from", first.Time, "--to", lastTime.Add(time.Nanosecond).Format(time.RFC3339Nano),
		"--out", out, "--log-key", logPub)
	if !strings.Contains(stdout, "exported 4 matching entries") || !strings.Contains(stdout, "completeness: proven") {
		t.Errorf("export printed:\n%s", stdout)
	}
	for _, f := range []string{"manifest.json", "checkpoint", "entries.ndjson", "range.ndjson", "summary.html", "keys/log.pub", "keys/time.pub",
		"proofs/" + strconv.FormatUint(first.Index, 10) + ".tlog-proof", "proofs/" + strconv.FormatUint(last.Index, 10) + ".tlog-proof"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	// An export without a time range, refusing a second export into the same directory.
	if _, errs, code := cli(t, bin, "evidence", "export", "--server", srv.url, "--token-file", tokFile, "--agent", "support-bot", "--out", out); code == 0 || !strings.Contains(errs, "not empty") {
		t.Errorf("export into a full directory: exit %d\n%s", code, errs)
	}
	out2 := filepath.Join(t.TempDir(), "evidence")
	mustCLI(t, bin, "evidence", "export", "--server", srv.url, "--token", strings.TrimSpace(string(tok)), "--agent", "support-bot", "--action", "db.*", "--out", out2, "--log-key", logPub)

	// Offline from here on.
	srv.kill()
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "log.pub")
	os.WriteFile(keyFile, logKey, 0o644)
	stdout = mustCLI(t, bin, "evidence", "verify", out, "--log-key", keyFile)
	for _, want := range []string{"checkpoint OK: origin evidence.e2e/log", "entries OK: 4 entries", "completeness OK"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("verify printed:\n%s\nwant %q", stdout, want)
		}
	}
	stdout = mustCLI(t, bin, "evidence", "verify", "--log-key", keyFile, out2)
	if !strings.Contains(stdout, "entries OK: 2 entries") || !strings.Contains(stdout, "completeness: not proven") {
		t.Errorf("verify printed:\n%s", stdout)
	}

	// Tampering.
	entries := filepath.Join(out, "entries.ndjson")
	orig, _ := os.ReadFile(entries)
	os.WriteFile(entries, bytes.Replace(orig, []byte("customers/a"), []byte("customers/b"), 1), 0o600)
	_, errs, code := cli(t, bin, "evidence", "verify", out, "--log-key", keyFile)
	if code != 1 || !strings.Contains(errs, "entries.ndjson: its SHA-256") {
		t.Errorf("verify of an edited entry: exit %d\n%s", code, errs)
	}
	os.WriteFile(entries, orig, 0o600)
	wrong := filepath.Join(keyDir, "other.pub")
	os.WriteFile(wrong, []byte(strings.Replace(string(logKey), "evidence.e2e/log", "other.example/log", 1)), 0o644)
	if _, errs, code := cli(t, bin, "evidence", "verify", out, "--log-key", wrong); code == 0 {
		t.Errorf("verify with another key succeeded:\n%s", errs)
	}
	if _, _, code := cli(t, bin, "evidence", "verify", "--log-key", keyFile); code != 2 {
		t.Errorf("verify without a directory: exit %d, want 2", code)
	}
	mustCLI(t, bin, "evidence", "verify", out, "--log-key", keyFile)
}
