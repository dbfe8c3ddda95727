package anomaly

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookLimitPublishResume: a webhook gets no alert at or beyond
// Limit; PublishHook gets its positions, each already stored, and the
// last once Run ends; a webhook starts at the higher of ResumeHook's
// position and its stored one, at most the log's size, and at the log's
// size with neither; a ResumeHook error stops New.
func TestWebhookLimitPublishResume(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var mu sync.Mutex
	got := map[string][]uint64{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var v struct{ Index uint64 }
		json.Unmarshal(body, &v)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], v.Index)
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := Config{Rules: Rules{Scope: true}, Webhooks: []Webhook{{URL: srv.URL + "/a"}}}
	var limit atomic.Uint64
	limit.Store(f.l.Size())
	var published []uint64
	var pmu sync.Mutex
	o := Options{Log: f.l, Config: cfg, Scope: scopeOf, Poll: 5 * time.Millisecond, retryBase: 5 * time.Millisecond,
		Limit: limit.Load, PublishEvery: 10 * time.Millisecond,
		PublishHook: func(_ context.Context, url string, next uint64) error {
			stored, err := f.l.Position(hookKey(url), 1<<40)
			if err != nil || stored < next {
				t.Errorf("published %d, stored %d (%v)", next, stored, err)
			}
			pmu.Lock()
			published = append(published, next)
			pmu.Unlock()
			return nil
		}}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	mon := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for range 3 {
		f.act(t, mon, "bot", "payment.refund", "stripe", "orders/1") // out of scope
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(rctx) }()
	alerts := func() []uint64 {
		var out []uint64
		for i := range f.l.Size() {
			if leaf, _ := f.l.Entry(i); leaf != nil && json.Valid(leaf) {
				var e struct{ Kind string }
				json.Unmarshal(leaf, &e)
				if e.Kind == "alert" {
					out = append(out, i)
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(alerts()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the rules raised no alerts")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if n := len(got["/a"]); n != 0 {
		t.Errorf("%d alerts delivered beyond the limit", n)
	}
	mu.Unlock()
	limit.Store(1 << 40)
	want := alerts()
	for {
		mu.Lock()
		ok := slices.Equal(got["/a"], want)
		mu.Unlock()
		if ok && w.hookPos[0].Load() > want[len(want)-1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered %v, want %v", got["/a"], want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	pmu.Lock()
	last := published[len(published)-1]
	pmu.Unlock()
	if last != w.hookPos[0].Load() || last <= want[len(want)-1] {
		t.Errorf("last published %d, want the stored %d", last, w.hookPos[0].Load())
	}
	if st := w.Status().Webhooks[0]; st.Published == nil || *st.Published != last || st.PublishError != "" {
		t.Errorf("status %+v", st)
	}

	// A takeover's start: /a keeps its stored position (higher than the
	// published 1), /b resumes at the published 2, /c at the size (the
	// published one is beyond it), /d, with none, at the size.
	size := f.l.Size()
	stored := w.hookPos[0].Load()
	cfg.Webhooks = []Webhook{{URL: srv.URL + "/a"}, {URL: srv.URL + "/b"}, {URL: srv.URL + "/c"}, {URL: srv.URL + "/d"}}
	pub := map[string]uint64{srv.URL + "/a": 1, srv.URL + "/b": 2, srv.URL + "/c": size + 10}
	w2, err := New(Options{Log: f.l, Config: cfg, Scope: scopeOf, ResumeHook: func(_ context.Context, url string) (uint64, bool, error) {
		p, ok := pub[url]
		return p, ok, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var starts []uint64
	for _, h := range w2.Status().Webhooks {
		starts = append(starts, h.Next)
	}
	if !slices.Equal(starts, []uint64{stored, 2, size, size}) {
		t.Errorf("webhooks start at %v, want %v", starts, []uint64{stored, 2, size, size})
	}
	if p, _ := f.l.Position(hookKey(srv.URL+"/b"), 0); p != 2 {
		t.Errorf("stored position of /b %d, want 2", p)
	}
	if _, err := New(Options{Log: f.l, Config: cfg, ResumeHook: func(context.Context, string) (uint64, bool, error) {
		return 0, false, io.ErrUnexpectedEOF
	}}); err == nil {
		t.Error("New ignored a ResumeHook error")
	}
}
