// Package query defines the auditor's filters over log entries: exact or
// prefix matches on the indexed fields, a time range, and business-hours
// filters evaluated in an IANA time zone.
//
// Business hours are a daily window [start, end) of wall-clock time in a
// zone, on the listed weekdays. A window whose end is not after its start
// crosses midnight (a night shift, "22:00-06:00") and belongs to the day on
// which it starts: with weekdays mon-fri, Saturday 02:00 is inside Friday's
// shift, and Sunday 23:00 is outside. Wall-clock times are taken after the
// zone's daylight-saving rules, so "09:00" is 09:00 local on both sides of
// a transition; on a day when the clock skips an hour, the skipped times
// simply never occur.
package query

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones must resolve on machines without a zoneinfo database
	"unicode/utf8"

	"github.com/agentlog/agentlog"
)

// ErrInvalid is wrapped by every filter parsing error.
var ErrInvalid = agentlog.Invalid("invalid query")

// Match is a condition on one field: an exact value, or a prefix when the
// query value ends in '*'.
type Match struct {
	Field  string
	Value  string // without the trailing '*'
	Prefix bool
}

// Matches reports whether v satisfies m.
func (m Match) Matches(v string) bool {
	if m.Prefix {
		return strings.HasPrefix(v, m.Value)
	}
	return v == m.Value
}

// Filter selects entries. The zero Filter selects everything.
type Filter struct {
	Matches []Match   // all must hold
	From    time.Time // inclusive; zero means unbounded
	To      time.Time // exclusive; zero means unbounded
	Outside *Hours    // if set, only entries outside these business hours
}

// Hours is a business-hours window.
type Hours struct {
	Start, End int // minutes after local midnight, 0..1439
	Loc        *time.Location
	Days       [7]bool // indexed by time.Weekday
}

// Inside reports whether t falls within business hours.
func (h *Hours) Inside(t time.Time) bool {
	lt := t.In(h.Loc)
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if h.Start < h.End {
		return h.Days[day] && m >= h.Start && m < h.End
	}
	// The window crosses midnight: the evening part belongs to today, the
	// morning part to yesterday's shift.
	if m >= h.Start {
		return h.Days[day]
	}
	if m < h.End {
		return h.Days[(day+6)%7]
	}
	return false
}

// MatchEntry reports whether an entry with the given time and field values
// (get returns "" for an absent field) satisfies f.
func (f *Filter) MatchEntry(t time.Time, get func(field string) string) bool {
	if !f.From.IsZero() && t.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !t.Before(f.To) {
		return false
	}
	for _, m := range f.Matches {
		if !m.Matches(get(m.Field)) {
			return false
		}
	}
	if f.Outside != nil && f.Outside.Inside(t) {
		return false
	}
	return true
}

// Parse reads a filter from query parameters: the fields of [agentlog.QueryFields]
// (each at most once; a trailing '*' asks for a prefix), from and to
// (RFC 3339), outside_hours (HH:MM-HH:MM), tz (an IANA zone, default UTC)
// and weekdays (default mon-fri). Parameters it does not know are left to
// the caller (limit, cursor, proof).
func Parse(q url.Values) (*Filter, error) {
	f := &Filter{}
	for _, field := range agentlog.QueryFields {
		vs := q[field]
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("%w: %q given %d times", ErrInvalid, field, len(vs))
		}
		v := vs[0]
		if !utf8.ValidString(v) {
			// Leaves are valid UTF-8; a byte that is part of a character
			// matches nothing in the index and something when decoded.
			return nil, fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalid, field)
		}
		m := Match{Field: field, Value: v}
		if strings.HasSuffix(v, "*") {
			m.Prefix, m.Value = true, strings.TrimSuffix(v, "*")
		}
		if strings.Contains(m.Value, "*") {
			return nil, fmt.Errorf("%w: %q: '*' is allowed only at the end", ErrInvalid, field)
		}
		if m.Value == "" && !m.Prefix {
			return nil, fmt.Errorf("%w: %q is empty", ErrInvalid, field)
		}
		f.Matches = append(f.Matches, m)
	}
	var err error
	if f.From, err = parseTime(q.Get("from"), "from"); err != nil {
		return nil, err
	}
	if f.To, err = parseTime(q.Get("to"), "to"); err != nil {
		return nil, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, fmt.Errorf("%w: \"from\" must be before \"to\"", ErrInvalid)
	}
	oh, tz, wd := q.Get("outside_hours"), q.Get("tz"), q.Get("weekdays")
	if oh == "" {
		if tz != "" || wd != "" {
			return nil, fmt.Errorf("%w: \"tz\" and \"weekdays\" need \"outside_hours\"", ErrInvalid)
		}
		return f, nil
	}
	h, err := ParseHours(oh, tz, wd)
	if err != nil {
		return nil, err
	}
	f.Outside = h
	return f, nil
}

func parseTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q must be an RFC 3339 time such as 2026-01-31T17:00:00Z", ErrInvalid, name)
	}
	return t, nil
}

// ParseHours parses a window "HH:MM-HH:MM", an IANA zone name (empty means
// UTC) and a weekday list such as "mon-fri" or "mon,wed,sat-sun" (empty
// means mon-fri).
func ParseHours(window, zone, weekdays string) (*Hours, error) {
	a, b, ok := strings.Cut(window, "-")
	if !ok {
		return nil, fmt.Errorf("%w: \"outside_hours\" must look like 09:00-17:00", ErrInvalid)
	}
	h := &Hours{}
	var err error
	if h.Start, err = parseClock(a); err != nil {
		return nil, err
	}
	if h.End, err = parseClock(b); err != nil {
		return nil, err
	}
	if h.Start == h.End {
		return nil, fmt.Errorf("%w: \"outside_hours\" window %q is empty", ErrInvalid, window)
	}
	if zone == "" {
		zone = "UTC"
	}
	if strings.ContainsAny(zone, "\\") || strings.Contains(zone, "..") || strings.HasPrefix(zone, "/") {
		return nil, fmt.Errorf("%w: \"tz\" %q is not an IANA time zone name", ErrInvalid, zone)
	}
	if h.Loc, err = agentlog.LoadZone(zone); err != nil {
		return nil, fmt.Errorf("%w: \"tz\" %q is not a known IANA time zone", ErrInvalid, zone)
	}
	if weekdays == "" {
		weekdays = "mon-fri"
	}
	for _, part := range strings.Split(weekdays, ",") {
		from, to, isRange := strings.Cut(part, "-")
		d1, err := parseDay(from)
		if err != nil {
			return nil, err
		}
		d2 := d1
		if isRange {
			if d2, err = parseDay(to); err != nil {
				return nil, err
			}
		}
		for d := d1; ; d = (d + 1) % 7 {
			h.Days[d] = true
			if d == d2 {
				break
			}
		}
	}
	return h, nil
}

func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, fmt.Errorf("%w: %q is not a time of day HH:MM", ErrInvalid, s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 || hh[0] == '+' || mm[0] == '+' || hh[0] == '-' || mm[0] == '-' {
		return 0, fmt.Errorf("%w: %q is not a time of day HH:MM", ErrInvalid, s)
	}
	return h*60 + m, nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseDay(s string) (time.Weekday, error) {
	d, ok := dayNames[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return 0, fmt.Errorf("%w: %q is not a weekday (mon, tue, wed, thu, fri, sat, sun)", ErrInvalid, s)
	}
	return d, nil
}
