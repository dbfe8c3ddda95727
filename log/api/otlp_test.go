package api

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/otlp"
)

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func testExport() *coltracepb.ExportTraceServiceRequest {
	tid := []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "support-agent")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{TraceId: tid, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "execute_tool lookup", Kind: tracepb.Span_SPAN_KIND_INTERNAL,
				StartTimeUnixNano: 1_700_000_000_000_000_000, EndTimeUnixNano: 1_700_000_000_250_000_000,
				Attributes: []*commonpb.KeyValue{strAttr("gen_ai.operation.name", "execute_tool"), strAttr("gen_ai.tool.name", "lookup"),
					strAttr("gen_ai.tool.call.id", "call_1"), strAttr("gen_ai.input.messages", "SECRET PROMPT")}},
			{TraceId: tid, SpanId: []byte{2, 2, 3, 4, 5, 6, 7, 8}, ParentSpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "chat gpt-4o",
				Attributes: []*commonpb.KeyValue{strAttr("gen_ai.operation.name", "chat"), strAttr("gen_ai.request.model", "gpt-4o"),
					strAttr("gen_ai.response.model", "gpt-4o-2024-08-06"), intAttr("gen_ai.usage.input_tokens", 120), intAttr("gen_ai.usage.output_tokens", 30)},
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "rate limited"}},
			{TraceId: tid, SpanId: []byte{3, 2, 3, 4, 5, 6, 7, 8}, Name: "tools/call lookup", Kind: tracepb.Span_SPAN_KIND_CLIENT,
				Attributes: []*commonpb.KeyValue{strAttr("mcp.method.name", "tools/call"), strAttr("gen_ai.tool.name", "lookup"), strAttr("mcp.session.id", "s-1")}},
			{TraceId: tid, SpanId: []byte{4, 2, 3, 4, 5, 6, 7, 8}, Name: "GET /health"},                                                                                  // ignored
			{TraceId: make([]byte, 16), SpanId: []byte{5, 2, 3, 4, 5, 6, 7, 8}, Name: "bad", Attributes: []*commonpb.KeyValue{strAttr("gen_ai.operation.name", "chat")}}, // rejected
		}}},
	}}}
}

