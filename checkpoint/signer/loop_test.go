package signer

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/checkpointtest"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
)

// memStore is a Store recording calls into a shared event log.
type memStore struct {
	mu     sync.Mutex
	raw    []byte
	saves  int
	events *[]string
	fail   error
}

func (s *memStore) Load() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw, nil
}

func (s *memStore) Save(raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.raw = append([]byte(nil), raw...)
	s.saves++
	if s.events != nil {
		*s.events = append(*s.events, "save")
	}
	return nil
}

type loopFixture struct {
	keys   *checkpoint.Keys
	tree   *checkpointtest.MemTree
	store  *memStore
	clock  *clock.Clock
	ft     *checkpointtest.FakeTime
	events []string
	pubs   []*checkpoint.Signed
}

func newLoopFixture(t *testing.T, leaves int) *loopFixture {
	f := &loopFixture{keys: testKeys(t, nil), tree: checkpointtest.NewMemTree("a", leaves)}
	f.store = &memStore{events: &f.events}
	f.ft = checkpointtest.NewFakeTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f.clock = clock.New(clock.Config{SystemTime: f.ft.Now})
	return f
}

func (f *loopFixture) config() Config {
	return Config{
		Keys: f.keys, Source: f.tree, Store: f.store, Clock: f.clock,
		Refresh: time.Minute,
		Publish: func(s *checkpoint.Signed) {
			f.events = append(f.events, "publish")
			f.pubs = append(f.pubs, s)
		},
	}
}

func TestLoopSignsOnGrowthAndRefresh(t *testing.T) {
	f := newLoopFixture(t, 0)
	l, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if l.Latest() != nil || f.store.saves != 0 {
		t.Fatal("New signed without a stored checkpoint")
	}
	// First call signs even the empty tree.
	s, err := l.SignNow()
	if err != nil {
		t.Fatal(err)
	}
	if s.Size != 0 || f.store.saves != 1 || l.Latest() != s {
		t.Fatalf("first SignNow: %+v, %d saves", s, f.store.saves)
	}
	// Unchanged: nothing signed.
	f.ft.Advance(time.Second)
	if s2, err := l.SignNow(); err != nil || s2 != s || f.store.saves != 1 {
		t.Fatalf("unchanged tree re-signed: %v, %d saves", err, f.store.saves)
	}
	// Growth: signed.
	f.tree.Add("a", 3)
	s, err = l.SignNow()
	if err != nil || s.Size != 3 || f.store.saves != 2 {
		t.Fatalf("after growth: %+v, %v, %d saves", s, err, f.store.saves)
	}
	if !s.Time.Equal(time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Errorf("checkpoint time %v, want the clock's", s.Time)
	}
	// Unchanged until Refresh.
	f.ft.Advance(59 * time.Second)
	if _, err := l.SignNow(); err != nil || f.store.saves != 2 {
		t.Fatalf("re-signed before Refresh: %v, %d saves", err, f.store.saves)
	}
	f.ft.Advance(time.Second)
	s, err = l.SignNow()
	if err != nil || s.Size != 3 || f.store.saves != 3 {
		t.Fatalf("not re-signed at Refresh: %v, %d saves", err, f.store.saves)
	}
	if want := []string{"save", "publish", "save", "publish", "save", "publish"}; !equalStrings(f.events, want) {
		t.Errorf("events %v, want %v", f.events, want)
	}
	if len(f.pubs) != 3 || f.pubs[2] != l.Latest() {
		t.Error("Publish did not get the latest checkpoint")
	}
	st := l.Status()
	if st.Size != 3 || st.Signed != 3 || st.LastError != "" || st.Refusing || !st.LastSigned.Equal(s.Time) {
		t.Errorf("status %+v", st)
	}
	// The stored checkpoint is the latest, with its time.
	stored, err := checkpoint.Open(f.store.raw, f.keys.LogVerifier, f.keys.TimeVerifier)
	if err != nil || stored.Size != 3 || !stored.Time.Equal(s.Time) {
		t.Errorf("stored checkpoint: %+v, %v", stored, err)
	}
}

func TestLoopRestart(t *testing.T) {
	f := newLoopFixture(t, 5)
	l, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	first, err := l.SignNow()
	if err != nil {
		t.Fatal(err)
	}
	// A restart with the same data picks up the stored checkpoint.
	l2, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if got := l2.Latest(); got == nil || got.Size != 5 || !got.Time.Equal(first.Time) {
		t.Fatalf("Latest after restart: %+v", got)
	}
	if _, err := l2.SignNow(); err != nil || f.store.saves != 1 {
		t.Errorf("restarted loop re-signed an unchanged tree: %v, %d saves", err, f.store.saves)
	}
	// A later checkpoint is never dated before the previous one, even if the
	// clock is behind it.
	f.tree.Add("a", 1)
	f.ft = checkpointtest.NewFakeTime(first.Time.Add(-time.Hour))
	f.clock = clock.New(clock.Config{SystemTime: f.ft.Now})
	l3, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l3.SignNow()
	if err != nil || s.Time.Before(first.Time) {
		t.Errorf("checkpoint after a clock behind the last: %+v, %v", s, err)
	}
}

