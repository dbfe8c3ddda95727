package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirstHourDefects drives the real binary through the mistakes a new
// user met in their first hour (issue 10), each of which once failed:
// a refused registration that left a key file behind, token files that
// were world-readable or overwritten, a verify right after an append that
// found no checkpoint yet, revoked agents' sessions listed as open, flags
// silently ignored, and errors that did not name their fix.
func TestFirstHourDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data, dir := t.TempDir(), t.TempDir()
	// NTP unreachable (nothing listens on port 1), and an interval long
	// enough that a verify right after an append finds no covering
	// checkpoint yet unless it waits for one.
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "2s", "--origin", "firsthour.test/log")
	admin := filepath.Join(data, "admin.token")
	at := func(args ...string) []string { return append(args, "--server", srv.url) }

	// A registration the server refuses (the id exists) writes no key file.
	key := filepath.Join(dir, "bot.key")
	mustCLI(t, bin, at("agent", "register", "--admin-token-file", admin, "--id", "bot", "--key-out", key)...)
	second := filepath.Join(dir, "bot-again.key")
	if _, errs, code := cli(t, bin, at("agent", "register", "--admin-token-file", admin, "--id", "bot", "--key-out", second)...); code == 0 {
		t.Fatalf("registering an existing id succeeded: %s", errs)
	}
	if ls := listDir(t, dir); strings.Join(ls, " ") != "bot.key" {
		t.Errorf("a refused registration left files behind: %v", ls)
	}
	// --key-out never overwrites (checked before the server is asked).
	if _, errs, code := cli(t, bin, at("agent", "register", "--admin-token-file", admin, "--id", "bot-2", "--key-out", key)...); code == 0 || !strings.Contains(errs, "already exists") {
		t.Errorf("--key-out over an existing file: exit %d, %s", code, errs)
	}

	// token create --out writes a 0600 file the other commands accept,
	// and refuses to overwrite it, asking nothing of the server.
	aud := filepath.Join(dir, "auditor.token")
	mustCLI(t, bin, at("token", "create", "--admin-token-file", admin, "--role", "auditor", "--name", "alice", "--out", aud)...)
	if fi, err := os.Stat(aud); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token create --out: %v, mode %v", err, fi.Mode())
	}
	before := mustCLI(t, bin, at("token", "list", "--admin-token-file", admin)...)
	if _, errs, code := cli(t, bin, at("token", "create", "--admin-token-file", admin, "--role", "auditor", "--name", "bob", "--out", aud)...); code == 0 || !strings.Contains(errs, "already exists") {
		t.Errorf("token create --out over an existing file: exit %d, %s", code, errs)
	}
	if after := mustCLI(t, bin, at("token", "list", "--admin-token-file", admin)...); after != before {
		t.Errorf("a refused token create still created a token:\n%s", after)
	}
	// session open --out likewise; append reads it.
	sessFile := filepath.Join(dir, "bot.session")
	mustCLI(t, bin, at("session", "open", "--agent-key", key, "--task", "t-1", "--out", sessFile)...)
	if fi, err := os.Stat(sessFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session open --out: %v, mode %v", err, fi.Mode())
	}
	// --attr stores strings, --attr-json typed values (docs/api.md).
	if _, errs, code := cli(t, bin, at("append", "--session-token-file", sessFile, "--action", "db.query", "--attr-json", "rows=three")...); code != 2 || !strings.Contains(errs, "--attr-json") {
		t.Errorf("append --attr-json with a value that is not JSON: exit %d, %s", code, errs)
	}
	out := mustCLI(t, bin, at("append", "--session-token-file", sessFile, "--action", "db.query", "--resource", "customers/42",
		"--attr", "note=3", "--attr-json", "rows=3")...)
	var index string
	if f := strings.Fields(out); len(f) > 1 && f[0] == "index" {
		index = f[1]
	} else {
		t.Fatalf("append printed %q", out)
	}

	// The first verify right after the append succeeds: it waits for the
	// next checkpoint instead of failing with "not covered yet".
	out = mustCLI(t, bin, at("verify", "--log-key", filepath.Join(data, "log.pub"), "--index", index, "--token-file", aud)...)
	if !strings.Contains(out, "entry "+index+" is included") {
		t.Errorf("verify right after append: %s", out)
	}
	if !strings.Contains(out, `"note": "3"`) || !strings.Contains(out, `"rows": 3`) {
		t.Errorf("the attributes of --attr note=3 --attr-json rows=3 are not a string and a number:\n%s", out)
	}

	// --proof without --json is refused with the fix, not ignored.
	if _, errs, code := cli(t, bin, at("query", "--token-file", aud, "--proof")...); code != 2 || !strings.Contains(errs, "--json") {
		t.Errorf("query --proof without --json: exit %d, %s", code, errs)
	}
	// audit and monitor without --policy name the no-witness policy.
	if _, errs, code := cli(t, bin, at("audit", "--token-file", aud)...); code != 2 || !strings.Contains(errs, "quorum none") {
		t.Errorf("audit without --policy: exit %d, %s", code, errs)
	}
	if _, errs, code := cli(t, bin, at("monitor", "--state", filepath.Join(dir, "m.state"))...); code != 2 || !strings.Contains(errs, "quorum none") {
		t.Errorf("monitor without --policy: exit %d, %s", code, errs)
	}
	// ... and that policy works.
	policy := filepath.Join(dir, "no-witnesses.policy")
	if err := os.WriteFile(policy, []byte("quorum none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, bin, at("audit", "--token-file", aud, "--policy", policy, "--log-key", filepath.Join(data, "log.pub"))...); !strings.Contains(out, "no findings") {
		t.Errorf("audit with the no-witness policy: %s", out)
	}

	// One matching entry is "1 matching entry".
	ev := filepath.Join(dir, "evidence")
	out = mustCLI(t, bin, at("evidence", "export", "--token-file", aud, "--resource", "customers/42", "--from", "2020-01-01T00:00:00Z",
		"--log-key", filepath.Join(data, "log.pub"), "--out", ev)...)
	if !strings.Contains(out, "exported 1 matching entry of") {
		t.Errorf("evidence export of one entry: %s", out)
	}
	if out := mustCLI(t, bin, "evidence", "verify", ev, "--log-key", filepath.Join(data, "log.pub")); !strings.Contains(out, "1 entry matches the query") {
		t.Errorf("evidence verify of one entry: %s", out)
	}

	// A revoked agent's sessions are not listed as open.
	mustCLI(t, bin, at("agent", "revoke", "--admin-token-file", admin, "--id", "bot")...)
	out = mustCLI(t, bin, at("session", "list", "--admin-token-file", admin, "--agent", "bot")...)
	if !strings.Contains(out, "agent revoked") || strings.Contains(out, " open") {
		t.Errorf("session list after revoking the agent:\n%s", out)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
