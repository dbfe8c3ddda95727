package walkthrough

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunner checks the runner on small blocks: variables and the working
// directory carry over, a failing command fails its block, expectations
// are checked, and a background process is waited for and stopped.
func TestRunner(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{Dir: dir, Env: os.Environ()}
	defer r.Stop(time.Minute)
	run := func(b Block) (string, error) {
		b.File, b.Line = "t.md", 1
		return r.Run(&b)
	}
	if _, err := run(Block{Text: "X=hello\nmkdir sub\ncd sub\nexport Y=\"a b\"\n"}); err != nil {
		t.Fatal(err)
	}
	out, err := run(Block{Text: "echo \"$X $Y $(basename \"$PWD\")\"\n", Expect: []string{"hello a b sub"}})
	if err != nil {
		t.Fatalf("state did not carry over: %v, %q", err, out)
	}
	if _, err := run(Block{Text: "false\necho not reached\n"}); err == nil || !strings.Contains(err.Error(), "t.md:1") {
		t.Errorf("a failing command: %v", err)
	}
	if _, err := run(Block{Text: "false | true\n"}); err == nil {
		t.Error("a failing command in a pipeline passed (pipefail)")
	}
	if _, err := run(Block{Text: "echo something\n", Expect: []string{"else"}}); err == nil || !strings.Contains(err.Error(), `"else"`) {
		t.Errorf("an unmet expectation: %v", err)
	}
	if _, err := run(Block{Text: "sleep 60\n", Timeout: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("a block past its timeout: %v", err)
	}
	// A background process: ready once it says so, stopped by Stop.
	if _, err := run(Block{Text: "echo \"serving $X\"\nexec sleep 600\n", Background: true, Ready: "serving hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(Block{Text: "exit 3\n", Background: true, Ready: "never"}); err == nil || !strings.Contains(err.Error(), "before printing") {
		t.Errorf("a background process that exits first: %v", err)
	}
	if err := r.Stop(time.Minute); err == nil || !strings.Contains(err.Error(), "exited early") {
		t.Errorf("Stop with a background process that had exited: %v", err)
	}
	// Skipped blocks do not run.
	if _, err := run(Block{Text: "false\n", Skip: "reason"}); err != nil {
		t.Errorf("a skipped block ran: %v", err)
	}
}
