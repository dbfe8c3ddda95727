package main

import (
	"os"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/internal/faultproxy"
	"github.com/agentlog/agentlog/internal/servicetest"
)

// startMirroredBehindProxy starts the faultinject binary mirroring to a
// fresh bucket through a fault proxy (the returned one), with the
// postgres lock (so the lease does not go through the proxy), an origin
// of its own under prefix, and flags.
func startMirroredBehindProxy(t *testing.T, prefix string, flags ...string) (*injected, *faultproxy.Proxy) {
	t.Helper()
	e := newReplicationEnv(t)
	proxy, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	t.Setenv("AWS_ENDPOINT_URL", proxy.URL)
	in := startInjectedAt(t, t.TempDir(), append([]string{"--mirror", "s3://" + e.bucket + "/log", "--mirror-retention", "2d", "--mirror-lock", "governance",
		"--lock", pgLockFlag(t), "--origin", prefix + "/" + servicetest.RandomName(t)}, flags...)...)
	return in, proxy
}

// TestMirrorLagAlert: with the bucket unreachable the log records a
// mirror.lagging alert once the oldest unmirrored entry is older than
// --mirror-lag-alert, and mirror.caught_up once the bucket has everything
// again. An alert whose append fails (here the storage failing) is
// recorded once the storage works again: before, the watcher took the
// lagging state as recorded and never tried again.
func TestMirrorLagAlert(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	in, proxy := startMirroredBehindProxy(t, "lag.example", "--mirror-lag-alert", "1s")
	lag := func() float64 {
		h, err := healthz(in.srv.url)
		if err != nil {
			return -1
		}
		m, _ := h["mirror"].(map[string]any)
		v, ok := m["lag_entries"].(float64)
		if !ok {
			return -1
		}
		return v
	}
	if code, _, b := in.post(1, "before"); code != 200 {
		t.Fatalf("append: %d %s", code, b)
	}
	waitFor(t, "the mirror to have every entry", func() bool { return lag() == 0 })

	// The bucket goes away, an entry waits for it, and the storage fails
	// while the lag passes the limit: the alert cannot be recorded yet.
	proxy.Set(faultproxy.Faults{Fail: 1})
	if code, _, b := in.post(1, "unmirrored"); code != 200 {
		t.Fatalf("append: %d %s", code, b)
	}
	in.fault("write-error")
	waitFor(t, "a failed attempt to record the alert", func() bool {
		return strings.Contains(in.srv.stderr.String(), "recording the mirror alert")
	})
	if n := in.queryCount("mirror.lagging"); n != 0 {
		t.Fatalf("%d mirror.lagging alerts recorded while the storage fails", n)
	}
	in.fault("")
	waitFor(t, "the mirror.lagging alert", func() bool { return in.queryCount("mirror.lagging") == 1 })

	proxy.Set(faultproxy.Faults{})
	waitFor(t, "the mirror.caught_up alert", func() bool { return in.queryCount("mirror.caught_up") == 1 })
	if n := in.queryCount("mirror.lagging"); n != 1 {
		t.Fatalf("%d mirror.lagging alerts, want 1", n)
	}
	in.checkAcked()
}
