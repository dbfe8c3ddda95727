package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentlog/agentlog"
)

// JSON-RPC error codes of the gateway's own answers on MCP routes (the
// implementation-defined server error range of JSON-RPC 2.0).
const (
	CodeUnauthorized = -32001 // no valid session credential (HTTP 401)
	CodeRefused      = -32002 // outside the agent's declared scope, scope=enforce (HTTP 403)
	CodeNotRecorded  = -32003 // the log could not be written: failed closed (HTTP 502)
	CodeUpstream     = -32004 // the upstream could not be reached (HTTP 502)
	codeParse        = -32700
	codeInvalid      = -32600
)

// Members of a result's _meta the gateway sets.
const (
	MetaReceipt        = "agentlog/receipt"
	MetaOutcomeReceipt = "agentlog/outcome_receipt"
)

// message is one JSON-RPC 2.0 message as received.
type message struct {
	raw    []byte
	id     json.RawMessage // nil for a notification
	method string
	params json.RawMessage
	// of a response
	result, err json.RawMessage
}

func (m *message) isRequest() bool { return m.method != "" && m.id != nil }

// kind is the first byte of a JSON value: '{', '[', '"', 'n', 't', 'f', or
// '0' for a number; 0 for none.
func kind(v json.RawMessage) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; {
	case c == '-' || '0' <= c && c <= '9':
		return '0'
	default:
		return c
	}
}

func compact(v json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}

// MaxBatchMessages caps the messages of one JSON-RPC batch: each request
// of a batch is a call, with its entries (two with record=before) and its
// receipt header, so a 15 MB batch of 200,000 calls took the gateway from
// 32 MB to 690 MB and wrote 400,000 entries.
const MaxBatchMessages = 1000

// errBatchTooLarge: a batch of more than MaxBatchMessages messages.
var errBatchTooLarge = fmt.Errorf("a batch holds at most %d JSON-RPC messages; send more batches", MaxBatchMessages)

// parseMessages parses a POST body: one message or a batch.
func parseMessages(body []byte) ([]*message, bool, error) {
	v := json.RawMessage(bytes.TrimSpace(body))
	if !json.Valid(v) {
		return nil, false, errors.New("the body is not valid JSON")
	}
	var raws []json.RawMessage
	batch := kind(v) == '['
	if batch {
		if err := json.Unmarshal(v, &raws); err != nil || len(raws) == 0 {
			return nil, true, errors.New("a batch must be a non-empty array of JSON-RPC messages")
		}
		if len(raws) > MaxBatchMessages {
			return nil, true, errBatchTooLarge
		}
	} else {
		raws = []json.RawMessage{v}
	}
	out := make([]*message, len(raws))
	for i, raw := range raws {
		var m struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Method  *string         `json:"method"`
			Params  json.RawMessage `json:"params"`
			Result  json.RawMessage `json:"result"`
			Error   json.RawMessage `json:"error"`
		}
		if kind(raw) != '{' || json.Unmarshal(raw, &m) != nil || m.JSONRPC != "2.0" {
			return nil, batch, fmt.Errorf("message %d is not a JSON-RPC 2.0 object", i)
		}
		if k := kind(m.ID); m.ID != nil && k != '"' && k != '0' && k != 'n' {
			return nil, batch, fmt.Errorf("message %d: id must be a string or a number", i)
		}
		msg := &message{raw: raw, params: m.Params, result: m.Result, err: m.Error}
		if m.ID != nil && kind(m.ID) != 'n' {
			msg.id = m.ID
		}
		if m.Method != nil {
			if *m.Method == "" {
				return nil, batch, fmt.Errorf("message %d: empty method", i)
			}
			msg.method = *m.Method
		} else if msg.id == nil && m.ID == nil {
			return nil, batch, fmt.Errorf("message %d has neither a method nor an id", i)
		}
		out[i] = msg
	}
	return out, batch, nil
}

// idKey is a request id as a map key (its JSON text, compacted).
func idKey(id json.RawMessage) string { return string(compact(id)) }

