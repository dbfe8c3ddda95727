package cmdline

import (
	"bytes"
	"flag"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestPrint(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("server", "http://127.0.0.1:8080", "log server `URL`")
	fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Bool("json", false, "print NDJSON")
	var b bytes.Buffer
	printHelp(&b, "agentlog query", Help{Summary: "find entries", Usage: "agentlog query [flags]", Example: "agentlog query --json"}, fs)
	want := `agentlog query: find entries

Usage:
  agentlog query [flags]

Flags:
  --json
        print NDJSON
  --server URL
        log server URL (default "http://127.0.0.1:8080")
  --timeout duration
        give up after this long (default 30s)

Example:
  agentlog query --json
`
	if b.String() != want {
		t.Errorf("printHelp:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/agentlog/agentlog", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "3d590bea61ea"}, {Key: "vcs.time", Value: "2026-12-01T21:40:58Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionOf("agentlog", bi), "agentlog v1.2.3 commit 3d590bea61ea (modified) of 2026-12-01T21:40:58Z, go1.26.0"; got != want {
		t.Errorf("versionOf = %q, want %q", got, want)
	}
	bi.Settings, bi.Main.Version = nil, ""
	if got := versionOf("agentlog", bi); !strings.Contains(got, "(devel)") || !strings.Contains(got, "no commit recorded") {
		t.Errorf("versionOf without VCS information = %q", got)
	}
}
