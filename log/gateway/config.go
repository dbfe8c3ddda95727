package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog/internal/secretfile"
)

// File is the gateway's configuration file (JSON). Unknown members,
// duplicate names and bad values are refused when it is loaded, with a
// sentence naming the problem. Durations are Go duration strings ("2s").
type File struct {
	// Routes by name; a route named NAME is served at /NAME.
	Routes map[string]RouteFile `json:"routes"`
	// SessionCache is how long an authenticated session credential is
	// trusted before the log is asked again (default "2s", at most "1m").
	SessionCache string `json:"session_cache,omitempty"`
	// LogTimeout bounds one append to the log (default "5s").
	LogTimeout string `json:"log_timeout,omitempty"`
	// BodyTimeout bounds how long a call's request body may take to
	// arrive (default "60s", at most "10m"); a slower one gets 408. The
	// gateway has no read timeout otherwise: an event stream's answer may
	// last.
	BodyTimeout string `json:"body_timeout,omitempty"`
	// MaxBatch caps the entries of one append the gateway sends (default
	// 1000).
	MaxBatch int `json:"max_batch,omitempty"`
	// MaxConcurrent caps the calls in flight; more are refused with 503
	// (default 4096).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// MaxConcurrentAgent caps the calls in flight of one agent (all its
	// sessions together), so that one agent, with long event streams or
	// a slow upstream, cannot take every call slot; more are refused
	// with 503 (default a quarter of max_concurrent).
	MaxConcurrentAgent int `json:"max_concurrent_per_agent,omitempty"`
	// MaxBodyBytes caps the bytes of request bodies and held answers the
	// gateway holds at once (each call's body is held until it ends: it
	// is forwarded from memory; record=after holds answers up to
	// max_buffer_bytes, MCP answers always), taken by declared length, or
	// as a body of undeclared length is read; beyond it a call gets 503,
	// an HTTP answer is streamed instead of held, and an MCP answer fails
	// as an upstream error (default 256 MiB, at least the largest
	// max_request_bytes).
	MaxBodyBytes int64 `json:"max_body_bytes_in_flight,omitempty"`
	// MaxBodyBytesAgent caps the bytes of max_body_bytes_in_flight that
	// one agent's calls hold, so that one agent cannot take it all
	// (default a quarter of it, and at least the largest
	// max_request_bytes).
	MaxBodyBytesAgent int64 `json:"max_body_bytes_per_agent,omitempty"`
	// MaxInflight caps the append requests in flight per session
	// credential (default 4); while they are, further entries queue and
	// share the next request.
	MaxInflight int `json:"max_appends_in_flight,omitempty"`
	// MaxAppends caps the append requests in flight to the log, of all
	// sessions together (default 256, at least max_appends_in_flight).
	MaxAppends int `json:"max_log_appends,omitempty"`
}