// idText is a request id as recorded: a string's value, a number's text.
func idText(id json.RawMessage) string {
	var s string
	if kind(id) == '"' && json.Unmarshal(id, &s) == nil {
		return s
	}
	return string(id)
}

// rpcError builds a JSON-RPC error answer to id.
func rpcError(id json.RawMessage, code int, msg string, data map[string]string) json.RawMessage {
	e := map[string]any{"code": code, "message": msg}
	if len(data) > 0 {
		e["data"] = data
	}
	idv := json.RawMessage("null")
	if id != nil {
		idv = json.RawMessage(id)
	}
	return jsonMarshal(map[string]any{"jsonrpc": "2.0", "id": idv, "error": e})
}

// mcpFail answers every request of msgs with a JSON-RPC error (a batch
// answer for a batch) and HTTP status.
func mcpFail(msgs []*message, batch bool, code int, receipts map[string]string) failFunc {
	return func(w http.ResponseWriter, status int, msg string) {
		var out []json.RawMessage
		for _, m := range msgs {
			if m.isRequest() {
				var data map[string]string
				if rc := receipts[idKey(m.id)]; rc != "" {
					data = map[string]string{MetaReceipt: rc}
				}
				out = append(out, rpcError(m.id, code, msg, data))
			}
		}
		if len(out) == 0 {
			out = append(out, rpcError(nil, code, msg, nil))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if batch {
			w.Write(jsonMarshal(out))
		} else {
			w.Write(out[0])
		}
	}
}

// codeFor picks the JSON-RPC code for an HTTP status the shared
// handlers answer with.
func codeFor(status int) int {
	switch status {
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeRefused
	case http.StatusRequestEntityTooLarge, http.StatusBadRequest:
		return codeInvalid
	}
	return CodeNotRecorded
}

func mcpFailAuto(msgs []*message, batch bool) failFunc {
	return func(w http.ResponseWriter, status int, msg string) {
		mcpFail(msgs, batch, codeFor(status), nil)(w, status, msg)
	}
}

func (g *Gateway) serveMCP(w http.ResponseWriter, r *http.Request, rt *route) {
	switch r.Method {
	case http.MethodPost:
		g.serveMCPPost(w, r, rt)
	case http.MethodGet, http.MethodDelete:
		// The server-to-client stream and session termination: passed
		// through for authenticated agents, not recorded as calls.
		se, cred, unrec, ok := g.admit(w, r, rt, mcpFailAuto(nil, false))
		if !ok {
			return
		}
		c := &call{rt: rt, sess: se, cred: cred, start: g.now(), unrec: unrec, restRaw: "/", passthrough: true}
		rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		httpFail(w, http.StatusMethodNotAllowed, "an MCP endpoint takes POST, GET and DELETE")
	}
}

// mcpCall is one JSON-RPC request of a POST in flight.
type mcpCall struct {
	m            *message
	rec          record
	first, final *Receipt
	resp         *message // the upstream's answer to it
}

func (g *Gateway) serveMCPPost(w http.ResponseWriter, r *http.Request, rt *route) {
	// The credential first, as for HTTP routes: a client without one
	// must not make the gateway read and hold a body of up to
	// max_request_bytes (its refusal names no request ids).
	se, cred, unrec, ok := g.admit(w, r, rt, mcpFailAuto(nil, false))
	if !ok {
		return
	}
	body, failed, msg := g.readBody(w, r, rt.maxRequest)
	if failed != 0 {
		code := codeFor(failed) // 413: invalid; 503: not recorded
		switch failed {
		case http.StatusBadRequest:
			code = codeParse
		case http.StatusRequestTimeout:
			code = codeInvalid
		}
		mcpFail(nil, false, code, nil)(w, failed, msg)
		return
	}
	msgs, batch, err := parseMessages(body)
	if err != nil {
		code := codeParse
		if errors.Is(err, errBatchTooLarge) {
			code = codeInvalid
		}
		mcpFail(nil, batch, code, nil)(w, http.StatusBadRequest, err.Error())
		return
	}
	start := g.now()
	var calls []*mcpCall
	byID := map[string]*mcpCall{}
	refused := false
	for _, m := range msgs {
		if !m.isRequest() {
			continue
		}
		if byID[idKey(m.id)] != nil {
			mcpFail(msgs, batch, codeInvalid, nil)(w, http.StatusBadRequest, "two requests of the batch have the same id")
			return
		}
		mc := &mcpCall{m: m, rec: rt.mcpRecord(m, r.Header)}
		c := &call{rt: rt, sess: se, rec: mc.rec}
		if !g.inScope(c) {
			refused = refused || rt.Enforce
		}
		calls = append(calls, mc)
		byID[idKey(m.id)] = mc
	}
	// A batch goes through whole or not at all.
	if refused {
		receipts := map[string]string{}
		g.appendAll(r.Context(), cred, calls, func(mc *mcpCall) ([]byte, bool) {
			if mc.rec.Attributes["gateway.scope"] != "outside" {
				return nil, false
			}
			return mc.rec.withOutcome(OutcomeDenied, map[string]any{"gateway.refused": "outside the agent's declared scope"}).encode(), true
		}, func(mc *mcpCall, rc Receipt) { // called one at a time
			receipts[idKey(mc.m.id)] = rc.String()
		})
		var inOrder []string
		for _, mc := range calls {
			if rc, ok := receipts[idKey(mc.m.id)]; ok {
				inOrder = append(inOrder, rc)
			}
		}
		setReceipts(w.Header(), ReceiptHeader, inOrder)
		if len(receipts) > 0 {
			statsOf(r.Context()).outcome = OutcomeDenied
		}
		mcpFail(msgs, batch, CodeRefused, receipts)(w, http.StatusForbidden, fmt.Sprintf("agentlog: a call is outside agent %s's declared scope; refused and recorded", se.agent))
		return
	}
	failClosed := func(err error) bool {
		c := &call{rt: rt, sess: se}
		ok := g.recordFailed(w, c, err, mcpFailAuto(msgs, batch))
		if ok {
			unrec = c.unrec
		}
		return ok
	}
	if rt.Before && unrec == "" && len(calls) > 0 {
		if err := g.appendAll(r.Context(), cred, calls, func(mc *mcpCall) ([]byte, bool) {
			return mc.rec.withOutcome("", map[string]any{"gateway.phase": "request"}).encode(), true
		}, func(mc *mcpCall, rc Receipt) { mc.first = &rc }); err != nil && !failClosed(err) {
			return
		}
	}

	// Forward.
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, rt.Upstream.String(), bytes.NewReader(body))
	if err != nil {
		mcpFail(msgs, batch, CodeUpstream, nil)(w, http.StatusBadGateway, err.Error())
		return
	}
	copyHeaders(req.Header, r.Header)
	req.Header.Del("Authorization")
	if rt.upstreamHeader != "" {
		req.Header.Set(rt.upstreamHeader, rt.upstreamValue)
	}
	sent := time.Now()
	resp, err := g.upstream.Do(req)
	var answers []*message
	answersBatch := false
	var events []*sseEvent
	var status int
	var hdr http.Header
	upErr := err
	if err == nil {
		defer resp.Body.Close()
		status, hdr = resp.StatusCode, resp.Header
		if len(calls) == 0 {
			// Only notifications or responses: nothing to record.
			b, _ := io.ReadAll(io.LimitReader(resp.Body, rt.maxBuffer))
			writeUpstream(w, hdr, status, b, "")
			return
		}
		// The answer is held whole (its results carry the receipts): its
		// bytes come from max_body_bytes_in_flight, and one the budget
		// cannot hold fails as an upstream error, recorded.
		held := g.holdAnswer(statsOf(r.Context()), resp, rt.maxBuffer+1)
		switch {
		case isEventStream(resp.Header):
			events, answers, upErr = readEvents(held, rt.maxBuffer, byID)
		case strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "application/json"):
			b, rerr := io.ReadAll(io.LimitReader(held, rt.maxBuffer+1))
			switch {
			case errors.Is(rerr, errBodyBudget):
				upErr = fmt.Errorf("the gateway holds the most bytes it may, in all (max_body_bytes_in_flight, %d) or for one agent (max_body_bytes_per_agent, %d), and cannot hold the upstream's answer", g.cfg.MaxBodyBytes, g.cfg.MaxBodyBytesAgent)
			case rerr != nil:
				upErr = rerr
			case int64(len(b)) > rt.maxBuffer:
				upErr = fmt.Errorf("the upstream's answer is larger than %d bytes", rt.maxBuffer)
			default:
				answers, answersBatch, upErr = parseMessages(b)
			}
		default:
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			upErr = fmt.Errorf("the upstream answered %d %s: %s", status, resp.Header.Get("Content-Type"), clean(string(b), 200))
		}
	}
	for _, a := range answers {
		if a.id != nil && a.method == "" {
			if mc := byID[idKey(a.id)]; mc != nil {
				mc.resp = a
			}
		}
	}

	// Record the outcomes.
	dur := g.ms(start)
	st := statsOf(r.Context())
	st.upstream += time.Since(sent)
	if unrec == "" {
		err := g.appendAll(r.Context(), cred, calls, func(mc *mcpCall) ([]byte, bool) {
			a := map[string]any{"duration_ms": dur}
			if status != 0 {
				a["http.response.status_code"] = status
			}
			if mc.first != nil {
				a["gateway.phase"], a["gateway.request_index"] = "response", mc.first.Index
			}
			outcome := OutcomeUpstreamError
			switch {
			case mc.resp == nil && upErr != nil:
				a["error.type"] = clean(upErr.Error(), 256)
			case mc.resp == nil:
				a["error.type"] = "no answer to the request"
			default:
				outcome = mc.resp.outcome(a)
				a["response.sha256"] = sha256Hex(mc.resp.raw)
			}
			if st.outcome == "" || outcome != OutcomeSuccess {
				st.outcome = outcome // the batch's first failure, else success
			}
			return mc.rec.withOutcome(outcome, a).encode(), true
		}, func(mc *mcpCall, rc Receipt) { mc.final = &rc })
		if err != nil {
			st.outcome = ""
			if !failClosed(err) {
				return
			}
		}
	}
	receipts := map[string]string{}
	var firsts, finals []string
	for _, mc := range calls {
		first := mc.final
		if mc.first != nil {
			first = mc.first
			if mc.final != nil {
				finals = append(finals, mc.final.String())
			}
		}
		if first != nil {
			firsts = append(firsts, first.String())
			receipts[idKey(mc.m.id)] = first.String()
		}
	}
	setReceipts(w.Header(), ReceiptHeader, firsts)
	setReceipts(w.Header(), OutcomeReceiptHeader, finals)
	if upErr != nil && len(answers) == 0 {
		if unrec != "" {
			w.Header().Set(UnrecordedHeader, clean(unrec, 512))
		}
		mcpFail(msgs, batch, CodeUpstream, receipts)(w, http.StatusBadGateway, g.upstreamFailed(rt, upErr))
		return
	}
	meta := func(a *message) []byte {
		mc := byID[idKey(a.id)]
		if a.id == nil || a.method != "" || mc == nil || mc.resp != a {
			return a.raw
		}
		return withReceipt(a.raw, mc)
	}
	if events != nil {
		var buf bytes.Buffer
		for _, e := range events {
			if e.msg != nil {
				e.setData(meta(e.msg))
			}
			buf.Write(e.bytes())
		}
		writeUpstream(w, hdr, status, buf.Bytes(), unrec)
		return
	}
	var out []json.RawMessage
	for _, a := range answers {
		out = append(out, meta(a))
	}
	b := []byte(out[0])
	if answersBatch {
		b = jsonMarshal(out)
	}
	writeUpstream(w, hdr, status, b, unrec)
}

