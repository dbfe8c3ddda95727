package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// rpcUpstream answers JSON-RPC requests: each request's result echoes its
// method; "fail" gets an error, "tool_error" an isError result. With sse
// it answers as an event stream, a progress notification first.
func rpcUpstream(t *testing.T, sse bool) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		msgs, batch, err := parseMessages(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var out []json.RawMessage
		for _, m := range msgs {
			if !m.isRequest() {
				continue
			}
			var name struct{ Name string }
			json.Unmarshal(m.params, &name)
			switch name.Name {
			case "fail":
				out = append(out, rpcError(m.id, -32602, "bad arguments", nil))
			case "tool_error":
				out = append(out, jsonMarshal(map[string]any{"jsonrpc": "2.0", "id": m.id, "result": map[string]any{"isError": true, "content": []any{}}}))
			default:
				out = append(out, jsonMarshal(map[string]any{"jsonrpc": "2.0", "id": m.id, "result": map[string]any{"method": m.method, "_meta": map[string]any{"x": 1}}}))
			}
		}
		w.Header().Set("Mcp-Session-Id", "sess-1")
		if len(out) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if sse {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n")
			for _, o := range out {
				io.WriteString(w, "event: message\ndata: "+string(o)+"\n\n")
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if batch {
			w.Write(jsonMarshal(out))
		} else {
			w.Write(out[0])
		}
	})
}

