package anomaly

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/query"
)

// Principal is who alerts are recorded by.
var Principal = alog.Principal{ID: "agentlog", Role: "system"}

// Badger keys of the package (prefix "a/"): the next entry index to
// examine, and per webhook the next alert index to deliver.
var nextKey = []byte("a/next")

func hookKey(url string) []byte { return []byte("a/hook/" + url) }

// Options configures a Watcher.
type Options struct {
	Log    *alog.Log
	Config Config
	// Scope returns an agent's declared scope (false: unknown agent).
	Scope func(agent string) (identity.Scope, bool)
	// Poll is how often the log is checked for new entries (default
	// 200ms); webhooks retry from 1s, doubling up to a minute.
	Poll       time.Duration
	HTTPClient *http.Client
	// PublishHook, if set, is called with a webhook's position (the next
	// log index alerts are delivered from) at most every PublishEvery
	// (default 1s) while it moves, and once more when Run ends, always
	// after the position is stored in the log's database; a failure is
	// logged and reported in Status, and retried at the next tick. With a
	// mirror it publishes to the bucket, for a standby taking over.
	PublishHook  func(ctx context.Context, url string, next uint64) error
	PublishEvery time.Duration
	// ResumeHook, if set, returns the position published for a webhook
	// (by the node that last held the log's lock; found false: none). A
	// webhook starts at the higher of it and its stored position, at most
	// the log's size; with neither, at the log's size. An error stops New.
	ResumeHook func(ctx context.Context, url string) (next uint64, found bool, err error)
	// Limit, if set, bounds what webhooks get: alerts below Limit() (with
	// a mirror, the mirrored size, so no webhook gets an alert a new
	// active after a failover lacks).
	Limit      func() uint64
	retryBase  time.Duration // first webhook retry delay (tests shorten it)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Watcher follows the log and raises alerts.
type Watcher struct {
	o        Options
	offHours *query.Hours
	hooks    []hook
	next     uint64 // next entry to examine, as of New
	rates    map[string]*window
	spikes   map[string]*baseline
	// scopes are the agents' scopes as of the entry being examined: set
	// from the agent.registered and agent.scope_changed entries of the
	// log, in order, and otherwise from the identity store (nil: unknown
	// agent).
	scopes map[string]*identity.CompiledScope
	spike  RateSpike       // with defaults filled in
	seen   map[string]bool // first_access: agent + 0 + resource pairs known to have occurred
	// sessions are the configuration states of sessions, from their
	// session.opened entries (unapproved_config).
	sessions *change.Sessions
	seqs     map[string]uint64  // sequence_gap: session -> highest seq seen
	denied   map[string]*window // denied_burst: agent or address -> window
	burst    DeniedBurst        // with defaults filled in
	m        metrics
	// resume and raised are set after a takeover (PrepareTakeover) until
	// the rules have examined the old active's entries.
	resume *resume
	raised map[raisedKey]bool

	examined atomic.Uint64
	smu      sync.Mutex
	hookSt   []WebhookStatus
	hookPos  []atomic.Uint64 // each webhook's position as last stored
}

// Status is what /healthz reports of the rules.
type Status struct {
	Examined uint64          `json:"examined_size"`
	Lag      uint64          `json:"lag_entries"`
	Webhooks []WebhookStatus `json:"webhooks,omitempty"`
}

// WebhookStatus is one webhook's delivery state.
type WebhookStatus struct {
	URL       string `json:"url"`
	Next      uint64 `json:"next_index"` // deliveries are done below it
	Failures  int    `json:"consecutive_failures"`
	LastError string `json:"last_error,omitempty"`
	// Published is the position last published (Options.PublishHook),
	// PublishError why the last attempt failed.
	Published    *uint64 `json:"published_next_index,omitempty"`
	PublishError string  `json:"publish_error,omitempty"`
}

// LagLimit is how far behind the log the rules may be before /healthz
// reports them degraded.
const LagLimit = 1 << 20

// FailingAfter is how many failed deliveries in a row make a webhook
// count as failing.
const FailingAfter = 3

// Config returns the configuration the watcher runs.
func (w *Watcher) Config() Config { return w.o.Config }

// Status returns the rules' progress and the webhooks' state.
func (w *Watcher) Status() Status {
	st := Status{Examined: w.examined.Load()}
	if size := w.o.Log.Size(); size > st.Examined {
		st.Lag = size - st.Examined
	}
	w.smu.Lock()
	st.Webhooks = slices.Clone(w.hookSt)
	w.smu.Unlock()
	return st
}

// Problems lists what is wrong, for /healthz.
func (st Status) Problems() []string {
	var out []string
	if st.Lag > LagLimit {
		out = append(out, fmt.Sprintf("anomaly rules are %d entries behind the log", st.Lag))
	}
	for _, h := range st.Webhooks {
		if h.Failures >= FailingAfter {
			out = append(out, fmt.Sprintf("webhook %s failed %d times in a row: %s", h.URL, h.Failures, h.LastError))
		}
		if h.PublishError != "" {
			out = append(out, fmt.Sprintf("webhook %s: cannot publish its position to the mirror bucket (a takeover would deliver again from the last one published): %s", h.URL, h.PublishError))
		}
	}
	return out
}

func (w *Watcher) hookStatus(i int, next uint64, err error) {
	w.smu.Lock()
	defer w.smu.Unlock()
	h := &w.hookSt[i]
	h.Next = next
	if err == nil {
		h.Failures, h.LastError = 0, ""
	} else {
		h.Failures++
		h.LastError = err.Error()
	}
}

type hook struct {
	url    string
	secret []byte
	pos    uint64 // next alert index to deliver, as of New
}

// baseline is an agent's activity for rate_spike, in one-minute steps.
type baseline struct {
	first  time.Time // minute of the agent's first action seen
	minute time.Time // the current minute
	n      int       // actions in it
	avg    float64   // weighted average of the minutes before it, from 0
	weight float64   // 1-(1-alpha)^minutes: avg/weight corrects the start from 0
	fired  bool
}

// spikeAlpha weighs each minute in the average: about an hour's memory.
const spikeAlpha = 1.0 / 60

type window struct {
	start time.Time
	n     int
	fired bool
}

type metrics struct {
	alerts     *prometheus.CounterVec
	examined   prometheus.GaugeFunc // reads Watcher.examined
	deliveries *prometheus.CounterVec
}

// New checks the configuration, reads the webhook secrets and returns a
// Watcher; Run starts it.
func New(o Options) (*Watcher, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.retryBase <= 0 {
		o.retryBase = time.Second
	}
	if o.PublishEvery <= 0 {
		o.PublishEvery = time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Scope == nil {
		o.Scope = func(string) (identity.Scope, bool) { return identity.Scope{}, false }
	}
	w := &Watcher{o: o, rates: map[string]*window{}, spikes: map[string]*baseline{}, seen: map[string]bool{}, scopes: map[string]*identity.CompiledScope{},
		sessions: change.NewSessions(o.Log), seqs: map[string]uint64{}, denied: map[string]*window{}}
	if db := o.Config.Rules.DeniedBurst; db != nil {
		w.burst = DeniedBurst{Max: 20, WindowSeconds: 60}
		if db.Max != 0 {
			w.burst.Max = db.Max
		}
		if db.WindowSeconds != 0 {
			w.burst.WindowSeconds = db.WindowSeconds
		}
	}
	if rs := o.Config.Rules.RateSpike; rs != nil {
		w.spike = RateSpike{Factor: 5, MinActions: 60, WarmupMinutes: 30}
		if rs.Factor != 0 {
			w.spike.Factor = rs.Factor
		}
		if rs.MinActions != 0 {
			w.spike.MinActions = rs.MinActions
		}
		if rs.WarmupMinutes != 0 {
			w.spike.WarmupMinutes = rs.WarmupMinutes
		}
	}
	if oh := o.Config.Rules.OffHours; oh != nil {
		h, err := query.ParseHours(oh.Window, oh.TZ, oh.Weekdays)
		if err != nil {
			return nil, fmt.Errorf("%w: off_hours: %v", ErrInvalid, err)
		}
		w.offHours = h
	}
	for _, h := range o.Config.Webhooks {
		hk := hook{url: h.URL}
		if h.SecretFile != "" {
			s, err := readSecret(h.SecretFile)
			if err != nil {
				return nil, err
			}
			hk.secret = s
		}
		w.hooks = append(w.hooks, hk)
	}
	// Positions are read, or set to the current size, now rather than in
	// Run, so that no entry appended after New returns is missed.
	if o.Log != nil {
		var err error
		if w.next, err = w.position(nextKey); err != nil {
			return nil, fmt.Errorf("reading the anomaly rules' position: %w", err)
		}
		for i := range w.hooks {
			if w.hooks[i].pos, err = w.hookPosition(w.hooks[i].url); err != nil {
				return nil, fmt.Errorf("reading the position of webhook %s: %w", w.hooks[i].url, err)
			}
		}
		w.examined.Store(w.next)
		if err := w.loadResume(context.Background()); err != nil {
			return nil, fmt.Errorf("reading the rules' state after a takeover: %w", err)
		}
	}
	w.hookPos = make([]atomic.Uint64, len(w.hooks))
	for i, h := range w.hooks {
		w.hookSt = append(w.hookSt, WebhookStatus{URL: h.url, Next: h.pos})
		w.hookPos[i].Store(h.pos)
	}
	w.m = metrics{
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentlog_alerts_total", Help: "Alerts recorded in the log, by rule."}, []string{"rule"}),
		examined: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentlog_anomaly_examined_size",
			Help: "Entries examined by the anomaly rules (compare with agentlog_tree_size)."}, func() float64 { return float64(w.examined.Load()) }),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentlog_webhook_deliveries_total", Help: "Alert deliveries to webhooks, by result."}, []string{"result"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.m.alerts, w.m.examined, w.m.deliveries} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// Run examines entries as they are committed and delivers alerts until
// ctx ends. A Watcher created for the first time on a log starts at the
// size it had then: the rules apply from when they are turned on, and a new
// webhook receives the alerts raised after it was added.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, h := range w.hooks {
		wg.Add(1)
		go func() { defer wg.Done(); w.deliver(ctx, i, h) }()
	}
	if w.o.PublishHook != nil && len(w.hooks) > 0 {
		wg.Go(func() { w.publishLoop(ctx) })
	}
	next := w.next
	t := time.NewTicker(w.o.Poll)
	defer t.Stop()
	for {
		for next < w.o.Log.Size() {
			// On an error (the append queue full, say), n is where the
			// alerts recorded so far end: the rest is examined again.
			n, err := w.examine(ctx, next, min(w.o.Log.Size(), next+4096))
			next = n
			w.examined.Store(next)
			if err == nil {
				err = w.resumed(next)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.o.Logger.Error("anomaly rules: examining entries; retrying", "from", next, "err", err)
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// position reads a stored position, or stores and returns the current
// size when there is none.
func (w *Watcher) position(key []byte) (uint64, error) {
	return w.o.Log.Position(key, w.o.Log.Size())
}

func (w *Watcher) setPosition(key []byte, pos uint64) error {
	return w.o.Log.SetPosition(key, pos)
}

// limit is the end of what webhooks may be sent now.
func (w *Watcher) limit() uint64 {
	size := w.o.Log.Size()
	if w.o.Limit != nil {
		size = min(size, w.o.Limit())
	}
	return size
}

// hookPosition is a webhook's position: with ResumeHook, the higher of
// the published and the stored one (every alert below either was
// delivered), at most the log's size, stored; else as position.
func (w *Watcher) hookPosition(url string) (uint64, error) {
	key := hookKey(url)
	if w.o.ResumeHook == nil {
		return w.position(key)
	}
	next, found, err := w.o.ResumeHook(context.Background(), url)
	if err != nil {
		return 0, err
	}
	if !found {
		return w.position(key)
	}
	if size := w.o.Log.Size(); next > size {
		w.o.Logger.Warn("webhook: the published position is beyond this log's size; resuming at the size", "url", url, "published", next, "size", size)
		next = size
	}
	stored, err := w.o.Log.Position(key, next)
	if err != nil || stored >= next {
		return stored, err
	}
	if err := w.o.Log.SetPosition(key, next); err != nil {
		return 0, err
	}
	w.o.Logger.Info("webhook: resuming from the position published to the bucket", "url", url, "next_index", next, "stored_here", stored)
	return next, nil
}

// publishLoop publishes the webhooks' positions that moved every
// PublishEvery, and once more when ctx ends (within 5 s).
func (w *Watcher) publishLoop(ctx context.Context) {
	t := time.NewTicker(w.o.PublishEvery)
	defer t.Stop()
	published := make([]*uint64, len(w.hooks))
	publish := func(ctx context.Context) {
		for i, h := range w.hooks {
			next := w.hookPos[i].Load()
			if published[i] != nil && *published[i] == next {
				continue
			}
			err := w.o.PublishHook(ctx, h.url, next)
			w.smu.Lock()
			st := &w.hookSt[i]
			if err != nil {
				if st.PublishError == "" {
					w.o.Logger.Warn("webhook: publishing its position to the bucket failed; retrying", "url", h.url, "next_index", next, "err", err)
				}
				st.PublishError = err.Error()
			} else {
				published[i] = &next
				p := next
				st.Published, st.PublishError = &p, ""
			}
			w.smu.Unlock()
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			publish(fctx)
			cancel()
			return
		case <-t.C:
			publish(ctx)
		}
	}
}

// alert is one alert before it is recorded.
type alert struct {
	rule  string
	index uint64
	f     *agentlog.Leaf
	rec   alog.Record
}

// examine applies the rules to the entries [from, to) and records their
// alerts together with the new position, returning it.
func (w *Watcher) examine(ctx context.Context, from, to uint64) (uint64, error) {
	if err := w.seedScopes(ctx, from); err != nil {
		return from, fmt.Errorf("reading scope changes: %w", err)
	}
	var alerts []alert
	var rf agentlog.RawFields
	var lastStamp []byte // the time of the previous leaf, as written
	var lastTime time.Time
	err := w.o.Log.ForEachEntry(ctx, from, to, func(i uint64, leaf []byte) error {
		var f *agentlog.Leaf
		if agentlog.ReadRawFields(leaf, &rf) {
			switch string(rf.Kind) {
			case alog.KindAgent:
				return w.scopeEvent(i, leaf)
			case alog.KindSession:
				return w.sessionEvent(i, leaf, &alerts)
			case alog.KindDenied:
				return w.deniedEvent(i, leaf, &alerts)
			}
			// The common case: decide from the raw fields whether any
			// rule applies before decoding anything.
			if string(rf.Kind) != alog.KindAction || len(rf.Agent) == 0 {
				return nil
			}
			c, ok := w.scopes[string(rf.Agent)] // no allocation for the lookup
			if !ok {
				c = w.scopeOf(string(rf.Agent))
			}
			unapproved, err := w.unapproved(ctx, string(rf.Session), i)
			if err != nil {
				return err
			}
			seq := leafSeq(leaf)
			if !w.mayFlag(c) && !unapproved && (seq == 0 || !w.o.Config.Rules.SequenceGap) {
				return nil
			}
			// The leaves of a batch share their time: parse it once.
			if stamp := agentlog.LeafStamp(leaf); !bytes.Equal(stamp, lastStamp) {
				t, err := agentlog.LeafTime(leaf)
				if err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				lastStamp, lastTime = append(lastStamp[:0], stamp...), t
			}
			f = &agentlog.Leaf{Time: lastTime, Kind: string(rf.Kind), Agent: string(rf.Agent), Session: string(rf.Session), Task: string(rf.Task), Config: string(rf.Config), Seq: seq,
				Action: string(rf.Action), Tool: string(rf.Tool), Resource: string(rf.Resource), Outcome: string(rf.Outcome)}
		} else {
			var err error
			if f, err = query.DecodeLeaf(leaf); err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			switch f.Kind {
			case alog.KindAgent:
				return w.scopeEvent(i, leaf)
			case alog.KindSession:
				return w.sessionEvent(i, leaf, &alerts)
			case alog.KindDenied:
				return w.deniedEvent(i, leaf, &alerts)
			}
			if f.Kind != alog.KindAction || f.Agent == "" {
				return nil
			}
		}
		found, err := w.check(ctx, i, f, w.scopeOf(f.Agent))
		alerts = append(alerts, found...)
		return err
	})
	if err != nil {
		return from, err
	}
	alerts = w.unraised(alerts)
	if len(alerts) == 0 {
		return to, w.setPosition(nextKey, to)
	}
	// One append per principal (the alert's agent, session and task), all
	// of them carrying the position; the last one commits it.
	for k := 0; k < len(alerts); {
		e := k
		for e < len(alerts) && alerts[e].f.Agent == alerts[k].f.Agent && alerts[e].f.Session == alerts[k].f.Session && alerts[e].f.Task == alerts[k].f.Task {
			e++
		}
		p := Principal
		p.Agent, p.Session, p.Task = alerts[k].f.Agent, alerts[k].f.Session, alerts[k].f.Task
		recs := make([]alog.Record, e-k)
		for j := range recs {
			recs[j] = alerts[k+j].rec
		}
		pos := alerts[e-1].index + 1
		if e == len(alerts) {
			pos = to
		}
		extra := func([]alog.Appended) ([]byte, []byte, time.Duration) {
			return nextKey, binary.BigEndian.AppendUint64(nil, pos), 0
		}
		if _, err := w.o.Log.AppendWith(ctx, p, alog.KindAlert, recs, extra); err != nil {
			return alerts[k].index, fmt.Errorf("recording alerts: %w", err)
		}
		for _, a := range alerts[k:e] {
			w.m.alerts.WithLabelValues(a.rule).Inc()
		}
		k = e
	}
	return to, nil
}

// scopeOf returns the agent's scope as of the entry being examined.
func (w *Watcher) scopeOf(agent string) *identity.CompiledScope {
	c, ok := w.scopes[agent]
	if !ok {
		if sc, known := w.o.Scope(agent); known {
			c = sc.Compile()
		}
		w.scopes[agent] = c
	}
	return c
}

// scopeEvent applies an agent.registered or agent.scope_changed entry:
// the agent's actions after it are judged by the scope it records.
func (w *Watcher) scopeEvent(i uint64, leaf []byte) error {
	var e struct {
		Agent      string `json:"agent"`
		Action     string `json:"action"`
		Attributes struct {
			Scope identity.Scope `json:"scope"`
		} `json:"attributes"`
	}
	if err := json.Unmarshal(leaf, &e); err != nil {
		return fmt.Errorf("entry %d: %w", i, err)
	}
	if e.Agent != "" && (e.Action == "agent.registered" || e.Action == "agent.scope_changed") {
		w.scopes[e.Agent] = e.Attributes.Scope.Compile()
	}
	return nil
}

// seedScopes prepares, before entries from index from are examined, the
// scopes of agents not yet tracked whose scope changes at or after from:
// the identity store already holds the newest scope, but until the change
// their actions are judged by the scope it replaced.
func (w *Watcher) seedScopes(ctx context.Context, from uint64) error {
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAgent}}}
	_, err := w.o.Log.Search(ctx, flt, from, w.o.Log.Size(), 0, func(i uint64, leaf []byte) error {
		var e struct {
			Agent      string `json:"agent"`
			Action     string `json:"action"`
			Attributes struct {
				Previous identity.Scope `json:"previous"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(leaf, &e); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if _, seen := w.scopes[e.Agent]; seen || e.Agent == "" {
			return nil
		}
		switch e.Action {
		case "agent.scope_changed":
			w.scopes[e.Agent] = e.Attributes.Previous.Compile()
		case "agent.registered":
			w.scopes[e.Agent] = nil // not an agent before it
		}
		return nil
	})
	return err
}

// mayFlag reports whether any rule could flag an action of an agent whose
// compiled scope is c (nil: an agent the identity store does not know).
func (w *Watcher) mayFlag(c *identity.CompiledScope) bool {
	r := w.o.Config.Rules
	if w.offHours != nil || r.FirstAccess || r.RateSpike != nil {
		return true
	}
	return c != nil && (r.Scope && c.HasPatterns() || r.Hours && c.HasTimes() || r.Rate && c.RateLimit > 0)
}

// check applies every rule to the action at index i by an agent whose
// compiled scope is c (nil: unknown agent).
func (w *Watcher) check(ctx context.Context, i uint64, f *agentlog.Leaf, c *identity.CompiledScope) ([]alert, error) {
	var out []alert
	add := func(rule, detail string) {
		attrs, _ := json.Marshal(map[string]any{"rule": rule, "entry": i, "detail": detail})
		out = append(out, alert{rule: rule, index: i, f: f, rec: alog.Record{
			Action: "alert." + rule, Tool: f.Tool, Resource: f.Resource, Attributes: attrs,
		}})
	}
	r := w.o.Config.Rules
	if c != nil && r.Scope && !c.AllowsAction(f.Action, f.Tool, f.Resource) {
		add("scope", fmt.Sprintf("action %q, tool %q, resource %q is outside the agent's declared scope", f.Action, f.Tool, f.Resource))
	}
	if c != nil && r.Hours && c.HasTimes() && !c.AllowsTime(f.Time) {
		add("hours", fmt.Sprintf("at %s, outside the agent's declared %s", f.Time.UTC().Format(time.RFC3339), declaredTimes(c.Scope)))
	}
	if c != nil && r.Rate && c.RateLimit > 0 {
		win := w.rates[f.Agent]
		if win == nil || !f.Time.Before(win.start.Add(c.RatePer)) {
			win = &window{start: f.Time.Truncate(c.RatePer)}
			w.rates[f.Agent] = win
		}
		win.n++
		if win.n > c.RateLimit && !win.fired {
			win.fired = true
			add("rate", fmt.Sprintf("more than %d actions in the %v from %s, above the declared rate %s", c.RateLimit, c.RatePer, win.start.UTC().Format(time.RFC3339), c.Rate))
		}
	}
	if r.RateSpike != nil {
		if n, avg, spiked := w.countSpike(f.Agent, f.Time); spiked {
			add("rate_spike", fmt.Sprintf("%d actions in the minute from %s, against a baseline of %.1f a minute", n, f.Time.UTC().Truncate(time.Minute).Format(time.RFC3339), avg))
		}
	}
	if w.offHours != nil && !w.offHours.Inside(f.Time) {
		add("off_hours", fmt.Sprintf("at %s, outside business hours", f.Time.UTC().Format(time.RFC3339)))
	}
	if unapproved, err := w.unapproved(ctx, f.Session, i); err != nil {
		return nil, err
	} else if unapproved {
		add("unapproved_config", fmt.Sprintf("the session runs under configuration %s, which was not the agent's approved configuration when it opened", orNone(f.Config)))
	}
	if r.SequenceGap && f.Seq != 0 && f.Session != "" {
		detail, err := w.sequence(ctx, i, f)
		if err != nil {
			return nil, err
		}
		if detail != "" {
			add("sequence_gap", detail)
		}
	}
	if r.FirstAccess && f.Resource != "" {
		first, err := w.firstAccess(ctx, i, f)
		if err != nil {
			return nil, err
		}
		if first {
			add("first_access", fmt.Sprintf("the agent's first action on %q", f.Resource))
		}
	}
	return out, nil
}

// unapproved reports whether the config rule flags the actions of session
// (as of the entry at index before).
func (w *Watcher) unapproved(ctx context.Context, session string, before uint64) (bool, error) {
	if !w.o.Config.Rules.Config || session == "" {
		return false, nil
	}
	st, err := w.sessions.Status(ctx, session, before)
	if err != nil {
		return false, fmt.Errorf("reading the configuration state of session %s: %w", session, err)
	}
	return st == identity.ConfigUnapproved, nil
}

// sessionEvent remembers a session.opened entry's configuration state and
// raises undeclared_config for a session that declared none though its
// agent has an approved configuration.
func (w *Watcher) sessionEvent(i uint64, leaf []byte, alerts *[]alert) error {
	if !w.o.Config.Rules.Config {
		return nil
	}
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return fmt.Errorf("entry %d: %w", i, err)
	}
	if l.Action != "session.opened" || l.Session == "" {
		return nil
	}
	var a struct {
		Status   string `json:"config_status"`
		Approved string `json:"approved_config"`
	}
	if len(l.Attributes) > 0 {
		if err := json.Unmarshal(l.Attributes, &a); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	w.sessions.Set(l.Session, a.Status)
	if a.Status == identity.ConfigUndeclared {
		attrs, _ := json.Marshal(map[string]any{"rule": "undeclared_config", "entry": i,
			"detail": fmt.Sprintf("the session declares no configuration, though the agent's approved configuration is %s", orNone(a.Approved))})
		*alerts = append(*alerts, alert{rule: "undeclared_config", index: i, f: l, rec: alog.Record{Action: "alert.undeclared_config", Attributes: attrs}})
	}
	return nil
}

// leafSeq reads the seq of a canonical leaf (0 when it has none): the key
// comes before "action", where no string value can hold it unescaped.
func leafSeq(leaf []byte) uint64 {
	top := leaf
	if i := bytes.Index(top, []byte(`,"action":"`)); i >= 0 {
		top = top[:i]
	}
	i := bytes.Index(top, []byte(`,"seq":`))
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range top[i+len(`,"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// sequence checks the seq of the action at index i against the highest
// one its session had before; a session the watcher has not seen yet
// (after a restart) is read back from the log through the indexes.
func (w *Watcher) sequence(ctx context.Context, i uint64, f *agentlog.Leaf) (string, error) {
	last, ok := w.seqs[f.Session]
	if !ok && f.Seq != 1 {
		flt := &query.Filter{Matches: []query.Match{{Field: "session", Value: f.Session}}}
		_, err := w.o.Log.Search(ctx, flt, 0, i, 0, func(_ uint64, leaf []byte) error {
			if len(leaf) > agentlog.LeafHeadLen && bytes.HasPrefix(leaf[agentlog.LeafHeadLen:], []byte(`"kind":"action"`)) {
				last = max(last, leafSeq(leaf))
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("reading session %s: %w", f.Session, err)
		}
	}
	if len(w.seqs) > 1<<20 {
		clear(w.seqs) // bound memory; misses read the log again
	}
	w.seqs[f.Session] = max(last, f.Seq)
	switch {
	case f.Seq <= last:
		return fmt.Sprintf("seq %d repeats a number already used in the session (highest so far %d)", f.Seq, last), nil
	case f.Seq > last+1:
		return fmt.Sprintf("seq %d skips %d record(s) of the session after seq %d", f.Seq, f.Seq-last-1, last), nil
	}
	return "", nil
}

// deniedEvent counts a denied entry for denied_burst: one denial of its
// agent (or, when it proves none, of its address), or for a
// "denied.summary" entry, the counts of each of its groups.
func (w *Watcher) deniedEvent(i uint64, leaf []byte, alerts *[]alert) error {
	if w.o.Config.Rules.DeniedBurst == nil {
		return nil
	}
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return fmt.Errorf("entry %d: %w", i, err)
	}
	var a struct {
		Remote string `json:"remote"`
		Groups []struct {
			Remote   string `json:"remote"`
			Identity string `json:"identity"`
			Count    int    `json:"count"`
		} `json:"groups"`
	}
	if len(l.Attributes) > 0 {
		if err := json.Unmarshal(l.Attributes, &a); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	if l.Action != "denied.summary" {
		w.countDenied(i, l, l.Agent, a.Remote, 1, alerts)
		return nil
	}
	for _, g := range a.Groups {
		agent, _ := strings.CutPrefix(g.Identity, "agent:")
		if !strings.HasPrefix(g.Identity, "agent:") {
			agent = ""
		}
		w.countDenied(i, l, agent, g.Remote, max(g.Count, 0), alerts)
	}
	return nil
}

// countDenied adds n denials of agent (or of address remote when agent is
// empty) at the time of entry i.
func (w *Watcher) countDenied(i uint64, l *agentlog.Leaf, agent, remote string, n int, alerts *[]alert) {
	key, who := "a/"+agent, "agent "+agent
	if agent == "" {
		key, who = "r/"+remote, "address "+remote
	}
	per := time.Duration(w.burst.WindowSeconds) * time.Second
	win := w.denied[key]
	if win == nil || !l.Time.Before(win.start.Add(per)) {
		if len(w.denied) > 1<<16 {
			clear(w.denied)
		}
		win = &window{start: l.Time.Truncate(per)}
		w.denied[key] = win
	}
	win.n += n
	if win.n > w.burst.Max && !win.fired {
		win.fired = true
		attrs, _ := json.Marshal(map[string]any{"rule": "denied_burst", "entry": i, "remote": remote,
			"detail": fmt.Sprintf("%s was refused %d times in the %v from %s, more than %d", who, win.n, per, win.start.UTC().Format(time.RFC3339), w.burst.Max)})
		f := &agentlog.Leaf{Time: l.Time, Agent: agent}
		if agent == l.Agent {
			f.Session, f.Task = l.Session, l.Task
		}
		*alerts = append(*alerts, alert{rule: "denied_burst", index: i, f: f, rec: alog.Record{Action: "alert.denied_burst", Outcome: "denied", Attributes: attrs}})
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// countSpike counts an action of agent at t, and reports whether it makes
// the current minute a spike (once per minute), with the minute's count and
// the baseline.
func (w *Watcher) countSpike(agent string, t time.Time) (int, float64, bool) {
	m := t.Truncate(time.Minute)
	b := w.spikes[agent]
	if b == nil {
		b = &baseline{first: m, minute: m}
		w.spikes[agent] = b
	}
	if m.After(b.minute) {
		// Close the current minute, then the idle ones after it.
		b.avg += spikeAlpha * (float64(b.n) - b.avg)
		b.weight += spikeAlpha * (1 - b.weight)
		idle := math.Pow(1-spikeAlpha, float64(min(int(m.Sub(b.minute)/time.Minute)-1, 100000)))
		b.avg *= idle
		b.weight = 1 - (1-b.weight)*idle
		b.minute, b.n, b.fired = m, 0, false
	}
	b.n++
	avg := 0.0
	if b.weight > 0 {
		avg = b.avg / b.weight
	}
	warm := m.Sub(b.first) >= time.Duration(w.spike.WarmupMinutes)*time.Minute
	if warm && !b.fired && b.n > w.spike.MinActions && float64(b.n) > w.spike.Factor*avg {
		b.fired = true
		return b.n, avg, true
	}
	return b.n, avg, false
}

// firstAccess reports whether no entry before i has f's agent and
// resource, through the indexes.
func (w *Watcher) firstAccess(ctx context.Context, i uint64, f *agentlog.Leaf) (bool, error) {
	pair := f.Agent + "\x00" + f.Resource
	if w.seen[pair] {
		return false, nil
	}
	if len(w.seen) > 1<<20 {
		clear(w.seen) // bound memory; misses fall back to the indexes
	}
	w.seen[pair] = true
	flt := &query.Filter{Matches: []query.Match{{Field: "agent", Value: f.Agent}, {Field: "resource", Value: f.Resource}}}
	found := false
	_, err := w.o.Log.Search(ctx, flt, 0, i, 1, func(uint64, []byte) error {
		found = true
		return nil
	})
	return !found, err
}

// declaredTimes describes a scope's hours and weekdays for an alert's
// detail, naming the defaults instead of leaving empty values:
// "hours 09:00-17:00 on mon-fri in Europe/Paris", "hours any time on sat,sun in UTC".
func declaredTimes(sc identity.Scope) string {
	hours, days, tz := sc.Hours, sc.Weekdays, sc.TZ
	if hours == "" {
		hours = "any time"
	}
	if days == "" {
		days = "every day"
	}
	if tz == "" {
		tz = "UTC"
	}
	return fmt.Sprintf("hours %s on %s in %s", hours, days, tz)
}
