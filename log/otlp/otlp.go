// Package otlp maps OpenTelemetry traces received over OTLP/HTTP
// (opentelemetry.io/docs/specs/otlp, "OTLP/HTTP") to agentlog records.
// Requests are decoded with the official OTLP protobuf definitions
// (go.opentelemetry.io/proto/slim/otlp), in their binary or JSON encoding.
//
// Spans that follow the OpenTelemetry semantic conventions for generative
// AI (opentelemetry.io/docs/specs/semconv/gen-ai: gen_ai.operation.name of
// execute_tool, invoke_agent, create_agent, chat, ...) or for MCP
// (mcp.method.name) become records. Other spans are ignored, and counted,
// unless [Options.RecordOther] is set: then they become records of action
// "otel.span". docs/otlp.md gives the field mapping. Only a fixed list of
// attributes is kept (models, token usage, tool and call ids, ...; for
// other spans, the HTTP, database, RPC and messaging attributes that say
// what was called), never message contents, queries or URLs' query
// strings.
package otlp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// ErrInvalid is wrapped by every decoding error: the request is bad and
// nothing was written. It matches agentlog.ErrInvalid (a 400), as every
// package's ErrInvalid does.
var ErrInvalid = agentlog.Invalid("invalid OTLP request")

// Encodings of an OTLP/HTTP body.
const (
	Protobuf = "application/x-protobuf"
	JSON     = "application/json"
)

// Decode decodes an ExportTraceServiceRequest in encoding (Protobuf or
// JSON). In the JSON encoding trace and span ids are hex strings, as OTLP
// specifies, not base64 as protobuf's JSON mapping would have them.
func Decode(body []byte, encoding string) (*coltracepb.ExportTraceServiceRequest, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	switch encoding {
	case Protobuf:
		if err := proto.Unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%w: the body is not an ExportTraceServiceRequest in protobuf: %s", ErrInvalid, err)
		}
	case JSON:
		b, err := hexIDsToBase64(body)
		if err != nil {
			return nil, err
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, req); err != nil {
			return nil, fmt.Errorf("%w: the body is not an ExportTraceServiceRequest in OTLP JSON: %s", ErrInvalid, err)
		}
	default:
		return nil, fmt.Errorf("%w: Content-Type must be %s or %s", ErrInvalid, Protobuf, JSON)
	}
	return req, nil
}

