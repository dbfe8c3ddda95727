package client_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
)

// agentTestLog is a real log, identity store and HTTP server on loopback, with
// the identity clock under the test's control.
type agentTestLog struct {
	url   string
	l     *alog.Log
	ids   *identity.Store
	clock atomic.Int64 // offset added to the real time, ns
}

const adminToken = "admin-secret"

func newAgentTestLog(t testing.TB, wrap func(http.Handler) http.Handler) *agentTestLog {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tl := &agentTestLog{l: l}
	tl.ids, err = identity.Open(l.DB(), l, identity.Config{Now: func() time.Time { return time.Now().Add(time.Duration(tl.clock.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	tl.ids.AddStatic(adminToken, alog.Principal{ID: "admin", Role: api.RoleAdmin})
	var h http.Handler = api.New(api.Config{Log: l, Identity: tl.ids})
	if wrap != nil {
		h = wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); l.Close() })
	tl.url = hs.URL
	return tl
}

// provision registers and approves an agent and returns its key.
func (tl *agentTestLog) provision(t testing.TB, id string) ed25519.PrivateKey {
	t.Helper()
	admin, _ := client.New(tl.url, client.WithToken(adminToken))
	key, _ := agentlog.GenerateAgentKey(id)
	ctx := context.Background()
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: id, Owner: "team", PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	return key
}

func (tl *agentTestLog) leaf(t *testing.T, i uint64) *agentlog.Leaf {
	t.Helper()
	b, err := tl.l.Entry(i)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := agentlog.ParseLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	return lf
}

func TestAgentBatchesSignsAndNumbers(t *testing.T) {
	tl := newAgentTestLog(t, nil)
	key := tl.provision(t, "bot")
	a, err := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "deploy-42", BatchSize: 3, Sign: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []client.Appended
	for i, act := range []string{"a1", "a2", "a3", "a4"} {
		res, err := a.Add(ctx, client.Record{Action: act, Attributes: client.Attributes(map[string]string{"i": string(rune('0' + i))})})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res...)
	}
	if len(got) != 3 {
		t.Fatalf("Add sent %d records before the batch was full, want 3", len(got))
	}
	res, err := a.Flush(ctx)
	if err != nil || len(res) != 1 {
		t.Fatalf("Flush: %v %v", res, err)
	}
	got = append(got, res...)
	s := a.Session()
	agent, _ := tl.ids.Agent("bot")
	for i, r := range got {
		lf := tl.leaf(t, r.Index)
		if lf.Agent != "bot" || lf.Task != "deploy-42" || lf.Session != s.Session || lf.Seq != uint64(i+1) {
			t.Fatalf("leaf %d: %+v", i, lf)
		}
		if err := lf.VerifySignature(agent.PublicKey); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
		raw, _ := tl.l.Entry(r.Index)
		if err := verifyLeafSignature(raw, agent.PublicKey); err != nil {
			t.Fatalf("leaf %d, client check: %v", i, err)
		}
		if err := verifyLeafSignature(raw, key.Public().(ed25519.PublicKey)[:]); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	other, _ := agentlog.GenerateAgentKey("other")
	raw, _ := tl.l.Entry(got[0].Index)
	if verifyLeafSignature(raw, other.Public().(ed25519.PublicKey)) == nil {
		t.Fatal("leaf signature verifies with another key")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The closed session's credential no longer works.
	c, _ := client.New(tl.url, client.WithToken(s.Credential))
	var he *client.HTTPError
	if _, err := c.Append(ctx, client.Record{Action: "late"}); !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("append with a closed session: %v", err)
	}
}

func TestAgentRenewsExpiredSession(t *testing.T) {
	tl := newAgentTestLog(t, nil)
	key := tl.provision(t, "bot")
	a, _ := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "t", TTL: time.Minute, RenewBefore: time.Second})
	ctx := context.Background()
	r1, err := a.Append(ctx, client.Record{Action: "x"})
	if err != nil {
		t.Fatal(err)
	}
	first := a.Session().Session
	// The server's clock passes the expiry (still within the window for
	// signed requests); the agent's clock does not know.
	tl.clock.Store(int64(61 * time.Second))
	r2, err := a.Append(ctx, client.Record{Action: "y"})
	if err != nil {
		t.Fatalf("append after expiry: %v", err)
	}
	l1, l2 := tl.leaf(t, r1[0].Index), tl.leaf(t, r2[0].Index)
	if l2.Session == first || l1.Session != first || l2.Seq != 1 {
		t.Fatalf("no new session after expiry: %+v then %+v", l1, l2)
	}
}

// flaky drops the answer of the first append after the server handled it,
// as a lost response would.
type flaky struct {
	rt      http.RoundTripper
	dropped atomic.Bool
}

func (f *flaky) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.rt.RoundTrip(r)
	if err == nil && r.URL.Path == "/v1/entries" && f.dropped.CompareAndSwap(false, true) {
		resp.Body.Close()
		return nil, errors.New("connection reset (injected)")
	}
	return resp, err
}

