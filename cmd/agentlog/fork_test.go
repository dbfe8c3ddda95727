package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// TestForkedLogRefused forces a fork with real processes: a log publishes
// cosigned checkpoints with three witnesses (quorum two) and a monitor
// trusts one; then a second log with the same keys but a rewritten tree
// takes its place. Every witness refuses its checkpoints, so in hold mode
// it never publishes; the witnesses keep the original history; and once
// the forked log publishes log-signed checkpoints, agentlog monitor exits
// non-zero printing both checkpoints.
func TestForkedLogRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binaries")
	}
	bin, wbin := agentlogBinary(t), witnessBinary(t)
	ntp := ntptest.Start(t, 0)
	const origin = "e2e.example/forked"
	dataA := t.TempDir()
	keys, _, err := checkpoint.LoadOrCreateKeys(dataA, origin)
	if err != nil {
		t.Fatal(err)
	}
	var policyText strings.Builder
	fmt.Fprintf(&policyText, "log %s\n", keys.LogVKey)
	var wurls []string
	for i := 0; i < 3; i++ {
		wdir := t.TempDir()
		w := startWitnessProc(t, wbin, "--data", wdir, "--listen", "127.0.0.1:0", "--name", fmt.Sprintf("w%d.fork.example", i), "--log", keys.LogVKey, "--ntp", ntp.Addr())
		pub, err := os.ReadFile(filepath.Join(wdir, witness.PubFile))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&policyText, "witness W%d %s %s\n", i, strings.TrimSpace(string(pub)), w.url)
		wurls = append(wurls, w.url)
	}
	policyText.WriteString("group Q 2 W0 W1 W2\nquorum Q\n")
	policyFile := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policyFile, []byte(policyText.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse([]byte(policyText.String()))
	if err != nil {
		t.Fatal(err)
	}
	served := func(url string) (*policy.Verified, []byte, bool) {
		code, raw, err := getBody(url + "/checkpoint")
		if err != nil || code != http.StatusOK {
			return nil, nil, false
		}
		v, err := pol.Verify(raw)
		if err != nil {
			return nil, raw, false
		}
		return v, raw, true
	}

	// The honest history.
	args := []string{"--origin", origin, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--witness-policy", policyFile}
	a := startServer(t, bin, append([]string{"--data", dataA}, args...)...)
	adminTok, err := os.ReadFile(filepath.Join(dataA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sizeA := appendEntries(t, a.url, provisionSession(t, a.url, string(adminTok), "honest-bot", "t1"), 10)
	var trusted *policy.Verified
	var trustedRaw []byte
	waitFor(t, "a cosigned checkpoint of the honest log", func() bool {
		v, raw, ok := served(a.url)
		trusted, trustedRaw = v, raw
		return ok && v.Size >= sizeA
	})
	state := filepath.Join(t.TempDir(), "monitor.state")
	if out, errs, code := runBin(t, bin, "monitor", "--server", a.url, "--policy", policyFile, "--state", state, "--once"); code != 0 {
		t.Fatalf("monitor of the honest log exited %d:\n%s%s", code, out, errs)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.done

	// The fork: the same keys, another tree (different entries from index 0).
	dataB := t.TempDir()
	for _, f := range []string{"log.key", "log.pub", "time.key", "time.pub", "admin.token"} {
		b, err := os.ReadFile(filepath.Join(dataA, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := startServer(t, bin, append([]string{"--data", dataB, "--unwitnessed", "hold"}, args...)...)
	sizeB := appendEntries(t, b.url, provisionSession(t, b.url, string(adminTok), "forking-bot", "t2"), 30)
	if sizeB <= trusted.Size {
		t.Fatalf("forked tree (%d) is not larger than the trusted one (%d)", sizeB, trusted.Size)
	}
	// Wait until every witness has refused the forked checkpoints, as the
	// log's own witness status reports them.
	var lastErrs []string
	waitFor(t, "every witness to refuse the forked log", func() bool {
		h, err := healthz(b.url)
		if err != nil {
			return false
		}
		raw, _ := json.Marshal(h["witnesses"])
		var ws witness.ClientStatus
		if json.Unmarshal(raw, &ws) != nil || len(ws.Witnesses) != 3 || ws.LatestSize < sizeB {
			return false
		}
		lastErrs = lastErrs[:0]
		for _, w := range ws.Witnesses {
			if w.Failures == 0 || !strings.Contains(w.LastError, "422") {
				return false
			}
			lastErrs = append(lastErrs, w.LastError)
		}
		return ws.CosignedSize == 0
	})
	t.Logf("witnesses refused the fork: %q", lastErrs)
	if code, body, _ := getBody(b.url + "/checkpoint"); code != http.StatusServiceUnavailable {
		t.Fatalf("the forked log published a checkpoint in hold mode: %d\n%s", code, body)
	}
	// The witnesses still hold the honest history.
	sum := sha256.Sum256([]byte(origin))
	for _, u := range wurls {
		code, raw, err := getBody(u + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
		if err != nil || code != http.StatusOK {
			t.Fatalf("witness %s monitoring endpoint: %d %v", u, code, err)
		}
		cp, err := checkpoint.Open(raw, keys.LogVerifier, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != trusted.Size || string(cp.Root) != string(trusted.Root) {
			t.Fatalf("witness %s moved to size %d root %x, the honest checkpoint is size %d root %x", u, cp.Size, cp.Root, trusted.Size, trusted.Root)
		}
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done

	// Published log-signed, the fork is caught by the monitor.
	b = startServer(t, bin, append([]string{"--data", dataB, "--unwitnessed", "publish"}, args...)...)
	var forked []byte
	waitFor(t, "the forked log to publish", func() bool {
		code, raw, err := getBody(b.url + "/checkpoint")
		if err != nil || code != http.StatusOK {
			return false
		}
		cp, err := checkpoint.Open(raw, keys.LogVerifier, nil)
		forked = raw
		return err == nil && cp.Size >= sizeB
	})
	// With the witness policy the monitor refuses the forked checkpoint
	// for lack of cosignatures.
	out, errs, code := runBin(t, bin, "monitor", "--server", b.url, "--policy", policyFile, "--state", state, "--once")
	if code == 0 || !strings.Contains(out+errs, "quorum") {
		t.Fatalf("monitor with the witness policy: exit %d\n%s%s", code, out, errs)
	}
	// A monitor that trusts the log key alone proves the fork itself.
	logOnly := filepath.Join(t.TempDir(), "log-only.policy")
	if err := os.WriteFile(logOnly, []byte(fmt.Sprintf("log %s\nquorum none\n", keys.LogVKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runBin(t, bin, "monitor", "--server", b.url, "--policy", logOnly, "--state", state, "--once")
	if code == 0 {
		t.Fatalf("monitor accepted the forked log:\n%s%s", out, errs)
	}
	all := out + errs
	// Both checkpoints are printed in full: their root lines identify them.
	trustedRoot := strings.Split(string(trustedRaw), "\n")[2]
	forkedRoot := strings.Split(string(forked), "\n")[2]
	if !strings.Contains(all, "fork") || !strings.Contains(all, trustedRoot) || !strings.Contains(all, forkedRoot) {
		t.Fatalf("monitor did not print both checkpoints:\n%s", all)
	}
}