// outcome classifies an answer, adding its error code to a.
func (m *message) outcome(a map[string]any) string {
	if m.err != nil {
		var e struct {
			Code int `json:"code"`
		}
		json.Unmarshal(m.err, &e)
		a["error.type"] = strconv.Itoa(e.Code)
		a["rpc.jsonrpc.error_code"] = e.Code
		return OutcomeError
	}
	var r struct {
		IsError bool `json:"isError"`
	}
	if kind(m.result) == '{' && json.Unmarshal(m.result, &r) == nil && r.IsError {
		return OutcomeToolError
	}
	return OutcomeSuccess
}

// withReceipt returns the answer raw with the call's receipts in its
// result's _meta, or for an error in its error's data (when that is an
// object or absent).
func withReceipt(raw []byte, mc *mcpCall) []byte {
	first := mc.final
	if mc.first != nil {
		first = mc.first
	}
	if first == nil {
		return raw
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(raw, &msg) != nil {
		return raw
	}
	// The receipts go in result._meta, or in error.data.
	outer, inner := "result", "_meta"
	if _, ok := msg["result"]; !ok {
		outer, inner = "error", "data"
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(msg[outer], &obj) != nil || obj == nil {
		return raw
	}
	var meta map[string]json.RawMessage
	if m, ok := obj[inner]; ok && json.Unmarshal(m, &meta) != nil {
		return raw // not an object: left as the upstream wrote it
	}
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[MetaReceipt] = jsonMarshal(first.String())
	if mc.first != nil && mc.final != nil {
		meta[MetaOutcomeReceipt] = jsonMarshal(mc.final.String())
	}
	obj[inner] = jsonMarshal(meta)
	msg[outer] = jsonMarshal(obj)
	return jsonMarshal(msg)
}

// appendAll appends, for every call build accepts, its record, all
// concurrently (so they share appends), and calls done with each receipt.
// It returns the first error.
func (g *Gateway) appendAll(ctx context.Context, cred string, calls []*mcpCall, build func(*mcpCall) ([]byte, bool), done func(*mcpCall, Receipt)) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, mc := range calls {
		rec, ok := build(mc)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := g.rec.append(ctx, cred, rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			done(mc, rc)
		}()
	}
	wg.Wait()
	return first
}

// mcpRecord describes a request in an entry.
func (rt *Route) mcpRecord(m *message, h http.Header) record {
	a := map[string]any{
		"gateway.route":      rt.Name,
		"gateway.record":     recordMode(&route{Route: rt}),
		"server.address":     rt.Upstream.Host,
		"mcp.method.name":    clean(m.method, 256),
		"jsonrpc.request.id": clean(idText(m.id), 256),
		"request.sha256":     sha256Hex(m.raw),
	}
	if rt.FailOpen {
		a["gateway.fail_open"] = true
	}
	if s := h.Get("Mcp-Session-Id"); s != "" {
		a["mcp.session.id"] = clean(s, 256)
	}
	if v := h.Get("Mcp-Protocol-Version"); v != "" {
		a["mcp.protocol.version"] = clean(v, 64)
	}
	var p struct {
		Name      string                     `json:"name"`
		URI       string                     `json:"uri"`
		Arguments map[string]json.RawMessage `json:"arguments"`
		Meta      struct {
			Traceparent string `json:"traceparent"`
		} `json:"_meta"`
	}
	var args json.RawMessage
	if kind(m.params) == '{' {
		json.Unmarshal(m.params, &p)
		var raw struct {
			Arguments json.RawMessage `json:"arguments"`
		}
		if json.Unmarshal(m.params, &raw) == nil {
			args = raw.Arguments
		}
	}
	traceAttrs(a, p.Meta.Traceparent)
	rec := record{Record: agentlog.Record{Action: "mcp." + m.method}, Attributes: a}
	switch m.method {
	case "tools/call":
		rec.Tool = p.Name
		a["gen_ai.operation.name"] = "execute_tool"
		a["gen_ai.tool.call.id"] = clean(idText(m.id), 256)
		if args != nil {
			a["mcp.arguments.sha256"] = sha256Hex(compact(args))
		}
		for _, n := range rt.resArgs {
			if v, ok := p.Arguments[n]; ok {
				if s, ok := scalar(v); ok {
					rec.Resource = s
					break
				}
			}
		}
		if len(rt.recArgs) > 0 {
			kept := map[string]json.RawMessage{}
			for _, n := range rt.recArgs {
				if v, ok := p.Arguments[n]; ok && len(v) <= 4096 {
					kept[n] = v
				}
			}
			if len(kept) > 0 {
				a["mcp.arguments"] = kept
			}
		}
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		rec.Resource = p.URI
	case "prompts/get":
		rec.Resource = p.Name
	}
	return rec
}

// scalar is a string's value or a number's text.
func scalar(v json.RawMessage) (string, bool) {
	switch kind(v) {
	case '"':
		var s string
		return s, json.Unmarshal(v, &s) == nil
	case '0':
		return string(v), true
	}
	return "", false
}

// hopHeaders are not forwarded (RFC 9110 section 7.6.1), nor are the
// gateway's own.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", ReceiptHeader, OutcomeReceiptHeader, UnrecordedHeader, ReceiptsInBodyHeader}

func copyHeaders(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append([]string(nil), vv...)
	}
	for _, f := range dst.Values("Connection") {
		for _, k := range strings.Split(f, ",") {
			dst.Del(strings.TrimSpace(k))
		}
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
}

// writeUpstream releases the upstream's answer with the gateway's headers
// already set on w.
func writeUpstream(w http.ResponseWriter, hdr http.Header, status int, body []byte, unrec string) {
	rh := http.Header{}
	copyHeaders(rh, hdr)
	for k, vv := range rh {
		w.Header()[k] = vv
	}
	if unrec != "" {
		w.Header().Set(UnrecordedHeader, clean(unrec, 512))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// sseEvent is one server-sent event (html.spec.whatwg.org, "Server-sent
// events"), kept as its lines to be replayed; msg is its data when that is
// a JSON-RPC message.
type sseEvent struct {
	lines []string // without line ends; data lines included
	msg   *message
}

func (e *sseEvent) setData(b []byte) {
	var out []string
	done := false
	for _, l := range e.lines {
		if l == "data" || strings.HasPrefix(l, "data:") {
			if !done {
				out = append(out, "data: "+string(b))
				done = true
			}
			continue
		}
		out = append(out, l)
	}
	e.lines = out
}

func (e *sseEvent) bytes() []byte {
	var b bytes.Buffer
	for _, l := range e.lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// readEvents reads an event stream until every request in byID has its
// answer or the stream ends, at most max bytes.
func readEvents(r io.Reader, max int64, byID map[string]*mcpCall) ([]*sseEvent, []*message, error) {
	br := bufio.NewReader(io.LimitReader(r, max+1))
	var events []*sseEvent
	var answers []*message
	answered := 0
	var read int64
	cur := &sseEvent{}
	var data []string
	for answered < len(byID) {
		line, err := br.ReadString('\n')
		read += int64(len(line))
		if read > max {
			return events, answers, fmt.Errorf("the upstream's event stream passed %d bytes before every request was answered", max)
		}
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF {
				err = nil
			}
			if len(cur.lines) > 0 {
				events = append(events, cur)
			}
			return events, answers, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			cur.lines = append(cur.lines, line)
			if v, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(v, " "))
			}
			continue
		}
		if len(cur.lines) == 0 {
			continue
		}
		if len(data) > 0 {
			if ms, _, perr := parseMessages([]byte(strings.Join(data, "\n"))); perr == nil && len(ms) == 1 {
				cur.msg = ms[0]
				answers = append(answers, ms[0])
				if m := ms[0]; m.id != nil && m.method == "" && byID[idKey(m.id)] != nil {
					answered++
				}
			}
		}
		events = append(events, cur)
		cur, data = &sseEvent{}, nil
	}
	return events, answers, nil
}