// RouteFile configures one route.
type RouteFile struct {
	// Upstream is the upstream's URL; "mcp+http://..." (or mcp+https)
	// makes the route an MCP server over Streamable HTTP. A --route flag
	// of the same name gives it instead.
	Upstream string `json:"upstream,omitempty"`
	// Record is "after" (default: one entry once the upstream answered,
	// durable before the answer is released) or "before" (an entry durable
	// before the call is forwarded, and a second, linked one with its
	// outcome).
	Record string `json:"record,omitempty"`
	// Scope is "record" (default: calls outside the agent's declared scope
	// go through, recorded, and the log's anomaly rules alert) or
	// "enforce" (they are refused with 403 and the refusal is recorded).
	Scope string `json:"scope,omitempty"`
	// FailOpen lets calls through unrecorded when the log cannot be
	// written. Off by default (calls fail closed); each call let through
	// this way is answered with an Agentlog-Unrecorded header.
	FailOpen bool `json:"fail_open,omitempty"`
	// Action is the action recorded for an HTTP route's calls (default
	// "http.<method>", e.g. http.post).
	Action string `json:"action,omitempty"`
	// Tool is the tool recorded for an HTTP route's calls (default: the
	// route's name).
	Tool string `json:"tool,omitempty"`
	// Resources derive an HTTP call's resource from its path (after the
	// route's prefix); the first rule whose path matches wins. Without a
	// matching rule the resource is that path without its leading slash.
	Resources []ResourceRule `json:"resources,omitempty"`
	// ResourceArgs names MCP tool arguments whose value is the call's
	// resource, e.g. ["uri", "customer_id"]: the first one present (a
	// string or a number) is taken. resources/read takes its uri.
	ResourceArgs []string `json:"resource_args,omitempty"`
	// RecordArgs names MCP tool arguments recorded verbatim in the entry
	// (by default only the arguments' SHA-256 is).
	RecordArgs []string `json:"record_args,omitempty"`
	// UpstreamTokenFile is a file (mode 0600) holding the upstream's own
	// credential, sent as "Authorization: Bearer <token>", or in
	// UpstreamHeader as is when that is set.
	UpstreamTokenFile string `json:"upstream_token_file,omitempty"`
	UpstreamHeader    string `json:"upstream_header,omitempty"`
	// MaxRequestBytes caps a call's request body (default 16 MiB).
	MaxRequestBytes int64 `json:"max_request_bytes,omitempty"`
	// MaxBufferBytes caps how much of an answer record=after holds to
	// digest it before release (default 1 MiB); a longer answer, or an
	// event stream, is recorded when its headers arrive (without a
	// response digest) and streamed. An MCP answer is held whole, up to
	// this (default 16 MiB).
	MaxBufferBytes int64 `json:"max_buffer_bytes,omitempty"`
}

// ResourceRule maps request paths to a resource. Path is a pattern of
// slash-separated segments: a literal, "*" (any one segment), "{name}"
// (any one segment, captured) or, last, "{name...}" (the rest, captured).
// Resource is a template in which "{name}" is replaced by the capture.
type ResourceRule struct {
	Path     string `json:"path"`
	Resource string `json:"resource"`
}

// Config is a checked configuration.
type Config struct {
	Log           string // the log's base URL
	Routes        []*Route
	SessionCache  time.Duration
	LogTimeout    time.Duration
	BodyTimeout   time.Duration
	MaxBatch      int
	MaxConcurrent int
	// MaxConcurrentAgent caps one agent's calls in flight.
	MaxConcurrentAgent int
	// MaxBodyBytes caps the request body and held answer bytes held at
	// once, MaxBodyBytesAgent those of one agent's calls.
	MaxBodyBytes, MaxBodyBytesAgent int64
	MaxInflight                     int
	MaxAppends                      int
	// MetricsElsewhere: /metrics is served on another address
	// (--metrics-listen), not among the routes.
	MetricsElsewhere bool
}

// reservedNames are paths the gateway serves itself, which no route may
// take.
var reservedNames = []string{"healthz", "metrics"}

// Route is a checked route.
type Route struct {
	Name     string
	MCP      bool
	Upstream *url.URL
	Before   bool // record=before
	Enforce  bool // scope=enforce
	FailOpen bool
	Action   string
	Tool     string
	rules    []resourceRule
	resArgs  []string
	recArgs  []string
	// upstreamHeader and upstreamValue are the upstream credential's
	// header and value ("" when none).
	upstreamHeader, upstreamValue string
	maxRequest, maxBuffer         int64
}

