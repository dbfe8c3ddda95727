package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
)

// runBin runs the agentlog binary and returns its stdout, stderr and exit code.
func runBin(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	return proctest.Run(t, bin, args...)
}

// TestMonitorAndAuditE2E runs two real servers signing with the same key
// but holding different histories (a forked log). audit passes on each;
// monitor trusts the first and, shown the second, exits non-zero printing
// both checkpoints.
func TestMonitorAndAuditE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	dataA, dataB := t.TempDir(), t.TempDir()
	common := []string{"--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms", "--origin", "fork.example/log"}
	a := startServer(t, bin, append([]string{"--data", dataA}, common...)...)
	// The second log signs with the first one's keys.
	for _, f := range []string{"log.key", "log.pub", "time.key", "time.pub"} {
		b, err := os.ReadFile(filepath.Join(dataA, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := startServer(t, bin, append([]string{"--data", dataB}, common...)...)
	logPub, _ := os.ReadFile(filepath.Join(dataA, "log.pub"))
	v, err := client.NewVerifier(string(logPub), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("log "+strings.TrimSpace(string(logPub))+"\nquorum none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var sizes [2]uint64
	for i, s := range []struct {
		srv  *serverProc
		data string
		what string
	}{{a, dataA, "history-a"}, {b, dataB, "history-b"}} {
		tok, _ := os.ReadFile(filepath.Join(s.data, "admin.token"))
		sess := provisionSession(t, s.srv.url, string(tok), "bot", "task")
		c := mustClient(t, s.srv.url, sess)
		for range 3 {
			res, err := c.Append(ctx, client.Record{Action: s.what})
			if err != nil {
				t.Fatal(err)
			}
			sizes[i] = res[0].Index + 1
		}
		waitCheckpoint(t, mustClient(t, s.srv.url, ""), v, sizes[i])
	}

	// audit: both logs are internally sound.
	for _, s := range []struct {
		url, data string
	}{{a.url, dataA}, {b.url, dataB}} {
		stateFile := filepath.Join(dir, "audit-"+filepath.Base(s.data))
		out, errs, code := runBin(t, bin, "audit", "--server", s.url, "--token-file", filepath.Join(s.data, "admin.token"),
			"--policy", policy, "--state", stateFile, "--json")
		if code != 0 {
			t.Fatalf("audit exited %d:\n%s\n%s", code, out, errs)
		}
		var r client.AuditReport
		if err := json.Unmarshal([]byte(out), &r); err != nil || !r.OK() || r.End == 0 {
			t.Fatalf("audit report %v: %s", err, out)
		}
		// Run again: the state file says the audit is done; same result.
		out2, _, code := runBin(t, bin, "audit", "--server", s.url, "--token-file", filepath.Join(s.data, "admin.token"),
			"--policy", policy, "--state", stateFile)
		if code != 0 || !strings.Contains(out2, "no findings") {
			t.Fatalf("resumed audit exited %d:\n%s", code, out2)
		}
	}

	state := filepath.Join(dir, "monitor.state")
	out, errs, code := runBin(t, bin, "monitor", "--server", a.url, "--policy", policy, "--state", state, "--once")
	if code != 0 || !strings.Contains(out, "trusted on first use") {
		t.Fatalf("monitor of log A exited %d:\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("monitor kept no state: %v", err)
	}
	out, errs, code = runBin(t, bin, "monitor", "--server", a.url, "--policy", policy, "--state", state, "--once")
	if code != 0 {
		t.Fatalf("second monitor of log A exited %d:\n%s\n%s", code, out, errs)
	}
	trusted, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	// Log B, same key, other history.
	out, errs, code = runBin(t, bin, "monitor", "--server", b.url, "--policy", policy, "--state", state, "--once")
	if code == 0 || !strings.Contains(out, "INCONSISTENCY DETECTED") {
		t.Fatalf("fork not detected, exit %d:\n%s\n%s", code, out, errs)
	}
	rawB, err := mustClient(t, b.url, "").Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range [][]byte{trusted, rawB} {
		for _, line := range strings.Split(strings.TrimSpace(string(cp)), "\n") {
			if line != "" && !strings.Contains(out, line) {
				t.Fatalf("evidence lacks %q:\n%s", line, out)
			}
		}
	}
	if after, _ := os.ReadFile(state); string(after) != string(trusted) {
		t.Fatal("the state file changed after a fork was detected")
	}
	t.Logf("monitor output:\n%s%s", out, errs)
}
