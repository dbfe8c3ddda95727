package query

import (
	"slices"
	"time"
)

// SpanKind says what is known of the instants of a [Span].
type SpanKind int8

const (
	// SpanOutside: every instant of the span is outside business hours.
	SpanOutside SpanKind = iota
	// SpanInside: every instant of the span is inside business hours.
	SpanInside
	// SpanUnknown: the span is near a change of the zone's offset (a
	// daylight-saving transition); ask [Hours.Inside] for each instant.
	SpanUnknown
)

// Span is the time interval [Start, End).
type Span struct {
	Start, End time.Time
	Kind       SpanKind
}

// Spans divides [from, to) into consecutive spans, each wholly inside or
// wholly outside the business hours, or, around a change of the zone's
// offset, of unknown kind. It lets a search skip whole time ranges without
// looking at entries. It returns nil if [from, to) spans more than maxDays
// local days, or is empty.
//
// Each day's window is computed from the zone only on days whose offset
// stays the same from their midnight to the midnight two days later (a
// window may run into the next day); such a span of wall-clock time maps
// to instants linearly, so the window's ends are exact. Every other day is
// of unknown kind, with a day's margin on each side.
func (h *Hours) Spans(from, to time.Time, maxDays int) []Span {
	if !from.Before(to) {
		return nil
	}
	lf, lt := from.In(h.Loc), to.In(h.Loc)
	first := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 12, 0, 0, 0, time.UTC) // civil dates, stepped in UTC
	last := time.Date(lt.Year(), lt.Month(), lt.Day(), 12, 0, 0, 0, time.UTC)
	if days := int(last.Sub(first).Hours()/24) + 1; days > maxDays+2 {
		return nil
	}
	type interval struct{ a, b time.Time }
	var inside, unknown []interval
	for c := first; !c.After(last); c = c.AddDate(0, 0, 1) {
		y, m, d := c.Date()
		s0 := time.Date(y, m, d, 0, 0, 0, 0, h.Loc)
		s2 := time.Date(y, m, d+2, 0, 0, 0, 0, h.Loc)
		if !h.steady(s0, s2, y, m, d) {
			unknown = append(unknown, interval{s0.Add(-24 * time.Hour), s2.Add(24 * time.Hour)})
			continue
		}
		if !h.Days[c.Weekday()] {
			continue
		}
		a := time.Date(y, m, d, h.Start/60, h.Start%60, 0, 0, h.Loc)
		ed := d
		if h.End <= h.Start {
			ed++ // the window crosses midnight
		}
		b := time.Date(y, m, ed, h.End/60, h.End%60, 0, 0, h.Loc)
		inside = append(inside, interval{a, b})
	}

	// Sweep the boundaries: unknown wins over inside, which wins over
	// outside.
	type event struct {
		t       time.Time
		dIn, dU int
	}
	ev := []event{{t: from}, {t: to}}
	for _, iv := range inside {
		ev = append(ev, event{iv.a, 1, 0}, event{iv.b, -1, 0})
	}
	for _, iv := range unknown {
		ev = append(ev, event{iv.a, 0, 1}, event{iv.b, 0, -1})
	}
	slices.SortStableFunc(ev, func(x, y event) int { return x.t.Compare(y.t) })
	var out []Span
	nIn, nU := 0, 0
	for j := 0; j < len(ev); {
		t := ev[j].t
		for ; j < len(ev) && ev[j].t.Equal(t); j++ {
			nIn += ev[j].dIn
			nU += ev[j].dU
		}
		if !t.Before(to) {
			break
		}
		end := to
		if j < len(ev) && ev[j].t.Before(to) {
			end = ev[j].t
		}
		start := t
		if start.Before(from) {
			start = from
		}
		if !start.Before(end) {
			continue
		}
		k := SpanOutside
		switch {
		case nU > 0:
			k = SpanUnknown
		case nIn > 0:
			k = SpanInside
		}
		if n := len(out); n > 0 && out[n-1].Kind == k && out[n-1].End.Equal(start) {
			out[n-1].End = end
		} else {
			out = append(out, Span{start, end, k})
		}
	}
	return out
}

// steady reports whether the zone's offset is the same over [s0, s2) and
// s0 is the local midnight starting civil date y-m-d.
func (h *Hours) steady(s0, s2 time.Time, y int, m time.Month, d int) bool {
	ls := s0.In(h.Loc)
	if ly, lm, ld := ls.Date(); ly != y || lm != m || ld != d || ls.Hour() != 0 || ls.Minute() != 0 || ls.Second() != 0 {
		return false
	}
	_, end := s0.ZoneBounds()
	return end.IsZero() || !end.Before(s2)
}
