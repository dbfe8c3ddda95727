package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentlog/agentlog/client"
)

// TestOTLPFromOTelSDK: spans made by the OpenTelemetry Go SDK and sent by
// its OTLP/HTTP exporter, configured as an agent would be (an endpoint and
// an Authorization header), become entries of the agent with their trace
// and span ids, models and token usage. The span that is neither GenAI
// nor MCP is ignored by default, and an entry of action otel.span with
// --otlp-other-spans record.
func TestOTLPFromOTelSDK(t *testing.T) {
	for _, other := range []bool{false, true} {
		t.Run(fmt.Sprintf("record other %v", other), func(t *testing.T) { testOTLPFromOTelSDK(t, other) })
	}
}

func testOTLPFromOTelSDK(t *testing.T, other bool) {
	var flags []string
	if other {
		flags = []string{"--otlp-other-spans", "record"}
	}
	lg := startLog(t, flags...)
	ctx := context.Background()
	cred := openSession(t, ctx, lg, "otel-agent", "")
	for _, compress := range []bool{false, true} {
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(lg.URL + "/v1/otlp/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + cred}),
		}
		if compress {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "support-agent"))))
		tr := tp.Tracer("agent")
		actx, agentSpan := tr.Start(ctx, "invoke_agent triage", trace.WithAttributes(attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "triage")))
		_, chat := tr.Start(actx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.String("gen_ai.response.model", "gpt-4o-2024-08-06"), attribute.Int("gen_ai.usage.input_tokens", 812), attribute.Int("gen_ai.usage.output_tokens", 64)))
		chat.End()
		_, tool := tr.Start(actx, "execute_tool refund", trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", "refund"), attribute.String("gen_ai.tool.call.id", "call_9")))
		tool.SetStatus(codes.Error, "card declined")
		tool.End()
		_, hs := tr.Start(actx, "GET /healthz", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
			attribute.String("url.full", "http://127.0.0.1:9/healthz?token=SECRET")))
		hs.End()
		agentSpan.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("export (gzip %v): %v", compress, err)
		}

		var leaves []map[string]any
		_, err = lg.admin.QueryAll(ctx, url.Values{"agent": {"otel-agent"}}, 1000, func(m client.QueryMatch) error {
			var l map[string]any
			json.Unmarshal(m.Entry, &l)
			if a, _ := l["action"].(string); strings.HasPrefix(a, "gen_ai.") || a == "otel.span" {
				leaves = append(leaves, l)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		n := 3 // this round's: chat, tool, agent (in end order)
		if other {
			n = 4 // and the HTTP span, before the agent's
		}
		if len(leaves) != n*(1+btoi(compress)) {
			t.Fatalf("%d leaves after round %v, want %d a round: %v", len(leaves), compress, n, leaves)
		}
		leaves = leaves[len(leaves)-n:]
		byAction := map[string]map[string]any{}
		for _, l := range leaves {
			byAction[l["action"].(string)] = l
		}
		c, tl, ag := byAction["gen_ai.chat"], byAction["gen_ai.execute_tool"], byAction["gen_ai.invoke_agent"]
		if c == nil || tl == nil || ag == nil {
			t.Fatalf("leaves %v", leaves)
		}
		ca, ta, aa := c["attributes"].(map[string]any), tl["attributes"].(map[string]any), ag["attributes"].(map[string]any)
		sc := chat.SpanContext()
		if ca["trace_id"] != sc.TraceID().String() || ca["span_id"] != sc.SpanID().String() || ca["parent_span_id"] != agentSpan.SpanContext().SpanID().String() ||
			ca["gen_ai.request.model"] != "gpt-4o" || ca["gen_ai.response.model"] != "gpt-4o-2024-08-06" ||
			ca["gen_ai.usage.input_tokens"] != float64(812) || ca["gen_ai.usage.output_tokens"] != float64(64) || ca["service.name"] != "support-agent" ||
			ca["span.kind"] != "client" || c["agent"] != "otel-agent" || c["outcome"] != "success" {
			t.Fatalf("chat leaf %v", c)
		}
		if tl["tool"] != "refund" || tl["outcome"] != "error" || ta["gen_ai.tool.call.id"] != "call_9" || ta["status.message"] != "card declined" {
			t.Fatalf("tool leaf %v", tl)
		}
		if aa["gen_ai.agent.name"] != "triage" {
			t.Fatalf("agent leaf %v", ag)
		}
		if other {
			h := byAction["otel.span"]
			ha, _ := h["attributes"].(map[string]any)
			if h == nil || h["agent"] != "otel-agent" || h["outcome"] != "success" || h["tool"] != nil ||
				ha["span_id"] != hs.SpanContext().SpanID().String() || ha["trace_id"] != sc.TraceID().String() ||
				ha["parent_span_id"] != agentSpan.SpanContext().SpanID().String() || ha["span.name"] != "GET /healthz" || ha["span.kind"] != "client" ||
				ha["service.name"] != "support-agent" || ha["otel.scope.name"] != "agent" || ha["status.code"] != "unset" ||
				ha["http.request.method"] != "GET" || ha["http.response.status_code"] != float64(200) || ha["url.full"] != nil {
				t.Fatalf("other span's leaf %v", h)
			}
			if _, ok := ha["duration_ms"].(float64); !ok {
				t.Fatalf("other span's leaf has no duration: %v", h)
			}
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
