package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
)

// testLog is a real log (Badger, tree) behind a real HTTP server.
type testLog struct {
	l    *alog.Log
	keys *checkpoint.Keys
	srv  *api.Server
	hs   *httptest.Server
}

func newTestLog(t *testing.T, keys *checkpoint.Keys) *testLog {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := api.New(api.Config{Log: l})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &testLog{l: l, keys: keys, srv: srv, hs: hs}
}

// add appends n records and publishes a checkpoint of the new size.
func (tl *testLog) add(t *testing.T, n int, action string) *checkpoint.Signed {
	t.Helper()
	recs := make([]alog.Record, n)
	for i := range recs {
		recs[i] = alog.Record{Action: action}
	}
	if _, err := tl.l.Append(context.Background(), alog.Principal{ID: "test", Role: "admin"}, alog.KindAction, recs); err != nil {
		t.Fatal(err)
	}
	raw, err := checkpoint.SignAt(tl.keys, tl.l.Size(), tl.l.Tree().Root(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(raw, tl.keys.LogVerifier, tl.keys.TimeVerifier)
	if err != nil {
		t.Fatal(err)
	}
	tl.srv.Publish(cp)
	return cp
}

func newKeys(t *testing.T, origin string) *checkpoint.Keys {
	t.Helper()
	k, _, err := checkpoint.LoadOrCreateKeys(t.TempDir(), origin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyHappyPath(t *testing.T) {
	keys := newKeys(t, "client.test/log")
	tl := newTestLog(t, keys)
	old := tl.add(t, 10, "a")
	tl.add(t, 300, "b")
	c, err := client.New(tl.hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	v, err := client.NewVerifier(keys.LogVKey, keys.TimeVKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cp, err := c.VerifiedCheckpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 310 || cp.Time.IsZero() {
		t.Fatalf("checkpoint size %d time %v", cp.Size, cp.Time)
	}
	for _, i := range []uint64{0, 9, 255, 256, 309} {
		leaf, err := tl.l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.VerifyInclusion(ctx, cp, i, leaf); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if err := c.VerifyConsistency(ctx, old, cp); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRejects(t *testing.T) {
	keys := newKeys(t, "client.test/log")
	tl := newTestLog(t, keys)
	old := tl.add(t, 5, "a")
	cp := tl.add(t, 5, "b")
	c, _ := client.New(tl.hs.URL)
	ctx := context.Background()

	// A checkpoint checked with another log's key is refused.
	other := newKeys(t, "client.test/log")
	v, _ := client.NewVerifier(other.LogVKey, "")
	if _, err := c.VerifiedCheckpoint(ctx, v); err == nil {
		t.Fatal("checkpoint accepted with the wrong log key")
	}
	// A timestamp key that did not sign is refused when required.
	v, _ = client.NewVerifier(keys.LogVKey, other.TimeVKey)
	if _, err := c.VerifiedCheckpoint(ctx, v); err == nil {
		t.Fatal("checkpoint accepted without the required timestamp signature")
	}
	// A leaf that is not the stored one does not verify.
	leaf, _ := tl.l.Entry(3)
	forged := []byte(strings.Replace(string(leaf), `"action":"a"`, `"action":"z"`, 1))
	if err := c.VerifyInclusion(ctx, cp, 3, forged); err == nil {
		t.Fatal("a forged leaf verified")
	}
	if err := c.VerifyInclusion(ctx, cp, 3, leaf); err != nil {
		t.Fatal(err)
	}
	// An entry beyond the checkpoint is not claimed as included.
	if err := c.VerifyInclusion(ctx, old, 7, leaf); err == nil {
		t.Fatal("entry beyond the checkpoint claimed as included")
	}
}

// TestVerifyConsistencyDetectsFork signs two histories with the same key,
// as a log showing different views to different auditors would; the
// consistency check between them fails with both checkpoints in the error.
func TestVerifyConsistencyDetectsFork(t *testing.T) {
	keys := newKeys(t, "client.test/log")
	a := newTestLog(t, keys)
	b := newTestLog(t, keys)
	oldA := a.add(t, 20, "same")
	b.add(t, 20, "different")
	newB := b.add(t, 10, "more")
	c, _ := client.New(b.hs.URL)
	err := c.VerifyConsistency(context.Background(), oldA, newB)
	if err == nil {
		t.Fatal("forked checkpoints verified as consistent")
	}
	if !strings.Contains(err.Error(), string(oldA.Raw)) || !strings.Contains(err.Error(), string(newB.Raw)) {
		t.Fatalf("error lacks the evidence: %v", err)
	}
	// Same size, different root.
	newA := a.add(t, 10, "more")
	if err := c.VerifyConsistency(context.Background(), newA, newB); err == nil {
		t.Fatal("two checkpoints of one size with different roots verified")
	}
}

func TestHTTPErrors(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"append queue is full, retry later"}`))
	}))
	defer hs.Close()
	c, _ := client.New(hs.URL)
	_, err := c.Append(context.Background(), client.Record{Action: "a"})
	if !errors.Is(err, client.ErrPushback) {
		t.Fatalf("503 is not ErrPushback: %v", err)
	}
	var he *client.HTTPError
	if !errors.As(err, &he) || he.RetryAfter != 2*time.Second || he.Message != "append queue is full, retry later" {
		t.Fatalf("HTTPError = %+v", he)
	}
	if _, err := client.New("ftp://x"); err == nil {
		t.Fatal("non-HTTP URL accepted")
	}
}
