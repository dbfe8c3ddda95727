package anomaly

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// healthAlerts lists the health entries as "action state".
func healthAlerts(t *testing.T, l *alog.Log) []string {
	t.Helper()
	var out []string
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	_, err := l.Search(context.Background(), flt, 0, l.Size(), 0, func(_ uint64, leaf []byte) error {
		var v struct {
			Action     string
			Attributes struct{ Rule, State, Detail string }
		}
		if err := json.Unmarshal(leaf, &v); err != nil {
			return err
		}
		out = append(out, v.Action+" "+v.Attributes.State)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHealthEpisodes: a condition bad for less than After raises nothing;
// bad for longer, one alert however long it lasts, across a restart; its
// end, one cleared entry, also after a restart; a second episode again.
func TestHealthEpisodes(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	bad := map[string]bool{}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	set := func(rule string, b bool) { mu.Lock(); bad[rule] = b; mu.Unlock() }
	check := func(rule string) Check {
		return func() (bool, string) { mu.Lock(); defer mu.Unlock(); return bad[rule], rule + " is bad" }
	}
	newH := func() *HealthWatcher {
		return NewHealthWatcher(HealthOptions{Log: f.l, After: time.Minute, Now: func() time.Time { return now },
			Checks: map[string]Check{RuleNTPUnsynced: check(RuleNTPUnsynced), RuleCheckpointStalled: check(RuleCheckpointStalled)}})
	}
	h := newH()
	tick := func(d time.Duration) {
		t.Helper()
		now = now.Add(d)
		f.setNow(now)
		if err := h.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	tick(0)
	set(RuleNTPUnsynced, true)
	tick(time.Second)
	tick(30 * time.Second) // bad for 30 s: not yet an episode
	set(RuleNTPUnsynced, false)
	tick(time.Second) // a blip
	set(RuleNTPUnsynced, true)
	tick(time.Second)
	tick(59 * time.Second)
	if got := healthAlerts(t, f.l); len(got) != 0 {
		t.Fatalf("raised before a minute of bad state: %v", got)
	}
	tick(time.Second)
	tick(10 * time.Minute)
	want := []string{"alert.ntp_unsynced raised"}
	if got := healthAlerts(t, f.l); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	// A restart while it lasts: not raised again. Good for less than
	// After (a blip, or a check that reads good for a while after a
	// restart) does not end it; good for After, across a restart, does.
	h = newH()
	tick(5 * time.Minute)
	set(RuleNTPUnsynced, false)
	tick(30 * time.Second)
	set(RuleNTPUnsynced, true)
	tick(time.Second)
	set(RuleNTPUnsynced, false)
	h = newH()
	tick(time.Second)
	tick(59 * time.Second)
	if got := healthAlerts(t, f.l); !slices.Equal(got, want) {
		t.Fatalf("cleared before a minute of good state: %v, want %v", got, want)
	}
	tick(time.Second)
	want = append(want, "alert.ntp_unsynced.cleared cleared")
	if got := healthAlerts(t, f.l); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	// Another episode, of another rule and of the same.
	set(RuleCheckpointStalled, true)
	set(RuleNTPUnsynced, true)
	tick(time.Second)
	tick(2 * time.Minute)
	got := healthAlerts(t, f.l)
	if len(got) != 4 || !slices.Contains(got[2:], "alert.ntp_unsynced raised") || !slices.Contains(got[2:], "alert.checkpoint_stalled raised") {
		t.Fatalf("second episodes: %v", got)
	}
}
