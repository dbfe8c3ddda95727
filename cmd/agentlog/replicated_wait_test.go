package main

import (
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/internal/faultproxy"
)

// TestReplicatedWait: with --durability replicated and the bucket
// unreachable, an append is committed here but not acknowledged: after
// --replicated-wait it gets 503 saying so, and a retry with its
// Idempotency-Key gets 503 again, not the receipts (before, the retry read
// the key's stored result and answered 200 for entries not in the
// bucket). Once the bucket is back the same retry gets the receipts, and
// the entries were written once.
func TestReplicatedWait(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	in, proxy := startMirroredBehindProxy(t, "wait.example", "--durability", "replicated", "--replicated-wait", "1s")
	if code, _, b := in.post(1, "before"); code != 200 {
		t.Fatalf("append with the bucket up: %d %s", code, b)
	}

	proxy.Set(faultproxy.Faults{Fail: 1})
	for attempt := range 2 {
		start := time.Now()
		code, hdr, b := in.postStalled(1, "replicated.retry", "key-1")
		if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(string(b), "committed locally but not acknowledged") ||
			!strings.Contains(string(b), "Idempotency-Key") || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("attempt %d with the bucket down: %d %v %s, want 503 saying the entries are committed but not acknowledged", attempt, code, hdr, b)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("attempt %d answered after %v, before --replicated-wait", attempt, d)
		}
	}

	// With the bucket back, the client retries (as Retry-After asks) until
	// the mirror, which backs off after failures, has caught up.
	proxy.Set(faultproxy.Faults{})
	deadline := time.Now().Add(time.Minute)
	for {
		code, _, b := in.postStalled(1, "replicated.retry", "key-1")
		if code == 200 {
			break
		}
		if code != 503 || !strings.Contains(string(b), "committed locally but not acknowledged") || time.Now().After(deadline) {
			t.Fatalf("retry with the bucket back: %d %s", code, b)
		}
	}
	if n := in.queryCount("replicated.retry"); n != 1 {
		t.Fatalf("%d entries of the retried append, want 1", n)
	}
	in.checkAcked()
}
