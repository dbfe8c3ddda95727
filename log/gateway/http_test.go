package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
)

func TestHTTPRecordAfter(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "task-7")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(ReceiptHeader, "0 forged")
		io.WriteString(w, `{"path":"`+r.URL.Path+`","query":"`+r.URL.RawQuery+`","got":`+string(b)+`}`)
	})
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "{crm}/api", "upstream_token_file": "TOKENFILE",
		"resources": [{"path": "/customers/{id}/notes", "resource": "customers/{id}"}]}}}`, map[string]*upstream{"crm": up})

	before := tl.l.Size()
	resp := do(t, "POST", gw.URL+"/crm/customers/42/notes?x=1", cred, `{"note":"hi"}`)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"path":"/api/customers/42/notes","query":"x=1","got":{"note":"hi"}}` {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	if got := up.sawAuth(); len(got) != 1 || got[0] != "Bearer upstream-secret" {
		t.Fatalf("upstream saw Authorization %q, want only its own credential", got)
	}
	i, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
	if i != before || tl.l.Size() != before+1 {
		t.Fatalf("receipt index %d, log grew from %d to %d: want exactly one entry", i, before, tl.l.Size())
	}
	if l.Kind != alog.KindAction || l.Agent != "bot-1" || l.Task != "task-7" || l.Session == "" || l.Action != "http.post" ||
		l.Tool != "crm" || l.Resource != "customers/42" || l.Outcome != "success" {
		t.Fatalf("leaf %+v", l)
	}
	a := attrs(t, l)
	if a["request.sha256"] != sha256Hex([]byte(`{"note":"hi"}`)) || a["response.sha256"] != sha256Hex(body) ||
		a["http.response.status_code"] != float64(200) || a["gateway.route"] != "crm" || a["gateway.record"] != "after" ||
		a["url.query.sha256"] != sha256Hex([]byte("x=1")) {
		t.Fatalf("attributes %v", a)
	}
	// Calls that differ only in their query string are told apart (the
	// entries were the same); without one there is no digest.
	for q, want := range map[string]any{"?x=2": sha256Hex([]byte("x=2")), "": nil} {
		resp := do(t, "POST", gw.URL+"/crm/customers/42/notes"+q, cred, `{"note":"hi"}`)
		resp.Body.Close()
		_, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
		if got := attrs(t, l)["url.query.sha256"]; got != want {
			t.Fatalf("query %q: url.query.sha256 %v, want %v", q, got, want)
		}
	}
}

func TestHTTPAuthentication(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	gw := newGateway(t, tl, `{"routes": {"tools": {"upstream": "{tools}"}}}`, map[string]*upstream{"tools": up})
	forged := cred[:strings.LastIndexByte(cred, '.')+1] + strings.Repeat("A", 43)
	for _, c := range []struct{ name, cred string }{{"none", ""}, {"garbage", "nope"}, {"forged", forged}, {"admin token", adminTok}} {
		t.Run(c.name, func(t *testing.T) {
			before := tl.l.Size()
			resp := do(t, "GET", gw.URL+"/tools/x", c.cred, "")
			resp.Body.Close()
			if resp.StatusCode != 401 || resp.Header.Get(ReceiptHeader) != "" {
				t.Fatalf("status %d, receipt %q", resp.StatusCode, resp.Header.Get(ReceiptHeader))
			}
			if up.calls.Load() != 0 {
				t.Fatal("a refused call reached the upstream")
			}
			// A refused credential that proves no identity is only
			// counted in the log's next denied-attempt summary.
			if ls := tl.leaves(t, before); len(ls) != 0 {
				t.Fatalf("leaves %+v", ls)
			}
		})
	}
}

