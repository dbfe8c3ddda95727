package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/internal/proctest"
)

// TestSynthAndReindex builds a small synthetic log with agentlog-dev,
// checks its indexes against its entries with agentlog, serves it, queries
// it, and refuses to write over an existing log.
func TestSynthAndReindex(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin, dev := agentlogBinary(t), devBinary(t)
	data := filepath.Join(t.TempDir(), "synth")
	out := mustCLI(t, dev, "synth", "--data", data, "--entries", "5000", "--agents", "20", "--days", "14")
	if !strings.Contains(out, "wrote 5000 entries") {
		t.Fatalf("synth: %s", out)
	}
	if _, _, code := proctest.Run(t, dev, "synth", "--data", data, "--entries", "10"); code != 1 {
		t.Fatalf("synth over an existing log exited %d, want 1", code)
	}
	if out := mustCLI(t, bin, "reindex", "--data", data, "--check"); !strings.Contains(out, "match the 5000 entries") {
		t.Fatalf("reindex --check: %s", out)
	}
	if out := mustCLI(t, bin, "reindex", "--data", data); !strings.Contains(out, "reindexed 5000") {
		t.Fatalf("reindex: %s", out)
	}
	mustCLI(t, bin, "reindex", "--data", data, "--check")
	srv := proctest.Start(t, bin, "agentlog listening on ", "serve", "--listen", "127.0.0.1:0", "--data", data, "--ntp", "127.0.0.1:1")
	out = mustCLI(t, bin, "query", "--server", srv.URL, "--token-file", filepath.Join(data, "admin.token"), "--agent", "agent-00*", "--outside-hours", "09:00-17:00", "--limit", "5")
	if !strings.Contains(out, "agent-00") || !strings.Contains(out, "5 matches") || !strings.Contains(out, "tree size 5000") {
		t.Fatalf("query of the synthetic log:\n%s", out)
	}
	// Reindex refuses a database a server holds open.
	if _, _, code := proctest.Run(t, bin, "reindex", "--data", data, "--check"); code != 1 {
		t.Fatalf("reindex of a served database exited %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(data, "log.pub")); err != nil {
		t.Fatal(err)
	}
}