func mcpPost(t *testing.T, url, cred, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", "sess-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// answers decodes a JSON answer or the JSON-RPC messages of an event
// stream.
func answers(t *testing.T, resp *http.Response, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if isEventStream(resp.Header) {
		for _, l := range strings.Split(string(b), "\n") {
			if d, ok := strings.CutPrefix(l, "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Fatalf("event data %q: %v", d, err)
				}
				if m["method"] == nil {
					out = append(out, m)
				}
			}
		}
		return out
	}
	if bytes.HasPrefix(b, []byte("[")) {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return []map[string]any{m}
}

func TestMCPBatch(t *testing.T) {
	for _, sse := range []bool{false, true} {
		for _, mode := range []string{"after", "before"} {
			t.Run(mode+map[bool]string{true: "/sse", false: "/json"}[sse], func(t *testing.T) {
				tl := newTestLog(t)
				cred := tl.session(t, "bot-1", "", "t")
				up := rpcUpstream(t, sse)
				gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{u}", "record": "`+mode+`", "record_args": ["customer_id"]}}}`, map[string]*upstream{"u": up})
				before := tl.l.Size()
				resp, b := mcpPost(t, gw.URL+"/crm", cred, `[
					{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup","arguments":{"customer_id":"42","note":"secret"},"_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}},
					{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"fail"}},
					{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"tool_error"}},
					{"jsonrpc":"2.0","method":"notifications/initialized"}]`)
				if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") != "sess-1" {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				as := answers(t, resp, b)
				if len(as) != 3 {
					t.Fatalf("answers %s", b)
				}
				want := map[string]string{"1": "success", "b": "error", "3": "tool_error"}
				// One field line, the receipts in request order.
				hdr := resp.Header.Values(ReceiptHeader)
				if len(hdr) != 1 {
					t.Fatalf("receipt field lines %q, want one", hdr)
				}
				inHeader, err := ParseReceipts(hdr[0])
				if err != nil || len(inHeader) != 3 {
					t.Fatalf("receipt field %q: %v", hdr[0], err)
				}
				order := map[string]int{"1": 0, "b": 1, "3": 2}
				perEntry := 1
				if mode == "before" {
					perEntry = 2
				}
				if got := tl.l.Size() - before; got != uint64(3*perEntry) {
					t.Fatalf("%d entries for 3 calls, want %d", got, 3*perEntry)
				}
				for _, a := range as {
					id := strings.Trim(string(jsonMarshal(a["id"])), `"`)
					var meta map[string]any
					if id == "b" {
						e, _ := a["error"].(map[string]any)
						if e == nil || e["code"] != float64(-32602) {
							t.Fatalf("answer %v lost its error", a)
						}
						meta, _ = e["data"].(map[string]any) // an error's receipts are in its data
					} else {
						meta = a["result"].(map[string]any)["_meta"].(map[string]any)
					}
					if id == "1" && meta["x"] != float64(1) {
						t.Fatalf("the upstream's _meta was lost: %v", meta)
					}
					if rc, _ := meta[MetaReceipt].(string); rc != inHeader[order[id]].String() {
						t.Fatalf("call %s: receipt %q in the answer, %q in the header", id, rc, inHeader[order[id]])
					}
					_, l := tl.checkReceipt(t, meta[MetaReceipt].(string))
					if mode == "before" {
						_, l = tl.checkReceipt(t, meta[MetaOutcomeReceipt].(string))
					}
					at := attrs(t, l)
					if l.Outcome != want[id] || at["jsonrpc.request.id"] != id || at["mcp.session.id"] != "sess-1" || l.Action != "mcp.tools/call" {
						t.Fatalf("call %s: leaf %+v", id, l)
					}
					if id == "1" {
						args, _ := at["mcp.arguments"].(map[string]any)
						if l.Tool != "lookup" || at["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || at["span_id"] != "00f067aa0ba902b7" ||
							args["customer_id"] != "42" || args["note"] != nil {
							t.Fatalf("call 1: leaf %+v %v", l, at)
						}
					}
				}
			})
		}
	}
}

func TestMCPNotificationsAndErrors(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", `{"tools":["lookup"]}`, "t")
	up := rpcUpstream(t, false)
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{u}", "scope": "enforce"}}}`, map[string]*upstream{"u": up})

	// Notifications alone pass through unrecorded (202).
	before := tl.l.Size()
	resp, _ := mcpPost(t, gw.URL+"/crm", cred, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp.StatusCode != 202 || tl.l.Size() != before {
		t.Fatalf("notification: %d, %d entries", resp.StatusCode, tl.l.Size()-before)
	}
	// A batch with an out-of-scope call is refused whole; the refusal is
	// recorded and the upstream never called.
	calls := up.calls.Load()
	resp, b := mcpPost(t, gw.URL+"/crm", cred, `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup"}},
		{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_table"}},
		{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"drop_all"}}]`)
	var errs []struct {
		ID    int
		Error struct {
			Code int
			Data map[string]string
		}
	}
	if err := json.Unmarshal(b, &errs); err != nil || resp.StatusCode != 403 || len(errs) != 3 || errs[1].Error.Code != CodeRefused || up.calls.Load() != calls {
		t.Fatalf("refused batch: %d %s", resp.StatusCode, b)
	}
	for i, tool := range map[int]string{1: "drop_table", 2: "drop_all"} {
		if _, l := tl.checkReceipt(t, errs[i].Error.Data[MetaReceipt]); l.Outcome != OutcomeDenied || l.Tool != tool {
			t.Fatalf("refusal entry %+v", l)
		}
	}
	// The refusals' receipts, in request order, in one field.
	if got, want := resp.Header.Values(ReceiptHeader), errs[1].Error.Data[MetaReceipt]+", "+errs[2].Error.Data[MetaReceipt]; len(got) != 1 || got[0] != want {
		t.Fatalf("receipt field %q, want %q", got, want)
	}
	// Bad bodies and credentials get JSON-RPC errors.
	for _, c := range []struct {
		body, cred string
		status     int
		code       int
	}{
		{`{"jsonrpc":"2.0","id":1,`, cred, 400, codeParse},
		{`{"jsonrpc":"1.0","id":1,"method":"x"}`, cred, 400, codeParse},
		{`[]`, cred, 400, codeParse},
		{`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"method":"b"}]`, cred, 400, codeInvalid},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "agentlog-session-v1.0123456789abcdef." + strings.Repeat("A", 43), 401, CodeUnauthorized},
	} {
		resp, b := mcpPost(t, gw.URL+"/crm", c.cred, c.body)
		var e struct{ Error struct{ Code int } }
		if bytes.HasPrefix(b, []byte("[")) {
			var es []json.RawMessage
			json.Unmarshal(b, &es)
			if len(es) > 0 {
				b = es[0]
			}
		}
		if json.Unmarshal(b, &e); resp.StatusCode != c.status || e.Error.Code != c.code {
			t.Errorf("%s: %d %s, want %d with code %d", c.body, resp.StatusCode, b, c.status, c.code)
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"s","result":{}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _, err := parseMessages(b)
		if err != nil {
			return
		}
		rt := &Route{Name: "r", resArgs: []string{"a"}, recArgs: []string{"a"}}
		rt.Upstream, _ = parseURL("http://h")
		for _, m := range msgs {
			if m.isRequest() {
				rec := rt.mcpRecord(m, http.Header{})
				if !json.Valid(rec.encode()) {
					t.Fatalf("record of %s is not JSON", m.raw)
				}
			}
			m.outcome(map[string]any{})
			withReceipt(m.raw, &mcpCall{m: m, final: &Receipt{Index: 1, LeafHash: make([]byte, 32)}})
		}
	})
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n: comment\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		byID := map[string]*mcpCall{"1": {}}
		events, _, _ := readEvents(bytes.NewReader(b), 1<<16, byID)
		for _, e := range events {
			if e.msg != nil {
				e.setData(e.msg.raw)
			}
			e.bytes()
		}
	})
}