// TestHTTPStreamBefore: with record=before the request's entry is durable
// before the upstream is called, the answer streams through (the first
// chunk arrives while the upstream is still writing), and its outcome is
// recorded in a second, linked entry named by a trailer.
func TestHTTPStreamBefore(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	release := make(chan struct{})
	var sizeAtCall uint64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sizeAtCall = tl.l.Size()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: last\n\n")
	})
	gw := newGateway(t, tl, `{"routes": {"feed": {"upstream": "{feed}", "record": "before"}}}`, map[string]*upstream{"feed": up})
	before := tl.l.Size()
	resp := do(t, "GET", gw.URL+"/feed/events", cred, "")
	defer resp.Body.Close()
	idx, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
	if idx != before || sizeAtCall != before+1 || l.Action != "http.get" || l.Outcome != "" || attrs(t, l)["gateway.phase"] != "request" {
		t.Fatalf("request entry %d %+v; log size %d when the upstream was called", idx, l, sizeAtCall)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(release) // the upstream finishes only now
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: last\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	_, l2 := tl.checkReceipt(t, resp.Trailer.Get(OutcomeReceiptHeader))
	a := attrs(t, l2)
	if l2.Outcome != "success" || a["gateway.phase"] != "response" || a["gateway.request_index"] != float64(idx) ||
		a["response.sha256"] != sha256Hex([]byte("data: first\n\ndata: last\n\n")) {
		t.Fatalf("outcome entry %+v %v", l2, a)
	}
}

func TestHTTPFailClosed(t *testing.T) {
	for _, mode := range []string{"before", "after"} {
		t.Run(mode, func(t *testing.T) {
			tl := newTestLog(t)
			cred := tl.session(t, "bot-1", "", "t")
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secret answer") })
			gw := newGateway(t, tl, `{"routes": {"tools": {"upstream": "{tools}", "record": "`+mode+`"}}}`, map[string]*upstream{"tools": up})
			// The session is known to the gateway, then the log goes away.
			if resp := do(t, "GET", gw.URL+"/tools/a", cred, ""); resp.StatusCode != 200 {
				t.Fatalf("first call: %d", resp.StatusCode)
			}
			calls := up.calls.Load()
			tl.hs.Close()
			resp := do(t, "GET", gw.URL+"/tools/b", cred, "")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 502 || strings.Contains(string(body), "secret answer") || resp.Header.Get(ReceiptHeader) != "" {
				t.Fatalf("with the log down: %d %s", resp.StatusCode, body)
			}
			if mode == "before" && up.calls.Load() != calls {
				t.Fatal("record=before: a call reached the upstream though its entry could not be written")
			}
		})
	}
}

func TestHTTPFailOpen(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "answer") })
	gw := newGateway(t, tl, `{"routes": {"tools": {"upstream": "{tools}", "fail_open": true}}}`, map[string]*upstream{"tools": up})
	resp := do(t, "GET", gw.URL+"/tools/a", cred, "")
	if resp.StatusCode != 200 {
		t.Fatalf("first call: %d", resp.StatusCode)
	}
	// The setting is on record with every entry the route writes.
	if _, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader)); attrs(t, l)["gateway.fail_open"] != true {
		t.Fatalf("entry of a fail_open route: %s", l.Attributes)
	}
	tl.hs.Close()
	resp = do(t, "GET", gw.URL+"/tools/b", cred, "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "answer" || resp.Header.Get(UnrecordedHeader) == "" || resp.Header.Get(ReceiptHeader) != "" {
		t.Fatalf("fail_open with the log down: %d %q unrecorded=%q", resp.StatusCode, body, resp.Header.Get(UnrecordedHeader))
	}
	// An unknown credential is never let through, fail_open or not.
	other := "agentlog-session-v1.0123456789abcdef." + strings.Repeat("A", 43)
	if resp := do(t, "GET", gw.URL+"/tools/c", other, ""); resp.StatusCode != 502 {
		t.Fatalf("unknown credential with the log down: %d", resp.StatusCode)
	}
}

