package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs "agentlog demo" as a user would and checks what it shows:
// both agents' configurations approved and on record, two alerts (the out-of-scope and the off-hours action), an inclusion
// proof under a witnessed checkpoint, evidence verified offline, and how to
// remove the one directory it wrote, outside of which it wrote nothing.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	cwd, base := t.TempDir(), t.TempDir()
	dir := filepath.Join(base, "demo")
	cmd := exec.Command(bin, "demo", "--dir", dir, "--ntp", "127.0.0.1:1")
	cmd.Dir = cwd
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("agentlog demo: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\$ agentlog agent register .*--id billing-bot .*--scope 'actions=`),
		regexp.MustCompile(`(?m)^\$ agentlog agent register .*--id support-bot .*hours=`),
		regexp.MustCompile(`(?m)^\d+ +\S+ +action +billing-bot +refund-7731 +shell\.exec +bash +/etc/passwd`),
		regexp.MustCompile(`(?m)^\d+ +\S+ +alert +billing-bot +refund-7731 +alert\.scope +bash +/etc/passwd`),
		regexp.MustCompile(`(?m)^\d+ +\S+ +alert +support-bot +ticket-981 +alert\.hours +zendesk +tickets/981`),
		regexp.MustCompile(`(?m)^2 matches in `),
		regexp.MustCompile(`(?m)^chg-\S+ +billing-bot +approved +sha256:`),
		regexp.MustCompile(`(?m)^chg-\S+ +support-bot +approved +sha256:`),
		regexp.MustCompile(`(?m)^    "config": "sha256:[0-9a-f]{64}",$`), // the shell command ran under the approved configuration
		regexp.MustCompile(`(?m)^witness quorum OK: cosigned by W1$`),
		regexp.MustCompile(`(?m)^entry \d+ is included in the checkpoint of size \d+:$`),
		regexp.MustCompile(`(?m)^completeness OK: `),
		regexp.MustCompile(`(?m)^all files match manifest\.json$`),
		regexp.MustCompile(`(?m)^  rm -rf ` + regexp.QuoteMeta(dir) + `$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the demo's output lacks %s", want)
		}
	}
	if strings.Contains(out, "agentlog-session-v1.") {
		t.Errorf("the demo printed a session credential:\n%s", out)
	}
	if ls := listDir(t, cwd); len(ls) != 0 {
		t.Errorf("the demo wrote %v outside --dir", ls)
	}
	for _, f := range []string{"log/log.pub", "log/admin.token", "witness/witness.pub", "policy.txt", "billing-bot.key", "support-bot.key", "billing-bot.config.json", "auditor.token", "evidence/manifest.json", "log.out"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the demo's directory lacks %s: %v", f, err)
		}
	}
	// A second run refuses the directory it would mix with.
	if _, errs, code := cli(t, bin, "demo", "--dir", dir); code == 0 || !strings.Contains(errs, "rm -rf") {
		t.Errorf("a demo into a used directory: exit %d, %s", code, errs)
	}
}