func TestNewLoopRefusesRestoredOldTree(t *testing.T) {
	f := newLoopFixture(t, 20)
	l, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SignNow(); err != nil {
		t.Fatal(err)
	}
	f.tree = checkpointtest.NewMemTree("a", 12) // an old copy of the data directory
	_, err = New(f.config())
	var ie *checkpoint.InconsistentError
	if !errors.As(err, &ie) {
		t.Fatalf("New with a smaller tree: %v, want an *InconsistentError", err)
	}
	if ie.TrustedSize != 20 || ie.OtherSize != 12 {
		t.Errorf("evidence %+v", ie)
	}

	// A fork of the same size is refused as well.
	f.tree = checkpointtest.NewMemTree("b", 20)
	if _, err := New(f.config()); !errors.As(err, &ie) {
		t.Fatalf("New with a forked tree: %v", err)
	}

	// And a stored checkpoint from another log key.
	other := newLoopFixture(t, 20)
	other.keys = testKeys(t, nil)
	other.keys.LogVerifier = mustOtherKeys(t).LogVerifier
	other.store.raw = f.store.raw
	if _, err := New(other.config()); err == nil {
		t.Error("New accepted a checkpoint that does not verify")
	}
}

func TestLoopRefusesFork(t *testing.T) {
	f := newLoopFixture(t, 4)
	l, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SignNow(); err != nil {
		t.Fatal(err)
	}
	*f.tree = *checkpointtest.NewMemTree("b", 8) // the tree is swapped under the loop
	_, err = l.SignNow()
	var ie *checkpoint.InconsistentError
	if !errors.As(err, &ie) {
		t.Fatalf("SignNow after a fork: %v", err)
	}
	if st := l.Status(); !st.Refusing || st.LastError == "" || st.Size != 4 {
		t.Errorf("status %+v", st)
	}
	if f.store.saves != 1 || len(f.pubs) != 1 {
		t.Error("the forked checkpoint was saved or published")
	}
}

func TestLoopRequireNTP(t *testing.T) {
	ntp := ntptest.Start(t, 0)
	f := newLoopFixture(t, 3)
	f.clock = clock.New(clock.Config{Servers: []string{ntp.Addr()}, Timeout: 5 * time.Second})
	cfg := f.config()
	cfg.RequireNTP = true
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SignNow(); !errors.Is(err, ErrClockNotSynced) {
		t.Fatalf("SignNow with an unsynced clock: %v", err)
	}
	if st := l.Status(); !st.Refusing || f.store.saves != 0 {
		t.Errorf("status %+v, %d saves", st, f.store.saves)
	}
	if err := f.clock.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, err := l.SignNow(); err != nil || s.Size != 3 {
		t.Fatalf("SignNow with a synced clock: %v", err)
	}
	if st := l.Status(); st.Refusing || st.LastError != "" {
		t.Errorf("status after recovery %+v", st)
	}

	cfg.Clock = nil
	if _, err := New(cfg); err == nil {
		t.Error("New accepted RequireNTP without a Clock")
	}
}

func TestLoopSaveFailure(t *testing.T) {
	f := newLoopFixture(t, 3)
	f.store.fail = errors.New("disk full")
	l, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SignNow(); err == nil {
		t.Fatal("SignNow succeeded although Save failed")
	}
	if l.Latest() != nil || len(f.pubs) != 0 {
		t.Error("a checkpoint that was not saved became the latest or was published")
	}
}

func TestLoopRun(t *testing.T) {
	f := newLoopFixture(t, 2)
	cfg := f.config()
	published := make(chan *checkpoint.Signed, 1)
	cfg.Publish = func(s *checkpoint.Signed) { published <- s }
	cfg.Interval = time.Hour // only the immediate first SignNow runs
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	if s := <-published; s.Size != 2 {
		t.Errorf("Run published size %d", s.Size)
	}
	cancel()
	<-done
}

func TestFileStore(t *testing.T) {
	fs := FileStore{Path: filepath.Join(t.TempDir(), "checkpoint")}
	if b, err := fs.Load(); b != nil || err != nil {
		t.Fatalf("empty store: %q, %v", b, err)
	}
	if err := fs.Save([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := fs.Save([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.Load(); string(b) != "two\n" || err != nil {
		t.Errorf("Load = %q, %v", b, err)
	}
}

func mustOtherKeys(t *testing.T) *checkpoint.Keys {
	k, _, err := checkpoint.LoadOrCreateKeys(t.TempDir(), testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