func TestAgentRetryIsIdempotent(t *testing.T) {
	tl := newAgentTestLog(t, nil)
	key := tl.provision(t, "bot")
	f := &flaky{rt: http.DefaultTransport}
	a, _ := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "t", HTTPClient: &http.Client{Transport: f}})
	before := tl.l.Size()
	res, err := a.Append(context.Background(), client.Record{Action: "pay"}, client.Record{Action: "notify"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.dropped.Load() {
		t.Fatal("no answer was dropped")
	}
	// One session entry and the two records: the retry wrote nothing new.
	if n := tl.l.Size() - before; n != 3 || res[1].Index != tl.l.Size()-1 {
		t.Fatalf("log grew by %d (receipts %v), want 3", n, res)
	}
}

func TestAgentBackpressureAndCancel(t *testing.T) {
	var calls atomic.Int32
	busy := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/entries" {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				json.NewEncoder(w).Encode(map[string]string{"error": "append queue is full, retry later"})
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	tl := newAgentTestLog(t, busy)
	key := tl.provision(t, "bot")
	a, _ := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "t", MaxRetries: 2})
	_, err := a.Append(context.Background(), client.Record{Action: "x"})
	if !errors.Is(err, client.ErrPushback) || calls.Load() != 3 {
		t.Fatalf("after %d calls: %v, want ErrPushback after 3", calls.Load(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Append(ctx, client.Record{Action: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
}

func TestAgentRevoked(t *testing.T) {
	tl := newAgentTestLog(t, nil)
	key := tl.provision(t, "bot")
	a, _ := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "t"})
	ctx := context.Background()
	if _, err := a.Append(ctx, client.Record{Action: "x"}); err != nil {
		t.Fatal(err)
	}
	admin, _ := client.New(tl.url, client.WithToken(adminToken))
	if _, err := admin.RevokeAgent(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	_, err := a.Append(ctx, client.Record{Action: "y"})
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("append after revocation: %v", err)
	}
}

// FuzzParseAgentKey checks the client's key-file parser never panics and
// agrees with the server package's.
func FuzzParseAgentKey(f *testing.F) {
	_, text := agentlog.GenerateAgentKey("bot-1")
	f.Add(text)
	f.Add(agentlog.KeyFilePrefix + "x+")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, key, err := agentlog.ParseKeyFile(s)
		sid, skey, serr := agentlog.ParseKeyFile(s)
		if err != nil {
			if serr == nil {
				t.Fatalf("client refused a key file the server package accepts: %q", s)
			}
			return
		}
		if len(key) != ed25519.PrivateKeySize {
			t.Fatalf("bad key from %q", s)
		}
		if serr == nil && (sid != id || !skey.Equal(key)) {
			t.Fatalf("parsers disagree on %q", s)
		}
	})
}

// TestAgentSequenceHasNoFalseGaps checks a request refused as a whole
// gives its sequence numbers back, so the next records continue the
// sequence without a gap that would look like a dropped record.
func TestAgentSequenceHasNoFalseGaps(t *testing.T) {
	tl := newAgentTestLog(t, nil)
	key := tl.provision(t, "bot")
	a, _ := client.NewAgent(tl.url, client.AgentConfig{ID: "bot", Key: key, Task: "t"})
	ctx := context.Background()
	r1, err := a.Append(ctx, client.Record{Action: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, client.Record{Action: "bad\x00"}, client.Record{Action: "x"}); err == nil {
		t.Fatal("invalid record accepted")
	}
	r2, err := a.Append(ctx, client.Record{Action: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if s1, s2 := tl.leaf(t, r1[0].Index).Seq, tl.leaf(t, r2[0].Index).Seq; s1 != 1 || s2 != 2 {
		t.Fatalf("sequence %d then %d, want 1 then 2", s1, s2)
	}
}

// verifyLeafSignature checks the signature of a leaf as stored, from its
// bytes alone.
func verifyLeafSignature(leaf []byte, pub ed25519.PublicKey) error {
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return err
	}
	return l.VerifySignature(pub)
}
