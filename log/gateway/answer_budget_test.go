package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
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
