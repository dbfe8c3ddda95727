package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"

	alog "github.com/agentlog/agentlog/log"
)

// Health rules: the log's own state, as alerts in the log (CC7.2).
const (
	RuleNTPUnsynced       = "ntp_unsynced"        // the clock lost its NTP synchronization
	RuleWitnessQuorumLost = "witness_quorum_lost" // the newest checkpoint lacks its witness quorum
	RuleCheckpointStalled = "checkpoint_stalled"  // the tree grew but no checkpoint was signed
)

// Check reports whether a health condition is bad now, with a sentence
// saying why.
type Check func() (bad bool, detail string)

// HealthOptions configures a HealthWatcher.
type HealthOptions struct {
	Log *alog.Log
	// Checks are the conditions by rule name.
	Checks map[string]Check
	// After is how long a condition must stay bad before it is raised,
	// and good again before its episode is cleared (default 2 minutes), so
	// a start-up sync or a blip is not an episode, and a check that reads
	// good for a while after a restart (the witness client before its lag
	// tolerance) does not end one.
	After time.Duration
	// Interval is how often the checks run (default 5 s).
	Interval time.Duration
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger
}

// HealthWatcher raises an alert when one of the log's health conditions
// has been bad for HealthOptions.After, once per episode, and records its
// end with a second entry. An episode's state is kept with its entry (in
// the same transaction), so a restart neither raises it again nor forgets
// to clear it.
type HealthWatcher struct {
	o        HealthOptions
	badFrom  map[string]time.Time
	goodFrom map[string]time.Time // of raised episodes whose condition reads good
}

// healthKey holds whether rule's episode is raised.
func healthKey(rule string) []byte { return []byte("a/health/" + rule) }

// NewHealthWatcher returns a HealthWatcher; Run starts it.
func NewHealthWatcher(o HealthOptions) *HealthWatcher {
	if o.After <= 0 {
		o.After = 2 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &HealthWatcher{o: o, badFrom: map[string]time.Time{}, goodFrom: map[string]time.Time{}}
}

// Run checks the conditions every Interval until ctx ends.
func (h *HealthWatcher) Run(ctx context.Context) {
	t := time.NewTicker(h.o.Interval)
	defer t.Stop()
	for {
		if err := h.Tick(ctx); err != nil && ctx.Err() == nil {
			h.o.Logger.Error("health alerts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// healthState is what the log keeps of a raised episode.
type healthState struct {
	Index  uint64    `json:"index"` // of the entry that raised it
	Raised time.Time `json:"raised"`
}

// Tick runs every check once, raising and clearing episodes.
func (h *HealthWatcher) Tick(ctx context.Context) error {
	now := h.o.Now()
	for rule, check := range h.o.Checks {
		bad, detail := check()
		st, raised, err := h.state(rule)
		if err != nil {
			return err
		}
		if bad {
			delete(h.goodFrom, rule)
		}
		switch {
		case bad && !raised:
			from, long := h.since(h.badFrom, rule, now)
			if !long {
				continue
			}
			attrs, _ := json.Marshal(map[string]any{"rule": rule, "state": "raised", "since": from.UTC(), "detail": detail})
			var rec healthState
			extra := func(res []alog.Appended) ([]byte, []byte, time.Duration) {
				rec = healthState{Index: res[0].Index, Raised: now.UTC()}
				b, _ := json.Marshal(rec)
				return healthKey(rule), b, 0
			}
			if _, err := h.o.Log.AppendWith(ctx, Principal, alog.KindAlert, []alog.Record{{Action: "alert." + rule, Attributes: attrs}}, extra); err != nil {
				return fmt.Errorf("raising %s: %w", rule, err)
			}
		case !bad && raised:
			delete(h.badFrom, rule)
			if _, long := h.since(h.goodFrom, rule, now); !long {
				continue
			}
			delete(h.goodFrom, rule)
			attrs, _ := json.Marshal(map[string]any{"rule": rule, "state": "cleared", "raised_entry": st.Index,
				"detail": fmt.Sprintf("%s ended after %s", rule, now.Sub(st.Raised).Round(time.Second))})
			extra := func([]alog.Appended) ([]byte, []byte, time.Duration) { return healthKey(rule), []byte("null"), 0 }
			if _, err := h.o.Log.AppendWith(ctx, Principal, alog.KindAlert, []alog.Record{{Action: "alert." + rule + ".cleared", Attributes: attrs}}, extra); err != nil {
				return fmt.Errorf("clearing %s: %w", rule, err)
			}
		case !bad:
			delete(h.badFrom, rule)
		}
	}
	return nil
}

// since returns when rule's condition started to read as m tracks (bad,
// or good), starting it now if unknown, and whether that lasted After.
func (h *HealthWatcher) since(m map[string]time.Time, rule string, now time.Time) (time.Time, bool) {
	from, ok := m[rule]
	if !ok {
		m[rule] = now
		from = now
	}
	return from, now.Sub(from) >= h.o.After
}

// state reads whether rule's episode is raised.
func (h *HealthWatcher) state(rule string) (healthState, bool, error) {
	var st healthState
	raised := false
	err := h.o.Log.DB().View(func(txn *badger.Txn) error {
		item, err := txn.Get(healthKey(rule))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) == "null" {
				return nil
			}
			raised = true
			return json.Unmarshal(v, &st)
		})
	})
	return st, raised, err
}

// Episode is a health episode raised and not yet cleared.
type Episode struct {
	Rule   string
	Index  uint64 // of the entry that raised it
	Raised time.Time
}

// OpenEpisodes returns the health episodes raised and not cleared, as the
// log keeps them (so they survive restarts), sorted by rule.
func OpenEpisodes(l *alog.Log) ([]Episode, error) {
	var out []Episode
	prefix := healthKey("")
	err := l.DB().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			rule := string(it.Item().Key()[len(prefix):])
			err := it.Item().Value(func(v []byte) error {
				if string(v) == "null" {
					return nil
				}
				var st healthState
				if err := json.Unmarshal(v, &st); err != nil {
					return fmt.Errorf("health episode %s: %w", rule, err)
				}
				out = append(out, Episode{Rule: rule, Index: st.Index, Raised: st.Raised})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