// Load reads and checks the configuration file at path (which may be
// empty: no file) and the --route flags, each NAME=URL.
func Load(logURL, path string, routeFlags []string) (*Config, error) {
	var f File
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading the gateway configuration: %w", err)
		}
		if err := jsonv2.Unmarshal(b, &f, jsonv2.RejectUnknownMembers(true)); err != nil {
			return nil, fmt.Errorf("gateway configuration %s: %s", path, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if f.Routes == nil {
		f.Routes = map[string]RouteFile{}
	}
	for _, rf := range routeFlags {
		name, u, ok := strings.Cut(rf, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("--route %q: want NAME=URL", rf)
		}
		r := f.Routes[name]
		if r.Upstream != "" && r.Upstream != u {
			return nil, fmt.Errorf("route %q: --route gives upstream %s but the configuration file gives %s", name, u, r.Upstream)
		}
		r.Upstream = u
		f.Routes[name] = r
	}
	return f.Check(logURL)
}

// Check checks f and returns the configuration it describes.
func (f *File) Check(logURL string) (*Config, error) {
	u, err := url.Parse(logURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--log %q: want the log's http(s) URL", logURL)
	}
	c := &Config{Log: strings.TrimRight(logURL, "/"), MaxBatch: f.MaxBatch, MaxConcurrent: f.MaxConcurrent, MaxInflight: f.MaxInflight, MaxAppends: f.MaxAppends}
	if c.SessionCache, err = duration("session_cache", f.SessionCache, 2*time.Second, time.Minute); err != nil {
		return nil, err
	}
	if c.LogTimeout, err = duration("log_timeout", f.LogTimeout, 5*time.Second, 5*time.Minute); err != nil {
		return nil, err
	}
	if c.BodyTimeout, err = duration("body_timeout", f.BodyTimeout, 60*time.Second, 10*time.Minute); err != nil {
		return nil, err
	}
	switch {
	case c.MaxBatch == 0:
		c.MaxBatch = 1000
	case c.MaxBatch < 1 || c.MaxBatch > 10000:
		return nil, fmt.Errorf("max_batch %d: want 1 to 10000", c.MaxBatch)
	}
	switch {
	case c.MaxConcurrent == 0:
		c.MaxConcurrent = 4096
	case c.MaxConcurrent < 1 || c.MaxConcurrent > 1<<20:
		return nil, fmt.Errorf("max_concurrent %d: want 1 to 1048576", c.MaxConcurrent)
	}
	switch c.MaxConcurrentAgent = f.MaxConcurrentAgent; {
	case c.MaxConcurrentAgent == 0:
		c.MaxConcurrentAgent = max(1, c.MaxConcurrent/4)
	case c.MaxConcurrentAgent < 1 || c.MaxConcurrentAgent > c.MaxConcurrent:
		return nil, fmt.Errorf("max_concurrent_per_agent %d: want 1 to max_concurrent (%d)", c.MaxConcurrentAgent, c.MaxConcurrent)
	}
	switch {
	case c.MaxInflight == 0:
		c.MaxInflight = 4
	case c.MaxInflight < 1 || c.MaxInflight > 256:
		return nil, fmt.Errorf("max_appends_in_flight %d: want 1 to 256", c.MaxInflight)
	}
	switch {
	case c.MaxAppends == 0:
		c.MaxAppends = max(256, c.MaxInflight)
	case c.MaxAppends < c.MaxInflight || c.MaxAppends > 4096:
		return nil, fmt.Errorf("max_log_appends %d: want max_appends_in_flight (%d) to 4096", c.MaxAppends, c.MaxInflight)
	}
	if len(f.Routes) == 0 {
		return nil, fmt.Errorf("no routes: give --route NAME=URL (mcp+URL for an MCP server) or routes in the configuration file")
	}
	names := make([]string, 0, len(f.Routes))
	for n := range f.Routes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		r, err := checkRoute(n, f.Routes[n])
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", n, err)
		}
		c.Routes = append(c.Routes, r)
	}
	largest := int64(0)
	for _, r := range c.Routes {
		largest = max(largest, r.maxRequest)
	}
	switch c.MaxBodyBytes = f.MaxBodyBytes; {
	case c.MaxBodyBytes == 0:
		c.MaxBodyBytes = max(256<<20, largest)
	case c.MaxBodyBytes < largest:
		return nil, fmt.Errorf("max_body_bytes_in_flight %d: want at least the largest max_request_bytes (%d)", c.MaxBodyBytes, largest)
	}
	switch c.MaxBodyBytesAgent = f.MaxBodyBytesAgent; {
	case c.MaxBodyBytesAgent == 0:
		c.MaxBodyBytesAgent = max(c.MaxBodyBytes/4, largest)
	case c.MaxBodyBytesAgent < largest || c.MaxBodyBytesAgent > c.MaxBodyBytes:
		return nil, fmt.Errorf("max_body_bytes_per_agent %d: want the largest max_request_bytes (%d) to max_body_bytes_in_flight (%d)", c.MaxBodyBytesAgent, largest, c.MaxBodyBytes)
	}
	return c, nil
}

