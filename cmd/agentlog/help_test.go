package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/log/anomaly"
)

// TestHelp checks that every verb explains itself: "agentlog help VERB"
// and "VERB -h" print the same text with a one-line description, the usage
// line, every flag with double dashes and a description, and an example;
// that no flag of any verb lacks a description; and that the overview
// names every verb (cmdline.Command.CheckHelp). The development tools are
// not verbs of this binary (cmd/agentlog-dev).
func TestHelp(t *testing.T) {
	for _, err := range command.CheckHelp() {
		t.Error(err)
	}
	for _, dev := range []string{"bench", "dev"} {
		if _, ok := verbs[dev]; ok {
			t.Errorf("agentlog %s is a verb of the production binary; it belongs to cmd/agentlog-dev", dev)
		}
	}
	// Mistakes are usage errors.
	for _, args := range [][]string{{"help", "nonsense"}, {"nonsense"}, {}, {"bench", "append"}, {"dev", "synth"}} {
		if code := run(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("agentlog %v: exit %d, want 2", args, code)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "agentlog ") {
		t.Errorf("agentlog --version: exit %d, %q", code, out.String())
	}
}

// TestMissingTokenFile: every operator verb run without a token file names
// the documented flag (--token-file) and whose token it wants.
func TestMissingTokenFile(t *testing.T) {
	for _, args := range [][]string{
		{"change", "list"}, {"change", "approve", "--id", "c"}, {"token", "list"}, {"agent", "revoke", "--id", "bot"},
	} {
		var stderr bytes.Buffer
		code := run(args, &bytes.Buffer{}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "--token-file FILE") || !strings.Contains(stderr.String(), " token") {
			t.Errorf("agentlog %v: exit %d, %q; want a usage error naming --token-file", args, code, stderr.String())
		}
	}
}

// TestGatewayFailOpenNeedsToken: a gateway with a fail_open route does not
// start without a gateway token to record its configuration with.
func TestGatewayFailOpenNeedsToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gw.json")
	if err := os.WriteFile(p, []byte(`{"routes": {"wiki": {"upstream": "http://127.0.0.1:1", "fail_open": true}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"gateway", "--log", "http://127.0.0.1:2", "--listen", "127.0.0.1:0", "--config", p}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "route wiki is fail_open") || !strings.Contains(stderr.String(), "--token-file") || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want a usage error naming the route and --token-file", code, stdout.String(), stderr.String())
	}
}

// TestPackageDocListsVerbs: the package doc (main.go) has a line for
// every verb, and for no verb the binary lacks.
func TestPackageDocListsVerbs(t *testing.T) {
	for _, err := range command.CheckDoc("main.go") {
		t.Error(err)
	}
}

// TestDebugListenLoopbackOnly: serve's and the gateway's --debug-listen
// take loopback addresses only (the profiles need no credential, and a CPU
// profile or trace holds the CPU as long as asked); 0.0.0.0 was served.
func TestDebugListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":6060", "192.0.2.1:6060"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"gateway", "--log", "http://127.0.0.1:2", "--listen", "127.0.0.1:0", "--route", "a=http://127.0.0.1:1", "--debug-listen", addr}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "loopback") {
			t.Errorf("gateway --debug-listen %s: exit %d, stderr %q; want a usage error", addr, code, stderr.String())
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		if err := checkDebugListen(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// TestServeHelpNamesDefaultRules: --anomaly-config's help names every
// rule the server runs without a file (it named three of the six).
func TestServeHelpNamesDefaultRules(t *testing.T) {
	var out bytes.Buffer
	run([]string{"help", "serve"}, &out, &out)
	var help string
	for _, line := range strings.SplitAfter(out.String(), "\n") {
		if strings.Contains(line, "anomaly rules and webhooks, JSON") {
			help = line
		}
	}
	if help == "" {
		t.Fatalf("no --anomaly-config help in:\n%s", out.String())
	}
	b, err := json.Marshal(anomaly.DefaultConfig().Rules)
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := json.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for name, v := range rules {
		if v != false && v != nil && !strings.Contains(help, name) {
			t.Errorf("the rule %s runs by default and --anomaly-config's help does not name it: %s", name, help)
		}
	}
}

// TestChangeFlagsTheyUse: verbs refuse flags they would ignore. change
// propose and list took --id ("the change id") and dropped it, so
// "change list --id X" listed every change; change digest, which runs
// offline, took --server and the token flags; agent list took --id,
// session list --id and session end --agent.
func TestChangeFlagsTheyUse(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	if err := os.WriteFile(cfg, []byte(`{"model":{"name":"m"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "auditor.token")
	if err := os.WriteFile(tok, []byte("agentlog-token-v1.0123456789abcdef.secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// With a token and a server that refuses connections, a flag taken
	// and ignored ends in a connection error (exit 1), not a usage error.
	srv := []string{"--token-file", tok, "--server", "http://127.0.0.1:1", "--timeout", "2s"}
	for _, args := range [][]string{
		append([]string{"change", "list", "--id", "ch-1"}, srv...),
		append([]string{"change", "propose", "--id", "ch-1", "--agent", "a", "--config", cfg, "--description", "d", "--testing", "t", "--rollback", "r"}, srv...),
		{"change", "digest", "--config", cfg, "--server", "http://127.0.0.1:1"},
		append([]string{"agent", "list", "--id", "bot-1"}, srv...),
		append([]string{"session", "list", "--id", "0123456789abcdef"}, srv...),
		append([]string{"session", "end", "--agent", "bot-1", "--id", "0123456789abcdef"}, srv...),
	} {
		var out bytes.Buffer
		if code := run(args, &out, &out); code != 2 {
			t.Errorf("agentlog %v: exit %d, want 2 (a usage error): %s", args, code, out.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"change", "digest", "--config", cfg}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "sha256:") {
		t.Errorf("change digest: exit %d, %q", code, out.String())
	}
}
