package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// get makes a GET through the gateway and returns its status and
// receipt, or an error (from any goroutine).
func get(url, cred string) (int, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get(ReceiptHeader), nil
}

// TestAppendsInFlight: a call's entry is sent at once while its
// credential has fewer than max_appends_in_flight appends in flight and
// the gateway fewer than max_log_appends; beyond either, entries queue
// and share later appends. The log holds every append until the limit is
// reached with all the other entries queued, so a gateway that sent more
// at once, or fewer, would fail; every call's receipt names its own
// entry.
func TestAppendsInFlight(t *testing.T) {
	for _, c := range []struct {
		name                  string
		creds, calls          int // credentials, calls each
		perCred, total, limit int
	}{
		{"per credential", 1, 20, 3, 256, 3},
		{"in all", 3, 8, 4, 5, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			tl := newTestLog(t)
			creds := make([]string, c.creds)
			for i := range creds {
				creds[i] = tl.session(t, fmt.Sprintf("bot-%d", i), "", "t")
			}
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
			cfg, err := Load(tl.url, "", []string{"tools=" + up.hs.URL})
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxInflight, cfg.MaxAppends = c.perCred, c.total
			g := New(cfg, Options{})
			gw := newServer(t, g)

			n := c.creds * c.calls
			var inside, most, entries atomic.Int64
			release := make(chan struct{})
			hold := func(k int) {
				entries.Add(int64(k))
				v := inside.Add(1)
				for m := most.Load(); v > m && !most.CompareAndSwap(m, v); m = most.Load() {
				}
				<-release
				inside.Add(-1)
			}
			tl.hold.Store(&hold)
			type result struct {
				path, receipt string
				code          int
				err           error
			}
			results := make(chan result, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					path := fmt.Sprintf("/c%d", i)
					code, rc, err := get(gw.URL+"/tools"+path, creds[i%c.creds])
					results <- result{path, rc, code, err}
				})
			}
			queued := func() int {
				q := 0
				for _, cr := range creds {
					q += g.rec.queued(cr)
				}
				return q
			}
			// Every entry is either held at the log or queued.
			waitUntil(t, func() bool { return inside.Load() == int64(c.limit) && int64(queued())+entries.Load() == int64(n) })
			if m := most.Load(); m != int64(c.limit) {
				t.Errorf("%d appends were in flight at once, want %d", m, c.limit)
			}
			close(release)
			wg.Wait()
			close(results)
			if m := most.Load(); m > int64(c.limit) {
				t.Errorf("%d appends were in flight at once, want at most %d", m, c.limit)
			}
			for r := range results {
				if r.err != nil || r.code != 200 {
					t.Fatalf("call %s: %d %v", r.path, r.code, r.err)
				}
				if _, l := tl.checkReceipt(t, r.receipt); attrs(t, l)["url.path"] != r.path {
					t.Fatalf("the receipt of the call to %s names %+v", r.path, l)
				}
			}
			if a := tl.appends.Load(); a >= int64(n) || a < int64(c.limit)+1 {
				t.Fatalf("%d appends for %d calls: the queued entries did not share appends", a, n)
			}
		})
	}
}

// fakeNow is a clock the test moves.
type fakeNow struct{ ns atomic.Int64 }

func (f *fakeNow) now() time.Time      { return time.Unix(0, f.ns.Load()) }
func (f *fakeNow) add(d time.Duration) { f.ns.Add(int64(d)) }

// holdChecks makes the log hold session checks until the channel it
// returns is closed.
func holdChecks(tl *testLog) chan struct{} {
	c := make(chan struct{})
	tl.holdCheck.Store(&c)
	return c
}

