package otlp

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	"github.com/agentlog/agentlog"
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
	recs, res := Map(req, Options{})
	if res.Spans != 5 || res.Rejected != 1 || res.Ignored != 1 || len(recs) != 3 || res.Message() == "" {
		t.Fatalf("result %+v, %d records", res, len(recs))
	}
	if recs[0].Action != "gen_ai.invoke_agent" || recs[1].Action != "gen_ai.create_agent" || recs[2].Action != "mcp.resources/read" || recs[2].Resource != "file:///a.txt" {
		t.Fatalf("records %+v", recs)
	}
	var a map[string]any
	if err := json.Unmarshal(recs[0].Attributes, &a); err != nil || a["trace_id"] != "30313233343536373839616263646566" || a["gen_ai.agent.name"] != "triage" ||
		a["span.kind"] != "unspecified" || a["status.code"] != "unset" {
		t.Fatalf("attributes %s", recs[0].Attributes)
	}
}

func intKV(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// TestMapOther: with RecordOther, a span that is neither GenAI nor MCP is
// a record of action otel.span holding its ids, name, kind, service,
// status, duration and only the listed attributes; GenAI spans are mapped
// as without it, and a recorded span with bad ids is rejected.
func TestMapOther(t *testing.T) {
	db := span(kv("db.system.name", "postgresql"), kv("db.operation.name", "SELECT"), kv("db.collection.name", "customers"),
		kv("db.query.text", "SELECT * FROM customers WHERE ssn='123'"), kv("gen_ai.tool.name", "not-a-tool"))
	db.Kind, db.Name = tracepb.Span_SPAN_KIND_CLIENT, "SELECT customers"
	db.StartTimeUnixNano, db.EndTimeUnixNano = 1_700_000_000_000_000_000, 1_700_000_000_012_500_000
	db.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "deadlock"}
	httpSpan := span(kv("http.request.method", "GET"), intKV("http.response.status_code", 200), kv("url.path", "/v1/customers/42"),
		kv("url.full", "https://crm.example/v1/customers/42?api_key=SECRET"), kv("url.query", "api_key=SECRET"), kv("server.address", "crm.example"),
		&commonpb.KeyValue{Key: "http.request.header.authorization", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "Bearer SECRET"}}}}}}})
	httpSpan.SpanId, httpSpan.ParentSpanId, httpSpan.Status = []byte("76543210"), []byte("01234567"), &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	badIDs := span(kv("http.route", "/x"))
	badIDs.SpanId = make([]byte, 8)
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", "billing-agent")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "otelsql"},
			Spans: []*tracepb.Span{db, httpSpan, badIDs, span(kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "m"))}}}}}}

	recs, res := Map(req, Options{RecordOther: true})
	if res.Spans != 4 || res.Rejected != 1 || res.Ignored != 0 || len(recs) != 3 || res.Message() == "" {
		t.Fatalf("result %+v, %d records", res, len(recs))
	}
	if recs[0].Action != ActionOther || recs[0].Tool != "" || recs[0].Resource != "" || recs[0].Outcome != "error" ||
		recs[1].Action != ActionOther || recs[1].Outcome != "success" || recs[2].Action != "gen_ai.chat" {
		t.Fatalf("records %+v", recs)
	}
	var a0, a1 map[string]any
	if err := json.Unmarshal(recs[0].Attributes, &a0); err != nil {
		t.Fatal(err)
	}
	want0 := map[string]any{"trace_id": "30313233343536373839616263646566", "span_id": "3031323334353637", "span.name": "SELECT customers",
		"span.kind": "client", "service.name": "billing-agent", "otel.scope.name": "otelsql", "start_time": "2023-11-14T22:13:20Z",
		"duration_ms": 12.5, "status.code": "error", "status.message": "deadlock",
		"db.system.name": "postgresql", "db.operation.name": "SELECT", "db.collection.name": "customers"}
	if !reflect.DeepEqual(a0, want0) {
		t.Fatalf("database span attributes\n%v\nwant\n%v", a0, want0)
	}
	if err := json.Unmarshal(recs[1].Attributes, &a1); err != nil {
		t.Fatal(err)
	}
	if a1["parent_span_id"] != "3031323334353637" || a1["span_id"] != "3736353433323130" || a1["status.code"] != "ok" ||
		a1["http.request.method"] != "GET" || a1["http.response.status_code"] != float64(200) || a1["url.path"] != "/v1/customers/42" ||
		a1["server.address"] != "crm.example" || len(a1) != 12 || strings.Contains(string(recs[1].Attributes), "SECRET") {
		t.Fatalf("HTTP span attributes %s", recs[1].Attributes)
	}

	// Without RecordOther the same request records only the GenAI span
	// (the span with bad ids is ignored before its ids are looked at).
	recs, res = Map(req, Options{})
	if res.Spans != 4 || res.Rejected != 0 || res.Ignored != 3 || len(recs) != 1 || recs[0].Action != "gen_ai.chat" {
		t.Fatalf("without RecordOther: result %+v, records %+v", res, recs)
	}
}