func postOTLP(t *testing.T, url, cred, ct, enc string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/otlp/v1/traces", bytes.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestOTLPIngest(t *testing.T) {
	e := newEnv(t, Config{})
	cred := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "ticket-9", 0)
	pb, _ := proto.Marshal(testExport())
	jsonBody := []byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"support-agent"}}]},
		"scopeSpans":[{"scope":{"name":"agent-sdk"},"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"0102030405060708",
		"name":"execute_tool lookup","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000",
		"attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"execute_tool"}},{"key":"gen_ai.tool.name","value":{"stringValue":"lookup"}},
		{"key":"gen_ai.usage.input_tokens","value":{"intValue":"7"}}],"unknownField":1}]}]}]}`)
	for _, c := range []struct {
		name, ct, enc string
		body          []byte
		want          int // entries
		rejected      int64
	}{
		{"protobuf", otlp.Protobuf, "", pb, 3, 1},
		{"protobuf gzip", otlp.Protobuf, "gzip", gz(pb), 3, 1},
		{"json", otlp.JSON, "", jsonBody, 1, 0},
		{"json gzip", otlp.JSON + "; charset=utf-8", "gzip", gz(jsonBody), 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.l.Size()
			code, hdr, b := postOTLP(t, e.hs.URL, cred, c.ct, c.enc, c.body)
			if code != 200 {
				t.Fatalf("%d %s", code, b)
			}
			resp := &coltracepb.ExportTraceServiceResponse{}
			if strings.HasPrefix(c.ct, otlp.JSON) {
				if hdr.Get("Content-Type") != otlp.JSON {
					t.Fatalf("answer Content-Type %q", hdr.Get("Content-Type"))
				}
			} else if err := proto.Unmarshal(b, resp); err != nil {
				t.Fatal(err)
			}
			if resp.GetPartialSuccess().GetRejectedSpans() != c.rejected {
				t.Fatalf("partial success %v", resp.GetPartialSuccess())
			}
			ls := e.leaves(t, before)
			if len(ls) != c.want {
				t.Fatalf("%d entries, want %d", len(ls), c.want)
			}
			for _, l := range ls {
				if l.Kind != agentlog.KindAction || l.Agent != "agent-a" || l.Task != "ticket-9" || strings.Contains(string(l.Attributes), "SECRET") {
					t.Fatalf("leaf %+v %s", l, l.Attributes)
				}
			}
			l := ls[0]
			if l.Action != "gen_ai.execute_tool" || l.Tool != "lookup" || l.Outcome != "success" ||
				!strings.Contains(string(l.Attributes), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) ||
				!strings.Contains(string(l.Attributes), `"span_id":"0102030405060708"`) || !strings.Contains(string(l.Attributes), `"duration_ms":250`) {
				t.Fatalf("tool span leaf %+v %s", l, l.Attributes)
			}
			if c.want == 3 {
				if ls[1].Action != "gen_ai.chat" || ls[1].Outcome != "error" || !strings.Contains(string(ls[1].Attributes), `"gen_ai.response.model":"gpt-4o-2024-08-06"`) ||
					!strings.Contains(string(ls[1].Attributes), `"gen_ai.usage.input_tokens":120`) || !strings.Contains(string(ls[1].Attributes), `"parent_span_id":"0102030405060708"`) {
					t.Fatalf("chat span leaf %+v %s", ls[1], ls[1].Attributes)
				}
				if ls[2].Action != "mcp.tools/call" || ls[2].Tool != "lookup" {
					t.Fatalf("MCP span leaf %+v", ls[2])
				}
			}
		})
	}
}

// TestOTLPRecordOther: with OTLPRecordOther, the span that is neither
// GenAI nor MCP is an entry of action otel.span of the same agent, beside
// the others; the one with bad ids is still rejected.
func TestOTLPRecordOther(t *testing.T) {
	e := newEnv(t, Config{OTLPRecordOther: true})
	cred := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "ticket-9", 0)
	pb, _ := proto.Marshal(testExport())
	before := e.l.Size()
	code, _, b := postOTLP(t, e.hs.URL, cred, otlp.Protobuf, "", pb)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if err := proto.Unmarshal(b, resp); err != nil {
		t.Fatal(err)
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || strings.Contains(ps.GetErrorMessage(), "ignored") {
		t.Fatalf("partial success %v", ps)
	}
	ls := e.leaves(t, before)
	if len(ls) != 4 || ls[0].Action != "gen_ai.execute_tool" || ls[2].Action != "mcp.tools/call" {
		t.Fatalf("%d entries: %+v", len(ls), ls)
	}
	l := ls[3]
	if l.Kind != agentlog.KindAction || l.Action != otlp.ActionOther || l.Agent != "agent-a" || l.Task != "ticket-9" || l.Tool != "" || l.Outcome != "success" ||
		string(l.Attributes) != `{"service.name":"support-agent","span.kind":"unspecified","span.name":"GET /health","span_id":"0402030405060708","status.code":"unset","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}` {
		t.Fatalf("other span's leaf %+v %s", l, l.Attributes)
	}
}

func TestOTLPRefused(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(fmt.Sprintf("record other %v", other), func(t *testing.T) { testOTLPRefused(t, other) })
	}
}

