package anomaly

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/query"
)

// resumeKey holds, on a node that took over the log, which alerts the
// rules must not raise again (a resume as JSON) until they have examined
// the entries the old active wrote.
var resumeKey = []byte("a/resume")

// resume is what PrepareTakeover leaves for the Watcher.
type resume struct {
	// Alerts for entries below SilentBelow are never raised: the old
	// active examined those entries. The rules still run over them, from
	// the watcher's position, to rebuild their windows and baselines.
	SilentBelow uint64 `json:"silent_below"`
	// An alert for an entry below RaisedBelow (the size at the takeover)
	// is raised only if the log holds none of its rule for that entry.
	RaisedBelow uint64 `json:"raised_below"`
}

// WarmUp is how much of the log before the first entry the old active may
// not have examined the rules read again at a takeover, to rebuild their
// windows (rate, denied_burst) and baselines (rate_spike): the hour before
// it, at most LagLimit entries.
const WarmUp = time.Hour

// PrepareTakeover sets up the rules' state on a node that copied the log
// from its bucket (a standby, package mirror) and is taking it over, before
// New: the old active's position, windows and episodes were on its own
// disk. From the log alone:
//
//   - where to resume: after the last entry an alert of the old active
//     names (it had examined everything before it), at most LagLimit
//     entries before the end (an old active further behind had reported
//     its rules degraded in /healthz), and not before the rules were last
//     turned on ("anomaly.configured"); if they were off, at the end;
//   - the windows and baselines, from the entries of the WarmUp before
//     that point, read again with their alerts suppressed;
//   - no alert raised twice: an alert for an entry the old active wrote
//     is raised only if the log holds none of its rule for that entry;
//   - the health episodes (ntp_unsynced, witness_quorum_lost,
//     checkpoint_stalled) raised and not yet cleared, so that the new
//     node clears them, or keeps them, rather than raising them again;
//   - the last recorded alerting configuration, so RecordConfig records
//     the new node's only if it differs.
//
// Webhooks start at the positions the old active published
// (Options.ResumeHook, with a mirror): the alerts it had not delivered are
// delivered by the new node; without a published position, a webhook
// starts with the alerts raised after the takeover.
func PrepareTakeover(ctx context.Context, l *alog.Log) error {
	size := l.Size()
	lagFloor := size - min(size, LagLimit)
	// The rules' last configuration: off means nothing to examine again.
	resumeAt, configured := uint64(0), []byte(nil)
	cfgFilter := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindSystem}, {Field: "action", Value: "anomaly.configured"}}}
	if _, err := l.Search(ctx, cfgFilter, 0, size, 0, func(i uint64, leaf []byte) error {
		lf, err := agentlog.ParseLeaf(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		var c struct {
			Enabled bool `json:"enabled"`
		}
		if err := json.Unmarshal(lf.Attributes, &c); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		configured = append(configured[:0], lf.Attributes...)
		resumeAt = i
		if !c.Enabled {
			resumeAt = size
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading the alerting configurations: %w", err)
	}
	// The last entry an alert of the old active names (alerts come after
	// the entries they name: those before lagFloor do not matter).
	last, named := uint64(0), false
	alerts := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	if _, err := l.Search(ctx, alerts, lagFloor, size, 0, func(i uint64, leaf []byte) error {
		var a struct {
			Attributes struct {
				Entry *uint64 `json:"entry"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(leaf, &a); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if a.Attributes.Entry != nil {
			last, named = max(last, *a.Attributes.Entry), true
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading the alerts: %w", err)
	}
	// The health episodes: the last raise or clear of each rule.
	episodes, episodeAt := map[string][]byte{}, map[string]uint64{}
	for _, rule := range []string{RuleNTPUnsynced, RuleWitnessQuorumLost, RuleCheckpointStalled} {
		for _, action := range []string{"alert." + rule, "alert." + rule + ".cleared"} {
			flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}, {Field: "action", Value: action}}}
			var at uint64
			var state []byte
			if _, err := l.Search(ctx, flt, 0, size, 0, func(i uint64, leaf []byte) error {
				t, err := agentlog.LeafTime(leaf)
				if err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				at, state = i, []byte("null")
				if !strings.HasSuffix(action, ".cleared") {
					state, _ = json.Marshal(healthState{Index: i, Raised: t.UTC()})
				}
				return nil
			}); err != nil {
				return fmt.Errorf("reading the %s episodes: %w", rule, err)
			}
			if state != nil && (episodes[rule] == nil || at > episodeAt[rule]) {
				episodes[rule], episodeAt[rule] = state, at
			}
		}
	}
	if named {
		resumeAt = max(resumeAt, last+1)
	}
	resumeAt = min(max(resumeAt, lagFloor), size)
	warmFrom := resumeAt - min(resumeAt, LagLimit)
	if resumeAt > 0 {
		leaf, err := l.Entry(resumeAt - 1)
		if err != nil {
			return err
		}
		t, err := agentlog.LeafTime(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", resumeAt-1, err)
		}
		at, err := l.IndexAt(t.Add(-WarmUp), resumeAt)
		if err != nil {
			return err
		}
		warmFrom = max(warmFrom, at)
	}
	r, _ := json.Marshal(resume{SilentBelow: resumeAt, RaisedBelow: size})
	return l.DB().Update(func(txn *badger.Txn) error {
		if err := txn.Set(nextKey, binary.BigEndian.AppendUint64(nil, warmFrom)); err != nil {
			return err
		}
		if err := txn.Set(resumeKey, r); err != nil {
			return err
		}
		for rule, v := range episodes {
			if err := txn.Set(healthKey(rule), v); err != nil {
				return err
			}
		}
		if configured != nil {
			return txn.Set(configKey, configured)
		}
		return nil
	})
}

// loadResume reads what PrepareTakeover left, and the alerts the log
// already holds for the entries it names (rule and entry index).
func (w *Watcher) loadResume(ctx context.Context) error {
	var r resume
	found := false
	err := w.o.Log.DB().View(func(txn *badger.Txn) error {
		item, err := txn.Get(resumeKey)
		if err == badger.ErrKeyNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &r) })
	})
	if err != nil || !found {
		return err
	}
	w.resume = &r
	w.raised = map[raisedKey]bool{}
	alerts := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}}
	_, err = w.o.Log.Search(ctx, alerts, min(r.SilentBelow, w.next), w.o.Log.Size(), 0, func(i uint64, leaf []byte) error {
		lf, err := agentlog.ParseLeaf(leaf)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		var a struct {
			Rule  string  `json:"rule"`
			Entry *uint64 `json:"entry"`
		}
		if len(lf.Attributes) > 0 && json.Unmarshal(lf.Attributes, &a) == nil && a.Entry != nil {
			w.raised[raisedKey{a.Rule, *a.Entry}] = true
		}
		return nil
	})
	return err
}

// raisedKey is an alert of a rule for one entry.
type raisedKey struct {
	rule  string
	entry uint64
}

// unraised drops from alerts those a takeover's resume says not to raise.
func (w *Watcher) unraised(alerts []alert) []alert {
	if w.resume == nil {
		return alerts
	}
	out := alerts[:0]
	for _, a := range alerts {
		switch {
		case a.index < w.resume.SilentBelow:
		case a.index < w.resume.RaisedBelow && w.raised[raisedKey{a.rule, a.index}]:
		default:
			out = append(out, a)
		}
	}
	return out
}

// resumed forgets the resume once the rules have examined every entry
// below RaisedBelow.
func (w *Watcher) resumed(next uint64) error {
	if w.resume == nil || next < w.resume.RaisedBelow {
		return nil
	}
	if err := w.o.Log.DB().Update(func(txn *badger.Txn) error { return txn.Delete(resumeKey) }); err != nil {
		return err
	}
	w.resume, w.raised = nil, nil
	return nil
}
