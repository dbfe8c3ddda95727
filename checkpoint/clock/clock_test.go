package clock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/checkpointtest"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
)

// newFakeClock returns a Clock whose system time is start until advanced.
func newFakeClock(cfg Config, start time.Time) (*Clock, *checkpointtest.FakeTime) {
	ft := checkpointtest.NewFakeTime(start)
	cfg.SystemTime = ft.Now
	return New(cfg), ft
}

// within reports whether got is within tol of want.
func within(got, want, tol time.Duration) bool { return got-want <= tol && want-got <= tol }

const ntpTolerance = 2 * time.Second // generous: loopback answers in microseconds

func startServers(t *testing.T, offsets ...time.Duration) ([]*ntptest.Server, []string) {
	var servers []*ntptest.Server
	var addrs []string
	for _, o := range offsets {
		s := ntptest.Start(t, o)
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	return servers, addrs
}

func TestClockSync(t *testing.T) {
	servers, addrs := startServers(t, 90*time.Second, 90*time.Second, 90*time.Second)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second})
	if st := c.Status(); st.Synced || !st.Degraded || st.Servers != 3 {
		t.Errorf("before sync: %+v", st)
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Now()); !within(d, 90*time.Second, ntpTolerance) {
		t.Errorf("Now() - time.Now() = %v, want about 90s", d)
	}
	st := c.Status()
	if !st.Synced || st.Degraded || st.Answered != 3 || st.Used != 3 || st.LastError != "" || !within(st.Offset, 90*time.Second, ntpTolerance) {
		t.Errorf("after sync: %+v", st)
	}
	if d := time.Until(st.LastSync); !within(d, 90*time.Second, ntpTolerance) {
		t.Errorf("LastSync %v is not about now+90s", st.LastSync)
	}
	for i, s := range servers {
		if s.Requests() != 1 {
			t.Errorf("server %d got %d requests", i, s.Requests())
		}
	}
}

func TestClockDiscardsOutlier(t *testing.T) {
	_, addrs := startServers(t, 90*time.Second, time.Hour, 90*time.Second)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second})
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Now()); !within(d, 90*time.Second, ntpTolerance) {
		t.Errorf("Now() - time.Now() = %v, want about 90s (the +1h server is an outlier)", d)
	}
	if st := c.Status(); st.Answered != 3 || st.Used != 2 {
		t.Errorf("answered %d used %d, want 3 and 2", st.Answered, st.Used)
	}
}

func TestClockNoAnswer(t *testing.T) {
	servers, addrs := startServers(t, 90*time.Second, 90*time.Second)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second})
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		s.SetSilent(true)
	}
	c.cfg.Timeout = 100 * time.Millisecond // a silent server costs one timeout
	err := c.Sync(context.Background())
	if err == nil {
		t.Fatal("Sync succeeded with no server answering")
	}
	st := c.Status()
	if !st.Degraded || st.Answered != 0 || st.LastError == "" {
		t.Errorf("status %+v, want degraded", st)
	}
	if !st.Synced {
		t.Error("a recent good sync should still count as synced")
	}
	if d := time.Until(c.Now()); !within(d, 90*time.Second, ntpTolerance) {
		t.Errorf("the clock lost its offset: Now() - time.Now() = %v", d)
	}

	// A clock that never synced.
	c = New(Config{Servers: addrs, Timeout: 100 * time.Millisecond})
	if err := c.Sync(context.Background()); err == nil {
		t.Fatal("Sync succeeded with no server answering")
	}
	if st := c.Status(); st.Synced || !st.Degraded || st.Offset != 0 {
		t.Errorf("never-synced status %+v", st)
	}
	if d := time.Until(c.Now()); !within(d, 0, ntpTolerance) {
		t.Errorf("unsynced clock is off the system clock by %v", d)
	}

	// No servers at all.
	c = New(Config{})
	if err := c.Sync(context.Background()); err == nil || !c.Status().Degraded {
		t.Errorf("Sync with no servers: %v, %+v", err, c.Status())
	}
}

