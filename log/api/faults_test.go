package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// rawRequest sends head (the request line and headers, without the blank
// line) and body over a fresh connection, half-closes it when closeWrite is
// set, and returns the response.
func rawRequest(t *testing.T, url, head, body string, closeWrite bool) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func wantJSONError(t *testing.T, what string, resp *http.Response, b []byte, code int) {
	t.Helper()
	var e struct{ Error string }
	if resp.StatusCode != code || json.Unmarshal(b, &e) != nil || e.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %s %q, want %d with a JSON error", what, resp.StatusCode, resp.Header.Get("Content-Type"), b, code)
	}
}

// TestClientBodyFaults: a body cut short or too slow is the client's fault,
// answered 400 or 408 (never 500), before authentication as after, and
// writes nothing.
func TestClientBodyFaults(t *testing.T) {
	e := newEnv(t, Config{}, func(hs *httptest.Server) { hs.Config.ReadTimeout = 300 * time.Millisecond })
	sess := e.openSession(t, e.agent(t, "bot"), "bot", "task", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	before := e.l.Size()
	for _, tc := range []struct {
		name, path, auth, body string
		closeWrite             bool
		want                   int
	}{
		{"append truncated", "/v1/entries", sess, `{"entries":[{"action":`, true, 400},
		{"session truncated", "/v1/sessions", "", `{"agent":"bot",`, true, 400},
		{"append slow", "/v1/entries", sess, `{"entries":[`, false, 408},
		{"session slow", "/v1/sessions", "", `{"agent":`, false, 408},
		{"token truncated", "/v1/tokens", adminTok, `{"name":`, true, 400},
		{"otlp truncated", "/v1/otlp/v1/traces", sess, `{"resourceSpans":[`, true, 400},
		{"otlp slow", "/v1/otlp/v1/traces", sess, `{"resourceSpans":[`, false, 408},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000", tc.path, host)
			if tc.auth != "" {
				head += "\r\nAuthorization: Bearer " + tc.auth
			}
			resp, b := rawRequest(t, e.hs.URL, head, tc.body, tc.closeWrite)
			wantJSONError(t, tc.name, resp, b, tc.want)
		})
	}
	if e.l.Size() != before {
		t.Fatalf("client faults wrote %d entries", e.l.Size()-before)
	}
}

