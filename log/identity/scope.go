package identity

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/agentlog/agentlog"
)

// Scope is what an agent declares it will do when it is registered. The
// log records it with the registration; anomaly rules compare actions
// against it (an action outside scope is recorded, then alerted on).
type Scope struct {
	// Actions, Tools and Resources are path.Match patterns ("db.*",
	// "customers/*"); an empty list allows anything.
	Actions   []string `json:"actions,omitempty"`
	Tools     []string `json:"tools,omitempty"`
	Resources []string `json:"resources,omitempty"`
	// Hours is the daily working window "HH:MM-HH:MM" in TZ (default
	// UTC); empty means any time. Weekdays is "mon-fri" or a list such as
	// "mon,wed,fri"; empty means every day.
	Hours    string `json:"hours,omitempty"`
	TZ       string `json:"tz,omitempty"`
	Weekdays string `json:"weekdays,omitempty"`
	// Rate is the declared peak rate "N/s", "N/m" or "N/h".
	Rate string `json:"rate,omitempty"`
}

// Limits of a scope.
const (
	maxPatterns   = 64
	maxPatternLen = 256
)

// ParseScope parses the command-line form of a scope: semicolon-separated
// key=value pairs, list values comma-separated, e.g.
//
//	actions=db.query,db.write;tools=sql;resources=customers/*;hours=09:00-17:00;tz=Europe/Paris;weekdays=mon-fri;rate=100/m
//
// "action", "tool" and "resource" are accepted for their plurals. A string
// starting with "{" is read as the scope's JSON form instead. An empty
// string is the empty scope (allows anything).
func ParseScope(s string) (Scope, error) {
	var sc Scope
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		if err := jsonv2.Unmarshal([]byte(t), &sc, jsonv2.RejectUnknownMembers(true)); err != nil {
			return Scope{}, fmt.Errorf("%w: scope JSON: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
		}
		return sc, sc.Validate()
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return Scope{}, fmt.Errorf("%w: scope %q: want key=value", ErrInvalid, part)
		}
		if seen[strings.TrimSuffix(k, "s")] {
			return Scope{}, fmt.Errorf("%w: scope key %q given twice", ErrInvalid, k)
		}
		seen[strings.TrimSuffix(k, "s")] = true
		list := func() []string {
			var out []string
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					out = append(out, x)
				}
			}
			return out
		}
		switch k {
		case "actions", "action":
			sc.Actions = append(sc.Actions, list()...)
		case "tools", "tool":
			sc.Tools = append(sc.Tools, list()...)
		case "resources", "resource":
			sc.Resources = append(sc.Resources, list()...)
		case "hours":
			sc.Hours = v
		case "tz":
			sc.TZ = v
		case "weekdays":
			sc.Weekdays = v
		case "rate":
			sc.Rate = v
		default:
			return Scope{}, fmt.Errorf("%w: unknown scope key %q (want actions, tools, resources, hours, tz, weekdays, rate)", ErrInvalid, k)
		}
	}
	return sc, sc.Validate()
}

// Validate checks every field of the scope.
func (sc Scope) Validate() error {
	for _, l := range []struct {
		name string
		pats []string
	}{{"actions", sc.Actions}, {"tools", sc.Tools}, {"resources", sc.Resources}} {
		if len(l.pats) > maxPatterns {
			return fmt.Errorf("%w: scope %s: %d patterns, at most %d", ErrInvalid, l.name, len(l.pats), maxPatterns)
		}
		for _, p := range l.pats {
			if err := validText("scope "+l.name, p, maxPatternLen, true); err != nil {
				return err
			}
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("%w: scope %s pattern %q: %v", ErrInvalid, l.name, p, err)
			}
		}
	}
	if sc.Hours != "" {
		if _, _, err := parseHours(sc.Hours); err != nil {
			return err
		}
	}
	if sc.TZ != "" {
		if err := validText("scope tz", sc.TZ, 64, true); err != nil {
			return err
		}
		if _, err := agentlog.LoadZone(sc.TZ); err != nil {
			return fmt.Errorf("%w: scope tz %q is not a known time zone", ErrInvalid, sc.TZ)
		}
	}
	if sc.Weekdays != "" {
		if _, err := parseWeekdays(sc.Weekdays); err != nil {
			return err
		}
	}
	if sc.Rate != "" {
		if _, err := parseRate(sc.Rate); err != nil {
			return err
		}
	}
	return nil
}

// Allows reports whether an action at time t is within the scope.
func (sc Scope) Allows(action, tool, resource string, t time.Time) bool {
	c := sc.Compile()
	return c.AllowsAction(action, tool, resource) && c.AllowsTime(t)
}

// CompiledScope is a scope prepared for checking many actions: its zone
// loaded and its hours, weekdays and rate parsed once.
type CompiledScope struct {
	Scope
	loc      *time.Location
	days     map[time.Weekday]bool // nil: every day
	hours    bool
	from, to int
	// RateLimit actions per RatePer; 0 when no rate is declared.
	RateLimit int
	RatePer   time.Duration
}

