package otlp

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	alog "github.com/agentlog/agentlog/log"
)

func span(attrs ...*commonpb.KeyValue) *tracepb.Span {
	return &tracepb.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "s", Attributes: attrs}
}

func kv(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func TestMap(t *testing.T) {
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		span(kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.agent.name", "triage")),
		span(kv("gen_ai.operation.name", "create_agent")),
		span(kv("mcp.method.name", "resources/read"), kv("mcp.resource.uri", "file:///a.txt")),
		span(kv("gen_ai.operation.name", "execute_tool"), kv("gen_ai.tool.name", "bad\ttool")), // a control character: rejected
		span(kv("http.route", "/x")), // ignored
	}}}}}}
	recs, res := Map(req)
	if res.Spans != 5 || res.Rejected != 1 || res.Ignored != 1 || len(recs) != 3 || res.Message() == "" {
		t.Fatalf("result %+v, %d records", res, len(recs))
	}
	if recs[0].Action != "gen_ai.invoke_agent" || recs[1].Action != "gen_ai.create_agent" || recs[2].Action != "mcp.resources/read" || recs[2].Resource != "file:///a.txt" {
		t.Fatalf("records %+v", recs)
	}
	var a map[string]any
	if err := json.Unmarshal(recs[0].Attributes, &a); err != nil || a["trace_id"] != "30313233343536373839616263646566" || a["gen_ai.agent.name"] != "triage" || a["span.kind"] != "unspecified" {
		t.Fatalf("attributes %s", recs[0].Attributes)
	}
}

// FuzzDecodeMap: any body, in either encoding, decodes or is refused, and
// every record mapped from it is one the log accepts.
func FuzzDecodeMap(f *testing.F) {
	pb, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		span(kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "m")),
	}}}}}})
	f.Add(pb, false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"0102030405060708","attributes":[{"key":"mcp.method.name","value":{"stringValue":"tools/call"}}]}]}]}]}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		enc := Protobuf
		if isJSON {
			enc = JSON
		}
		req, err := Decode(b, enc)
		if err != nil {
			return
		}
		recs, res := Map(req)
		if res.Rejected+res.Ignored+len(recs) != res.Spans {
			t.Fatalf("result %+v does not account for %d records", res, len(recs))
		}
		for _, r := range recs {
			body, _ := json.Marshal(map[string]any{"entries": []any{r}})
			if _, err := alog.ParseAppendRequest(body); err != nil {
				t.Fatalf("mapped record %+v refused by the log: %v", r, err)
			}
		}
	})
}