// TestRequestChecks: two Authorization or Content-Type headers, a query
// parameter given twice or a query string that does not parse, a JSON route
// sent another media type, all refused before the handler runs; nothing
// written.
func TestRequestChecks(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.agent(t, "bot")
	sess := e.openSession(t, key, "bot", "task", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	sessBody := string(client.SignSessionRequest("bot", "t2", 0, e.clock.now(), key))
	before := e.l.Size()
	for _, tc := range []struct {
		name, head, body string
		want             int
	}{
		{"two authorizations", "POST /v1/entries HTTP/1.1\r\nAuthorization: Bearer " + sess + "\r\nAuthorization: Bearer " + adminTok, `{"entries":[{"action":"a"}]}`, 400},
		{"two authorizations on a read", "GET /v1/entries/0 HTTP/1.1\r\nAuthorization: Bearer " + auditorTok + "\r\nAuthorization: Bearer x", "", 400},
		{"append as text", "POST /v1/entries HTTP/1.1\r\nContent-Type: text/plain\r\nAuthorization: Bearer " + sess, `{"entries":[{"action":"a"}]}`, 415},
		{"session as a form", "POST /v1/sessions HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded", sessBody, 415},
		{"token as text", "POST /v1/tokens HTTP/1.1\r\nContent-Type: text/plain\r\nAuthorization: Bearer " + adminTok, `{"name":"n","role":"auditor"}`, 415},
		{"agent as multipart", "POST /v1/agents HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x\r\nAuthorization: Bearer " + adminTok, `{}`, 415},
		{"scope as text", "PUT /v1/agents/bot/scope HTTP/1.1\r\nContent-Type: text/plain\r\nAuthorization: Bearer " + adminTok, `{}`, 415},
		// Which of two the server counts is ambiguous: a query's
		// from=A&from=B was answered for A as complete.
		{"two content types", "POST /v1/tokens HTTP/1.1\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nAuthorization: Bearer " + adminTok, `{"name":"n2","role":"auditor"}`, 400},
		{"query from twice", "GET /v1/query?from=2026-01-01T00:00:00Z&from=2027-01-01T00:00:00Z HTTP/1.1\r\nAuthorization: Bearer " + auditorTok, "", 400},
		{"limit twice", "GET /v1/query?limit=1&limit=5 HTTP/1.1\r\nAuthorization: Bearer " + auditorTok, "", 400},
		{"proof index twice", "GET /v1/proof/inclusion?index=0&index=1&size=2 HTTP/1.1", "", 400},
		{"controls window twice", "GET /v1/controls?window=1h&window=2h HTTP/1.1\r\nAuthorization: Bearer " + auditorTok, "", 400},
		{"query string that does not parse", "GET /v1/query?limit=%zz HTTP/1.1\r\nAuthorization: Bearer " + auditorTok, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := tc.head + "\r\nHost: " + host + fmt.Sprintf("\r\nContent-Length: %d", len(tc.body))
			resp, b := rawRequest(t, e.hs.URL, head, tc.body, false)
			wantJSONError(t, tc.name, resp, b, tc.want)
		})
	}
	if e.l.Size() != before {
		t.Fatalf("refused requests wrote %d entries", e.l.Size()-before)
	}
	// JSON with parameters is JSON.
	code, _, b := doHeaders(t, "POST", e.hs.URL+"/v1/entries", sess, `{"entries":[{"action":"a"}]}`, map[string]string{"Content-Type": "application/json; charset=utf-8"})
	if code != 200 {
		t.Fatalf("application/json; charset=utf-8: %d %s", code, b)
	}
}

// TestBundleIndexOverflow: an entry bundle index whose first entry is beyond
// 2^64 is not found; it used to wrap around and serve bundle N mod 2^56
// marked immutable.
func TestBundleIndexOverflow(t *testing.T) {
	hs, _ := newTestServer(t)
	for _, n := range []uint64{1 << 56, 1<<56 + 1, 1 << 63, math.MaxUint64} {
		p := agentlog.TilePath{Entries: true, Index: n, Width: 1}
		code, h, b := do(t, "GET", hs.URL+"/tile/"+p.String(), auditorTok, "")
		if code != 404 || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("bundle %d: %d %q %q, want 404 not cached", n, code, h.Get("Cache-Control"), b)
		}
	}
}