func testOTLPRefused(t *testing.T, other bool) {
	e := newEnv(t, Config{OTLPRecordOther: other})
	cred := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "t", 0)
	pb, _ := proto.Marshal(testExport())
	big := make([]byte, maxOTLPBytes+1)
	bomb := gz(make([]byte, maxOTLPDecompressed+1))
	for _, c := range []struct {
		name, cred, ct, enc string
		body                []byte
		want                int
	}{
		{"no credential", "", otlp.Protobuf, "", pb, 401},
		{"forged session", agentlog.SessionPrefix + "0123456789abcdef." + strings.Repeat("A", 43), otlp.Protobuf, "", pb, 401},
		{"operator token", adminTok, otlp.Protobuf, "", pb, 403},
		{"malformed protobuf", cred, otlp.Protobuf, "", []byte{0xff, 0xff, 0xff}, 400},
		{"malformed json", cred, otlp.JSON, "", []byte(`{"resourceSpans":[`), 400},
		{"json with base64 ids", cred, otlp.JSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"S/kvNXezTaajzpKdDg5HNg=="}]}]}]}`), 400},
		{"not gzip", cred, otlp.Protobuf, "gzip", pb, 400},
		{"unknown encoding", cred, otlp.Protobuf, "br", pb, 415},
		{"wrong content type", cred, "text/plain", "", pb, 415},
		{"oversized", cred, otlp.Protobuf, "", big, 413},
		{"gzip bomb", cred, otlp.Protobuf, "gzip", bomb, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.l.Size()
			code, _, b := postOTLP(t, e.hs.URL, c.cred, c.ct, c.enc, c.body)
			if code != c.want || !bytes.Contains(b, []byte(`"error"`)) {
				t.Fatalf("%d %s, want %d with a JSON error", code, b, c.want)
			}
			for _, l := range e.leaves(t, before) {
				if l.Kind != agentlog.KindDenied {
					t.Fatalf("a refused export wrote %+v", l)
				}
			}
		})
	}
}

// TestOTLPBudget: an OTLP export's bytes, as decompressed, are taken from
// the append byte budget of the server and of the agent as they are read:
// a gzip body of a few KiB that inflates beyond what is left gets 503 with
// Retry-After and writes nothing, and the bytes come back when it ends.
func TestOTLPBudget(t *testing.T) {
	e := newEnv(t, Config{InflightBytes: 24 << 20, InflightBytesPerAgent: 16 << 20})
	a := e.openSession(t, e.agent(t, "agent-a"), "agent-a", "t", 0)
	b := e.openSession(t, e.agent(t, "agent-b"), "agent-b", "t", 0)
	host := strings.TrimPrefix(e.hs.URL, "http://")
	// An ignored span carrying 12 MiB: sent as about 12 KiB of gzip.
	big := testExport()
	spans := big.ResourceSpans[0].ScopeSpans[0].Spans
	spans[3].Attributes = []*commonpb.KeyValue{strAttr("padding", strings.Repeat("x", 12<<20))}
	bigPB, _ := proto.Marshal(big)
	bomb := gz(bigPB)
	small, _ := proto.Marshal(testExport())
	waitUsed := func(n int64) { t.Helper(); waitBudgetUsed(t, e, n) }
	// Agent b holds an append declaring 16 MiB: 8 MiB of the server's
	// budget are left.
	held := holdRequest(t, host, fmt.Sprintf("POST /v1/entries HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n{", host, b, 16<<20))
	defer held.Close()
	waitUsed(16 << 20)
	before := e.l.Size()
	code, h, body := postOTLP(t, e.hs.URL, a, otlp.Protobuf, "gzip", bomb)
	if code != 503 || h.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"error"`)) {
		t.Fatalf("a %d-byte gzip export inflating to %d bytes beyond the budget: %d %s", len(bomb), len(bigPB), code, body)
	}
	if e.l.Size() != before {
		t.Fatalf("the refused export wrote %d entries", e.l.Size()-before)
	}
	// Agent b's own export: its share is taken.
	if code, _, body := postOTLP(t, e.hs.URL, b, otlp.Protobuf, "", small); code != 503 {
		t.Fatalf("an export of an agent whose share is taken: %d %s", code, body)
	}
	// A small export of agent a fits beside the held append.
	if code, _, body := postOTLP(t, e.hs.URL, a, otlp.Protobuf, "", small); code != 200 {
		t.Fatalf("a small export within the budget: %d %s", code, body)
	}
	held.Close()
	waitUsed(0)
	if code, _, body := postOTLP(t, e.hs.URL, a, otlp.Protobuf, "gzip", bomb); code != 200 {
		t.Fatalf("the large export once the budget is free: %d %s", code, body)
	}
	waitUsed(0)
}
