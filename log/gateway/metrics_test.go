package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/client"
)

// metricLines returns the gateway's /metrics lines naming metric.
func metricLines(t *testing.T, url, metric string) map[string]string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, metric) {
			k, v, _ := strings.Cut(l, " ")
			out[k] = v
		}
	}
	return out
}

// TestMetrics: calls are counted by route and outcome; recorded calls
// observe the added latency; appends observe their batch sizes; an append
// the log refuses is counted as an append error.
func TestMetrics(t *testing.T) {
	tl := newTestLog(t)
	cred := tl.session(t, "bot-1", `{"tools":["tools","errs"]}`, "t")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	gw := newGateway(t, tl, `{"session_cache": "1m", "routes": {"tools": {"upstream": "{u}"}, "guarded": {"upstream": "{u}", "scope": "enforce"}}}`, map[string]*upstream{"u": up})
	call := func(path, cred string, want int) {
		t.Helper()
		resp := do(t, "POST", gw.URL+path, cred, "{}")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	before := tl.l.Size()
	call("/tools/a", cred, 200)
	call("/tools/b", cred, 200)
	call("/tools/fail", cred, 500)
	call("/tools/a", "", 401)
	call("/guarded/a", cred, 403)
	recorded := tl.l.Size() - before
	if recorded != 4 {
		t.Fatalf("%d entries recorded, want 4", recorded)
	}
	calls := metricLines(t, gw.URL, "agentlog_gateway_calls_total{")
	for k, want := range map[string]string{
		`agentlog_gateway_calls_total{outcome="success",route="tools"}`:         "2",
		`agentlog_gateway_calls_total{outcome="error",route="tools"}`:           "1",
		`agentlog_gateway_calls_total{outcome="unauthenticated",route="tools"}`: "1",
		`agentlog_gateway_calls_total{outcome="denied",route="guarded"}`:        "1",
	} {
		if calls[k] != want {
			t.Errorf("%s = %q, want %s (all: %v)", k, calls[k], want, calls)
		}
	}
	if len(calls) != 4 {
		t.Errorf("calls counted: %v", calls)
	}
	added := metricLines(t, gw.URL, "agentlog_gateway_added_seconds_count")
	if added[`agentlog_gateway_added_seconds_count{route="tools"}`] != "3" || added[`agentlog_gateway_added_seconds_count{route="guarded"}`] != "1" {
		t.Errorf("added latency observations: %v", added)
	}
	up1 := metricLines(t, gw.URL, "agentlog_gateway_upstream_seconds_count")
	if up1[`agentlog_gateway_upstream_seconds_count{route="tools"}`] != "3" {
		t.Errorf("upstream latency observations: %v", up1)
	}
	batch := metricLines(t, gw.URL, "agentlog_gateway_log_append_entries_sum")
	if batch["agentlog_gateway_log_append_entries_sum"] != "4" {
		t.Errorf("entries appended: %v", batch)
	}

	// The session is closed behind the gateway's cache (1m, so that it
	// holds however slow the machine): the next append
	// is refused by the log.
	req, _ := http.NewRequest(http.MethodDelete, tl.url+"/v1/sessions/current", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("closing the session: %v %v", resp, err)
	}
	call("/tools/a", cred, 401)
	errs := metricLines(t, gw.URL, "agentlog_gateway_log_append_errors_total")
	if errs[`agentlog_gateway_log_append_errors_total{reason="refused"}`] != "1" || errs[`agentlog_gateway_log_append_errors_total{reason="log_down"}`] != "0" {
		t.Errorf("append errors: %v", errs)
	}
}

// TestReservedRouteNames: no route may shadow /healthz or /metrics.
func TestReservedRouteNames(t *testing.T) {
	for _, name := range []string{"metrics", "healthz"} {
		p := filepath.Join(t.TempDir(), "gw.json")
		os.WriteFile(p, []byte(`{"routes": {"`+name+`": {"upstream": "http://127.0.0.1:1"}}}`), 0o600)
		if _, err := Load("http://127.0.0.1:2", p, nil); err == nil || !strings.Contains(err.Error(), "/"+name) {
			t.Errorf("route %s: %v", name, err)
		}
	}
}

// TestRecordConfig: the gateway records its configuration, fail_open
// routes named, with a gateway token; the log refuses any other
// credential, and the gateway reports it.
func TestRecordConfig(t *testing.T) {
	tl := newTestLog(t)
	adm, _ := client.New(tl.url, client.WithToken(adminTok))
	_, gwTok, err := adm.CreateToken(context.Background(), "edge-gw", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	p := filepath.Join(t.TempDir(), "gw.json")
	os.WriteFile(p, []byte(`{"routes": {"crm": {"upstream": "mcp+`+up.hs.URL+`/mcp", "record": "before", "scope": "enforce"}, "wiki": {"upstream": "`+up.hs.URL+`", "fail_open": true}}}`), 0o600)
	cfg, err := Load(tl.url, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fo := cfg.FailOpen(); len(fo) != 1 || fo[0] != "wiki" {
		t.Fatalf("fail_open routes %v", fo)
	}
	g := New(cfg, Options{})
	before := tl.l.Size()
	rc, err := g.RecordConfig(context.Background(), gwTok, "127.0.0.1:8091")
	if err != nil {
		t.Fatal(err)
	}
	i, l := tl.checkReceipt(t, rc.String())
	if i != before || l.Kind != "system" || l.Action != "gateway.configured" || l.Principal != "edge-gw" || l.Role != "gateway" || l.Resource != "127.0.0.1:8091" {
		t.Fatalf("entry %d: %+v", i, l)
	}
	a := attrs(t, l)
	routes, _ := a["routes"].([]any)
	fo, _ := a["fail_open"].([]any)
	if len(routes) != 2 || len(fo) != 1 || fo[0] != "wiki" {
		t.Fatalf("attributes %s", l.Attributes)
	}
	crm, _ := routes[0].(map[string]any)
	if crm["name"] != "crm" || crm["mcp"] != true || crm["record"] != "before" || crm["scope"] != "enforce" || crm["upstream"] != up.hs.URL+"/mcp" || crm["fail_open"] != false {
		t.Fatalf("route crm recorded as %v", crm)
	}
	// Only a gateway token may record it.
	for name, tok := range map[string]string{"admin": adminTok, "session": tl.session(t, "bot-1", "", "t"), "none": ""} {
		var he *client.HTTPError
		_, err := g.RecordConfig(context.Background(), tok, "x")
		if !errors.As(err, &he) || (he.Status != 401 && he.Status != 403) {
			t.Errorf("%s: %v, want 401 or 403", name, err)
		}
	}
}
