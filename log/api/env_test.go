package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
)

// fakeClock is the identity store's clock in tests: time moves only when a
// test says so.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is a test server with an identity store on a fake clock.
type env struct {
	srv        *Server
	hs         *httptest.Server
	l          *alog.Log
	ids        *identity.Store
	clock      *fakeClock
	sessionTok string
	base       uint64
}

// Per-server state for the older helpers that take only a URL.
var sessionToks, bases sync.Map

func sessionTok(url string) string { v, _ := sessionToks.Load(url); return v.(string) }
func baseOf(url string) uint64     { v, _ := bases.Load(url); return v.(uint64) }

func newEnv(t *testing.T, cfg Config, opts ...func(*httptest.Server)) *env {
	t.Helper()
	return newEnvWith(t, cfg, change.Options{}, opts...)
}

// newEnvWith is newEnv with the change store's options.
func newEnvWith(t *testing.T, cfg Config, co change.Options, opts ...func(*httptest.Server)) *env {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC).UnixNano())
	ids, err := identity.Open(l.DB(), l, identity.Config{Now: clk.now, MaxTTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	co.Now = clk.now
	ch, err := change.Open(l.DB(), l, ids, co)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Changes = ch
	ids.AddStatic(adminTok, alog.Principal{ID: "admin", Role: RoleAdmin})
	ids.AddStatic(auditorTok, alog.Principal{ID: "aud", Role: RoleAuditor})
	ids.AddStatic(agentTok, alog.Principal{ID: "bot", Role: RoleAgent})
	cfg.Log, cfg.Identity = l, ids
	if cfg.DeniedBurst == 0 {
		cfg.DeniedBurst = 1 << 20
	}
	srv := New(cfg)
	hs := httptest.NewUnstartedServer(srv)
	for _, o := range opts {
		o(hs)
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return &env{srv: srv, hs: hs, l: l, ids: ids, clock: clk}
}

// agent registers and approves an agent over HTTP with the bootstrap
// admin, and returns its key.
func (e *env) agent(t *testing.T, id string) ed25519.PrivateKey {
	t.Helper()
	priv := e.pendingAgent(t, id)
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents/"+id+"/approve", adminTok, ""); code != 200 {
		t.Fatalf("approve %s: %d %s", id, code, b)
	}
	return priv
}

func (e *env) pendingAgent(t *testing.T, id string) ed25519.PrivateKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(map[string]any{"id": id, "owner": "team-a", "public_key": []byte(pub), "scope": map[string]any{"actions": []string{"db.*"}}})
	if code, _, b := do(t, "POST", e.hs.URL+"/v1/agents", adminTok, string(body)); code != 200 {
		t.Fatalf("register %s: %d %s", id, code, b)
	}
	return priv
}

// openSession opens a session over HTTP with a request signed now (by the
// fake clock) and returns its credential.
func (e *env) openSession(t *testing.T, key ed25519.PrivateKey, id, task string, ttl time.Duration) string {
	t.Helper()
	body := client.SignSessionRequest(id, task, ttl, e.clock.now(), key)
	code, _, b := do(t, "POST", e.hs.URL+"/v1/sessions", "", string(body))
	if code != 200 {
		t.Fatalf("open session for %s: %d %s", id, code, b)
	}
	var o agentlog.SessionInfo
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o.Credential
}

// leaves returns the leaves at [from, size).
func (e *env) leaves(t *testing.T, from uint64) []*agentlog.Leaf {
	t.Helper()
	var out []*agentlog.Leaf
	for i := from; i < e.l.Size(); i++ {
		b, err := e.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := agentlog.ParseLeaf(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lf)
	}
	return out
}

func doHeaders(t *testing.T, method, url, tok, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