func duration(name, v string, def, max time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > max {
		return 0, fmt.Errorf("%s %q: want a duration above 0 and at most %s", name, v, max)
	}
	return d, nil
}

// validName reports whether s can name a route: 1 to 64 lowercase letters,
// digits, '-' and '_', starting with a letter or digit.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '-' || c == '_')) {
			return false
		}
	}
	return true
}

func checkRoute(name string, f RouteFile) (*Route, error) {
	if !validName(name) {
		return nil, fmt.Errorf("a route name is 1 to 64 lowercase letters, digits, '-' and '_'")
	}
	if slices.Contains(reservedNames, name) {
		return nil, fmt.Errorf("the gateway serves /%s itself: name the route otherwise", name)
	}
	r := &Route{Name: name, FailOpen: f.FailOpen, Action: f.Action, Tool: f.Tool, resArgs: f.ResourceArgs, recArgs: f.RecordArgs,
		maxRequest: f.MaxRequestBytes, maxBuffer: f.MaxBufferBytes}
	up := f.Upstream
	if up == "" {
		return nil, fmt.Errorf("no upstream: give --route %s=URL or \"upstream\"", name)
	}
	if rest, ok := strings.CutPrefix(up, "mcp+"); ok {
		r.MCP, up = true, rest
	}
	u, err := url.Parse(up)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: want an http(s) URL without credentials, query or fragment", f.Upstream)
	}
	r.Upstream = u
	switch f.Record {
	case "", "after":
	case "before":
		r.Before = true
	default:
		return nil, fmt.Errorf("record %q: want \"before\" or \"after\"", f.Record)
	}
	switch f.Scope {
	case "", "record":
	case "enforce":
		r.Enforce = true
	default:
		return nil, fmt.Errorf("scope %q: want \"record\" or \"enforce\"", f.Scope)
	}
	if r.MCP && (f.Action != "" || f.Tool != "" || len(f.Resources) > 0) {
		return nil, fmt.Errorf("action, tool and resources are for HTTP routes; an MCP route records the method, the tool name and resource_args")
	}
	if !r.MCP && (len(f.ResourceArgs) > 0 || len(f.RecordArgs) > 0) {
		return nil, fmt.Errorf("resource_args and record_args are for MCP routes")
	}
	for _, v := range []struct{ name, v string }{{"action", f.Action}, {"tool", f.Tool}} {
		if len(v.v) > 256 || strings.ContainsFunc(v.v, isControl) {
			return nil, fmt.Errorf("%s %q: at most 256 bytes, no control characters", v.name, v.v)
		}
	}
	if r.Tool == "" {
		r.Tool = name
	}
	for i, rr := range f.Resources {
		c, err := compileRule(rr)
		if err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		r.rules = append(r.rules, c)
	}
	for _, a := range append(slices.Clone(f.ResourceArgs), f.RecordArgs...) {
		if a == "" || len(a) > 256 || strings.ContainsFunc(a, isControl) {
			return nil, fmt.Errorf("argument name %q: 1 to 256 bytes, no control characters", a)
		}
	}
	if f.UpstreamHeader != "" && f.UpstreamTokenFile == "" {
		return nil, fmt.Errorf("upstream_header needs upstream_token_file")
	}
	if f.UpstreamTokenFile != "" {
		tok, err := secretfile.Read(f.UpstreamTokenFile)
		if err != nil {
			return nil, fmt.Errorf("upstream_token_file: %w", err)
		}
		if strings.ContainsAny(tok, "\r\n\x00") {
			return nil, fmt.Errorf("upstream_token_file %s holds more than one line", f.UpstreamTokenFile)
		}
		r.upstreamHeader, r.upstreamValue = "Authorization", "Bearer "+tok
		if f.UpstreamHeader != "" {
			h := http.CanonicalHeaderKey(f.UpstreamHeader)
			if !validHeaderName(h) {
				return nil, fmt.Errorf("upstream_header %q is not a header name", f.UpstreamHeader)
			}
			r.upstreamHeader, r.upstreamValue = h, tok
		}
	}
	switch {
	case r.maxRequest == 0:
		r.maxRequest = 16 << 20
	case r.maxRequest < 0 || r.maxRequest > 1<<30:
		return nil, fmt.Errorf("max_request_bytes %d: want 1 to 1 GiB", r.maxRequest)
	}
	switch {
	case r.maxBuffer == 0 && r.MCP:
		r.maxBuffer = 16 << 20 // an MCP answer is held whole
	case r.maxBuffer == 0:
		r.maxBuffer = 1 << 20
	case r.maxBuffer < 0 || r.maxBuffer > 64<<20:
		return nil, fmt.Errorf("max_buffer_bytes %d: want 1 to 64 MiB", r.maxBuffer)
	}
	return r, nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// resourceRule is a compiled ResourceRule.