// TestMCPAuthenticatesBeforeBody: an MCP POST without a valid credential
// is refused before its body is read, so clients without one cannot make
// the gateway read and hold bodies of up to max_request_bytes (60 such
// requests of 16 MiB took it to 1.6 GB): here a body declared at 16 MiB,
// of which one byte is sent, is answered 401 at once.
func TestMCPAuthenticatesBeforeBody(t *testing.T) {
	tl := newTestLog(t)
	up := rpcUpstream(t, false)
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{u}"}}}`, map[string]*upstream{"u": up})
	for _, auth := range []string{"", "Authorization: Bearer agentlog-session-v1.0123456789abcdef." + strings.Repeat("A", 43) + "\r\n"} {
		before := tl.l.Size()
		c := dialRaw(t, gw)
		fmt.Fprintf(c, "POST /crm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n[", auth, 16<<20)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: no answer before the body: %v", auth, err)
		}
		b, _ := io.ReadAll(resp.Body)
		var e struct{ Error struct{ Code int } }
		if resp.StatusCode != 401 || json.Unmarshal(b, &e) != nil || e.Error.Code != CodeUnauthorized {
			t.Fatalf("%q: %d %s, want 401 with a JSON-RPC error", auth, resp.StatusCode, b)
		}
		if up.calls.Load() != 0 || tl.l.Size() != before {
			t.Fatalf("%q: upstream called %d times, %d entries written", auth, up.calls.Load(), tl.l.Size()-before)
		}
	}
}

