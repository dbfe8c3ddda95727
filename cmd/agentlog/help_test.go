package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// verbPaths lists every verb and sub-verb as "agentlog help" names them.
func verbPaths() []string {
	var out []string
	for v := range verbs {
		if subs, ok := groups[v]; ok {
			for _, s := range subs {
				out = append(out, v+" "+s)
			}
			continue
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// TestHelp checks that every verb explains itself: "agentlog help VERB"
// and "VERB -h" print the same text with a one-line description, the usage
// line, every flag with double dashes and a description, and an example;
// and that no flag of any verb lacks a description.
func TestHelp(t *testing.T) {
	for _, path := range verbPaths() {
		h, ok := helps[path]
		if !ok || h.summary == "" || h.usage == "" || h.example == "" {
			t.Errorf("agentlog %s has no help entry with summary, usage and example in helps (help.go)", path)
			continue
		}
		var viaHelp, viaH, errs bytes.Buffer
		if code := run(append([]string{"help"}, strings.Fields(path)...), &viaHelp, &errs); code != 0 {
			t.Errorf("agentlog help %s: exit %d: %s", path, code, errs.String())
			continue
		}
		if code := run(append(strings.Fields(path), "-h"), &bytes.Buffer{}, &viaH); code != 0 {
			t.Errorf("agentlog %s -h: exit %d", path, code)
		}
		out := viaHelp.String()
		if out != viaH.String() {
			t.Errorf("agentlog help %s and agentlog %s -h differ:\n%s\n---\n%s", path, path, out, viaH.String())
		}
		for _, want := range []string{"agentlog " + path + ": " + h.summary, "Usage:\n  agentlog " + h.usage, "Example:\n  " + h.example} {
			if !strings.Contains(out, want) {
				t.Errorf("agentlog help %s lacks %q:\n%s", path, want, out)
			}
		}
		// Every flag: described, and printed with double dashes.
		fs := captureFlags(t, path)
		fs.VisitAll(func(f *flag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("agentlog %s: flag --%s has no description", path, f.Name)
			}
			if !strings.Contains(out, "\n  --"+f.Name) {
				t.Errorf("agentlog help %s does not list --%s", path, f.Name)
			}
		})
	}
	// The overview names every verb.
	var ov bytes.Buffer
	if code := run([]string{"help"}, &ov, &ov); code != 0 {
		t.Fatalf("agentlog help: exit %d", code)
	}
	for _, path := range verbPaths() {
		if !strings.Contains(ov.String(), "  "+path+" ") {
			t.Errorf("agentlog help does not list %s", path)
		}
	}
	// Mistakes are usage errors.
	for _, args := range [][]string{{"help", "nonsense"}, {"nonsense"}, {}} {
		if code := run(args, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("agentlog %v: exit %d, want 2", args, code)
		}
	}
}

// captureFlags returns the FlagSet the verb at path defines, by running
// it with -h and keeping the set its usage function is called with.
func captureFlags(t *testing.T, path string) *flag.FlagSet {
	t.Helper()
	var got *flag.FlagSet
	flagSetHook = func(fs *flag.FlagSet) { got = fs }
	defer func() { flagSetHook = nil }()
	run(append(strings.Fields(path), "-h"), &bytes.Buffer{}, &bytes.Buffer{})
	if got == nil {
		t.Fatalf("agentlog %s -h made no FlagSet", path)
	}
	return got
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
