package console_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/console"
	"github.com/agentlog/agentlog/log/identity"
)

const (
	adminTok   = "console-test-admin-token"
	auditorTok = "console-test-auditor-token"
	origin     = "console.test/log"
)

// clock is the log's clock in these tests: entries get the times a test
// sets, so that some fall outside business hours.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fault says what the test server falsifies.
type fault int32

const (
	honest     fault = iota
	flipProof        // one bit of the first inclusion-proof hash
	otherKey         // /checkpoint signed by another key with the log's name
	forkedRoot       // /checkpoint signed by the log's own key over a different root
)

// stack is a real log (Badger on disk, identity store, checkpoint loop, the
// HTTP API) with the console mounted, behind a handler that can falsify
// answers the way a compromised server would.
type stack struct {
	t     testing.TB
	l     *alog.Log
	ids   *identity.Store
	keys  *checkpoint.Keys
	loop  *signer.Loop
	srv   *api.Server
	hs    *httptest.Server
	clock *clock
	fault atomic.Int32
	other *checkpoint.Keys // a different key pair with the same origin
	dir   string
}

// newStack starts a stack; bulk turns off the fsync of each batch, for
// tests that write many entries to read them (an acknowledged entry is
// then durable only at Close).
func newStack(t testing.TB, bulk ...bool) *stack {
	t.Helper()
	s := &stack{t: t, clock: &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	l, err := alog.Open(alog.Config{Dir: filepath.Join(s.dir, "db"), Clock: s.clock.now, BulkLoad: len(bulk) > 0 && bulk[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s.l = l
	if s.ids, err = identity.Open(l.DB(), l, identity.Config{Now: s.clock.now}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ids.Close() })
	if s.keys, _, err = checkpoint.LoadOrCreateKeys(s.dir, origin); err != nil {
		t.Fatal(err)
	}
	if s.other, _, err = checkpoint.LoadOrCreateKeys(t.TempDir(), origin); err != nil {
		t.Fatal(err)
	}
	s.ids.AddStatic(adminTok, alog.Principal{ID: "admin", Role: api.RoleAdmin})
	s.ids.AddStatic(auditorTok, alog.Principal{ID: "auditor", Role: api.RoleAuditor})
	s.loop, err = signer.New(signer.Config{
		Keys: s.keys, Source: l.Tree(), Store: signer.FileStore{Path: filepath.Join(s.dir, "checkpoint")},
		Publish: func(c *checkpoint.Signed) { s.srv.Publish(c) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = api.New(api.Config{Log: l, Identity: s.ids, Loop: s.loop})
	s.hs = httptest.NewServer(s.falsify(console.Handler(s.srv)))
	t.Cleanup(s.hs.Close)
	return s
}

// falsify wraps h with the current fault.
func (s *stack) falsify(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch f := fault(s.fault.Load()); {
		case f == flipProof && r.URL.Path == "/v1/proof/inclusion":
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var p struct {
				Index  uint64   `json:"index"`
				Size   uint64   `json:"size"`
				Hashes [][]byte `json:"hashes"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || len(p.Hashes) == 0 {
				s.t.Errorf("falsifying the proof: %v %s", err, rec.Body)
				return
			}
			p.Hashes[0][7] ^= 0x10
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(p)
		case (f == otherKey || f == forkedRoot) && r.URL.Path == "/checkpoint":
			size := s.l.Size()
			root, err := s.l.Tree().RootAt(size)
			if err != nil {
				s.t.Error(err)
				return
			}
			k := s.other
			if f == forkedRoot {
				k = s.keys
				root = append([]byte(nil), root...)
				root[0] ^= 1
			}
			cp, err := checkpoint.Sign(k, size, root)
			if err != nil {
				s.t.Error(err)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(cp)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// sign signs and publishes a checkpoint of the current tree.
func (s *stack) sign() *checkpoint.Signed {
	s.t.Helper()
	c, err := s.loop.SignNow()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// agent registers and approves an agent and returns a principal for its
// actions in one session.
func (s *stack) agent(id, task string) alog.Principal {
	s.t.Helper()
	admin := alog.Principal{ID: "admin", Role: api.RoleAdmin}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()
	if _, err := s.ids.Register(ctx, admin, identity.AgentSpec{ID: id, Owner: "payments", PublicKey: pub}); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.ids.Approve(ctx, admin, id); err != nil {
		s.t.Fatal(err)
	}
	return alog.Principal{ID: id, Role: api.RoleAgent, Agent: id, Session: "0123456789abcdef", Task: task}
}

// act appends actions by p at time at and returns their indexes.
func (s *stack) act(p alog.Principal, at time.Time, recs ...alog.Record) []uint64 {
	s.t.Helper()
	s.clock.set(at)
	res, err := s.l.Append(context.Background(), p, alog.KindAction, recs)
	if err != nil {
		s.t.Fatal(err)
	}
	var idx []uint64
	for _, r := range res {
		idx = append(idx, r.Index)
	}
	return idx
}

func chromiumPath(t testing.TB) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is not installed (.ci/apt-packages lists Debian's chromium)")
	}
	t.Skip("Chromium is not installed: apt-get install chromium (CI installs it from .ci/apt-packages)")
	return ""
}

// browser starts a headless Chromium with a fresh profile; each call is a
// browser that has seen nothing before. Use tab for more tabs of the same
// profile.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting Chromium: %v", err)
	}
	tctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return tctx
}

// do runs the steps, and on failure shows what the page says.
func do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		body, _ := chromedp.Run(c, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("%v; the page says:\n%s", err, body)
	}
}

func eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// signIn opens the console and signs in with tok and the log's keys.
func (s *stack) signIn(t testing.TB, ctx context.Context, tok string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(s.hs.URL+"/console/#/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), tok),
		chromedp.SetValue(chromedp.ID("logkey"), s.keys.LogVKey),
		chromedp.SetValue(chromedp.ID("timekey"), s.keys.TimeVKey),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
}

func text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return v
}

// exists reports whether sel matches an element now.
func exists(t testing.TB, ctx context.Context, sel string) bool {
	t.Helper()
	return eval[bool](t, ctx, `document.querySelector(`+jsString(sel)+`) !== null`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func hasAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