type resourceRule struct {
	segs     []string // literal, "*", "{name}" or, last, "{name...}"
	resource string
}

func compileRule(rr ResourceRule) (resourceRule, error) {
	if !strings.HasPrefix(rr.Path, "/") {
		return resourceRule{}, fmt.Errorf("path %q must start with /", rr.Path)
	}
	if rr.Resource == "" || len(rr.Resource) > 2048 || strings.ContainsFunc(rr.Resource, isControl) {
		return resourceRule{}, fmt.Errorf("resource %q: 1 to 2048 bytes, no control characters", rr.Resource)
	}
	segs := strings.Split(strings.TrimPrefix(rr.Path, "/"), "/")
	names := map[string]bool{}
	for i, s := range segs {
		if n, ok := capture(s); ok {
			rest := strings.HasSuffix(n, "...")
			n = strings.TrimSuffix(n, "...")
			if rest && i != len(segs)-1 {
				return resourceRule{}, fmt.Errorf("path %q: {%s...} must be the last segment", rr.Path, n)
			}
			if n == "" || names[n] {
				return resourceRule{}, fmt.Errorf("path %q: captures need distinct names", rr.Path)
			}
			names[n] = true
		} else if strings.ContainsAny(s, "{}") {
			return resourceRule{}, fmt.Errorf("path %q: a capture is a whole segment {name}", rr.Path)
		}
	}
	for _, m := range templateRefs(rr.Resource) {
		if !names[m] {
			return resourceRule{}, fmt.Errorf("resource %q names {%s}, which the path does not capture", rr.Resource, m)
		}
	}
	return resourceRule{segs: segs, resource: rr.Resource}, nil
}

func capture(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

func templateRefs(t string) []string {
	var out []string
	for {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, t[i+1:i+j])
		t = t[i+j+1:]
	}
}

// match returns the rule's resource for path p (starting with "/").
func (rr *resourceRule) match(p string) (string, bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	caps := map[string]string{}
	for i, s := range rr.segs {
		if n, ok := capture(s); ok && strings.HasSuffix(n, "...") {
			if i >= len(segs) {
				return "", false
			}
			caps[strings.TrimSuffix(n, "...")] = strings.Join(segs[i:], "/")
			break
		}
		if i >= len(segs) {
			return "", false
		}
		if n, ok := capture(s); ok {
			caps[n] = segs[i]
		} else if s != "*" && s != segs[i] {
			return "", false
		}
		if i == len(rr.segs)-1 && len(segs) != len(rr.segs) {
			return "", false
		}
	}
	out := rr.resource
	for n, v := range caps {
		out = strings.ReplaceAll(out, "{"+n+"}", v)
	}
	return out, true
}
