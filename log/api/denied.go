package api

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
)

// Denied attempts (CC6.1) are recorded in the log in two ways, so that the
// record cannot be used to grow the log and a flood cannot hide a real
// denial:
//
//   - A denial of an identity the request proved (a valid credential
//     whose role may not use the route; a real session that is expired,
//     closed or revoked; a revoked token; a correctly signed session
//     request that is stale, replayed or of a revoked or pending agent) is
//     one "denied" entry naming that identity, within a token bucket of
//     that identity's own (Config.DeniedRate, DeniedBurst). Beyond it the
//     denials are counted, exactly, in the next summary.
//   - A denial that proves no identity (no or an unknown, forged or
//     malformed credential; a session request for an unknown agent or with
//     a bad signature) is only counted, by source address, reason and
//     route, and each interval (Config.DeniedInterval) with any such
//     denial writes one "denied" entry, action "denied.summary", with the
//     counts.
//
// So unauthenticated clients cause at most one entry per interval whatever
// they send, and each identity's denials are recorded one by one up to its
// own bucket and counted exactly beyond it.

// Summary bounds: the groups one summary lists (the rest are added up in
// "others") and the groups one interval counts in memory.
const (
	maxSummaryGroups = 200
	maxDeniedGroups  = 10000
)

// deniedKey groups denials in a summary. Identity is set for an
// identity's denials beyond its bucket.
type deniedKey struct {
	Remote   string `json:"remote,omitempty"`
	Reason   string `json:"reason"`
	Route    string `json:"route"`
	Identity string `json:"identity,omitempty"`
}

// deniedGroup is one line of a summary.
type deniedGroup struct {
	deniedKey
	Count int `json:"count"`
}

// DeniedSummary is the attributes of a "denied.summary" entry.
type DeniedSummary struct {
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
	Total  int           `json:"total"`
	Groups []deniedGroup `json:"groups"`
	// Others counts the denials of the groups not listed (beyond the
	// first 200 by count, or beyond the 10,000 counted in memory).
	Others int `json:"others,omitempty"`
}

type bucket struct {
	tokens float64
	last   time.Time
}

// deniedRecorder keeps the per-identity buckets and the interval's counts.
type deniedRecorder struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	since   time.Time
	groups  map[deniedKey]int
	total   int
	dropped int // denials of groups beyond maxDeniedGroups
}

func (d *deniedRecorder) init(rate float64, burst int, now time.Time) {
	d.rate, d.burst = rate, float64(burst)
	d.buckets = map[string]*bucket{}
	d.groups = map[deniedKey]int{}
	d.since = now
}