// TestClockNeverBackwards re-syncs to a smaller offset while other goroutines
// read the clock.
func TestClockNeverBackwards(t *testing.T) {
	servers, addrs := startServers(t, 90*time.Second, 90*time.Second, 90*time.Second)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second})
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := c.Now()
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				now := c.Now()
				if now.Before(prev) {
					errs <- errors.New("Now went from " + prev.String() + " back to " + now.String())
					return
				}
				prev = now
			}
		}()
	}
	before := c.Now()
	for _, s := range servers {
		s.SetOffset(30 * time.Second)
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := c.Now()
	close(stop)
	wg.Wait()
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if after.Before(before) {
		t.Errorf("Now went back from %v to %v across the re-sync", before, after)
	}
	if st := c.Status(); !within(st.Offset, 30*time.Second, ntpTolerance) {
		t.Errorf("offset %v after re-sync, want about 30s", st.Offset)
	}
	// Time is held near the old timeline, about a minute ahead of the new one.
	if d := time.Until(after); !within(d, 90*time.Second, ntpTolerance) {
		t.Errorf("held time is %v ahead of the system clock, want about 90s", d)
	}
}

// TestClockHoldsThenCatchesUp drives the clock with a fake system time.
func TestClockHoldsThenCatchesUp(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, ft := newFakeClock(Config{}, start)
	ft.Advance(time.Second)
	if got := c.Now(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("Now = %v, want start+1s", got)
	}
	// A correction of -10s at start+1s.
	c.anchor.Store(&anchor{sys: ft.Now(), true: ft.Now().Add(-10 * time.Second)})
	ft.Advance(5 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(time.Second)) {
		t.Errorf("during the hold Now = %v, want it held at start+1s", got)
	}
	ft.Advance(10 * time.Second) // the corrected timeline is now at start+6s
	if got := c.Now(); !got.Equal(start.Add(6 * time.Second)) {
		t.Errorf("after catching up Now = %v, want start+6s", got)
	}
	// A forward correction steps at once.
	c.anchor.Store(&anchor{sys: ft.Now(), true: ft.Now().Add(time.Minute)})
	if got := c.Now(); !got.Equal(start.Add(16*time.Second + time.Minute)) {
		t.Errorf("after a forward step Now = %v", got)
	}
}

func TestClockStaleIsNotSynced(t *testing.T) {
	_, addrs := startServers(t, 0)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second, SyncInterval: time.Minute})
	ft := checkpointtest.NewFakeTime(time.Now())
	c.sys = ft.Now
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.Status().Synced {
		t.Fatal("not synced after a sync")
	}
	ft.Advance(5 * time.Minute) // more than MaxAge = 4 × SyncInterval
	if st := c.Status(); st.Synced {
		t.Errorf("still synced 5 minutes after the last sync: %+v", st)
	}
}

func TestClockRun(t *testing.T) {
	servers, addrs := startServers(t, 0)
	c := New(Config{Servers: addrs, Timeout: 5 * time.Second, SyncInterval: time.Hour})
	synced := make(chan error, 1)
	c.afterSync = func(err error) { synced <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	if err := <-synced; err != nil { // Run syncs at once
		t.Fatal(err)
	}
	cancel()
	<-done
	if !c.Status().Synced {
		t.Error("not synced after Run's first sync")
	}
	if servers[0].Requests() != 1 {
		t.Errorf("%d requests, want 1", servers[0].Requests())
	}
}

func TestCombine(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in       []time.Duration
		want     time.Duration
		used     int
		disagree bool
	}{
		{[]time.Duration{5 * s}, 5 * s, 1, false},
		{[]time.Duration{90 * s, 3600 * s, 90 * s}, 90 * s, 2, false},
		{[]time.Duration{1 * s, 1500 * time.Millisecond, 2 * s, 2200 * time.Millisecond}, 1750 * time.Millisecond, 4, false},
		{[]time.Duration{0, 3600 * s}, 0, 1, true},
		{[]time.Duration{0, 3600 * s, 7200 * s}, 0, 1, true},
		{[]time.Duration{-100 * s, 10 * s, 10 * s, 10 * s, 500 * s}, 10 * s, 3, false},
	} {
		got, used, err := combine(tc.in, time.Second)
		if (err != nil) != tc.disagree || used != tc.used || (err == nil && got != tc.want) {
			t.Errorf("combine(%v) = %v, %d, %v; want %v, %d, disagree %v", tc.in, got, used, err, tc.want, tc.used, tc.disagree)
		}
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"pool.ntp.org":      "pool.ntp.org:123",
		"127.0.0.1:1234":    "127.0.0.1:1234",
		"time.example:4123": "time.example:4123",
		"::1":               "[::1]:123",
		"[::1]":             "[::1]:123",
		"[::1]:9":           "[::1]:9",
		"":                  "",
		"[::1":              "",
	} {
		got, err := hostPort(in)
		if want == "" {
			if err == nil {
				t.Errorf("hostPort(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("hostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
