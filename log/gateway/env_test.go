package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
)

const adminTok = "admin-secret-token"

// testLog is a real log (Badger on disk, the HTTP API with identities) on
// a loopback HTTP server.
type testLog struct {
	l   *alog.Log
	hs  *httptest.Server
	url string
	// appends counts POST /v1/entries requests; hold, if set, is called
	// with the number of entries of each before it is served.
	appends atomic.Int64
	hold    atomic.Pointer[func(entries int)]
	// checks counts GET /v1/sessions/current requests; while holdCheck
	// is set, they wait for it to be closed.
	checks    atomic.Int64
	holdCheck atomic.Pointer[chan struct{}]
}

func newTestLog(t testing.TB) *testLog {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids.AddStatic(adminTok, alog.Principal{ID: "admin", Role: api.RoleAdmin})
	srv := api.New(api.Config{Log: l, Identity: ids, DeniedBurst: 1 << 20})
	tl := &testLog{l: l}
	tl.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/entries" {
			tl.appends.Add(1)
			if h := tl.hold.Load(); h != nil {
				b, _ := io.ReadAll(r.Body)
				var req struct{ Entries []json.RawMessage }
				json.Unmarshal(b, &req)
				r.Body = io.NopCloser(bytes.NewReader(b))
				(*h)(len(req.Entries))
			}
		}
		if r.Method == http.MethodGet && r.URL.Path == "/v1/sessions/current" {
			tl.checks.Add(1)
			if c := tl.holdCheck.Load(); c != nil {
				<-*c
			}
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(tl.hs.Close)
	tl.url = tl.hs.URL
	return tl
}

// session registers and approves agent id with scope (JSON, "" for none)
// and opens a session for task; it returns the session credential.
func (tl *testLog) session(t testing.TB, id, scope, task string) string {
	t.Helper()
	ctx := context.Background()
	adm, _ := client.New(tl.url, client.WithToken(adminTok))
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	reg := client.AgentRegistration{ID: id, Owner: "team", PublicKey: pub}
	if scope != "" {
		reg.Scope = json.RawMessage(scope)
	}
	if _, err := adm.RegisterAgent(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ApproveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(tl.url, client.AgentConfig{ID: id, Key: priv, Task: task})
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s.Credential
}

// leaves returns the leaves from index from on.
func (tl *testLog) leaves(t *testing.T, from uint64) []*agentlog.Leaf {
	t.Helper()
	var out []*agentlog.Leaf
	for i := from; i < tl.l.Size(); i++ {
		out = append(out, tl.leaf(t, i))
	}
	return out
}

func (tl *testLog) leaf(t *testing.T, i uint64) *agentlog.Leaf {
	t.Helper()
	b, err := tl.l.Entry(i)
	if err != nil {
		t.Fatal(err)
	}
	l, err := agentlog.ParseLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkReceipt checks that receipt names leaf i by its RFC 6962 leaf hash
// and returns the leaf.
func (tl *testLog) checkReceipt(t *testing.T, receipt string) (uint64, *agentlog.Leaf) {
	t.Helper()
	rc, err := ParseReceipt(receipt)
	if err != nil {
		t.Fatalf("receipt %q: %v", receipt, err)
	}
	b, err := tl.l.Entry(rc.Index)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(append([]byte{0}, b...))
	if string(h[:]) != string(rc.LeafHash) {
		t.Fatalf("receipt %q does not name leaf %d (%s)", receipt, rc.Index, b)
	}
	return rc.Index, tl.leaf(t, rc.Index)
}

func attrs(t *testing.T, l *agentlog.Leaf) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(l.Attributes, &m); err != nil {
		t.Fatalf("attributes of %+v: %v", l, err)
	}
	return m
}

// upstream is a tool server that records what it was sent.
type upstream struct {
	hs    *httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	auth  []string // Authorization headers received
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.hs.Close)
	return u
}

func (u *upstream) sawAuth() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...)
}

// newGateway starts a gateway with the configuration file text cfg (in
// which UPSTREAM is replaced by up's URL and TOKENFILE by a 0600 file
// holding "upstream-secret").
func newGateway(t testing.TB, tl *testLog, cfg string, ups map[string]*upstream) *httptest.Server {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "upstream.token")
	if err := os.WriteFile(tf, []byte("upstream-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = strings.ReplaceAll(cfg, "TOKENFILE", tf)
	for name, u := range ups {
		cfg = strings.ReplaceAll(cfg, "{"+name+"}", u.hs.URL)
	}
	p := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(tl.url, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(New(c, Options{}))
	t.Cleanup(hs.Close)
	return hs
}

// dialRaw opens a connection to hs for a hand-written request, with a
// 10 s deadline; it is closed when the test ends.
func dialRaw(t testing.TB, hs *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func do(t *testing.T, method, url, cred, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