// Compile prepares sc for checking. Values that do not parse (a scope
// is validated when it is stored) are treated as absent.
func (sc Scope) Compile() *CompiledScope {
	c := &CompiledScope{Scope: sc, loc: time.UTC}
	if sc.TZ != "" {
		if l, err := agentlog.LoadZone(sc.TZ); err == nil {
			c.loc = l
		}
	}
	if sc.Weekdays != "" {
		c.days, _ = parseWeekdays(sc.Weekdays)
	}
	if sc.Hours != "" {
		var err error
		c.from, c.to, err = parseHours(sc.Hours)
		c.hours = err == nil
	}
	if sc.Rate != "" {
		c.RateLimit, c.RatePer, _ = ParseRate(sc.Rate)
	}
	return c
}

// AllowsAction reports whether the action, tool and resource match the
// scope's patterns (an empty tool or resource is not checked).
func (c *CompiledScope) AllowsAction(action, tool, resource string) bool {
	match := func(pats []string, v string) bool {
		if len(pats) == 0 {
			return true
		}
		for _, p := range pats {
			if ok, _ := path.Match(p, v); ok {
				return true
			}
		}
		return false
	}
	return match(c.Actions, action) && (tool == "" || match(c.Tools, tool)) && (resource == "" || match(c.Resources, resource))
}

// AllowsTime reports whether t falls within the scope's hours and weekdays.
func (c *CompiledScope) AllowsTime(t time.Time) bool {
	lt := t.In(c.loc)
	if c.days != nil && !c.days[lt.Weekday()] {
		return false
	}
	if c.hours {
		m := lt.Hour()*60 + lt.Minute()
		if c.from <= c.to && (m < c.from || m >= c.to) || c.from > c.to && m < c.from && m >= c.to {
			return false
		}
	}
	return true
}

// HasPatterns reports whether the scope limits actions, tools or resources.
func (c *CompiledScope) HasPatterns() bool {
	return len(c.Actions) > 0 || len(c.Tools) > 0 || len(c.Resources) > 0
}

// HasTimes reports whether the scope limits hours or weekdays.
func (c *CompiledScope) HasTimes() bool { return c.hours || c.days != nil }

// parseHours parses "HH:MM-HH:MM" into minutes after midnight. A window
// whose end is before its start spans midnight.
func parseHours(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		from, err = parseClock(a)
		if err == nil {
			to, err = parseClock(b)
		}
	}
	if !ok || err != nil || from == to {
		return 0, 0, fmt.Errorf("%w: scope hours %q: want HH:MM-HH:MM", ErrInvalid, s)
	}
	return from, to, nil
}

func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("bad clock time")
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || h > 24 || m < 0 || m > 59 || h == 24 && m != 0 || s[0] == '+' || s[3] == '+' {
		return 0, fmt.Errorf("bad clock time")
	}
	return h*60 + m, nil
}

var weekdayNames = map[string]time.Weekday{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

// parseWeekdays parses "mon-fri" (a range, wrapping past sunday) or a
// comma-separated list of three-letter day names.
func parseWeekdays(s string) (map[time.Weekday]bool, error) {
	bad := fmt.Errorf("%w: scope weekdays %q: want a range like mon-fri or a list like mon,wed", ErrInvalid, s)
	out := map[time.Weekday]bool{}
	if a, b, ok := strings.Cut(s, "-"); ok {
		from, ok1 := weekdayNames[strings.ToLower(a)]
		to, ok2 := weekdayNames[strings.ToLower(b)]
		if !ok1 || !ok2 {
			return nil, bad
		}
		for d := from; ; d = (d + 1) % 7 {
			out[d] = true
			if d == to {
				break
			}
		}
		return out, nil
	}
	for _, n := range strings.Split(s, ",") {
		d, ok := weekdayNames[strings.ToLower(strings.TrimSpace(n))]
		if !ok {
			return nil, bad
		}
		out[d] = true
	}
	return out, nil
}

// parseRate parses "N/s", "N/m" or "N/h" (1 <= N <= 1e9) into a rate per
// second.
func parseRate(s string) (float64, error) {
	n, unit, ok := strings.Cut(s, "/")
	v, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || v == 0 || v > 1e9 {
		return 0, fmt.Errorf("%w: scope rate %q: want N/s, N/m or N/h", ErrInvalid, s)
	}
	switch unit {
	case "s":
		return float64(v), nil
	case "m":
		return float64(v) / 60, nil
	case "h":
		return float64(v) / 3600, nil
	}
	return 0, fmt.Errorf("%w: scope rate %q: want N/s, N/m or N/h", ErrInvalid, s)
}

// ParseRate splits a declared rate "N/s", "N/m" or "N/h" into N and the
// window it applies to.
func ParseRate(s string) (int, time.Duration, error) {
	if _, err := parseRate(s); err != nil {
		return 0, 0, err
	}
	n, unit, _ := strings.Cut(s, "/")
	v, _ := strconv.Atoi(n)
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return v, per, nil
}
