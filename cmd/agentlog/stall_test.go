package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/internal/cmdline"
)

// TestServeRefusesBadCommitWait: a --commit-wait outside its bounds is a
// usage error naming them, before anything is created.
func TestServeRefusesBadCommitWait(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, v := range []string{"0s", "-1s", "999ms", "11m"} {
		err := runServe([]string{"--data", data, "--commit-wait", v}, io.Discard, io.Discard)
		var ue cmdline.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--commit-wait") || !strings.Contains(err.Error(), "1s to 10m0s") {
			t.Errorf("serve --commit-wait %s: %v, want a usage error with the bounds", v, err)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("serve --commit-wait %s left %s behind", v, data)
		}
	}
}

// postStalled appends n records of action (with an Idempotency-Key unless
// key is empty) while the storage is stalled: it fails the test if no
// answer comes within a minute, far beyond the budgets the tests set, as
// appends waited for the stall before the log had a budget.
func (in *injected) postStalled(n int, action, key string) (int, http.Header, []byte) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, hdr, b, err := in.tryPostKey(ctx, n, action, key)
	if err != nil {
		in.t.Fatalf("append while the storage is stalled: no answer: %v", err)
	}
	return code, hdr, b
}

// queryCount is how many entries of action the server's query finds (its
// answer is one JSON line per match, then a summary line).
func (in *injected) queryCount(action string) int {
	in.t.Helper()
	resp, err := http.DefaultClient.Do(in.authGet("/v1/query?action=" + action))
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		in.t.Fatalf("query for %s: %d %s", action, resp.StatusCode, b)
	}
	d := json.NewDecoder(resp.Body)
	lines := 0
	for {
		var line struct {
			Index   *uint64
			Summary *struct{ Matches int }
		}
		if err := d.Decode(&line); err != nil {
			in.t.Fatalf("query for %s: no summary after %d matches: %v", action, lines, err)
		}
		if line.Summary != nil {
			if line.Summary.Matches != lines {
				in.t.Fatalf("query for %s: %d matches, the summary says %d", action, lines, line.Summary.Matches)
			}
			return lines
		}
		if line.Index == nil {
			in.t.Fatalf("query for %s: a line that is neither a match nor the summary", action)
		}
		lines++
	}
}

// TestFaultStorageStalled holds a commit (the injected "hold": a disk
// that does not return) under the real server with --commit-wait 1s.
// What must hold: the held append waits for its commit; appends queued
// behind it are answered 503, not 500, with Retry-After and a JSON error
// saying that the storage is stalled and the append was not written,
// while the commit is still held; a client that gives up while its
// append is queued has it withdrawn; /healthz says the storage is slow,
// names the budget and counts the refused appends, and the metric counts
// both reasons; the server logs the stall at WARN; once the commit
// returns, the held append is acknowledged, a refused append retried
// with its Idempotency-Key is written once (the key was left free), and
// nothing of the refused or withdrawn appends is in the log, across a
// kill -9.
func TestFaultStorageStalled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	in := startInjectedAt(t, t.TempDir(), "--commit-wait", "1s")
	if code, _, b := in.post(2, "fault.kept"); code != 200 {
		t.Fatalf("append before the fault: %d %s", code, b)
	}
	in.fault("hold")
	held := make(chan int, 1)
	go func() {
		code, _, _, err := in.tryPost(3, "fault.kept")
		if err != nil {
			code = 0
		}
		held <- code
	}()
	waitFor(t, "/healthz to say the held commit is slow", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && storageOf(h)["slow"] == true
	})

	for j := range 3 {
		code, hdr, b := in.postStalled(1, "fault.stalled", fmt.Sprintf("stalled-%d", j))
		var e struct{ Error string }
		if code != 503 || hdr.Get("Retry-After") != "5" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || json.Unmarshal(b, &e) != nil ||
			!strings.Contains(e.Error, "storage is stalled") || !strings.Contains(e.Error, "NOT written") {
			t.Fatalf("append behind the held commit: %d (Retry-After %q) %s, want 503 saying the storage is stalled and nothing was written", code, hdr.Get("Retry-After"), b)
		}
	}
	// A client that gives up first: its append is withdrawn.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, _, _, err := in.tryPostKey(ctx, 1, "fault.gone", "")
		gone <- err
	}()
	waitFor(t, "the gone client's append to be queued", func() bool {
		h, err := healthz(in.srv.url)
		return err == nil && h["queue_entries"] == float64(4) // the held 3, and it
	})
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	waitFor(t, "the gone client's append to be withdrawn", func() bool {
		return strings.Contains(metricsText(t, in.srv.url), `agentlog_append_withdrawn_total{reason="client_gone"} 1`)
	})
	select {
	case code := <-held:
		t.Fatalf("the held append was answered (%d) while its commit was held", code)
	default:
	}
	h, err := healthz(in.srv.url)
	if err != nil || h["status"] != "degraded" || storageOf(h)["stalled_appends"] != float64(3) || storageOf(h)["commit_wait_seconds"] != float64(1) ||
		!strings.Contains(fmt.Sprint(h["problems"]), "not started within the commit-wait budget (1 s) are refused (503)") || h["queue_entries"] != float64(3) {
		t.Fatalf("/healthz during the stall: %v %v", h, err)
	}
	if m := metricsText(t, in.srv.url); !strings.Contains(m, `agentlog_append_withdrawn_total{reason="budget"} 3`) {
		t.Fatalf("metrics during the stall lack the 3 withdrawn appends:\n%s", m)
	}
	if !strings.Contains(in.srv.stderr.String(), "level=WARN msg=\"storage is stalled") {
		t.Fatalf("no WARN line for the stall:\n%s", in.srv.stderr)
	}

	in.fault("")
	if code := <-held; code != 200 {
		t.Fatalf("the held append after its commit returned: %d", code)
	}
	if code, _, b, err := in.tryPostKey(context.Background(), 1, "fault.stalled", "stalled-0"); err != nil || code != 200 {
		t.Fatalf("refused append retried with its Idempotency-Key: %d %s %v", code, b, err)
	}
	check := func() {
		t.Helper()
		in.checkAcked()
		if n := in.queryCount("fault.stalled"); n != 1 {
			t.Fatalf("%d entries of the refused appends, want the one retry", n)
		}
		if n := in.queryCount("fault.gone"); n != 0 {
			t.Fatalf("%d entries of the withdrawn append", n)
		}
		if h, err := healthz(in.srv.url); err != nil || h["tree_size"] != float64(in.ackedSize()) {
			t.Fatalf("tree size %v, acknowledged %d: %v", h["tree_size"], in.ackedSize(), err)
		}
	}
	check()
	in.srv.kill()
	in.start()
	check()
}
