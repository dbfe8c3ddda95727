package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnswerBudget: answers that record=after holds in memory take their
// bytes from max_body_bytes_in_flight, as request bodies do. An HTTP
// answer the budget cannot hold (of declared length, or chunked and
// outgrowing it) is streamed whole instead, recorded without a digest;
// one it can hold is recorded with its digest; an MCP answer, which must
// be held, fails as an upstream error and is recorded so. Every call
// gives its bytes back when it ends (the last small answer is held
// again).
func TestAnswerBudget(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	big := strings.Repeat("a", 3000)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "ok")
		case "/big":
			w.Header().Set("Content-Length", "3000")
			io.WriteString(w, big)
		case "/chunked":
			for i := range 3 {
				io.WriteString(w, big[i*1000:(i+1)*1000])
				w.(http.Flusher).Flush()
			}
		}
	})
	mcpUp := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m struct{ ID json.RawMessage }
		json.Unmarshal(b, &m)
		w.Header().Set("Content-Type", "application/json")
		w.Write(jsonMarshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{"content": []any{map[string]any{"type": "text", "text": big}}}}))
	})
	gw := newGateway(t, tl, `{"max_body_bytes_in_flight": 2048, "routes": {
		"tools": {"upstream": "{u}", "max_request_bytes": 1024},
		"crm": {"upstream": "mcp+{m}", "max_request_bytes": 1024}}}`, map[string]*upstream{"u": up, "m": mcpUp})

	for _, c := range []struct {
		path   string
		held   bool
		answer string
	}{{"/small", true, "ok"}, {"/big", false, big}, {"/chunked", false, big}, {"/small", true, "ok"}} {
		before := tl.l.Size()
		resp := do(t, "POST", gw.URL+"/tools"+c.path, cred, `{}`)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != c.answer {
			t.Fatalf("%s: %d, %d bytes, want 200 and the whole answer (%d bytes)", c.path, resp.StatusCode, len(b), len(c.answer))
		}
		_, l := tl.checkReceipt(t, resp.Header.Get(ReceiptHeader))
		a := attrs(t, l)
		if tl.l.Size() != before+1 || l.Outcome != OutcomeSuccess {
			t.Fatalf("%s: leaf %+v", c.path, l)
		}
		if _, digest := a["response.sha256"]; digest != c.held || (a["gateway.streamed"] == true) == c.held {
			t.Fatalf("%s: attributes %v: want the answer held %v", c.path, a, c.held)
		}
	}

	before := tl.l.Size()
	resp, b := mcpPost(t, gw.URL+"/crm", cred, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup"}}`)
	var rpc struct {
		ID    int
		Error *struct {
			Code    int
			Message string
		}
	}
	if err := json.Unmarshal(b, &rpc); err != nil || rpc.Error == nil || rpc.ID != 7 || !strings.Contains(rpc.Error.Message, "max_body_bytes_in_flight") || bytes.Contains(b, []byte(big)) {
		t.Fatalf("MCP answer larger than the budget: %d %s, want a JSON-RPC error naming the budget", resp.StatusCode, b)
	}
	if tl.l.Size() != before+1 {
		t.Fatalf("the log grew by %d entries, want the call's one", tl.l.Size()-before)
	}
	if l := tl.leaf(t, before); l.Outcome != OutcomeUpstreamError || l.Tool != "lookup" {
		t.Fatalf("the MCP call's entry: %+v, want outcome upstream_error", l)
	}
}

// TestAgentBodyShare: one agent's calls hold at most
// max_body_bytes_per_agent of the body budget, so an agent holding its
// share gets 503 while another agent's calls go through, and the share
// comes back when its calls end.
func TestAgentBodyShare(t *testing.T) {
	tl := newTestLog(t)
	credA := tl.session(t, "bot-a", "", "t")
	credB := tl.session(t, "bot-b", "", "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); io.WriteString(w, "ok") })
	cfgPath := filepath.Join(t.TempDir(), "gw.json")
	if err := os.WriteFile(cfgPath, []byte(`{"max_body_bytes_in_flight": 4096, "max_body_bytes_per_agent": 2048, "routes": {"tools": {"upstream": "`+up.hs.URL+`", "max_request_bytes": 1024}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(tl.url, cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := New(c, Options{})
	gw := newServer(t, g)
	agentBytes := func(agent string) int64 { g.agentMu.Lock(); defer g.agentMu.Unlock(); return g.agentBodies[agent] }
	// Agent A holds its share: two calls whose 1 KiB bodies never finish.
	var held []net.Conn
	for range 2 {
		c := dialRaw(t, gw)
		held = append(held, c)
		fmt.Fprintf(c, "POST /tools/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1024\r\n\r\n{", credA)
	}
	call := func(cred string) (int, string) {
		resp := do(t, "POST", gw.URL+"/tools/x", cred, strings.Repeat("x", 1000))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	waitUntil(t, func() bool { return agentBytes("bot-a") == 2048 })
	if code, b := call(credA); code != 503 || !strings.Contains(b, "max_body_bytes_per_agent") {
		t.Fatalf("agent A beyond its share: %d %s, want 503 naming max_body_bytes_per_agent", code, b)
	}
	if code, b := call(credB); code != 200 {
		t.Fatalf("agent B while A holds its share: %d %s, want 200", code, b)
	}
	for _, c := range held {
		c.Close()
	}
	waitUntil(t, func() bool { return agentBytes("bot-a") == 0 })
	if code, b := call(credA); code != 200 {
		t.Fatalf("agent A with its share back: %d %s, want 200", code, b)
	}
}
