package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp checks that "agentlog-witness help serve" and "serve -h" print
// the summary, the usage, every flag with double dashes and a
// description, and an example; and that --version answers.
func TestHelp(t *testing.T) {
	var viaHelp, viaH bytes.Buffer
	if code := run([]string{"help", "serve"}, &viaHelp, &viaHelp); code != 0 {
		t.Fatalf("help serve: exit %d", code)
	}
	if code := run([]string{"serve", "-h"}, &viaH, &viaH); code != 0 {
		t.Fatalf("serve -h: exit %d", code)
	}
	serveHelp := command.Helps["serve"]
	out := viaHelp.String()
	if out != viaH.String() {
		t.Errorf("help serve and serve -h differ:\n%s\n---\n%s", out, viaH.String())
	}
	for _, want := range []string{"agentlog-witness serve: " + serveHelp.Summary, "Usage:\n  agentlog-witness " + serveHelp.Usage, "Example:\n  " + serveHelp.Example} {
		if !strings.Contains(out, want) {
			t.Errorf("help serve lacks %q:\n%s", want, out)
		}
	}
	// Every flag line is followed by a description line.
	lines := strings.Split(out, "\n")
	flags := 0
	for i, l := range lines {
		if !strings.HasPrefix(l, "  --") {
			continue
		}
		flags++
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) == "" || !strings.HasPrefix(lines[i+1], "        ") {
			t.Errorf("flag %s has no description", strings.TrimSpace(l))
		}
	}
	if flags < 10 {
		t.Errorf("help serve lists %d flags:\n%s", flags, out)
	}
	var v bytes.Buffer
	if code := run([]string{"--version"}, &v, &v); code != 0 || !strings.HasPrefix(v.String(), "agentlog-witness ") {
		t.Errorf("--version: exit %d, %q", code, v.String())
	}
}

// TestCommand: the verb's help is complete as internal/cmdline checks it
// for every command, the package doc lists the verb, and mistakes are
// usage errors that point to the help.
func TestCommand(t *testing.T) {
	for _, err := range command.CheckHelp() {
		t.Error(err)
	}
	for _, err := range command.CheckDoc("main.go") {
		t.Error(err)
	}
	for _, args := range [][]string{{}, {"nonsense"}, {"help", "nonsense"}} {
		if code := run(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("agentlog-witness %v: exit %d, want 2", args, code)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"serve", "--rate", "0", "--log", "x"}, &bytes.Buffer{}, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `Run "agentlog-witness help serve" for its flags.`) {
		t.Errorf("agentlog-witness serve --rate 0: exit %d, %q", code, stderr.String())
	}
}

// TestServeRefusesBadInputFirst: a bad --name or --listen stops a first
// start with nothing created (the data directory, and with a bad --listen
// the key, were left behind).
func TestServeRefusesBadInputFirst(t *testing.T) {
	const vkey = "agentlog.local/log+00de662b+AdYQTJEpT21yFkqhXQQR98h9uFoLNe3Zva/iAAAscfUg"
	for _, args := range [][]string{
		{"--name", "bad name"},
		{"--name", "a+b"},
		{"--name", ""},
		{"--name", "w.example/w1", "--listen", "127.0.0.1:99999"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		var stderr bytes.Buffer
		code := run(append([]string{"serve", "--data", data, "--log", vkey, "--ntp", "127.0.0.1:1"}, args...), &bytes.Buffer{}, &stderr)
		if code == 0 || stderr.Len() == 0 {
			t.Errorf("serve %v: exit %d, %q; want an error", args, code, stderr.String())
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("serve %v left %s behind", args, data)
		}
	}
}