// TestMCPBatchCap: a batch of more than MaxBatchMessages messages is
// refused whole with 400 (-32600), before anything is forwarded or
// written: each request of a batch is a call with its entries, so one 15 MB
// batch of 200,000 calls took the gateway to 690 MB and wrote 400,000
// entries.
// TestMCPBatchReceiptField: a batch's receipts never make a field longer
// than MaxReceiptField (HTTP clients refuse big headers); beyond it they
// are only in the answers, and the answer says so.
func TestMCPBatchReceiptField(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := rpcUpstream(t, false)
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{u}", "record": "before"}}}`, map[string]*upstream{"u": up})
	for _, n := range []int{100, 400} {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			name := "lookup"
			if i%2 == 1 {
				name = "fail"
			}
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q}}`, i, name)
		}
		b.WriteString("]")
		resp, body := mcpPost(t, gw.URL+"/crm", cred, b.String())
		if resp.StatusCode != 200 {
			t.Fatalf("a batch of %d: %d %.200s", n, resp.StatusCode, body)
		}
		size := 0
		for k, vs := range resp.Header {
			for _, v := range vs {
				size += len(k) + len(v) + 4
			}
		}
		if size > 2*MaxReceiptField+1024 {
			t.Fatalf("a batch of %d: %d bytes of header", n, size)
		}
		var inHeader, outcomes []Receipt
		if n == 100 {
			var err error
			if inHeader, err = ParseReceipts(resp.Header.Get(ReceiptHeader)); err != nil || len(inHeader) != n {
				t.Fatalf("a batch of %d: receipt field: %d receipts, %v", n, len(inHeader), err)
			}
			if outcomes, err = ParseReceipts(resp.Header.Get(OutcomeReceiptHeader)); err != nil || len(outcomes) != n {
				t.Fatalf("a batch of %d: outcome receipt field: %d receipts, %v", n, len(outcomes), err)
			}
		} else if resp.Header.Get(ReceiptHeader) != "" || resp.Header.Get(OutcomeReceiptHeader) != "" || resp.Header.Get(ReceiptsInBodyHeader) != strconv.Itoa(n) {
			t.Fatalf("a batch of %d: %s %q, %s %q", n, ReceiptHeader, resp.Header.Get(ReceiptHeader), ReceiptsInBodyHeader, resp.Header.Get(ReceiptsInBodyHeader))
		}
		var as []map[string]json.RawMessage
		if err := json.Unmarshal(body, &as); err != nil || len(as) != n {
			t.Fatalf("a batch of %d: %d answers: %v", n, len(as), err)
		}
		for _, a := range as {
			var id int
			json.Unmarshal(a["id"], &id)
			var in struct {
				Meta map[string]string `json:"_meta"`
				Data map[string]string `json:"data"`
			}
			if id%2 == 1 {
				json.Unmarshal(a["error"], &in)
				in.Meta = in.Data
			} else {
				json.Unmarshal(a["result"], &in)
			}
			rc, oc := in.Meta[MetaReceipt], in.Meta[MetaOutcomeReceipt]
			if n == 100 && (rc != inHeader[id].String() || oc != outcomes[id].String()) {
				t.Fatalf("call %d: receipts %q, %q in the answer, %q, %q in the header", id, rc, oc, inHeader[id], outcomes[id])
			}
			tl.checkReceipt(t, rc)
			if _, l := tl.checkReceipt(t, oc); (id%2 == 1) != (l.Outcome == OutcomeError) {
				t.Fatalf("call %d: outcome %q", id, l.Outcome)
			}
		}
	}
}

func TestMCPBatchCap(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", "", "t")
	up := rpcUpstream(t, false)
	gw := newGateway(t, tl, `{"routes": {"crm": {"upstream": "mcp+{u}", "record": "before"}}}`, map[string]*upstream{"u": up})
	var b strings.Builder
	b.WriteString("[")
	for i := range MaxBatchMessages + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"lookup"}}`, i)
	}
	b.WriteString("]")
	before := tl.l.Size()
	resp, body := mcpPost(t, gw.URL+"/crm", cred, b.String())
	var errs []struct{ Error struct{ Code int } }
	if json.Unmarshal(body, &errs); resp.StatusCode != 400 || len(errs) != 1 || errs[0].Error.Code != codeInvalid {
		t.Fatalf("a batch of %d: %d %.200s, want 400 with -32600", MaxBatchMessages+1, resp.StatusCode, body)
	}
	if up.calls.Load() != 0 || tl.l.Size() != before {
		t.Fatalf("upstream called %d times, %d entries written", up.calls.Load(), tl.l.Size()-before)
	}
}