// TestNumbersProperty: for random client-supplied numbers (biased to the
// edges of uint64 and of the tree), every endpoint taking a number answers
// either a correct 200 or a 4xx that follows from exact (big integer)
// arithmetic, never a 500 nor an answer for another number.
func TestNumbersProperty(t *testing.T) {
	hs, l := newTestServer(t)
	appendN(t, hs.URL, 300)
	size := l.Size()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() uint64 {
		switch rng.IntN(6) {
		case 0:
			return rng.Uint64()
		case 1:
			return math.MaxUint64 - rng.Uint64N(4)
		case 2:
			return 1<<uint(rng.IntN(64)) + rng.Uint64N(3) - 1
		case 3:
			return size - 2 + rng.Uint64N(4)
		default:
			return rng.Uint64N(size + 2)
		}
	}
	big256 := big.NewInt(agentlog.TileWidth)
	bigSize := new(big.Int).SetUint64(size)
	for range 400 {
		a, b := pick(), pick()
		w := 1 + rng.IntN(agentlog.TileWidth)

		// Entry bundles: found exactly when a*256 + w <= size.
		p := agentlog.TilePath{Entries: true, Index: a, Width: w}
		if rng.IntN(2) == 0 {
			p.Width = agentlog.TileWidth
		}
		end := new(big.Int).Mul(new(big.Int).SetUint64(a), big256)
		end.Add(end, big.NewInt(int64(p.Width)))
		code, _, body := do(t, "GET", hs.URL+"/tile/"+p.String(), auditorTok, "")
		switch want := end.Cmp(bigSize) <= 0; {
		case want && code == 200:
			first := a * agentlog.TileWidth
			leaf, err := l.Entry(first)
			if err != nil || len(body) < 2+len(leaf) || string(body[2:2+len(leaf)]) != string(leaf) {
				t.Fatalf("bundle %s does not start with entry %d", p, first)
			}
		case !want && code == 404:
		default:
			t.Fatalf("bundle %s at size %d: %d %s", p, size, code, body)
		}

		// Hash tiles at level 0 and 1.
		for _, level := range []uint64{0, 1} {
			tp := agentlog.TilePath{Level: level, Index: a, Width: p.Width}
			hashes := new(big.Int).Rsh(bigSize, uint(8*level))
			tend := new(big.Int).Mul(new(big.Int).SetUint64(a), big256)
			tend.Add(tend, big.NewInt(int64(tp.Width)))
			code, _, body := do(t, "GET", hs.URL+"/tile/"+tp.String(), "", "")
			switch want := tend.Cmp(hashes) <= 0; {
			case want && code == 200 && len(body) == 32*tp.Width:
			case !want && code == 404:
			default:
				t.Fatalf("tile %s at size %d: %d %s", tp, size, code, body)
			}
		}

		// Entries: found exactly below size.
		code, _, body = do(t, "GET", fmt.Sprintf("%s/v1/entries/%d", hs.URL, a), auditorTok, "")
		switch {
		case a < size && code == 200:
			var er agentlog.EntryResponse
			if json.Unmarshal(body, &er) != nil || er.Index != a {
				t.Fatalf("entry %d answered %s", a, body)
			}
		case a >= size && code == 404:
		default:
			t.Fatalf("entry %d at size %d: %d %s", a, size, code, body)
		}

		// Inclusion: 400 unless a < b, 404 beyond the tree.
		code, _, body = do(t, "GET", fmt.Sprintf("%s/v1/proof/inclusion?index=%d&size=%d", hs.URL, a, b), "", "")
		switch {
		case a >= b && code == 400, a < b && b > size && code == 404:
		case a < b && b <= size && code == 200:
			var pr agentlog.ProofResponse
			if json.Unmarshal(body, &pr) != nil || pr.Index == nil || *pr.Index != a || pr.Size != b {
				t.Fatalf("inclusion %d in %d answered %s", a, b, body)
			}
		default:
			t.Fatalf("inclusion %d in %d at size %d: %d %s", a, b, size, code, body)
		}

		// Consistency: 400 unless a <= b, 404 beyond the tree.
		code, _, body = do(t, "GET", fmt.Sprintf("%s/v1/proof/consistency?old=%d&size=%d", hs.URL, a, b), "", "")
		switch {
		case a > b && code == 400, a <= b && b > size && code == 404:
		case a <= b && b <= size && code == 200:
		default:
			t.Fatalf("consistency %d to %d at size %d: %d %s", a, b, size, code, body)
		}

		// Query limits: 1..maxQueryLimit; cursors of any numbers.
		code, _, body = do(t, "GET", fmt.Sprintf("%s/v1/query?limit=%d", hs.URL, a), auditorTok, "")
		switch {
		case a >= 1 && a <= maxQueryLimit && code == 200:
		case (a == 0 || a > maxQueryLimit) && code == 400:
		default:
			t.Fatalf("query limit %d: %d %s", a, code, body)
		}
		code, _, body = do(t, "GET", fmt.Sprintf("%s/v1/query?limit=5&cursor=%s", hs.URL, encodeCursor(a, b)), auditorTok, "")
		switch {
		case b <= a && a <= size && code == 200:
			if lines := strings.Count(string(body), "\n"); lines-1 > 5 || lines-1 > int(a-b) {
				t.Fatalf("cursor (%d, %d): %d lines", a, b, lines)
			}
		case (b > a || a > size) && code == 400:
		default:
			t.Fatalf("cursor (%d, %d) at size %d: %d %s", a, b, size, code, body)
		}
	}
}

