package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/anomaly"
)

// TestAnomalyAlertsE2E runs the server with anomaly rules and a signed
// webhook: an agent registered with a scope acts outside it, the alert is
// found with "agentlog query --kind alert", and the webhook receives it
// signed. A bad configuration stops the server with a sentence.
func TestAnomalyAlertsE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binaries")
	}
	bin := agentlogBinary(t)
	ntp := ntptest.Start(t, 0)
	dir := t.TempDir()
	secret := "e2e-webhook-secret-0123456789"
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var received []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(anomaly.SignatureHeader) != anomaly.Sign([]byte(secret), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		received = append(received, v)
		mu.Unlock()
	}))
	defer hook.Close()
	cfgFile := filepath.Join(dir, "anomaly.json")
	cfg := `{"rules":{"scope":true,"hours":true,"rate":true},"webhooks":[{"url":"` + hook.URL + `/alerts","secret_file":"` + secretFile + `"}]}`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", ntp.Addr(), "--anomaly-config", cfgFile, "--checkpoint-interval", "100ms")
	admin := filepath.Join(data, "admin.token")
	key := filepath.Join(dir, "bot.key")
	if out, stderr, code := runBin(t, bin, "agent", "register", "--server", srv.url, "--admin-token-file", admin, "--id", "billing-bot",
		"--scope", "actions=db.*;tools=sql;resources=customers/*", "--key-out", key); code != 0 {
		t.Fatalf("agent register: %s%s", out, stderr)
	}
	out, stderr, code := runBin(t, bin, "session", "open", "--server", srv.url, "--agent-key", key, "--task", "refunds")
	if code != 0 {
		t.Fatalf("session open: %s", stderr)
	}
	sess := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	for _, args := range [][]string{
		{"--action", "db.query", "--tool", "sql", "--resource", "customers/42"},  // in scope
		{"--action", "payment.refund", "--tool", "stripe", "--resource", "ch_1"}, // outside
	} {
		if out, stderr, code := runBin(t, bin, append([]string{"append", "--server", srv.url, "--session-token", sess}, args...)...); code != 0 {
			t.Fatalf("append: %s%s", out, stderr)
		}
	}
	var alerts string
	waitFor(t, "the scope alert in the log", func() bool {
		alerts, _, _ = runBin(t, bin, "query", "--server", srv.url, "--token-file", admin, "--kind", "alert", "--json")
		return strings.Contains(alerts, `"alert.scope"`)
	})
	lines := strings.Split(strings.TrimSpace(alerts), "\n")
	if len(lines) != 2 { // one alert, then the summary
		t.Fatalf("query --kind alert:\n%s", alerts)
	}
	var line struct {
		Index uint64
		Entry struct {
			Agent, Action, Tool, Resource, Principal string
			Attributes                               struct {
				Rule  string
				Entry uint64
			}
		}
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	e := line.Entry
	if e.Agent != "billing-bot" || e.Principal != "agentlog" || e.Tool != "stripe" || e.Resource != "ch_1" || e.Attributes.Rule != "scope" {
		t.Fatalf("alert %+v", e)
	}
	// The alert points at the offending entry.
	entry, _, code := runBin(t, bin, "query", "--server", srv.url, "--token-file", admin, "--action", "payment.refund", "--json")
	if code != 0 || !strings.Contains(entry, `"index":`+jsonNum(e.Attributes.Entry)+`,`) {
		t.Fatalf("the alert names entry %d, the refund is:\n%s", e.Attributes.Entry, entry)
	}
	waitFor(t, "the webhook delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) > 0
	})
	mu.Lock()
	got := received[0]
	mu.Unlock()
	if idx, _ := got["index"].(float64); uint64(idx) != line.Index {
		t.Fatalf("webhook got %v, the alert is entry %d", got, line.Index)
	}

	// A full audit counts the alerts of the range, once a checkpoint
	// covers the alert.
	waitFor(t, "a checkpoint covering the alert", func() bool {
		code, body, err := getBody(srv.url + "/checkpoint")
		if err != nil || code != http.StatusOK {
			return false
		}
		lines := strings.Split(string(body), "\n")
		if len(lines) < 2 {
			return false
		}
		size, err := strconv.ParseUint(lines[1], 10, 64)
		return err == nil && size > line.Index
	})
	pub, err := os.ReadFile(filepath.Join(data, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy")
	os.WriteFile(pol, []byte("log "+strings.TrimSpace(string(pub))+"\nquorum none\n"), 0o644)
	aout, aerr, code := runBin(t, bin, "audit", "--server", srv.url, "--token-file", admin, "--policy", pol)
	if code != 0 || !strings.Contains(aout, "alert.scope 1") {
		t.Fatalf("audit: exit %d\n%s%s", code, aout, aerr)
	}

	// The non-default configuration is on record in the log.
	sys, _, code := runBin(t, bin, "query", "--server", srv.url, "--token-file", admin, "--kind", "system", "--json")
	if code != 0 || !strings.Contains(sys, `"anomaly.configured"`) || !strings.Contains(sys, hook.URL+`/alerts","signed":true`) || strings.Contains(sys, secretFile) {
		t.Fatalf("query --kind system:\n%s", sys)
	}

	// A configuration error stops the server with a sentence.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"rules":{"scope":true,"typo":1}}`), 0o644)
	fresh := filepath.Join(t.TempDir(), "data")
	out, stderr, code = runBin(t, bin, "serve", "--data", fresh, "--listen", "127.0.0.1:0", "--ntp", ntp.Addr(), "--anomaly-config", bad)
	if code == 0 || !strings.Contains(stderr, "bad.json") || !strings.Contains(stderr, "typo") {
		t.Fatalf("serve with a bad anomaly configuration: exit %d\n%s%s", code, out, stderr)
	}
	// So does a webhook secret others can read; neither writes anything.
	loose := filepath.Join(dir, "loose.secret")
	os.WriteFile(loose, []byte(secret), 0o644)
	os.WriteFile(bad, []byte(`{"rules":{"scope":true},"webhooks":[{"url":"https://h.example/x","secret_file":"`+loose+`"}]}`), 0o644)
	out, stderr, code = runBin(t, bin, "serve", "--data", fresh, "--listen", "127.0.0.1:0", "--ntp", ntp.Addr(), "--anomaly-config", bad)
	if code == 0 || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("serve with a readable webhook secret: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a refused start created its data directory (%v)", err)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestAlertsExactlyOnceAcrossCrash appends actions inside and outside an
// agent's scope from many clients, SIGKILLs the server mid-load and
// restarts it: once the rules have caught up, every out-of-scope action in
// the log has exactly one alert, and nothing else has one.
func TestAlertsExactlyOnceAcrossCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	ntp := ntptest.Start(t, 0)
	data := t.TempDir()
	args := []string{"--data", data, "--ntp", ntp.Addr()}
	srv := startServer(t, bin, args...)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin := mustClient(t, srv.url, string(tok))
	key, _ := agentlog.GenerateAgentKey("crash-bot")
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: "crash-bot", Owner: "e2e", PublicKey: key.Public().(ed25519.PublicKey),
		Scope: json.RawMessage(`{"actions":["db.*"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, "crash-bot"); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(srv.url, client.AgentConfig{ID: "crash-bot", Key: key, Task: "crash", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	si, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, srv.url, si.Credential)

	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				recs := []client.Record{{Action: "db.read", Resource: fmt.Sprintf("w%d/%d", w, i)}, {Action: "shell.exec", Resource: fmt.Sprintf("w%d/%d", w, i)}}
				if _, err := c.Append(ctx, recs[:1+i%2]...); err != nil {
					return // the server was killed
				}
				acked.Add(1)
			}
		}()
	}
	waitFor(t, "1500 acknowledged appends", func() bool { return acked.Load() >= 1500 })
	srv.kill() // SIGKILL mid-load, with alerts being recorded
	close(stop)
	wg.Wait()

	srv = startServer(t, bin, args...)
	admin = mustClient(t, srv.url, string(tok))
	waitFor(t, "the rules to catch up after the restart", func() bool {
		h, err := healthz(srv.url)
		if err != nil {
			return false
		}
		an, _ := h["anomaly"].(map[string]any)
		lag, ok := an["lag_entries"].(float64)
		return ok && lag == 0
	})
	// Out-of-scope actions, and alerts by the entry they name.
	var outside []uint64
	if _, err := admin.QueryAll(ctx, url.Values{"action": {"shell.exec"}}, 0, func(m client.QueryMatch) error {
		outside = append(outside, m.Index)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	alerts := map[uint64]int{}
	if _, err := admin.QueryAll(ctx, url.Values{"kind": {"alert"}}, 0, func(m client.QueryMatch) error {
		var e struct {
			Action     string
			Attributes struct{ Entry uint64 }
		}
		if err := json.Unmarshal(m.Entry, &e); err != nil {
			return err
		}
		if e.Action != "alert.scope" {
			return fmt.Errorf("unexpected alert %s", m.Entry)
		}
		alerts[e.Attributes.Entry]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(outside) < 100 {
		t.Fatalf("only %d out-of-scope actions were committed", len(outside))
	}
	for _, i := range outside {
		if alerts[i] != 1 {
			t.Fatalf("out-of-scope entry %d has %d alerts (of %d actions, %d alerts)", i, alerts[i], len(outside), len(alerts))
		}
	}
	if len(alerts) != len(outside) {
		t.Fatalf("%d entries have alerts, %d actions are out of scope", len(alerts), len(outside))
	}
	t.Logf("%d out-of-scope actions, one alert each, across a SIGKILL", len(outside))
}
