package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

const (
	goodCfg = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	badCfg  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// open appends a session.opened entry with a configuration state.
func (f *fixture) open(t *testing.T, at time.Time, agent, session, config, status, approved string) uint64 {
	t.Helper()
	f.setNow(at)
	a := map[string]any{"ttl_seconds": 3600}
	if status != "" {
		a["config_status"] = status
	}
	if approved != "" {
		a["approved_config"] = approved
	}
	b, _ := json.Marshal(a)
	p := alog.Principal{ID: agent, Role: "agent", Agent: agent, Session: session, Task: "task", Config: config}
	res, err := f.l.Append(context.Background(), p, alog.KindSession, []alog.Record{{Action: "session.opened", Attributes: b}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Index
}

// actIn appends an action of agent in session.
func (f *fixture) actIn(t *testing.T, at time.Time, agent, session, config string) uint64 {
	t.Helper()
	f.setNow(at)
	p := alog.Principal{ID: agent, Role: "agent", Agent: agent, Session: session, Task: "task", Config: config}
	res, err := f.l.Append(context.Background(), p, alog.KindAction, []alog.Record{{Action: "db.query"}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Index
}

// TestConfigRules: unapproved_config for every action of a session opened
// under another configuration than the approved one, undeclared_config
// once for a session that declared none; nothing for approved sessions or
// agents without a configuration; nothing twice, and the state of a
// session opened before a restart is read back from the log.
func TestConfigRules(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("config=%v", on), func(t *testing.T) {
			f := newFixture(t)
			cfg := Config{Rules: Rules{Config: on}}
			w := newWatcher(t, f.l, cfg)
			start := w.next
			at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			var want []string
			exp := func(rule string, i uint64) {
				if on {
					want = append(want, fmt.Sprintf("%s@%d", rule, i))
				}
			}
			f.open(t, at, "open", "s-ok", goodCfg, "approved", "")
			f.open(t, at, "open", "s-bad", badCfg, "unapproved", goodCfg)
			exp("undeclared_config", f.open(t, at, "open", "s-none", "", "undeclared", goodCfg))
			f.open(t, at, "open", "s-plain", "", "", "")
			f.actIn(t, at, "open", "s-ok", goodCfg)
			exp("unapproved_config", f.actIn(t, at, "open", "s-bad", badCfg))
			exp("unapproved_config", f.actIn(t, at, "open", "s-bad", badCfg))
			f.actIn(t, at, "open", "s-none", "")
			f.actIn(t, at, "open", "s-plain", "")
			next, err := w.examine(context.Background(), start, f.l.Size())
			if err != nil {
				t.Fatal(err)
			}
			if got := f.got(t); !slices.Equal(got, want) {
				t.Fatalf("alerts:\n got %v\nwant %v", got, want)
			}
			// After a restart the watcher knows no session: s-bad's state
			// comes from its session.opened entry, through the indexes.
			w2 := newWatcher(t, f.l, cfg)
			if w2.next != next {
				t.Fatalf("restarted at %d, stopped at %d", w2.next, next)
			}
			exp("unapproved_config", f.actIn(t, at, "open", "s-bad", badCfg))
			f.actIn(t, at, "open", "s-ok", goodCfg)
			if _, err := w2.examine(context.Background(), w2.next, f.l.Size()); err != nil {
				t.Fatal(err)
			}
			if got := f.got(t); !slices.Equal(got, want) {
				t.Fatalf("alerts after a restart:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// seqAct appends an action numbered seq in session.
func (f *fixture) seqAct(t *testing.T, at time.Time, session string, seq uint64) uint64 {
	t.Helper()
	f.setNow(at)
	p := alog.Principal{ID: "open", Role: "agent", Agent: "open", Session: session, Task: "task"}
	res, err := f.l.Append(context.Background(), p, alog.KindAction, []alog.Record{{Action: "db.query", Seq: seq}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Index
}

// TestSequenceGap: a skipped or repeated seq raises sequence_gap; in-order
// numbers, unnumbered records and separate sessions do not; after a
// restart the session's numbers are read back from the log.
func TestSequenceGap(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("sequence_gap=%v", on), func(t *testing.T) {
			f := newFixture(t)
			cfg := Config{Rules: Rules{SequenceGap: on}}
			w := newWatcher(t, f.l, cfg)
			at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			var want []string
			exp := func(i uint64) {
				if on {
					want = append(want, fmt.Sprintf("sequence_gap@%d", i))
				}
			}
			f.seqAct(t, at, "s1", 1)
			f.seqAct(t, at, "s1", 2)
			f.seqAct(t, at, "s2", 1)      // another session starts at 1
			exp(f.seqAct(t, at, "s1", 5)) // skips 3 and 4
			f.seqAct(t, at, "s1", 6)
			exp(f.seqAct(t, at, "s1", 6)) // repeats
			f.seqAct(t, at, "s1", 0)      // unnumbered
			exp(f.seqAct(t, at, "s3", 3)) // a session whose first record is 3
			next, err := w.examine(context.Background(), w.next, f.l.Size())
			if err != nil {
				t.Fatal(err)
			}
			if got := f.got(t); !slices.Equal(got, want) {
				t.Fatalf("alerts:\n got %v\nwant %v", got, want)
			}
			w2 := newWatcher(t, f.l, cfg)
			if w2.next != next {
				t.Fatalf("restarted at %d, stopped at %d", w2.next, next)
			}
			f.seqAct(t, at, "s1", 7)      // follows 6, read back from the log
			exp(f.seqAct(t, at, "s2", 3)) // skips 2
			if _, err := w2.examine(context.Background(), w2.next, f.l.Size()); err != nil {
				t.Fatal(err)
			}
			if got := f.got(t); !slices.Equal(got, want) {
				t.Fatalf("alerts after a restart:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// deny appends a denied entry of agent; with agent empty, a
// denied.summary entry counting n denials of address remote.
func (f *fixture) deny(t *testing.T, at time.Time, agent, remote string, n int) uint64 {
	t.Helper()
	f.setNow(at)
	a := map[string]any{"reason": "role not allowed", "status": 403, "remote": remote}
	action := "append"
	if agent == "" {
		action = "denied.summary"
		a = map[string]any{"total": n, "groups": []map[string]any{{"remote": remote, "reason": "unknown credential", "route": "append", "count": n}}}
	}
	b, _ := json.Marshal(a)
	res, err := f.l.Append(context.Background(), alog.Principal{Agent: agent}, alog.KindDenied, []alog.Record{{Action: action, Outcome: "denied", Attributes: b}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Index
}

// TestDeniedBurst: more than max refusals of one agent, or one address
// when no agent was proven (counted in denied.summary entries), in a window
// raise one denied_burst; others in the window do not, a new window counts
// again.
func TestDeniedBurst(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("denied_burst=%v", on), func(t *testing.T) {
			f := newFixture(t)
			cfg := Config{}
			if on {
				cfg.Rules.DeniedBurst = &DeniedBurst{Max: 3, WindowSeconds: 60}
			}
			w := newWatcher(t, f.l, cfg)
			at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			var want []string
			exp := func(i uint64) {
				if on {
					want = append(want, fmt.Sprintf("denied_burst@%d", i))
				}
			}
			for k := range 3 {
				f.deny(t, at.Add(time.Duration(k)*time.Second), "bot", "127.0.0.1", 0)
			}
			f.deny(t, at.Add(5*time.Second), "", "127.0.0.2", 1) // another key
			exp(f.deny(t, at.Add(6*time.Second), "bot", "127.0.0.1", 0))
			f.deny(t, at.Add(7*time.Second), "bot", "127.0.0.1", 0) // same window: once
			// A new window; a summary counting 9 denials of an address.
			exp(f.deny(t, at.Add(time.Minute), "", "127.0.0.2", 9))
			if _, err := w.examine(context.Background(), w.next, f.l.Size()); err != nil {
				t.Fatal(err)
			}
			got := f.gotAll(t)
			if !slices.Equal(got, want) {
				t.Fatalf("alerts:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// gotAll lists every alert as "rule@entry", including those naming no
// agent.
func (f *fixture) gotAll(t *testing.T) []string {
	t.Helper()
	var out []string
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	_, err := f.l.Search(context.Background(), flt, 0, f.l.Size(), 0, func(i uint64, leaf []byte) error {
		var v struct {
			Attributes struct {
				Rule   string
				Entry  uint64
				Detail string
			}
		}
		if err := json.Unmarshal(leaf, &v); err != nil || v.Attributes.Detail == "" {
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