// TestTimesAndTTLsProperty: session TTLs and request times of any
// magnitude are refused with a 4xx or accepted within bounds, never a 500;
// query times far from now likewise.
func TestTimesAndTTLsProperty(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.agent(t, "bot")
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 100 {
		ttl := time.Duration(rng.Int64())
		switch i % 4 {
		case 0:
			ttl = time.Duration(math.MaxInt64 - rng.Int64N(1e9))
		case 1:
			ttl = time.Duration(rng.Int64N(int64(3 * time.Hour)))
		}
		ttl = ttl.Truncate(time.Second)
		at := e.clock.now().Add(time.Duration(rng.Int64N(2*int64(10*time.Minute))) - 10*time.Minute)
		if i%5 == 0 {
			at = time.Unix(rng.Int64N(253402300799), 0) // any time up to year 9999
		}
		body := client.SignSessionRequest("bot", fmt.Sprintf("t%d", i), ttl, at, key)
		code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(body))
		if code >= 500 || code == 200 && ttl > 2*time.Hour {
			t.Fatalf("session ttl %v at %v: %d %s", ttl, at, code, b)
		}
	}
	for range 50 {
		from := time.Unix(rng.Int64N(253402300799), 0).UTC().Format(time.RFC3339)
		to := time.Unix(rng.Int64N(253402300799), 0).UTC().Format(time.RFC3339)
		code, _, b := do(t, "GET", e.hs.URL+"/v1/query?from="+from+"&to="+to, auditorTok, "")
		if code != 200 && code != 400 {
			t.Fatalf("query from %s to %s: %d %s", from, to, code, b)
		}
	}
}

// TestAppendBudget: append bytes in flight are bounded per agent and per
// server: beyond either, 503 with Retry-After and nothing written; the
// bytes are given back when the request ends, however it ends.
func TestAppendBudget(t *testing.T) {
	e := newEnv(t, Config{InflightBytes: 40 << 20, InflightBytesPerAgent: 16 << 20})
	a := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "t", 0)
	b := e.openSession(t, e.agent(t, "agent-b"), "agent-b", "t", 0)
	a2 := e.openSession(t, e.agent(t, "agent-a2"), "agent-a2", "t", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	// hold starts an append declaring 16 MiB and sends none of it: its
	// reservation lasts until the connection closes.
	hold := func(sess string) net.Conn {
		return holdRequest(t, host, fmt.Sprintf("POST /v1/entries HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n{", host, sess, 16<<20))
	}
	waitUsed := func(n int64) { t.Helper(); waitBudgetUsed(t, e, n) }
	small := `{"entries":[{"action":"a"}]}`
	before := e.l.Size()
	ca := hold(a)
	waitUsed(16 << 20)
	if code, h, body := do(t, "POST", e.hs.URL+"/v1/entries", a, small); code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("agent over its budget: %d %s", code, body)
	}
	cb := hold(b)
	waitUsed(32 << 20)
	// The server has 8 MiB left: a small append of a third agent fits, a
	// declared 9 MiB one does not.
	if code, _, body := do(t, "POST", e.hs.URL+"/v1/entries", a2, small); code != 200 {
		t.Fatalf("small append within the server budget: %d %s", code, body)
	}
	resp, body := rawRequest(t, e.hs.URL, fmt.Sprintf("POST /v1/entries HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d", host, a2, 9<<20), "", true)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("append over the server budget: %d %s", resp.StatusCode, body)
	}
	if e.l.Size() != before+1 {
		t.Fatalf("%d entries written, want the one small append", e.l.Size()-before)
	}
	ca.Close()
	cb.Close()
	waitUsed(0)
	if code, _, body := do(t, "POST", e.hs.URL+"/v1/entries", a, small); code != 200 {
		t.Fatalf("after the held requests ended: %d %s", code, body)
	}
}

