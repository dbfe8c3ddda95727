package interop

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/ackextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/splunkhecreceiver"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
	"github.com/agentlog/agentlog/log/ocsf"
)

var agentlogBuild proctest.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	agentlogBuild.Remove()
	os.Exit(code)
}

// host is the Collector host of the receiver: it holds the extensions.
type host struct {
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// startCollector runs splunkhecreceiver on a loopback port, taking token
// (bearertokenauth with scheme "Splunk"), with indexer acknowledgement
// (ackextension) if ack. It returns the collector's base URL and the
// consumer the receiver hands its logs to.
func startCollector(t *testing.T, token string, ack bool) (string, *consumertest.LogsSink) {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the receiver listens on it itself

	exts := map[component.ID]component.Component{}
	authID := component.MustNewID("bearertokenauth")
	af := bearertokenauthextension.NewFactory()
	acfg := af.CreateDefaultConfig().(*bearertokenauthextension.Config)
	acfg.Scheme = "Splunk"
	acfg.BearerToken = configopaque.String(token)
	auth, err := af.Create(ctx, extensiontest.NewNopSettings(af.Type()), acfg)
	if err != nil {
		t.Fatal(err)
	}
	exts[authID] = auth

	rf := splunkhecreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*splunkhecreceiver.Config)
	rcfg.Endpoint = addr
	rcfg.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: authID}})
	if ack {
		ackID := component.MustNewID("ack")
		kf := ackextension.NewFactory()
		ackExt, err := kf.Create(ctx, extensiontest.NewNopSettings(kf.Type()), kf.CreateDefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		exts[ackID] = ackExt
		rcfg.Ack.Extension = &ackID
	}
	h := host{exts}
	for _, e := range exts {
		if err := e.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	logs := new(consumertest.LogsSink)
	rcv, err := rf.CreateLogs(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rcv.Shutdown(ctx)
		for _, e := range exts {
			e.Shutdown(ctx)
		}
	})
	return "http://" + addr, logs
}

// received is one log record as the receiver made it of a HEC event.
type received struct {
	body                            any // the event, as JSON values
	time                            time.Time
	host, source, sourcetype, index string
}

func records(t *testing.T, logs *consumertest.LogsSink) []received {
	t.Helper()
	var out []received
	for _, ld := range logs.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			attr := func(k string) string {
				v, ok := rl.Resource().Attributes().Get(k)
				if !ok {
					return ""
				}
				return v.AsString()
			}
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lr := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lr.Len(); k++ {
					r := lr.At(k)
					out = append(out, received{body: jsonValue(t, r.Body().AsRaw()), time: r.Timestamp().AsTime(),
						host: attr("host.name"), source: attr("com.splunk.source"), sourcetype: attr("com.splunk.sourcetype"), index: attr("com.splunk.index")})
				}
			}
		}
	}
	return out
}