// FuzzDecodeMap: any body, in either encoding, decodes or is refused, and
// every record mapped from it is one the log accepts.
func FuzzDecodeMap(f *testing.F) {
	pb, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		span(kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "m")),
	}}}}}})
	f.Add(pb, false, false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"0102030405060708","attributes":[{"key":"mcp.method.name","value":{"stringValue":"tools/call"}}]}]}]}]}`), true, false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"0102030405060708","name":"GET","status":{"code":2,"message":"x"},"attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"url.path","value":{"stringValue":"/a\u0000b"}}]}]}]}]}`), true, true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool, other bool) {
		enc := Protobuf
		if isJSON {
			enc = JSON
		}
		req, err := Decode(b, enc)
		if err != nil {
			return
		}
		recs, res := Map(req, Options{RecordOther: other})
		if res.Rejected+res.Ignored+len(recs) != res.Spans || other && res.Ignored != 0 {
			t.Fatalf("result %+v does not account for %d records (RecordOther %v)", res, len(recs), other)
		}
		for _, r := range recs {
			body, _ := json.Marshal(map[string]any{"entries": []any{r}})
			if _, err := alog.ParseAppendRequest(body); err != nil {
				t.Fatalf("mapped record %+v refused by the log: %v", r, err)
			}
		}
	})
}

// TestRecordConfig: the setting is recorded when it differs from the last
// one in the log (the default, ignore, when there is none), and read back
// from the log's entries, as a node that did not write them would.
func TestRecordConfig(t *testing.T) {
	dir := t.TempDir()
	l, err := alog.Open(alog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, c := range []struct {
		other, want bool
	}{{false, false}, {true, true}, {true, false}, {false, true}, {false, false}} {
		got, err := RecordConfig(ctx, l, Options{RecordOther: c.other})
		if err != nil || got != c.want {
			t.Fatalf("step %d (record other %v): appended %v, %v; want %v", i, c.other, got, err, c.want)
		}
	}
	if n := l.Size(); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}
	for i, want := range []string{`{"other_spans":"record"}`, `{"other_spans":"ignore"}`} {
		b, _ := l.Entry(uint64(i))
		lf, err := agentlog.ParseLeaf(b)
		if err != nil || lf.Kind != alog.KindSystem || lf.Action != ConfigAction || lf.Principal != "agentlog" || string(lf.Attributes) != want {
			t.Fatalf("entry %d: %s %v", i, b, err)
		}
	}
	// Reopened: the last setting comes from the entries.
	l.Close()
	if l, err = alog.Open(alog.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := RecordConfig(ctx, l, Options{}); err != nil || got {
		t.Fatalf("after reopening, the recorded setting again: %v %v", got, err)
	}
	if got, err := RecordConfig(ctx, l, Options{RecordOther: true}); err != nil || !got {
		t.Fatalf("after reopening, a change: %v %v", got, err)
	}
}
