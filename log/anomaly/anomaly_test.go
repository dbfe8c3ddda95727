package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/query"
)

// fixture is a log whose clock the test sets before each append. The
// sequencer reads the clock on its own goroutine, also for alerts a
// running watcher appends, so the clock is behind a mutex.
type fixture struct {
	l   *alog.Log
	mu  sync.Mutex
	now time.Time
}

func (f *fixture) setNow(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)} // a Monday
	clock := func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
	l, err := alog.Open(alog.Config{Dir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f.l = l
	return f
}

// act appends one action of agent at time at and returns its index.
func (f *fixture) act(t *testing.T, at time.Time, agent, action, tool, resource string) uint64 {
	t.Helper()
	f.setNow(at)
	p := alog.Principal{ID: agent, Role: "agent", Agent: agent, Session: "s-" + agent, Task: "task"}
	res, err := f.l.Append(context.Background(), p, alog.KindAction, []alog.Record{{Action: action, Tool: tool, Resource: resource, Outcome: "success"}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Index
}

// got lists the alerts in the log as "rule@entry", in log order, and
// checks each alert leaf's principal and fields.
func (f *fixture) got(t *testing.T) []string {
	t.Helper()
	var out []string
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	_, err := f.l.Search(context.Background(), flt, 0, f.l.Size(), 0, func(i uint64, leaf []byte) error {
		var v struct {
			Principal, Role, Agent, Action string
			Attributes                     struct {
				Rule   string
				Entry  uint64
				Detail string
			}
		}
		if err := json.Unmarshal(leaf, &v); err != nil {
			return err
		}
		if v.Principal != "agentlog" || v.Role != "system" || v.Action != "alert."+v.Attributes.Rule || v.Attributes.Detail == "" || v.Agent == "" {
			return fmt.Errorf("alert %d is malformed: %s", i, leaf)
		}
		out = append(out, fmt.Sprintf("%s@%d", v.Attributes.Rule, v.Attributes.Entry))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var scopes = map[string]identity.Scope{
	"bot": {Actions: []string{"db.*"}, Tools: []string{"sql"}, Resources: []string{"customers/*"},
		Hours: "09:00-17:00", TZ: "Europe/Paris", Weekdays: "mon-fri", Rate: "3/m"},
	"open": {}, // registered without a scope
}

func scopeOf(agent string) (identity.Scope, bool) {
	s, ok := scopes[agent]
	return s, ok
}

func newWatcher(t *testing.T, l *alog.Log, c Config) *Watcher {
	t.Helper()
	w, err := New(Options{Log: l, Config: c, Scope: scopeOf, Poll: 5 * time.Millisecond, retryBase: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestRules appends actions that each rule should or should not flag and
// compares the alerts recorded in the log with the expected list.
func TestRules(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Rules: Rules{Scope: true, Hours: true, Rate: true, FirstAccess: true,
		OffHours: &OffHours{Window: "08:00-18:00", TZ: "UTC", Weekdays: "mon-fri"}}}
	w := newWatcher(t, f.l, cfg)
	start := w.next
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // Monday; Paris is UTC+1
	var want []string
	exp := func(i uint64, rules ...string) {
		for _, r := range rules {
			want = append(want, fmt.Sprintf("%s@%d", r, i))
		}
	}
	// Within scope, in hours: only the first access to the resource.
	i := f.act(t, mon.Add(9*time.Hour), "bot", "db.query", "sql", "customers/1")
	exp(i, "first_access")
	f.act(t, mon.Add(9*time.Hour+time.Minute), "bot", "db.query", "sql", "customers/1")
	// Outside the declared actions, tools and resources.
	i = f.act(t, mon.Add(9*time.Hour+2*time.Minute), "bot", "payment.refund", "stripe", "orders/9")
	exp(i, "scope", "first_access")
	i = f.act(t, mon.Add(9*time.Hour+3*time.Minute), "bot", "db.query", "bash", "customers/1")
	exp(i, "scope")
	// Five actions in one minute against a declared 3/m: one alert, at
	// the fourth. (Entry times never decrease, so the test goes forward.)
	var burst []uint64
	for k := range 5 {
		burst = append(burst, f.act(t, mon.Add(11*time.Hour+time.Duration(k)*time.Second), "bot", "db.query", "sql", "customers/1"))
	}
	exp(burst[3], "rate")
	// The next minute starts a new window.
	f.act(t, mon.Add(11*time.Hour+time.Minute), "bot", "db.query", "sql", "customers/1")
	// 17:30 Paris is outside the declared hours, inside the operator's.
	i = f.act(t, mon.Add(16*time.Hour+30*time.Minute), "bot", "db.query", "sql", "customers/1")
	exp(i, "hours")
	// 19:00 UTC: outside both.
	i = f.act(t, mon.Add(19*time.Hour), "bot", "db.query", "sql", "customers/1")
	exp(i, "hours", "off_hours")
	// An agent the identity store does not know: only the operator's
	// hours apply (and first access, when there is a resource).
	i = f.act(t, mon.Add(19*time.Hour+30*time.Minute), "ghost", "db.query", "sql", "")
	exp(i, "off_hours")
	// An agent with no declared scope, on Saturday.
	i = f.act(t, mon.Add(5*24*time.Hour+12*time.Hour), "open", "anything", "", "x/1")
	exp(i, "off_hours", "first_access")
	// Entries that are not actions are never flagged.
	f.setNow(mon.Add(6 * 24 * time.Hour))
	if _, err := f.l.Append(context.Background(), alog.Principal{ID: "admin", Role: "admin", Agent: "bot"}, alog.KindAgent, []alog.Record{{Action: "agent.approved"}}); err != nil {
		t.Fatal(err)
	}

	next, err := w.examine(context.Background(), start, f.l.Size())
	if err != nil {
		t.Fatal(err)
	}
	got := f.got(t)
	// Alerts are recorded in the order of the entries that raised them;
	// the rules of one entry in the order scope, hours, rate, off_hours,
	// first_access.
	if !slices.Equal(got, want) {
		t.Fatalf("alerts:\n got %v\nwant %v", got, want)
	}
	stored, err := w.position(nextKey)
	if err != nil || stored != next {
		t.Fatalf("stored position %d (%v), examine returned %d", stored, err, next)
	}

	// A fresh watcher (after a restart) resumes after the alerts it
	// recorded: nothing is raised twice, and the alerts themselves are
	// not examined.
	w2 := newWatcher(t, f.l, cfg)
	from := w2.next
	if from != next || next > f.l.Size() {
		t.Fatalf("a new watcher starts at %d, the last one stopped at %d (size %d)", from, next, f.l.Size())
	}
	if _, err := w2.examine(context.Background(), from, f.l.Size()); err != nil {
		t.Fatal(err)
	}
	if got2 := f.got(t); !slices.Equal(got2, want) {
		t.Fatalf("after a restart the alerts are %v", got2)
	}
}

// TestRunFollowsAndStartsAtTheEnd checks that a watcher turned on for an
// existing log ignores what came before, then follows new entries.
func TestRunFollowsAndStartsAtTheEnd(t *testing.T) {
	f := newFixture(t)
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	f.act(t, mon.Add(10*time.Hour), "bot", "payment.refund", "stripe", "orders/1") // before the rules: no alert
	w := newWatcher(t, f.l, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	i := f.act(t, mon.Add(10*time.Hour+time.Minute), "bot", "payment.refund", "stripe", "orders/2")
	waitFor(t, func() bool { return len(f.got(t)) > 0 })
	if got := f.got(t); !slices.Equal(got, []string{fmt.Sprintf("scope@%d", i)}) {
		t.Fatalf("alerts %v", got)
	}
}

// waitFor polls a condition another goroutine makes true.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhook delivers alerts to an endpoint that fails at first: every
// alert arrives signed, in order, and none is lost; a restarted watcher
// does not deliver again what was acknowledged.
func TestWebhook(t *testing.T) {
	f := newFixture(t)
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	secret := "0123456789abcdef-secret"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []uint64
	failures := 3
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(SignatureHeader) != Sign([]byte(secret), body) {
			t.Errorf("bad signature %q", r.Header.Get(SignatureHeader))
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		var v struct {
			Index uint64
			Entry struct{ Kind string }
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Entry.Kind != alog.KindAlert || r.Header.Get(IndexHeader) != fmt.Sprint(v.Index) {
			t.Errorf("bad delivery %s (%v)", body, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if failures > 0 {
			failures--
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got = append(got, v.Index)
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Webhooks = []Webhook{{URL: srv.URL + "/hook", SecretFile: secretFile}}

	run := func() (stop func()) {
		w := newWatcher(t, f.l, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	delivered := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	stop := run()
	mon := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for k := range 5 { // a minute apart: scope alerts only, within the declared rate
		f.act(t, mon.Add(time.Duration(k)*time.Minute), "bot", "shell.exec", "bash", "hosts/1")
	}
	waitFor(t, func() bool { return len(delivered()) >= 5 })
	stop()
	alerts := f.got(t)
	if len(alerts) != 5 {
		t.Fatalf("%d alerts recorded, want 5: %v", len(alerts), alerts)
	}
	d := delivered()
	if !slices.IsSorted(d) || len(slices.Compact(slices.Clone(d))) != 5 {
		t.Fatalf("deliveries %v: want 5 distinct alert indexes in order", d)
	}

	// Restarted: one new alert is delivered, the old ones are not again.
	stop = run()
	defer stop()
	f.act(t, mon.Add(10*time.Minute), "bot", "shell.exec", "bash", "hosts/2")
	waitFor(t, func() bool { return len(delivered()) >= 6 })
	if d := delivered(); len(d) != 6 || d[5] <= d[4] {
		t.Fatalf("deliveries after restart %v", d)
	}
}

func TestConfig(t *testing.T) {
	good := `{"rules":{"scope":true,"hours":false,"rate":true,"first_access":true,"off_hours":{"window":"22:00-06:00","tz":"Europe/Paris","weekdays":"mon-sun"}},
		"webhooks":[{"url":"https://hooks.example.com/a","secret_file":"/etc/s"}]}`
	c, err := ParseConfig([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rules.Scope || c.Rules.Hours || !c.Rules.FirstAccess || c.Rules.OffHours.TZ != "Europe/Paris" || len(c.Webhooks) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []string{
		`{"rules":{"scope":true},"extra":1}`,
		`{"rules":{"scope":true,"scope":false}}`,
		`{"rules":{"off_hours":{"window":"25:00-06:00"}}}`,
		`{"rules":{"off_hours":{"window":"09:00-17:00","tz":"Mars/Base"}}}`,
		`{"webhooks":[{"url":"ftp://x"}]}`,
		`{"rules":{"rate_spike":{"factor":0.5}}}`,
		`{"rules":{"rate_spike":{"min_actions":-1}}}`,
		`{"webhooks":[{"url":"https://a/x"},{"url":"https://a/x"}]}`,
		`[]`,
		strings.Repeat(" ", maxConfigBytes+1),
	} {
		if _, err := ParseConfig([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseConfig(%.60q) = %v, want ErrInvalid", bad, err)
		}
	}
	// A secret file others can read, or too short, is refused.
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("0123456789abcdef0123"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	for _, file := range []string{loose, short, filepath.Join(dir, "missing")} {
		c := DefaultConfig()
		c.Webhooks = []Webhook{{URL: "https://h.example/x", SecretFile: file}}
		if _, err := New(Options{Log: nil, Config: c}); err == nil {
			t.Errorf("New accepted the secret file %s", filepath.Base(file))
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"rules":{"scope":true,"off_hours":{"window":"09:00-17:00"}},"webhooks":[{"url":"http://x/y"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"rules":null}`))
	f.Add([]byte(`{"rules":{"rate_spike":{"factor":3.5,"min_actions":10,"warmup_minutes":5}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a parsed configuration does not validate: %v", err)
		}
	})
}

// TestStatus checks what /healthz reports: the rules' progress, and a
// webhook that keeps failing as a problem, while alerts keep being
// recorded.
func TestStatus(t *testing.T) {
	f := newFixture(t)
	down := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "down for maintenance", http.StatusBadGateway)
	}))
	defer down.Close()
	cfg := DefaultConfig()
	cfg.Webhooks = []Webhook{{URL: down.URL}}
	w := newWatcher(t, f.l, cfg)
	if st := w.Status(); st.Lag != 0 || len(st.Problems()) != 0 || len(st.Webhooks) != 1 {
		t.Fatalf("initial status %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f.act(t, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), "bot", "shell.exec", "bash", "hosts/1")
	waitFor(t, func() bool { return len(w.Status().Problems()) > 0 })
	st := w.Status()
	if p := st.Problems(); len(p) != 1 || !strings.Contains(p[0], "502") || !strings.Contains(p[0], down.URL) {
		t.Fatalf("problems %v", p)
	}
	waitFor(t, func() bool { return w.Status().Lag == 0 })
	if got := f.got(t); len(got) != 1 {
		t.Fatalf("alerts %v", got)
	}
	if st := w.Status(); st.Examined != f.l.Size() || st.Webhooks[0].Next > st.Examined || st.Webhooks[0].Failures < FailingAfter {
		t.Fatalf("status %+v, size %d", st, f.l.Size())
	}
}

// TestRateSpike feeds an agent a steady rate, then a burst: the burst is
// flagged once, the steady minutes never, and a burst during the warm-up
// is not judged.
func TestRateSpike(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Rules: Rules{RateSpike: &RateSpike{Factor: 4, MinActions: 20, WarmupMinutes: 30}}}
	w := newWatcher(t, f.l, cfg)
	start := w.next
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	at := func(minute, k, per int) time.Time {
		return t0.Add(time.Duration(minute)*time.Minute + time.Duration(k)*time.Minute/time.Duration(per))
	}
	// A burst in the first minutes: still warming up.
	for k := range 50 {
		f.act(t, at(0, k, 50), "bot2", "db.query", "", "")
	}
	// Forty minutes of 10 actions a minute, with an idle stretch.
	for m := 1; m < 45; m++ {
		if m >= 20 && m < 25 {
			continue
		}
		for k := range 10 {
			f.act(t, at(m, k, 10), "bot2", "db.query", "", "")
		}
	}
	// 60 actions in minute 50: a spike, flagged at the action that makes
	// it one, once.
	var burst []uint64
	for k := range 60 {
		burst = append(burst, f.act(t, at(50, k, 60), "bot2", "db.query", "", ""))
	}
	// Another agent with the same burst and no history is warming up.
	for k := range 60 {
		f.act(t, at(51, k, 60), "other", "db.query", "", "")
	}
	if _, err := w.examine(context.Background(), start, f.l.Size()); err != nil {
		t.Fatal(err)
	}
	got := f.got(t)
	if len(got) != 1 {
		t.Fatalf("alerts %v, want one rate_spike", got)
	}
	var idx uint64
	if _, err := fmt.Sscanf(got[0], "rate_spike@%d", &idx); err != nil || idx < burst[20] || idx > burst[59] {
		t.Fatalf("alert %s, the burst is entries %d to %d", got[0], burst[0], burst[59])
	}
	// With the baseline at about 8 a minute, the spike starts once the
	// minute passes 4 times that and 20 actions: at its 33rd action or so.
	if idx < burst[25] || idx > burst[40] {
		t.Fatalf("alert at entry %d: burst entry %d", idx, idx-burst[0])
	}
}

// TestRecordConfig checks that the alerting configuration is recorded in
// the log when it changes, and only then, including when alerting is
// turned off; webhook secrets never appear.
func TestRecordConfig(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	records := func() []string {
		var out []string
		flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindSystem}}}
		if _, err := f.l.Search(ctx, flt, 0, f.l.Size(), 0, func(_ uint64, leaf []byte) error {
			var v struct {
				Action, Principal string
				Attributes        json.RawMessage
			}
			if err := json.Unmarshal(leaf, &v); err != nil {
				return err
			}
			if v.Action != "anomaly.configured" || v.Principal != "agentlog" {
				return fmt.Errorf("unexpected record %s", leaf)
			}
			out = append(out, string(v.Attributes))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The defaults on a new log: nothing to record (no record means the
	// defaults).
	def := DefaultConfig()
	if changed, err := RecordConfig(ctx, f.l, &def); err != nil || changed {
		t.Fatalf("defaults on a new log: %v %v", changed, err)
	}
	c := DefaultConfig()
	c.Webhooks = []Webhook{{URL: "https://hooks.example/a", SecretFile: "/etc/secret-file"}}
	for _, step := range []struct {
		c       *Config
		changed bool
	}{{&c, true}, {&c, false}, {nil, true}, {nil, false}, {&c, true}, {&def, true}} {
		changed, err := RecordConfig(ctx, f.l, step.c)
		if err != nil || changed != step.changed {
			t.Fatalf("RecordConfig(%v) = %v, %v; want %v", step.c != nil, changed, err, step.changed)
		}
	}
	got := records()
	if len(got) != 4 || !strings.Contains(got[0], `"enabled":true`) || !strings.Contains(got[1], `"enabled":false`) || got[2] != got[0] || strings.Contains(got[3], "webhooks") {
		t.Fatalf("records %v", got)
	}
	if !strings.Contains(got[0], `"url":"https://hooks.example/a","signed":true`) || strings.Contains(got[0], "secret-file") {
		t.Fatalf("webhook recorded as %s", got[0])
	}
}

// TestScopeChangesFromTheLog changes an agent's scope in the log between
// its actions: each action is judged by the scope in effect at its index,
// not by the identity store's current one, also by a watcher restarted
// from before the change.
func TestScopeChangesFromTheLog(t *testing.T) {
	f := newFixture(t)
	// The identity store already holds the new scope (db.* only).
	current := identity.Scope{Actions: []string{"db.*"}}
	scope := func(agent string) (identity.Scope, bool) { return current, agent == "mover" }
	w, err := New(Options{Log: f.l, Config: DefaultConfig(), Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	mon := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	change := func(at time.Time, from, to []string) {
		t.Helper()
		f.setNow(at)
		attrs, _ := json.Marshal(map[string]any{"scope": identity.Scope{Actions: to}, "previous": identity.Scope{Actions: from}})
		if _, err := f.l.Append(context.Background(), alog.Principal{ID: "admin", Role: "admin", Agent: "mover"}, alog.KindAgent,
			[]alog.Record{{Action: "agent.scope_changed", Attributes: attrs}}); err != nil {
			t.Fatal(err)
		}
	}
	// Before the change the scope was shell.* only.
	a1 := f.act(t, mon, "mover", "shell.exec", "", "")                // in scope then
	a2 := f.act(t, mon.Add(time.Second), "mover", "db.query", "", "") // outside then
	change(mon.Add(2*time.Second), []string{"shell.*"}, []string{"db.*"})
	a3 := f.act(t, mon.Add(3*time.Second), "mover", "shell.exec", "", "") // outside now
	a4 := f.act(t, mon.Add(4*time.Second), "mover", "db.query", "", "")   // in scope now
	_ = a1
	_ = a4
	want := []string{fmt.Sprintf("scope@%d", a2), fmt.Sprintf("scope@%d", a3)}
	if _, err := w.examine(context.Background(), w.next, f.l.Size()); err != nil {
		t.Fatal(err)
	}
	if got := f.got(t); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	// A watcher resuming from before the change judges by the old scope
	// until it reaches the change, then by the new one.
	w2, err := New(Options{Log: f.l, Config: DefaultConfig(), Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.seedScopes(context.Background(), a1); err != nil {
		t.Fatal(err)
	}
	if c := w2.scopeOf("mover"); c == nil || !c.AllowsAction("shell.exec", "", "") || c.AllowsAction("db.query", "", "") {
		t.Fatalf("resumed before the change with scope %+v", c)
	}
}

// TestHoursDetail checks that an hours alert describes the declared times
// in words, naming the defaults of what the scope left out instead of
// printing empty strings.
func TestHoursDetail(t *testing.T) {
	f := newFixture(t)
	w := newWatcher(t, f.l, Config{Rules: Rules{Hours: true}})
	sat := time.Date(2026, 3, 7, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		scope identity.Scope
		want  string
	}{
		{identity.Scope{Hours: "09:00-17:00"}, "outside the agent's declared hours 09:00-17:00 on every day in UTC"},
		{identity.Scope{Weekdays: "mon-fri", TZ: "Europe/Paris"}, "outside the agent's declared hours any time on mon-fri in Europe/Paris"},
	} {
		alerts, err := w.check(context.Background(), 1, &agentlog.Leaf{Time: sat, Kind: alog.KindAction, Agent: "bot", Action: "db.query"}, tc.scope.Compile())
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) != 1 {
			t.Fatalf("scope %+v at %s: %d alerts, want 1", tc.scope, sat, len(alerts))
		}
		var a struct{ Detail string }
		if err := json.Unmarshal(alerts[0].rec.Attributes, &a); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(a.Detail, tc.want) || strings.Contains(a.Detail, `""`) {
			t.Errorf("scope %+v: detail %q, want it to contain %q and no empty value", tc.scope, a.Detail, tc.want)
		}
	}
}
