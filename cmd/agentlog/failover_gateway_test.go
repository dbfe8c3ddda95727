package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
)

// TestFailoverKeepsGatewayConfig: a real gateway with a fail_open route
// records its configuration on the active (--durability replicated); the
// standby answers GET /v1/gateways as the active does while it follows,
// and, after the active is killed with SIGKILL and it takes over, still
// does; the gateway started again against the new active with another
// configuration is recorded after the old one, which it counts. The
// active runs with --otlp-other-spans record and the standby without: the
// new active records its own setting, since it differs from the last one
// in the log (the old active's), though this node never recorded one.
func TestFailoverKeepsGatewayConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	fp := startFailoverPairWith(t, "failover-gateway.example", false, []string{"--otlp-other-spans", "record"})
	ctx := context.Background()
	adminTok, _ := os.ReadFile(filepath.Join(fp.dataA, "admin.token"))
	admin, sAdmin := mustClient(t, fp.a.url, string(adminTok)), mustClient(t, fp.s.url, string(adminTok))
	_, gwTok, err := admin.CreateToken(ctx, "gw-prod", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "gateway.token")
	if err := os.WriteFile(tokFile, []byte(gwTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) }))
	defer up.Close()
	gateway := func(logURL, config string) *proctest.Proc {
		t.Helper()
		p := filepath.Join(dir, "gateway.json")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(config, "UP", up.URL)), 0o644); err != nil {
			t.Fatal(err)
		}
		return proctest.Start(t, fp.bin, "agentlog gateway listening on ", "gateway", "--log", logURL, "--listen", "127.0.0.1:0",
			"--config", p, "--token-file", tokFile)
	}
	g := gateway(fp.a.url, `{"routes": {"tools": {"upstream": "UP", "fail_open": true}, "crm": {"upstream": "mcp+UP/mcp", "record": "before", "scope": "enforce"}}}`)
	listen := strings.TrimPrefix(g.URL, "http://")

	want, err := admin.Gateways(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Gateways) != 1 {
		t.Fatalf("the active's recorded gateways: %+v", want)
	}
	w := want.Gateways[0]
	if w.Principal != "gw-prod" || w.Listen != listen || w.Recorded != 1 || !reflect.DeepEqual(w.FailOpen, []string{"tools"}) || len(w.Routes) != 2 {
		t.Fatalf("the active's recorded gateway: %+v (listening on %s)", w, listen)
	}
	leaf, err := admin.Entry(ctx, w.Index)
	if err != nil {
		t.Fatal(err)
	}
	same := func(c *client.Client) bool {
		got, err := c.Gateways(ctx)
		return err == nil && reflect.DeepEqual(got.Gateways, want.Gateways)
	}
	// The standby, following the bucket, knows it before any takeover.
	waitFor(t, "the standby to answer the active's recorded gateways", func() bool { return same(sAdmin) })
	g.Kill()

	fp.a.kill()
	waitFor(t, "the standby to take over", func() bool {
		h, err := healthz(fp.s.url)
		if err != nil {
			return false
		}
		m, _ := h["mirror"].(map[string]any)
		return m["role"] == "active"
	})
	if !same(sAdmin) {
		got, err := sAdmin.Gateways(ctx)
		t.Fatalf("the new active's recorded gateways: %+v %v, want %+v", got, err, want)
	}
	if got, err := sAdmin.Entry(ctx, w.Index); err != nil || string(got) != string(leaf) {
		t.Fatalf("entry %d on the new active: %s %v, want %s", w.Index, got, err, leaf)
	}

	otlpSettings := func() []string {
		var out []string
		if _, err := sAdmin.QueryAll(ctx, url.Values{"action": {"otlp.configured"}}, 0, func(m client.QueryMatch) error {
			var l struct {
				Attributes struct {
					OtherSpans string `json:"other_spans"`
				}
			}
			if err := json.Unmarshal(m.Entry, &l); err != nil {
				return err
			}
			out = append(out, l.Attributes.OtherSpans)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitFor(t, "the new active to record its OTLP setting", func() bool { return len(otlpSettings()) == 2 })
	if got := otlpSettings(); !reflect.DeepEqual(got, []string{"record", "ignore"}) {
		t.Fatalf("OTLP settings recorded: %v, want the old active's record, then the new active's ignore", got)
	}

	// The gateway, started again on the same address against the new
	// active with tools no longer fail_open and crm fail_open.
	p := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(`{"routes": {"tools": {"upstream": "UP"}, "crm": {"upstream": "mcp+UP/mcp", "fail_open": true}}}`, "UP", up.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	proctest.Start(t, fp.bin, "agentlog gateway listening on ", "gateway", "--log", fp.s.url, "--listen", listen, "--config", p, "--token-file", tokFile)
	got, err := sAdmin.Gateways(ctx)
	if err != nil || len(got.Gateways) != 1 {
		t.Fatalf("after the gateway's restart: %+v %v", got, err)
	}
	if n := got.Gateways[0]; n.Listen != listen || n.Recorded != 2 || n.Index <= w.Index || !reflect.DeepEqual(n.FailOpen, []string{"crm"}) {
		t.Fatalf("after the gateway's restart: %+v, want crm fail_open, recorded twice, after entry %d", n, w.Index)
	}
}