// hexIDsToBase64 rewrites the hex traceId, spanId and parentSpanId of
// spans and their links into the base64 protojson expects.
func hexIDsToBase64(body []byte) ([]byte, error) {
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: the body is not a JSON object: %s", ErrInvalid, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	fix := func(o map[string]any, keys ...string) error {
		for _, k := range keys {
			v, ok := o[k]
			if !ok {
				continue
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%w: %s must be a hex string", ErrInvalid, k)
			}
			b, err := hex.DecodeString(s)
			if err != nil {
				return fmt.Errorf("%w: %s %q is not hex", ErrInvalid, k, s)
			}
			o[k] = base64.StdEncoding.EncodeToString(b)
		}
		return nil
	}
	for _, rs := range list(doc, "resourceSpans", "resource_spans") {
		for _, ss := range list(rs, "scopeSpans", "scope_spans") {
			for _, sp := range list(ss, "spans") {
				if err := fix(sp, "traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"); err != nil {
					return nil, err
				}
				for _, l := range list(sp, "links") {
					if err := fix(l, "traceId", "spanId", "trace_id", "span_id"); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return json.Marshal(doc)
}

// list returns the objects of the first of keys in o that is an array.
func list(o map[string]any, keys ...string) []map[string]any {
	for _, k := range keys {
		a, ok := o[k].([]any)
		if !ok {
			continue
		}
		var out []map[string]any
		for _, v := range a {
			if m, ok := v.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// Result counts what Map did with a request's spans.
type Result struct {
	Spans    int // in the request
	Rejected int // malformed, or too large for a leaf
	Ignored  int // neither GenAI nor MCP spans, without Options.RecordOther
	// Reason describes the first rejection.
	Reason string
}

// Message is the partial-success message of an export: why spans were
// rejected, and how many were ignored ("" when all were recorded).
func (r Result) Message() string {
	switch {
	case r.Rejected > 0 && r.Ignored > 0:
		return fmt.Sprintf("%d spans rejected (first: %s); %d spans ignored: neither GenAI nor MCP", r.Rejected, r.Reason, r.Ignored)
	case r.Rejected > 0:
		return fmt.Sprintf("%d spans rejected (first: %s)", r.Rejected, r.Reason)
	case r.Ignored > 0:
		return fmt.Sprintf("%d spans ignored: neither GenAI nor MCP", r.Ignored)
	}
	return ""
}

// genAIOps are the gen_ai.operation.name values recorded.
var genAIOps = map[string]bool{
	"execute_tool": true, "invoke_agent": true, "create_agent": true, "chat": true,
	"text_completion": true, "generate_content": true, "embeddings": true,
}

// keptAttrs are the span attributes copied into a record, by their
// OpenTelemetry names.
var keptAttrs = []string{
	"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system",
	"gen_ai.request.model", "gen_ai.response.model", "gen_ai.response.id",
	"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
	"gen_ai.request.max_tokens", "gen_ai.request.temperature",
	"gen_ai.response.finish_reasons",
	"gen_ai.agent.id", "gen_ai.agent.name", "gen_ai.conversation.id",
	"gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.type",
	"mcp.method.name", "mcp.session.id", "mcp.resource.uri", "mcp.protocol.version",
	"jsonrpc.request.id", "rpc.response.status_code", "error.type",
	"server.address", "server.port", "network.transport",
}

// ActionOther is the action of the record of a span that is neither GenAI
// nor MCP (Options.RecordOther).
const ActionOther = "otel.span"

// otherAttrs are the span attributes copied into the record of a span that
// is neither GenAI nor MCP: what was called and how it ended, by the
// OpenTelemetry HTTP, database, RPC and messaging conventions. Left out on
// purpose: url.full and url.query (which may carry credentials),
// db.query.text and db.statement (queries with their values), message
// bodies, headers, and every attribute not named here.
var otherAttrs = []string{
	"http.request.method", "http.response.status_code", "http.route",
	"url.scheme", "url.path", "server.address", "server.port",
	"network.protocol.name", "network.transport", "peer.service",
	"db.system.name", "db.system", "db.namespace", "db.operation.name", "db.collection.name",
	"rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "rpc.response.status_code",
	"messaging.system", "messaging.operation.name", "messaging.destination.name",
	"error.type",
}

// Options are what Map does with spans beyond the GenAI and MCP ones.
type Options struct {
	// RecordOther: spans that are neither GenAI nor MCP become records of
	// action ActionOther (with otherAttrs) instead of being ignored.
	RecordOther bool
}

// Map turns the GenAI and MCP spans of req into records, and, with
// o.RecordOther, the others too. A rejected span is left out and counted;
// the others are unaffected.
func Map(req *coltracepb.ExportTraceServiceRequest, o Options) ([]alog.Record, Result) {
	var recs []alog.Record
	var res Result
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				res.Spans++
				rec, ok, err := mapSpan(sp, service, ss.GetScope().GetName(), o)
				switch {
				case err != nil:
					res.Rejected++
					if res.Reason == "" {
						res.Reason = err.Error()
					}
				case !ok:
					res.Ignored++
				default:
					recs = append(recs, rec)
				}
			}
		}
	}
	return recs, res
}

// mapSpan maps one span; ok is false for a span that is neither GenAI nor
// MCP, unless o.RecordOther.
func mapSpan(sp *tracepb.Span, service, scope string, o Options) (alog.Record, bool, error) {
	attrs := map[string]*commonpb.AnyValue{}
	for _, kv := range sp.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue()
	}
	op := attrs["gen_ai.operation.name"].GetStringValue()
	method := attrs["mcp.method.name"].GetStringValue()
	other := !genAIOps[op] && method == ""
	if other && !o.RecordOther {
		return alog.Record{}, false, nil
	}
	if len(sp.GetTraceId()) != 16 || isZero(sp.GetTraceId()) || len(sp.GetSpanId()) != 8 || isZero(sp.GetSpanId()) {
		return alog.Record{}, false, fmt.Errorf("span %q: trace id must be 16 bytes and span id 8, not all zero", clip(sp.GetName()))
	}
	a := map[string]any{
		"trace_id":  hex.EncodeToString(sp.GetTraceId()),
		"span_id":   hex.EncodeToString(sp.GetSpanId()),
		"span.name": clip(sp.GetName()),
		"span.kind": kindName(sp.GetKind()),
	}
	if p := sp.GetParentSpanId(); len(p) == 8 && !isZero(p) {
		a["parent_span_id"] = hex.EncodeToString(p)
	}
	if service != "" {
		a["service.name"] = clip(service)
	}
	if scope != "" {
		a["otel.scope.name"] = clip(scope)
	}
	if s, e := sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano(); s > 0 && s <= math.MaxInt64 {
		a["start_time"] = time.Unix(0, int64(s)).UTC().Format(time.RFC3339Nano)
		if e >= s && e <= math.MaxInt64 {
			a["duration_ms"] = float64((e-s)/1000) / 1000
		}
	}
	kept := keptAttrs
	if other {
		kept = otherAttrs
	}
	for _, k := range kept {
		if v, ok := attrs[k]; ok {
			if x, ok := value(v); ok {
				a[k] = x
			}
		}
	}
	rec := alog.Record{Tool: attrs["gen_ai.tool.name"].GetStringValue(), Outcome: "success"}
	switch {
	case other:
		rec.Tool, rec.Action = "", ActionOther
	case method != "":
		rec.Action = "mcp." + method
		rec.Resource = attrs["mcp.resource.uri"].GetStringValue()
	default:
		rec.Action = "gen_ai." + op
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_OK:
		a["status.code"] = "ok"
	case tracepb.Status_STATUS_CODE_ERROR:
		a["status.code"] = "error"
	default:
		a["status.code"] = "unset"
	}
	if sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		rec.Outcome = "error"
		if m := sp.GetStatus().GetMessage(); m != "" {
			a["status.message"] = clip(m)
		}
	}
	b, err := json.Marshal(a)
	if err != nil {
		return alog.Record{}, false, fmt.Errorf("span %q: %s", clip(sp.GetName()), err)
	}
	rec.Attributes = b
	// The log's own validation decides what a record may hold.
	body, _ := json.Marshal(agentlog.AppendRequest{Entries: []agentlog.Record{rec}})
	checked, err := alog.ParseAppendRequest(body)
	if err != nil {
		return alog.Record{}, false, fmt.Errorf("span %q: %s", clip(sp.GetName()), err)
	}
	return checked[0], true, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// clip bounds a free-text value kept from a span.
func clip(s string) string {
	if len(s) > 256 {
		s = s[:256]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "unspecified"
}

// value converts a scalar attribute value (or an array of scalars, as
// gen_ai.response.finish_reasons is) to JSON.
func value(v *commonpb.AnyValue) (any, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return clip(x.StringValue), true
	case *commonpb.AnyValue_IntValue:
		return x.IntValue, true
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return nil, false
		}
		return x.DoubleValue, true
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue, true
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			if len(out) == 16 {
				break
			}
			if s, ok := value(e); ok {
				if _, nested := s.([]any); !nested {
					out = append(out, s)
				}
			}
		}
		return out, out != nil
	}
	return nil, false
}

