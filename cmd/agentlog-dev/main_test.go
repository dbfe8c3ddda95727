package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/internal/proctest"
)

var devBuild, agentlogBuild proctest.Binary

// TestMain removes the binaries the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	devBuild.Remove()
	agentlogBuild.Remove()
	os.Exit(code)
}

func devBinary(t *testing.T) string      { return devBuild.Get(t, "agentlog-dev", ".") }
func agentlogBinary(t *testing.T) string { return agentlogBuild.Get(t, "agentlog", "../agentlog") }

// mustCLI is cli for a command that must succeed; it returns its stdout.
func mustCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errs, code := proctest.Run(t, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s%s", bin, strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestHelp checks that every verb explains itself the way agentlog's do
// (cmdline.Command.CheckHelp), and that mistakes are usage errors.
func TestHelp(t *testing.T) {
	for _, err := range command.CheckHelp() {
		t.Error(err)
	}
	for _, args := range [][]string{{"help", "nonsense"}, {"nonsense"}, {}, {"bench"}, {"bench", "nonsense"}, {"serve"}} {
		if code := run(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("agentlog-dev %v: exit %d, want 2", args, code)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"bench", "append"}, &bytes.Buffer{}, &stderr); code != 2 || !strings.Contains(stderr.String(), "--token-file is required") ||
		!strings.Contains(stderr.String(), `Run "agentlog-dev help bench append" for its flags.`) {
		t.Errorf("agentlog-dev bench append without a token file: exit %d, %q", code, stderr.String())
	}
	var v bytes.Buffer
	if code := run([]string{"--version"}, &v, &v); code != 0 || !strings.HasPrefix(v.String(), "agentlog-dev ") {
		t.Errorf("agentlog-dev --version: exit %d, %q", code, v.String())
	}
}

// TestPackageDocListsVerbs: the package doc (main.go) has a line for
// every verb, and for no verb the binary lacks.
func TestPackageDocListsVerbs(t *testing.T) {
	for _, err := range command.CheckDoc("main.go") {
		t.Error(err)
	}
}