// jsonValue is v as encoding/json decodes it into an any: the values
// JSON can tell apart, so two are equal when their JSON is.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func healthSinks(url string) (map[string]map[string]any, float64, error) {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var h struct {
		TreeSize float64          `json:"tree_size"`
		Sinks    []map[string]any `json:"sinks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, 0, err
	}
	out := map[string]map[string]any{}
	for _, s := range h.Sinks {
		out[fmt.Sprint(s["name"])] = s
	}
	return out, h.TreeSize, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startAgentlog runs the real binary on data with the sinks file cfg.
func startAgentlog(t *testing.T, data, origin, cfg string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, agentlogBuild.Get(t, "agentlog", "../../../cmd/agentlog"), "agentlog listening on ", "serve", "--listen", "127.0.0.1:0",
		"--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "100ms", "--origin", origin, "--sinks", cfg)
}

// adminClient is a client of the server at url with the bootstrap admin
// token of its data directory.
func adminClient(t *testing.T, url, data string) *client.Client {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(url, client.WithToken(strings.TrimSpace(string(tok))))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// openAgent registers and approves agent hec-agent and opens its session
// for task.
func openAgent(t *testing.T, admin *client.Client, url, task string) *client.Agent {
	t.Helper()
	ctx := context.Background()
	key, _ := agentlog.GenerateAgentKey("hec-agent")
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: "hec-agent", Owner: "platform", PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, "hec-agent"); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(url, client.AgentConfig{ID: "hec-agent", Key: key, Task: task})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestHECToCollector: agentlog serve with two splunk_hec sinks to the
// Collector's receiver, one with the collector's token and one with a
// wrong one. Entries of several kinds (the sinks' configuration, agent
// lifecycle, session, actions, a revocation) arrive as records whose
// bodies are exactly log/ocsf's events of the entries, in order, each
// once, with the HEC metadata; the wrong token is refused (401) and the
// sink says so in /healthz, having delivered nothing. With ack, each
// batch waits for ackextension to report it indexed.
func TestHECToCollector(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(map[bool]string{false: "noack", true: "ack"}[ack], func(t *testing.T) {
			const origin = "hec.example/log"
			url, logs := startCollector(t, "collector-token-0123", ack)
			dir := t.TempDir()
			good, bad := filepath.Join(dir, "good.token"), filepath.Join(dir, "bad.token")
			os.WriteFile(good, []byte("collector-token-0123\n"), 0o600)
			os.WriteFile(bad, []byte("another-token-4567\n"), 0o600)
			cfg := filepath.Join(dir, "sinks.json")
			os.WriteFile(cfg, fmt.Appendf(nil, `{"sinks": [
				{"name": "splunk", "type": "splunk_hec", "url": %q, "token_file": %q, "ack": %v, "index": "agents", "batch_events": 7},
				{"name": "wrong", "type": "splunk_hec", "url": %q, "token_file": %q, "ack": %v}]}`, url, good, ack, url, bad, ack), 0o644)
			p := startAgentlog(t, filepath.Join(dir, "data"), origin, cfg)
			ctx := context.Background()
			admin := adminClient(t, p.URL, filepath.Join(dir, "data"))
			a := openAgent(t, admin, p.URL, "ticket-7")
			for i := range 30 {
				rec := client.Record{Action: "db.query", Tool: "sql", Resource: fmt.Sprintf("customers/%d", i), Outcome: []string{"success", "error", "denied"}[i%3],
					Attributes: client.Attributes(map[string]string{"gen_ai.request.model": "gpt-4o", "note": "<é & \"quoted\">"})}
				if _, err := a.Append(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := admin.RevokeAgent(ctx, "hec-agent"); err != nil {
				t.Fatal(err)
			}

			var size float64
			waitFor(t, "the splunk sink to catch up and the wrong one to fail", func() bool {
				st, sz, err := healthSinks(p.URL)
				if err != nil || st["splunk"] == nil || st["wrong"] == nil {
					return false
				}
				size = sz
				f, _ := st["wrong"]["consecutive_failures"].(float64)
				return st["splunk"]["next_index"] == sz && st["splunk"]["lag_entries"] == 0.0 && f >= 3
			})
			st, _, _ := healthSinks(p.URL)
			if w := st["wrong"]; w["next_index"] != 0.0 || !strings.Contains(fmt.Sprint(w["last_error"]), "401") {
				t.Errorf("wrong token's sink: %v", w)
			}

			got := records(t, logs)
			if len(got) != int(size) {
				t.Fatalf("%d records received for %v entries", len(got), size)
			}
			var first struct {
				Metadata struct {
					Product struct {
						Version string `json:"version"`
					} `json:"product"`
				} `json:"metadata"`
			}
			b, _ := json.Marshal(got[0].body)
			json.Unmarshal(b, &first)
			src := ocsf.Source{Origin: origin, Version: first.Metadata.Product.Version}
			kinds := map[string]int{}
			for i, r := range got {
				leaf, err := admin.Entry(ctx, uint64(i))
				if err != nil {
					t.Fatal(err)
				}
				var l struct {
					Kind string `json:"kind"`
				}
				json.Unmarshal(leaf, &l)
				kinds[l.Kind]++
				e, err := ocsf.Event(src, uint64(i), leaf, nil)
				if err != nil {
					t.Fatal(err)
				}
				wb, err := ocsf.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				var want any
				json.Unmarshal(wb, &want)
				if !reflect.DeepEqual(r.body, want) {
					gb, _ := json.Marshal(r.body)
					t.Fatalf("record %d:\n got %s\nwant %s", i, gb, wb)
				}
				if !r.time.Round(time.Millisecond).Equal(time.UnixMilli(e.Time)) || r.host != origin || r.source != origin || r.sourcetype != "ocsf" || r.index != "agents" {
					t.Errorf("record %d: time %s (entry %d ms) host %q source %q sourcetype %q index %q", i, r.time, e.Time, r.host, r.source, r.sourcetype, r.index)
				}
			}
			if len(kinds) < 4 {
				t.Errorf("entry kinds %v: want at least 4", kinds)
			}
			t.Logf("%d entries (kinds %v) delivered to splunkhecreceiver, ack %v", len(got), kinds, ack)
		})
	}
}

// TestHECToCollectorAcrossSIGKILL: agentlog is killed with SIGKILL while
// an agent appends and its splunk_hec sink (with indexer acknowledgement)
// delivers to the Collector's receiver, then restarted on the same data
// directory. Every entry reaches the receiver as log/ocsf's event, in
// order: after the restart the sink resumes from its stored position, so
// entries may arrive twice (counted) but none is missing.
func TestHECToCollectorAcrossSIGKILL(t *testing.T) {
	const origin = "hec.example/log"
	url, logs := startCollector(t, "collector-token-0123", true)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "good.token")
	os.WriteFile(tokFile, []byte("collector-token-0123\n"), 0o600)
	cfg := filepath.Join(dir, "sinks.json")
	os.WriteFile(cfg, fmt.Appendf(nil, `{"sinks": [{"name": "splunk", "type": "splunk_hec", "url": %q, "token_file": %q, "ack": true, "batch_events": 20}]}`, url, tokFile), 0o644)
	data := filepath.Join(dir, "data")
	p := startAgentlog(t, data, origin, cfg)
	ctx := context.Background()
	a := openAgent(t, adminClient(t, p.URL, data), p.URL, "ticket-8")
	// Appends run until the server dies under them.
	appending := make(chan struct{})
	go func() {
		defer close(appending)
		for i := 0; ; i++ {
			if _, err := a.Append(ctx, client.Record{Action: "db.query", Tool: "sql", Resource: fmt.Sprintf("customers/%d", i), Outcome: "success"}); err != nil {
				return
			}
		}
	}()
	waitFor(t, "the sink to deliver part of the log", func() bool {
		st, _, err := healthSinks(p.URL)
		n, _ := st["splunk"]["next_index"].(float64)
		return err == nil && n >= 100
	})
	p.Kill()
	<-appending

	p = startAgentlog(t, data, origin, cfg)
	admin := adminClient(t, p.URL, data)
	var size float64
	waitFor(t, "the restarted sink to catch up", func() bool {
		st, sz, err := healthSinks(p.URL)
		size = sz
		return err == nil && st["splunk"] != nil && st["splunk"]["next_index"] == sz && st["splunk"]["lag_entries"] == 0.0
	})
	got := records(t, logs)
	var version string
	next, dups := 0, 0
	for k, r := range got {
		var m struct {
			Metadata struct {
				Sequence int `json:"sequence"`
				Product  struct {
					Version string `json:"version"`
				} `json:"product"`
			} `json:"metadata"`
		}
		b, _ := json.Marshal(r.body)
		json.Unmarshal(b, &m)
		i := m.Metadata.Sequence
		switch {
		case i > next:
			t.Fatalf("record %d is entry %d, but entry %d never arrived (lost)", k, i, next)
		case i >= int(size):
			t.Fatalf("record %d is entry %d, beyond the log's %v entries", k, i, size)
		case i < next:
			dups++
		default:
			next++
		}
		version = m.Metadata.Product.Version
		leaf, err := admin.Entry(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		e, err := ocsf.Event(ocsf.Source{Origin: origin, Version: version}, uint64(i), leaf, nil)
		if err != nil {
			t.Fatal(err)
		}
		wb, _ := ocsf.Marshal(e)
		var want any
		json.Unmarshal(wb, &want)
		if !reflect.DeepEqual(r.body, want) {
			t.Fatalf("record %d (entry %d):\n got %s\nwant %s", k, i, b, wb)
		}
	}
	if next != int(size) {
		t.Fatalf("entries 0 to %d arrived, of %v", next-1, size)
	}
	t.Logf("%v entries delivered to splunkhecreceiver across a SIGKILL, %d duplicates", size, dups)
}
