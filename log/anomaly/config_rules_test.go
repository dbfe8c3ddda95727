package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
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