// ConfigAction is the action of the system entry that records what OTLP
// ingest does with other spans (RecordConfig).
const ConfigAction = "otlp.configured"

// Principal is who the OTLP setting is recorded by.
var Principal = alog.Principal{ID: "agentlog", Role: "system"}

// configRecord is the attributes of a ConfigAction entry.
type configRecord struct {
	OtherSpans string `json:"other_spans"` // "ignore" or "record"
}

func (o Options) record() configRecord {
	if o.RecordOther {
		return configRecord{OtherSpans: "record"}
	}
	return configRecord{OtherSpans: "ignore"}
}

// RecordConfig records in the log (kind system, action ConfigAction,
// attributes {"other_spans": "ignore"|"record"}) what ingest does with
// spans that are neither GenAI nor MCP, when o differs from the last
// setting recorded, or, if none was, from the default (ignore): an auditor
// then knows from the log itself whether such spans were left out. The
// last setting is read from the log's entries (the query index), not from
// anything a node keeps beside them, so a standby that takes over compares
// with what the old active recorded. It reports whether it appended.
func RecordConfig(ctx context.Context, l *alog.Log, o Options) (bool, error) {
	last := Options{}.record()
	f := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindSystem}, {Field: "action", Value: ConfigAction}}}
	if _, err := l.Search(ctx, f, 0, l.Size(), 0, func(i uint64, leaf []byte) error {
		lf, err := agentlog.ParseLeaf(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if lf.Principal != Principal.ID {
			return nil
		}
		var c configRecord
		if err := json.Unmarshal(lf.Attributes, &c); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		last = c
		return nil
	}); err != nil {
		return false, fmt.Errorf("reading the recorded OTLP setting: %w", err)
	}
	rec := o.record()
	if rec == last {
		return false, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	if _, err := l.Append(ctx, Principal, alog.KindSystem, []alog.Record{{Action: ConfigAction, Attributes: b}}); err != nil {
		return false, fmt.Errorf("recording the OTLP setting: %w", err)
	}
	return true, nil
}