// TestSessionChecks: concurrent calls of an unchecked credential share
// one check at the log; once the confirmation is half the cache's age, a
// call is answered from the cache while the check is renewed in the
// background (the log holds that check, and the call still completes);
// and a session closed at the log is refused once a renewal finds it
// closed, before the cache would have lapsed.
func TestSessionChecks(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cfg, err := Load(tl.url, "", []string{"tools=" + up.hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SessionCache = 10 * time.Second
	clk := &fakeNow{}
	clk.ns.Store(time.Now().UnixNano())
	g := New(cfg, Options{Now: clk.now})
	gw := newServer(t, g)

	// Concurrent first calls: one check.
	held := holdChecks(tl)
	const n = 10
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			code, _, err := get(gw.URL+"/tools/a", cred)
			if err != nil {
				code = -1
			}
			codes <- code
		})
	}
	waitUntil(t, func() bool {
		return tl.checks.Load() >= 1 && metricLines(t, gw.URL, "agentlog_gateway_calls_in_flight")["agentlog_gateway_calls_in_flight"] == fmt.Sprint(n)
	})
	close(held)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a first call: %d", c)
		}
	}
	if c := tl.checks.Load(); c != 1 {
		t.Fatalf("%d session checks for %d concurrent calls of one credential, want 1", c, n)
	}

	// Within half the cache's age: no check.
	clk.add(4 * time.Second)
	if code, _, err := get(gw.URL+"/tools/b", cred); err != nil || code != 200 || tl.checks.Load() != 1 {
		t.Fatalf("a call at 4s: %d %v, %d checks", code, err, tl.checks.Load())
	}
	// Past half: answered from the cache while the log holds the renewal.
	clk.add(2 * time.Second)
	held = holdChecks(tl)
	if code, _, err := get(gw.URL+"/tools/c", cred); err != nil || code != 200 {
		t.Fatalf("a call at 6s, the renewal held: %d %v", code, err)
	}
	waitUntil(t, func() bool { return tl.checks.Load() == 2 })
	close(held)
	tl.holdCheck.Store(nil)
	waitUntil(t, func() bool { g.sess.mu.Lock(); defer g.sess.mu.Unlock(); return len(g.sess.checks) == 0 })

	// The session closed at the log. The log refuses the next call's
	// entry (401), and the renewal that call started finds the session
	// closed: the cache forgets it, so the following call asks the log
	// again before anything goes upstream.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodDelete, tl.url+"/v1/sessions/current", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("closing the session: %v %v", resp, err)
	}
	clk.add(6 * time.Second)
	if code, _, err := get(gw.URL+"/tools/d", cred); err != nil || code != 401 {
		t.Fatalf("a call at 12s of the closed session: %d %v, want 401", code, err)
	}
	waitUntil(t, func() bool {
		g.sess.mu.Lock()
		defer g.sess.mu.Unlock()
		return tl.checks.Load() == 3 && len(g.sess.checks) == 0
	})
	g.sess.mu.Lock()
	cached := len(g.sess.byID)
	g.sess.mu.Unlock()
	upCalls := up.calls.Load()
	if code, _, err := get(gw.URL+"/tools/e", cred); err != nil || code != 401 || cached != 0 || tl.checks.Load() != 4 || up.calls.Load() != upCalls {
		t.Fatalf("a call after the renewal found the session closed: %d %v (%d cached, %d checks, upstream called %d times more), want 401 from a check, upstream not called",
			code, err, cached, tl.checks.Load(), up.calls.Load()-upCalls)
	}
}

// TestUpstreamConnectionsKept: the connections of a burst of concurrent
// calls to an upstream are kept for the next burst (http.Transport's
// default keeps 100 idle connections in all and would reconnect the rest).
func TestUpstreamConnectionsKept(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	const n = 150
	var inside atomic.Int64
	var release atomic.Pointer[chan struct{}]
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside.Add(1)
		<-*release.Load()
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	cfg, err := Load(tl.url, "", []string{"tools=" + up.URL})
	if err != nil {
		t.Fatal(err)
	}
	gw := newServer(t, New(cfg, Options{}))
	agent := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for round := range 3 {
		ch := make(chan struct{})
		release.Store(&ch)
		inside.Store(0)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/tools/r%d/c%d", gw.URL, round, i), nil)
				req.Header.Set("Authorization", "Bearer "+cred)
				resp, err := agent.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				errs <- err
			})
		}
		// Every call holds its own connection to the upstream at once.
		waitUntil(t, func() bool { return inside.Load() == n })
		close(ch)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if c := conns.Load(); c != n {
			t.Fatalf("after burst %d of %d concurrent calls the upstream has accepted %d connections, want %d", round+1, n, c, n)
		}
	}
}
