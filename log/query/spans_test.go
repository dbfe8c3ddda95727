package query

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSpansAgainstInside checks Spans against Inside: the spans are
// consecutive and cover the range, every instant of an inside or outside
// span is classified so by Inside (probed at both ends, at every window
// edge and at random), and unknown spans stay near offset changes.
func TestSpansAgainstInside(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo", "Pacific/Apia", "Asia/Tokyo", "America/St_Johns"}
	windows := []string{"09:00-17:00", "22:00-06:00", "00:00-01:00", "23:30-00:30", "01:30-03:00", "08:15-18:45", "00:00-23:59"}
	days := []string{"mon-fri", "sat-sun", "mon", "fri-mon", "tue,thu", "mon-sun"}
	// Ranges that cross DST changes, Samoa's skipped 30 December 2011 and
	// Sao Paulo's midnight transitions.
	starts := []time.Time{
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 10, 15, 7, 3, 0, 0, time.UTC),
		time.Date(2011, 12, 20, 0, 0, 0, 0, time.UTC),
		time.Date(2017, 10, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2018, 2, 10, 0, 0, 0, 0, time.UTC),
	}
	var unknownTime, allTime time.Duration
	for n := 0; n < 300; n++ {
		h := mustHours(t, windows[r.IntN(len(windows))], zones[r.IntN(len(zones))], days[r.IntN(len(days))])
		from := starts[r.IntN(len(starts))].Add(time.Duration(r.Int64N(int64(10 * 24 * time.Hour))))
		to := from.Add(time.Duration(1 + r.Int64N(int64(60*24*time.Hour))))
		spans := h.Spans(from, to, 400)
		if len(spans) == 0 {
			t.Fatalf("no spans for [%v, %v)", from, to)
		}
		if !spans[0].Start.Equal(from) || !spans[len(spans)-1].End.Equal(to) {
			t.Fatalf("spans cover [%v, %v), want [%v, %v)", spans[0].Start, spans[len(spans)-1].End, from, to)
		}
		probe := func(s Span, tt time.Time) {
			if s.Kind == SpanUnknown {
				return
			}
			if got := h.Inside(tt); got != (s.Kind == SpanInside) {
				t.Fatalf("%v in %v, window %02d:%02d-%02d:%02d days %v: span [%v, %v) kind %d, but Inside = %v",
					tt.In(h.Loc), h.Loc, h.Start/60, h.Start%60, h.End/60, h.End%60, h.Days, s.Start.In(h.Loc), s.End.In(h.Loc), s.Kind, got)
			}
		}
		for j, s := range spans {
			if !s.Start.Before(s.End) {
				t.Fatalf("empty span %v", s)
			}
			if j > 0 && (!spans[j-1].End.Equal(s.Start) || spans[j-1].Kind == s.Kind) {
				t.Fatalf("spans %d and %d do not follow each other or have the same kind", j-1, j)
			}
			probe(s, s.Start)
			probe(s, s.End.Add(-time.Nanosecond))
			for range 20 {
				probe(s, s.Start.Add(time.Duration(r.Int64N(int64(s.End.Sub(s.Start))))))
			}
			if s.Kind == SpanUnknown {
				unknownTime += s.End.Sub(s.Start)
				// An unknown span holds an offset change or lies
				// within two days of one.
				if !changesWithin(s.Start.Add(-72*time.Hour), s.End.Add(72*time.Hour), h.Loc) {
					t.Fatalf("unknown span [%v, %v) in %v with no offset change near it", s.Start, s.End, h.Loc)
				}
			}
			allTime += s.End.Sub(s.Start)
		}
		// Every minute edge of the range, so no window edge is missed.
		k := 0
		for tt := from.Truncate(time.Minute); tt.Before(to); tt = tt.Add(time.Minute) {
			for k < len(spans) && !tt.Before(spans[k].End) {
				k++
			}
			if !tt.Before(from) {
				probe(spans[k], tt)
			}
		}
	}
	if share := float64(unknownTime) / float64(allTime); share > 0.25 {
		t.Fatalf("%.0f%% of the time is of unknown kind", share*100)
	}
	t.Logf("%.1f%% of the time is of unknown kind", 100*float64(unknownTime)/float64(allTime))
}

func changesWithin(a, b time.Time, loc *time.Location) bool {
	_, o := a.In(loc).Zone()
	for tt := a; tt.Before(b); tt = tt.Add(15 * time.Minute) {
		if _, o2 := tt.In(loc).Zone(); o2 != o {
			return true
		}
	}
	return false
}

func TestSpansLimits(t *testing.T) {
	h := mustHours(t, "09:00-17:00", "Europe/Paris", "mon-fri")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if s := h.Spans(from, from, 10); s != nil {
		t.Fatalf("empty range gave %v", s)
	}
	if s := h.Spans(from, from.AddDate(0, 0, 30), 10); s != nil {
		t.Fatalf("a range beyond maxDays gave %d spans", len(s))
	}
	// A plain week in winter: Monday 2026-01-05 to Monday 2026-01-12,
	// five windows of 09:00-17:00 Paris (08:00-16:00 UTC).
	s := h.Spans(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC), 10)
	if len(s) != 11 {
		t.Fatalf("got %d spans, want 11: %v", len(s), s)
	}
	if s[1].Kind != SpanInside || !s[1].Start.Equal(time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)) || !s[1].End.Equal(time.Date(2026, 1, 5, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("Monday's window is %v", s[1])
	}
}