func TestHTTPScope(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", `{"tools":["crm"]}`, "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "{u}", "scope": "enforce"},
		"billing": {"upstream": "{u}", "scope": "enforce"}, "wiki": {"upstream": "{u}"}}}`, map[string]*upstream{"u": up})
	check := func(path string, status int, outcome string, outside bool) {
		t.Helper()
		calls := up.calls.Load()
		resp := do(t, "GET", gw.URL+path, cred, "")
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, status)
		}
		_, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
		if l.Outcome != outcome || (attrs(t, l)["gateway.scope"] == "outside") != outside {
			t.Fatalf("%s: entry %+v", path, l)
		}
		if forwarded := up.calls.Load() > calls; forwarded != (status != 403) {
			t.Fatalf("%s: forwarded %v", path, forwarded)
		}
	}
	check("/crm/x", 200, "success", false)
	check("/billing/x", 403, "denied", true) // enforce: refused and recorded
	check("/wiki/x", 200, "success", true)   // record: recorded, flagged, let through
}

func TestHTTPUpstreamDown(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	gw := newGateway(t, tl, `{"routes": {"tools": {"upstream": "{tools}"}}}`, map[string]*upstream{"tools": up})
	up.hs.Close()
	addr := strings.TrimPrefix(up.hs.URL, "http://")
	resp := do(t, "GET", gw.URL+"/tools/a", cred, "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The agent is told what failed, not where the upstream is; the
	// entry keeps the whole error for the auditor.
	if !strings.Contains(string(b), "upstream: the upstream refused the connection") || strings.Contains(string(b), addr) || strings.Contains(string(b), "127.0.0.1") {
		t.Fatalf("answer %s (the upstream is at %s)", b, addr)
	}
	_, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
	if et, _ := attrs(t, l)["error.type"].(string); l.Outcome != OutcomeUpstreamError || !strings.Contains(et, addr) {
		t.Fatalf("entry %+v", l)
	}
	// The same on an MCP route.
	gw = newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{tools}"}}}`, map[string]*upstream{"tools": up})
	resp, b = mcpPost(t, gw.URL+"/crm", cred, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup"}}`)
	var e struct {
		Error struct {
			Code    int
			Message string
		}
	}
	if json.Unmarshal(b, &e); resp.StatusCode != 502 || e.Error.Code != CodeUpstream || e.Error.Message != "upstream: the upstream refused the connection" {
		t.Fatalf("MCP: %d %s", resp.StatusCode, b)
	}
	if _, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader)); l.Outcome != OutcomeUpstreamError || !strings.Contains(attrs(t, l)["error.type"].(string), addr) {
		t.Fatalf("MCP entry %+v", l)
	}
}

func TestUpstreamReason(t *testing.T) {
	_, err := net.Dial("tcp", "127.0.0.1:1")
	if got := upstreamReason(&url.Error{Op: "Post", URL: "http://127.0.0.1:1/mcp", Err: err}); got != "the upstream refused the connection" {
		t.Errorf("refused: %q", got)
	}
	if got := upstreamReason(fmt.Errorf("reading the answer: %w", io.ErrUnexpectedEOF)); got != "the upstream closed the connection" {
		t.Errorf("EOF: %q", got)
	}
	if got := upstreamReason(&net.DNSError{Err: "no such host", Name: "tools.internal", IsNotFound: true}); got != "the upstream's host name does not resolve" || strings.Contains(got, "tools.internal") {
		t.Errorf("DNS: %q", got)
	}
	if got := upstreamReason(&url.Error{Op: "Get", URL: "https://tools.internal/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}); got != "the TLS handshake with the upstream failed" {
		t.Errorf("TLS: %q", got)
	}
	if got := upstreamReason(context.DeadlineExceeded); got != "the upstream did not answer in time" {
		t.Errorf("timeout: %q", got)
	}
	// The gateway's own findings are told as they are.
	own := errors.New("the upstream's answer is larger than 10 bytes")
	if got := upstreamReason(own); got != own.Error() {
		t.Errorf("own: %q", got)
	}
}

func TestUpstreamWarnLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var wl warnLimiter
	t0 := time.Unix(1e9, 0)
	for i := range 5 {
		wl.warn(log, t0.Add(time.Duration(i)*time.Second), "an upstream failed")
	}
	wl.warn(log, t0.Add(upstreamWarnEvery), "an upstream failed")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "unlogged_since_last=0") || !strings.Contains(lines[1], "unlogged_since_last=4") {
		t.Fatalf("log:\n%s", buf.String())
	}
}