// allow takes a token from identity's bucket.
func (d *deniedRecorder) allow(identity string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.buckets[identity]
	if b == nil {
		b = &bucket{tokens: d.burst, last: now}
		d.buckets[identity] = b
	}
	if now.After(b.last) {
		b.tokens = min(d.burst, b.tokens+now.Sub(b.last).Seconds()*d.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// count adds one denial to the interval's summary.
func (d *deniedRecorder) count(k deniedKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total++
	if _, ok := d.groups[k]; !ok && len(d.groups) >= maxDeniedGroups {
		d.dropped++
		return
	}
	d.groups[k]++
}

// take returns the interval's summary (nil if it counted nothing) and
// starts the next interval at now.
func (d *deniedRecorder) take(now time.Time) *DeniedSummary {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total == 0 {
		d.since = now
		return nil
	}
	sum := &DeniedSummary{From: d.since.UTC(), To: now.UTC(), Total: d.total, Others: d.dropped}
	for k, n := range d.groups {
		sum.Groups = append(sum.Groups, deniedGroup{k, n})
	}
	slices.SortFunc(sum.Groups, func(a, b deniedGroup) int {
		return cmp.Or(-cmp.Compare(a.Count, b.Count), cmp.Compare(a.Identity, b.Identity), cmp.Compare(a.Remote, b.Remote), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Route, b.Route))
	})
	if len(sum.Groups) > maxSummaryGroups {
		for _, g := range sum.Groups[maxSummaryGroups:] {
			sum.Others += g.Count
		}
		sum.Groups = sum.Groups[:maxSummaryGroups]
	}
	d.groups = map[deniedKey]int{}
	d.total, d.dropped, d.since = 0, 0, now
	// Full buckets carry no state worth keeping.
	for id, b := range d.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*d.rate >= d.burst {
			delete(d.buckets, id)
		}
	}
	return sum
}

// recordDenied records a refused request (see above). p is the principal
// the credential proved, if any; err says why it was refused.
func (s *Server) recordDenied(r *http.Request, route string, p alog.Principal, err error) {
	if _, ok := bearer(r); !ok && route != "session.open" {
		return // no credential at all: nothing was attempted
	}
	status := http.StatusUnauthorized
	if errors.Is(err, ErrForbidden) || errors.Is(err, identity.ErrNotApproved) || errors.Is(err, identity.ErrConfigRefused) || errors.Is(err, change.ErrSelfApproval) {
		status = http.StatusForbidden
	}
	pr := alog.Principal{ID: p.ID, Role: p.Role, TokenID: p.TokenID, Agent: p.Agent, Session: p.Session, Task: p.Task, Config: p.Config}
	reason := "unknown credential"
	var d *identity.DeniedError
	token := ""
	switch {
	case errors.As(err, &d):
		reason, pr.Agent, pr.Session, token = d.Reason, d.Agent, d.Session, d.Token
	case errors.Is(err, identity.ErrNotApproved):
		reason = "agent not approved"
	case errors.Is(err, identity.ErrConfigRefused):
		reason = "configuration not approved"
	case errors.Is(err, change.ErrSelfApproval):
		reason = "self-approval"
	case status == http.StatusForbidden:
		reason = "role not allowed"
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	who := cmp.Or(pr.ID, agentIdentity(pr.Agent), tokenIdentity(token))
	if who == "" {
		s.denied.count(deniedKey{Remote: host, Reason: reason, Route: route})
		return
	}
	if !s.denied.allow(who, time.Now()) {
		s.denied.count(deniedKey{Reason: reason, Route: route, Identity: who})
		return
	}
	path := r.URL.EscapedPath()
	if len(path) > 256 {
		path = path[:256]
	}
	attrs := map[string]any{"reason": reason, "status": status, "method": r.Method, "path": path, "remote": host}
	if token != "" {
		attrs["token"] = token
	}
	b, _ := jsonMarshal(attrs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Log.Append(ctx, pr, alog.KindDenied, []alog.Record{{Action: route, Outcome: "denied", Attributes: b}}); err != nil {
		s.log.Warn("recording a denied attempt", "route", route, "err", err)
	}
}

func agentIdentity(a string) string {
	if a == "" {
		return ""
	}
	return "agent:" + a
}

func tokenIdentity(t string) string {
	if t == "" {
		return ""
	}
	return "token:" + t
}

// FlushDenied writes the summary of the denials counted since the last
// one, if there were any.
func (s *Server) FlushDenied(ctx context.Context) error {
	sum := s.denied.take(time.Now())
	if sum == nil {
		return nil
	}
	b, err := jsonMarshal(sum)
	if err != nil {
		return err
	}
	_, err = s.cfg.Log.Append(ctx, alog.Principal{}, alog.KindDenied, []alog.Record{{Action: "denied.summary", Outcome: "denied", Attributes: b}})
	return err
}

// Run writes the denial summaries every Config.DeniedInterval until ctx
// ends, then the last one.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.DeniedInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.FlushDenied(fctx); err != nil {
				s.log.Warn("recording the denied-attempt summary", "err", err)
			}
			return
		case <-t.C:
			if err := s.FlushDenied(ctx); err != nil {
				s.log.Warn("recording the denied-attempt summary", "err", err)
			}
		}
	}
}