// TestAppendBudgetChunked: a body of undeclared length takes the budget as
// it is read, so chunked appends are not charged the 16 MiB cap up front,
// and one that outgrows the budget is refused with 503.
func TestAppendBudgetChunked(t *testing.T) {
	e := newEnv(t, Config{InflightBytes: 16 << 20, InflightBytesPerAgent: 16 << 20})
	a := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "t", 0)
	post := func(body io.Reader) (int, string) {
		req, _ := http.NewRequest("POST", e.hs.URL+"/v1/entries", body)
		req.Header.Set("Authorization", "Bearer "+a)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Two chunked appends at once: the first is held open half-sent.
	pr, pw := io.Pipe()
	first := make(chan int)
	go func() { c, _ := post(pr); first <- c }()
	pw.Write([]byte(`{"entries":[{"action":"a","attributes":{"k":"`))
	if code, b := post(io.MultiReader(strings.NewReader(`{"entries":[{"action":"b"}]}`))); code != 200 {
		t.Fatalf("second chunked append beside a held one: %d %s", code, b)
	}
	// The held one grows past 16 MiB of budget: refused.
	big := strings.Repeat("x", 1<<20)
	go func() {
		for range 17 {
			if _, err := pw.Write([]byte(big)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	if code := <-first; code != 503 {
		t.Fatalf("chunked append outgrowing the budget: %d", code)
	}
}

// TestIdentityBodyBudget: the bodies of identity requests (here session
// requests, which need no credential) are taken from the byte budget, and
// together take at most an agent's share of it (lowered here): beyond that they get 503
// with Retry-After and write nothing, while appends keep their own
// shares; the bytes come back when the requests end, declared or chunked.
func TestIdentityBodyBudget(t *testing.T) {
	e := newEnv(t, Config{})
	e.srv.budget.mu.Lock()
	e.srv.budget.identityMax = 4 * maxIdentityBodyBytes // (the agent's share, 48 MiB by default)
	e.srv.budget.mu.Unlock()
	key := e.agent(t, "agent-a")
	sess := e.openSession(t, key, "agent-a", "t", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	waitUsed := func(n int64) { t.Helper(); waitIdentityBytes(t, e, n) }
	// Three session requests declaring the largest body, and one chunked,
	// each sending one byte and holding on.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 4 {
		if i < 3 {
			held = append(held, holdRequest(t, host, fmt.Sprintf("POST /v1/sessions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", host, maxIdentityBodyBytes)))
		} else {
			held = append(held, holdRequest(t, host, fmt.Sprintf("POST /v1/sessions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", host)))
		}
		waitUsed(int64(i+1) * maxIdentityBodyBytes)
	}
	before := e.l.Size()
	resp, body := rawRequest(t, e.hs.URL, fmt.Sprintf("POST /v1/sessions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 2", host), "{}", true)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("session request beyond the identity budget: %d %s", resp.StatusCode, body)
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", sess, `{"entries":[{"action":"a"}]}`); code != 200 {
		t.Fatalf("append while identity bodies take their share: %d %s", code, b)
	}
	if e.l.Size() != before+1 {
		t.Fatalf("%d entries written, want the append's one", e.l.Size()-before)
	}
	for _, c := range held {
		c.Close()
	}
	waitUsed(0)
	e.openSession(t, key, "agent-a", "t2", 0)
}

// TestGatewayBodyBudget: a gateway's configuration body (POST
// /v1/gateway/config, up to 256 KiB) is taken from the byte budget's
// identity share like identity and change bodies: beyond the share a
// configuration gets 503 with Retry-After and writes nothing, appends keep
// their own shares, and the bytes come back when the requests end.
func TestGatewayBodyBudget(t *testing.T) {
	e := newEnv(t, Config{})
	e.srv.budget.mu.Lock()
	e.srv.budget.identityMax = 2 * maxGatewayBodyBytes
	e.srv.budget.mu.Unlock()
	code, _, b := do(t, "POST", e.hs.URL+"/v1/tokens", adminTok, `{"name":"gw","role":"gateway"}`)
	if code != 200 {
		t.Fatalf("create token: %d %s", code, b)
	}
	var tc struct{ Token string }
	json.Unmarshal(b, &tc)
	key := e.agent(t, "agent-a")
	sess := e.openSession(t, key, "agent-a", "t", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	waitUsed := func(n int64) { t.Helper(); waitIdentityBytes(t, e, n) }
	// One configuration declaring the largest body and one chunked, each
	// sending one byte and holding on.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	held = append(held, holdRequest(t, host, fmt.Sprintf("POST /v1/gateway/config HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", host, tc.Token, maxGatewayBodyBytes)))
	waitUsed(maxGatewayBodyBytes)
	held = append(held, holdRequest(t, host, fmt.Sprintf("POST /v1/gateway/config HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n", host, tc.Token)))
	waitUsed(2 * maxGatewayBodyBytes)
	config := `{"listen":"127.0.0.1:1","routes":[{"name":"tools","upstream":"http://127.0.0.1:9000","record":"after","scope":"record"}]}`
	before := e.l.Size()
	resp, body := rawRequest(t, e.hs.URL, fmt.Sprintf("POST /v1/gateway/config HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d", host, tc.Token, len(config)), config, true)
	wantJSONError(t, "gateway configuration beyond the identity share", resp, body, 503)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 beyond the budget without Retry-After")
	}
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/entries", sess, `{"entries":[{"action":"a"}]}`); code != 200 {
		t.Fatalf("append while gateway bodies take the identity share: %d %s", code, b)
	}
	if e.l.Size() != before+1 {
		t.Fatalf("%d entries written, want the append's one", e.l.Size()-before)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitUsed(0)
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/gateway/config", tc.Token, config); code != 200 {
		t.Fatalf("gateway configuration once the bodies are gone: %d %s", code, b)
	}
}

// holdRequest opens a connection to host and sends head (a request's
// head and the start of its body), leaving the rest unsent: the server
// holds the body's reservation until the connection closes.
func holdRequest(t *testing.T, host, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, head); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// waitBudgetUsed waits until the byte budget holds exactly n bytes in all.
func waitBudgetUsed(t *testing.T, e *env, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.srv.budget.mu.Lock()
		used := e.srv.budget.used
		e.srv.budget.mu.Unlock()
		if used == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes in flight, want %d", used, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdentityBytes waits until the byte budget's identity share (identity,
// change and gateway bodies) holds exactly n bytes.
func waitIdentityBytes(t *testing.T, e *env, n int64) {
	t.Helper()
	used := func() int64 {
		e.srv.budget.mu.Lock()
		defer e.srv.budget.mu.Unlock()
		return e.srv.budget.byAgent[identityBudget]
	}
	deadline := time.Now().Add(10 * time.Second)
	for used() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of identity-share bodies in flight, want %d", used(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDiskFullAnswer: the 507 of a full disk tells the client what it
// needs (nothing written, retry later) and not the server's data
// directory or its free space, which are the operator's (/healthz, the
// log).
func TestDiskFullAnswer(t *testing.T) {
	dir := t.TempDir()
	l, err := alog.Open(alog.Config{Dir: dir, DiskReserve: 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids.AddStatic(adminTok, alog.Principal{ID: "admin", Role: RoleAdmin})
	hs := httptest.NewServer(New(Config{Log: l, Identity: ids}))
	defer hs.Close()
	code, h, b := do(t, "POST", hs.URL+"/v1/tokens", adminTok, `{"name":"n","role":"auditor"}`)
	if code != 507 || h.Get("Retry-After") == "" || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("token on a full disk: %d %s", code, b)
	}
	if strings.Contains(string(b), dir) || strings.Contains(string(b), "MiB") {
		t.Fatalf("the 507 names the server's directory or its free space: %s", b)
	}
}