// TestGroupCommit: entries of concurrent calls under one credential share
// appends. The first append is held at the log until every other call's
// entry is queued behind it, so they must all go in one second append.
func TestGroupCommit(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c, err := Load(tl.url, "", []string{"tools=" + up.hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.MaxInflight = 1 // one append in flight, so the others must queue behind it
	g := New(c, Options{})
	gw := newServer(t, g)
	const n = 40
	var once sync.Once
	hold := func(first int) {
		once.Do(func() { waitUntil(t, func() bool { return g.rec.queued(cred) == n-first }) })
	}
	tl.hold.Store(&hold)
	tl.appends.Store(0)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := do(t, "GET", gw.URL+"/tools/x", cred, "")
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get(ReceiptHeader) == "" {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if got := tl.appends.Load(); got > 2 {
		t.Fatalf("%d appends for %d concurrent calls, want at most 2", got, n)
	}
}

// TestBodyTimeout: a call whose request body does not arrive within
// body_timeout gets 408 (a JSON-RPC error on an MCP route), is not
// forwarded and writes nothing; without it an agent's slow bodies held
// their goroutines and call slots for as long as it liked.
func TestBodyTimeout(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	gw := newGateway(t, tl, `{"body_timeout": "200ms", "routes": {"tools": {"upstream": "{u}"}, "crm": {"upstream": "mcp+{u}"}}}`, map[string]*upstream{"u": up})
	for _, path := range []string{"/tools/x", "/crm"} {
		before := tl.l.Size()
		c := dialRaw(t, gw)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", path, cred)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: no answer to a stalled body: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 408 || !json.Valid(b) || !strings.Contains(string(b), "body_timeout") {
			t.Fatalf("%s: %d %s, want 408 with a JSON error", path, resp.StatusCode, b)
		}
		if up.calls.Load() != 0 || tl.l.Size() != before {
			t.Fatalf("%s: upstream called %d times, %d entries written", path, up.calls.Load(), tl.l.Size()-before)
		}
	}
	if _, err := (&File{BodyTimeout: "11m", Routes: map[string]RouteFile{"a": {Upstream: "http://h"}}}).Check("http://log"); err == nil {
		t.Error("body_timeout 11m accepted")
	}
}

// TestHTTPDotSegments: a path with a "." or ".." segment (as sent, or
// percent-encoded, or with encoded slashes) is refused with 400 before
// anything is forwarded or written: an upstream that resolves them served
// a path outside the route (and outside the agent's scope) while the entry
// named the resource of the path as sent.
func TestHTTPDotSegments(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", `{"resources":["invoices/*"]}`, "t")
	var got atomic.Value
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { got.Store(r.URL.Path); io.WriteString(w, "ok") })
	gw := newGateway(t, tl, `{"routes": {"billing": {"upstream": "{u}", "scope": "enforce",
		"resources": [{"path": "/invoices/{id}/lines/{rest...}", "resource": "invoices/{id}"}]}}}`, map[string]*upstream{"u": up})
	host := strings.TrimPrefix(gw.URL, "http://")
	for _, p := range []string{"/billing/invoices/7/lines/../../../admin", "/billing/invoices/7/lines/%2e%2e/%2E%2E/%2e%2e/admin",
		"/billing/invoices/7/lines/..%2f..%2f..%2fadmin", "/billing/./invoices/7", "/billing/.."} {
		before := tl.l.Size()
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", p, cred)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 400 || !json.Valid(b) || up.calls.Load() != 0 || tl.l.Size() != before {
			t.Fatalf("%s: %d %s (upstream got %v, %d entries), want 400 with nothing forwarded or written", p, resp.StatusCode, b, got.Load(), tl.l.Size()-before)
		}
	}
	if resp := do(t, "GET", gw.URL+"/billing/invoices/7/lines/3", cred, ""); resp.StatusCode != 200 || up.calls.Load() != 1 {
		t.Fatalf("a plain path: %d", resp.StatusCode)
	}
}

// TestAgentCallShare: one agent's calls in flight are capped at
// max_concurrent_per_agent, so an agent holding slow calls (or event
// streams) cannot take every call slot: its next call gets 503 with
// Retry-After and writes nothing, another agent's goes through, and the
// slots come back when the calls end.
func TestAgentCallShare(t *testing.T) {
	tl := newTestLog(t)
	a := tl.session(t, "bot-1", "", "t")
	b := tl.session(t, "bot-2", "", "t")
	release := make(chan struct{})
	var held atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			held.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	})
	gw := newGateway(t, tl, `{"max_concurrent": 8, "max_concurrent_per_agent": 2, "routes": {"tools": {"upstream": "{u}"}}}`, map[string]*upstream{"u": up})
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp := do(t, "GET", gw.URL+"/tools/slow", a, "")
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for held.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slow calls reached the upstream, want 2", held.Load())
		}
		time.Sleep(time.Millisecond)
	}
	before := tl.l.Size()
	resp := do(t, "GET", gw.URL+"/tools/x", a, "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !json.Valid(body) || tl.l.Size() != before {
		t.Fatalf("a third call of the agent: %d %s (%d entries), want 503 with Retry-After and nothing written", resp.StatusCode, body, tl.l.Size()-before)
	}
	if resp := do(t, "GET", gw.URL+"/tools/x", b, ""); resp.StatusCode != 200 {
		t.Fatalf("another agent's call: %d", resp.StatusCode)
	}
	close(release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Fatalf("a held call: %d", code)
		}
	}
	// The held calls' slots are released once their handlers return,
	// just after their answers.
	waitUntil(t, func() bool {
		resp := do(t, "GET", gw.URL+"/tools/x", a, "")
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if _, err := (&File{MaxConcurrent: 4, MaxConcurrentAgent: 5, Routes: map[string]RouteFile{"a": {Upstream: "http://h"}}}).Check("http://log"); err == nil {
		t.Error("max_concurrent_per_agent above max_concurrent accepted")
	}
}

// TestBodyBudget: the request bodies the gateway holds at once are capped
// by max_body_bytes_in_flight (each is held until its call ends): with it
// taken by calls still sending theirs, another call gets 503 with
// Retry-After and writes nothing, and goes through once they end. Without
// it, 60 bodies of 16 MiB took the gateway to 1.6 GB.
func TestBodyBudget(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c, err := Load(tl.url, "", []string{"tools=" + up.hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	c.MaxBodyBytes = 2048
	g := New(c, Options{})
	gw := newServer(t, g)
	bodies := func() int64 { g.agentMu.Lock(); defer g.agentMu.Unlock(); return g.bodies }
	host := strings.TrimPrefix(gw.URL, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		fmt.Fprintf(c, "POST /tools/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1024\r\n\r\n{", cred)
	}
	waitUntil(t, func() bool { return bodies() == 2048 })
	before := tl.l.Size()
	resp := do(t, "POST", gw.URL+"/tools/x", cred, `{"a":1}`)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !json.Valid(b) || tl.l.Size() != before || up.calls.Load() != 0 {
		t.Fatalf("a call beside two held 1 KiB bodies with a 2 KiB budget: %d %s, want 503 with Retry-After and nothing forwarded or written", resp.StatusCode, b)
	}
	// A chunked body takes its bytes as they arrive: with 1 KiB free,
	// one of 1,500 bytes is refused, one of 500 goes through.
	held[1].Close()
	waitUntil(t, func() bool { return bodies() == 1024 })
	chunked := func(n int) int {
		req, _ := http.NewRequest("POST", gw.URL+"/tools/x", io.MultiReader(strings.NewReader(strings.Repeat("x", n))))
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := chunked(1500); code != 503 {
		t.Fatalf("a chunked body of 1,500 bytes with 1,024 free: %d, want 503", code)
	}
	if code := chunked(500); code != 200 {
		t.Fatalf("a chunked body of 500 bytes with 1,024 free: %d, want 200", code)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitUntil(t, func() bool { return bodies() == 0 })
	resp = do(t, "POST", gw.URL+"/tools/x", cred, `{"a":1}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a call once the held bodies ended: %d", resp.StatusCode)
	}
	waitUntil(t, func() bool { return bodies() == 0 })
	if _, err := (&File{MaxBodyBytes: 100, Routes: map[string]RouteFile{"a": {Upstream: "http://h"}}}).Check("http://log"); err == nil {
		t.Error("max_body_bytes_in_flight below max_request_bytes accepted")
	}
}
