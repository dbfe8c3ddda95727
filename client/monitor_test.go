package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
	"github.com/agentlog/agentlog/witness/witnesstest"
)

// front is a server whose backend can be switched, as a log that shows
// different views to different clients would.
type front struct {
	h   atomic.Pointer[http.Handler]
	url string
}

func newFront(t *testing.T, h http.Handler) *front {
	f := &front{}
	f.set(h)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*f.h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

func (f *front) set(h http.Handler) { f.h.Store(&h) }

// testWitness is a real witness (c2sp.org/tlog-witness) on loopback.
type testWitness struct {
	url  string
	vkey string
}

func newTestWitness(t *testing.T, name string, logKey note.Verifier) *testWitness {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewTimeSigner(skey, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Signer: s, Store: &witness.MemStore{}, Logs: map[string][]note.Verifier{logKey.Name(): {logKey}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(witness.NewServer(witness.ServerConfig{Witness: w}))
	t.Cleanup(hs.Close)
	return &testWitness{url: hs.URL, vkey: vkey}
}

// cosign submits cp (from log tl, consistent with old) to the witness.
func (w *testWitness) cosign(t *testing.T, tl *testLog, old uint64, cp *checkpoint.Signed) {
	t.Helper()
	var p [][]byte
	if old > 0 && old < cp.Size {
		var err error
		if p, err = tl.l.Tree().ConsistencyProof(old, cp.Size); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(w.url+"/add-checkpoint", "text/plain", bytes.NewReader(witnesstest.Body(old, p, cp.Raw)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("witness answered %d", resp.StatusCode)
	}
}

func monitorPolicy(t *testing.T, keys *checkpoint.Keys, w *testWitness) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte("log " + keys.LogVKey + "\nwitness w1 " + w.vkey + " " + w.url + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMonitorFollowsGrowingLog(t *testing.T) {
	keys := newKeys(t, "monitor.test/log")
	tl := newTestLog(t, keys)
	w := newTestWitness(t, "w1", keys.LogVerifier)
	c, _ := client.New(tl.hs.URL)
	var saved [][]byte
	m, err := c.NewMonitor(client.MonitorConfig{Policy: monitorPolicy(t, keys, w), Save: func(raw []byte) error {
		saved = append(saved, raw)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var old uint64
	for i, n := range []int{5, 1, 300, 17, 0, 1000} {
		if n > 0 {
			cp := tl.add(t, n, "grow")
			w.cosign(t, tl, old, cp)
			old = cp.Size
		}
		r, err := m.Check(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if r.Size != old || r.First != (i == 0) || len(r.Witnesses) != 1 || !r.Witnesses[0].Agrees || r.Witnesses[0].Size != old {
			t.Fatalf("round %d: %+v", i, r)
		}
	}
	if len(saved) != 5 || !bytes.Equal(saved[4], m.Trusted()) {
		t.Fatalf("saved %d checkpoints", len(saved))
	}
	// A monitor restarted from the saved state carries on.
	m2, err := c.NewMonitor(client.MonitorConfig{Policy: monitorPolicy(t, keys, w), Trusted: saved[4]})
	if err != nil {
		t.Fatal(err)
	}
	tl.add(t, 3, "more")
	if r, err := m2.Check(ctx); err != nil || r.Previous != old || r.Size != old+3 {
		t.Fatalf("restarted monitor: %+v, %v", r, err)
	}
}

func TestMonitorDetectsFork(t *testing.T) {
	keys := newKeys(t, "monitor.test/log")
	a := newTestLog(t, keys)
	b := newTestLog(t, keys)
	w := newTestWitness(t, "w1", keys.LogVerifier)
	f := newFront(t, a.srv)
	cpA := a.add(t, 20, "same")
	c, _ := client.New(f.url)
	saves := 0
	m, err := c.NewMonitor(client.MonitorConfig{Policy: monitorPolicy(t, keys, w), Save: func([]byte) error { saves++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// The log now shows another history, signed with the same key.
	b.add(t, 20, "different")
	cpB := b.add(t, 10, "more")
	f.set(b.srv)
	_, err = m.Check(ctx)
	var ie *client.InconsistencyError
	if !errors.As(err, &ie) || !errors.Is(err, client.ErrInconsistent) || ie.Kind != "fork" {
		t.Fatalf("fork not detected: %v", err)
	}
	if !bytes.Equal(ie.Trusted, cpA.Raw) || !bytes.Equal(ie.Other, cpB.Raw) || !bytes.Equal(m.Trusted(), cpA.Raw) || saves != 1 {
		t.Fatalf("evidence %+v, trusted %s, saves %d", ie, m.Trusted(), saves)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cpA.Raw)+string(cpB.Raw)), "\n") {
		if line != "" && !strings.Contains(err.Error(), line) {
			t.Fatalf("error lacks %q:\n%v", line, err)
		}
	}
	// Same size, different root.
	f.set(a.srv)
	a.add(t, 10, "more")
	m2, _ := c.NewMonitor(client.MonitorConfig{Policy: monitorPolicy(t, keys, w), Trusted: cpB.Raw})
	if _, err := m2.Check(ctx); !errors.As(err, &ie) || ie.Reason != "two checkpoints of size 30 with different roots" {
		t.Fatalf("same size fork: %v", err)
	}
}

func TestMonitorDetectsSplitView(t *testing.T) {
	keys := newKeys(t, "monitor.test/log")
	a := newTestLog(t, keys)
	b := newTestLog(t, keys)
	w := newTestWitness(t, "w1", keys.LogVerifier)
	// The witness is shown history B; the monitor history A.
	w.cosign(t, b, 0, b.add(t, 20, "shown-to-the-witness"))
	a.add(t, 30, "shown-to-the-public")
	c, _ := client.New(a.hs.URL)
	m, err := c.NewMonitor(client.MonitorConfig{Policy: monitorPolicy(t, keys, w)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Check(context.Background())
	var ie *client.InconsistencyError
	if !errors.As(err, &ie) || ie.Kind != "split view" || !strings.Contains(ie.Source, "w1") {
		t.Fatalf("split view not detected: %v", err)
	}
	if !bytes.Contains(ie.Other, []byte("\n20\n")) || !bytes.Contains(ie.Trusted, []byte("\n30\n")) {
		t.Fatalf("evidence:\n%s\n%s", ie.Trusted, ie.Other)
	}
	t.Logf("%v", err)
}
