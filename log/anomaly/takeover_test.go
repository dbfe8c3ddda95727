package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// TestTakeoverRaisesOnce: the old active's rules examined part of its
// log (raising a scope and a rate alert, and an NTP episode) and died;
// a node with a copy of the log takes over. Its rules raise the alerts of
// the entries the old active never examined, and of new appends, and
// nothing the old active raised: not the same alerts again, and not a
// second rate alert for the window the old active had flagged (the window
// is rebuilt from the entries before). A restart in the middle raises
// nothing twice either, and the NTP episode the old active raised is
// cleared by the new node, not raised again.
func TestTakeoverRaisesOnce(t *testing.T) {
	ctx := context.Background()
	a := newFixture(t)
	cfg := Config{Rules: Rules{Scope: true, Rate: true}}
	if _, err := RecordConfig(ctx, a.l, &cfg); err != nil {
		t.Fatal(err)
	}
	wa := newWatcher(t, a.l, cfg)
	mon := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // in the bot's declared hours
	var want []string
	exp := func(rule string, i uint64) { want = append(want, fmt.Sprintf("alert.%s@%d", rule, i)) }
	exp("scope", a.act(t, mon, "bot", "payment.refund", "stripe", "orders/1"))
	// A declared 3/m: the fourth action of the minute is flagged.
	minute := mon.Add(10 * time.Minute)
	for k := range 4 {
		i := a.act(t, minute.Add(time.Duration(k)*time.Second), "bot", "db.query", "sql", "customers/1")
		if k == 3 {
			exp("rate", i)
		}
	}
	a.act(t, minute.Add(4*time.Second), "bot", "db.query", "sql", "customers/1")
	if _, err := wa.examine(ctx, wa.next, a.l.Size()); err != nil {
		t.Fatal(err)
	}
	// An NTP episode, raised.
	now := mon
	bad := true
	health := func(l *alog.Log) *HealthWatcher {
		return NewHealthWatcher(HealthOptions{Log: l, After: time.Second, Now: func() time.Time { return now },
			Checks: map[string]Check{RuleNTPUnsynced: func() (bool, string) { return bad, "not synced" }}})
	}
	ha := health(a.l)
	for range 2 {
		if err := ha.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(2 * time.Second)
	}
	// Entries the old active committed but its rules never examined: a
	// scope violation in the flagged window.
	exp("scope", a.act(t, minute.Add(5*time.Second), "bot", "payment.refund", "stripe", "orders/2"))
	a.act(t, minute.Add(6*time.Second), "bot", "db.query", "sql", "customers/1")
	if got := listAlerts(t, a.l); !slices.Contains(got, "alert.ntp_unsynced@-") || len(got) != 3 {
		t.Fatalf("the old active raised %v", got)
	}

	// The copy, taken over, and a new append on the new active in the
	// same flagged window. Once with a restart of the new active in the
	// middle of the old active's entries.
	leaves, err := a.l.Entries(0, a.l.Size())
	if err != nil {
		t.Fatal(err)
	}
	exp("scope", uint64(len(leaves)))
	var b *fixture
	for _, restart := range []bool{false, true} {
		b = newFixture(t)
		if err := b.l.Import(ctx, 0, leaves); err != nil {
			t.Fatal(err)
		}
		if err := PrepareTakeover(ctx, b.l); err != nil {
			t.Fatal(err)
		}
		w := newWatcher(t, b.l, cfg)
		if w.resume == nil {
			t.Fatal("no resume after PrepareTakeover")
		}
		if changed, err := RecordConfig(ctx, b.l, &cfg); err != nil || changed {
			t.Fatalf("the same configuration was recorded again after the takeover (%v)", err)
		}
		b.act(t, minute.Add(7*time.Second), "bot", "payment.refund", "stripe", "orders/3")
		to := b.l.Size()
		if restart {
			to = uint64(len(leaves)) - 1
		}
		next, err := w.examine(ctx, w.next, to)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.resumed(next); err != nil {
			t.Fatal(err)
		}
		if restart {
			if w = newWatcher(t, b.l, cfg); w.resume == nil {
				t.Fatal("the resume was forgotten before the old active's entries were examined")
			}
			if next, err = w.examine(ctx, w.next, b.l.Size()); err != nil {
				t.Fatal(err)
			}
			if err := w.resumed(next); err != nil {
				t.Fatal(err)
			}
		}
		if w.resume != nil {
			t.Fatal("the resume is kept after every entry was examined")
		}
		if got := slices.DeleteFunc(listAlerts(t, b.l), func(s string) bool { return strings.HasSuffix(s, "@-") }); !slices.Equal(got, want) {
			t.Fatalf("alerts after the takeover (restart %v):\n got %v\nwant %v", restart, got, want)
		}
	}
	// The NTP episode: the new node's clock is fine, so it is cleared
	// once it has been for After.
	bad = false
	hb := health(b.l)
	for range 2 {
		if err := hb.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	got := listAlerts(t, b.l)
	if n := len(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s != "alert.ntp_unsynced@-" })); n != 1 || !slices.Contains(got, "alert.ntp_unsynced.cleared@-") {
		t.Fatalf("the old active's NTP episode after the takeover: %v, want it raised once and cleared", got)
	}
}

// listAlerts lists every alert as "action@entry" ("-" for none).
func listAlerts(t *testing.T, l *alog.Log) []string {
	t.Helper()
	var out []string
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	_, err := l.Search(context.Background(), flt, 0, l.Size(), 0, func(i uint64, leaf []byte) error {
		var v struct {
			Action     string
			Attributes struct{ Entry *uint64 }
		}
		if err := json.Unmarshal(leaf, &v); err != nil {
			return err
		}
		e := "-"
		if v.Attributes.Entry != nil {
			e = fmt.Sprint(*v.Attributes.Entry)
		}
		out = append(out, v.Action+"@"+e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
