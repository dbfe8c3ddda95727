package api

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog/checkpoint"
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
