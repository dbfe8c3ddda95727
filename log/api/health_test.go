package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/checkpoint/signer"
	alog "github.com/agentlog/agentlog/log"
)

// TestHealthAfterIdleness checks that the first append after an idle spell
// does not make /healthz report "failing": the last checkpoint is old by
// design then, and the append only waits for the next tick. A loop that
// stops completing rounds while the tree grows still fails the check.
func TestHealthAfterIdleness(t *testing.T) {
	dir := t.TempDir()
	l, err := alog.Open(alog.Config{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	keys, _, err := checkpoint.LoadOrCreateKeys(dir, "example.com/health")
	if err != nil {
		t.Fatal(err)
	}
	root, err := l.Tree().RootAt(0)
	if err != nil {
		t.Fatal(err)
	}
	// The last checkpoint was signed an hour ago, and nothing happened since.
	store := signer.FileStore{Path: filepath.Join(dir, "checkpoint")}
	raw, err := checkpoint.SignAt(keys, 0, root, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(raw); err != nil {
		t.Fatal(err)
	}
	loop, err := signer.New(signer.Config{Keys: keys, Source: l.Tree(), Store: store, Refresh: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loop.SignNow(); err != nil { // a round of the loop: nothing due
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), alog.Principal{ID: "admin", Role: RoleAdmin}, alog.KindAction, []alog.Record{{Action: "db.query"}}); err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Log: l, Loop: loop, StaleAfter: 30 * time.Second, Registry: prometheus.NewRegistry()})
	if h := srv.health(); h.Status == "failing" {
		t.Errorf("the first append after an hour of idleness makes /healthz fail: %+v", h)
	}

	// The same state judged with a tolerance the loop has exceeded: failing.
	strict := New(Config{Log: l, Loop: loop, StaleAfter: time.Nanosecond, Registry: prometheus.NewRegistry()})
	if h := strict.health(); h.Status != "failing" {
		t.Errorf("a grown tree with no signing round within StaleAfter is %q, want failing", h.Status)
	}
	// The next round signs the grown tree: healthy under any tolerance.
	if _, err := loop.SignNow(); err != nil {
		t.Fatal(err)
	}
	if h := strict.health(); h.Status == "failing" {
		t.Errorf("after signing the grown tree /healthz is failing: %+v", h)
	}
}

// TestHealthStalledAppends: appends refused for the commit-wait budget
// make /healthz degraded and say so even when no commit was slow (a
// budget shorter than the log's commits: the log commits slower than
// appends arrive).
func TestHealthStalledAppends(t *testing.T) {
	l, err := alog.Open(alog.Config{Dir: t.TempDir(), CommitWait: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := New(Config{Log: l, Registry: prometheus.NewRegistry()})
	if h := srv.health(); h.Status != "ok" || h.Storage.Stalled {
		t.Fatalf("/healthz before any append: %+v", h)
	}
	p := alog.Principal{ID: "admin", Role: RoleAdmin}
	stalled := false
	// Withdrawals are found on a shared tick (1 ms here), so a commit
	// quicker than that may be withdrawn from none: try for a while.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !stalled; {
		_, err := l.Append(context.Background(), p, alog.KindAction, []alog.Record{{Action: "db.query"}})
		switch {
		case errors.Is(err, alog.ErrStalled):
			stalled = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !stalled {
		t.Fatal("no append in 10 s was refused with a budget of 1 ns")
	}
	h := srv.health()
	if h.Status != "degraded" || !h.Storage.Stalled || h.Storage.Slow || h.Storage.StalledAppends == 0 ||
		len(h.Problems) != 1 || !strings.Contains(h.Problems[0], "appends were refused (503) in the last 30 s with nothing written") {
		t.Fatalf("/healthz after a refused append: %+v", h)
	}
}

// TestHealthFailingWithoutNTP: a failing condition (here a full disk)
// stays failing, answered 503, when the clock is also unsynchronized. The
// clock's check set the status to degraded whatever it was, so a log
// without NTP (an air-gapped one) reported a full disk as degraded with
// 200.
func TestHealthFailingWithoutNTP(t *testing.T) {
	l, err := alog.Open(alog.Config{Dir: t.TempDir(), DiskReserve: 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := l.Append(context.Background(), alog.Principal{ID: "admin", Role: RoleAdmin}, alog.KindAction, []alog.Record{{Action: "db.query"}}); !errors.Is(err, alog.ErrDiskFull) {
		t.Fatalf("append on a full disk: %v, want ErrDiskFull", err)
	}
	srv := New(Config{Log: l, Clock: clock.New(clock.Config{}), Registry: prometheus.NewRegistry()})
	h := srv.health()
	if h.Status != "failing" || !h.Disk.Full {
		t.Fatalf("a full disk with an unsynchronized clock: %q, want failing: %+v", h.Status, h)
	}
	found := false
	for _, p := range h.Problems {
		found = found || p == "clock is not synchronized with NTP"
	}
	if !found {
		t.Errorf("the clock's problem is not listed: %q", h.Problems)
	}
	rec := httptest.NewRecorder()
	if err := srv.getHealth(rec, httptest.NewRequest("GET", "/healthz", nil)); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 {
		t.Errorf("/healthz answered %d, want 503", rec.Code)
	}
}
