package change

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// TestReplayRebuildsChanges drives changes through every state on one
// store, then replays the log's entries into a second log's identity and
// change stores, as a standby does: the changes answer as on the first
// (times aside, which are the entries'), the agent runs under the
// approved configuration, and config=enforce refuses a session that
// declares the configuration the approval replaced.
func TestReplayRebuildsChanges(t *testing.T) {
	ctx := context.Background()
	// The documents go to a "bucket" as they are stored.
	bucket := map[string][]byte{}
	l, ids, s := storesWith(t, Options{SaveDocument: func(digest string, b []byte) error { bucket[digest] = b; return nil }})
	pub, priv, _ := ed25519.GenerateKey(nil)
	doc := func(v string) jsontext.Value { return jsontext.Value(`{"model":{"name":"m","version":"` + v + `"}}`) }
	sp := identity.AgentSpec{ID: "bot", Owner: "o", PublicKey: pub, Config: doc("1")}
	a, err := ids.Register(ctx, admin, sp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ids.Approve(ctx, admin, "bot"); err != nil {
		t.Fatal(err)
	}
	first, err := s.RecordInitial(ctx, admin, a, sp.Document())
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Propose(ctx, admin, Proposal{Agent: "bot", Config: doc("2"), Policy: identity.PolicyEnforce, Description: "d", Testing: "t", Rollback: "r", Risk: "low"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, approver, second.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	rejected, err := s.Propose(ctx, approver, Proposal{Agent: "bot", Config: doc("3"), Description: "d", Testing: "t", Rollback: "r", Ticket: "https://tickets.example/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reject(ctx, admin, rejected.ID, "no"); err != nil {
		t.Fatal(err)
	}
	rollback, err := s.Propose(ctx, approver, Proposal{Agent: "bot", Config: doc("1"), Description: "back", Testing: "t", Rollback: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, admin, rollback.ID, ""); err != nil {
		t.Fatal(err)
	}
	pending, err := s.Propose(ctx, admin, Proposal{Agent: "bot", Config: doc("4"), Description: "d", Testing: "t", Rollback: "r"})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := RecordSettings(ctx, l, true); err != nil {
		t.Fatal(err)
	}
	// A tampered document in the bucket is not taken.
	bucket[rejected.Config] = []byte(`{"model":{"name":"m","version":"tampered"}}`)
	l2, ids2, s2 := storesWith(t, Options{FetchDocument: func(digest string) ([]byte, error) {
		if b, ok := bucket[digest]; ok {
			return b, nil
		}
		return nil, errors.New("no such object")
	}})
	for i := uint64(0); i < l.Size(); i++ {
		leaf, err := l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := ids2.Replay(leaf); err != nil {
			t.Fatalf("identity replay of entry %d: %v", i, err)
		}
		if err := s2.Replay(i, leaf); err != nil && !strings.Contains(err.Error(), rejected.Config) {
			t.Fatalf("change replay of entry %d: %v", i, err)
		}
	}
	if l2.Size() != 0 {
		t.Fatalf("replaying appended %d entries", l2.Size())
	}
	want, _ := s.List("", "")
	got, _ := s2.List("", "")
	if len(got) != len(want) || len(want) != 5 {
		t.Fatalf("%d changes replayed, want %d (5)", len(got), len(want))
	}
	for i := range want {
		w, g := *want[i], *got[i]
		for _, c := range []*Change{&w, &g} {
			c.Proposed, c.Decided = time.Time{}, nil
		}
		if jw, jg := mustJSON(t, w), mustJSON(t, g); jw != jg {
			t.Errorf("change %s replayed as\n%s\nwant\n%s", w.ID, jg, jw)
		}
	}
	states := map[string]string{first.ID: StateSuperseded, second.ID: StateSuperseded, rejected.ID: StateRejected, rollback.ID: StateApproved, pending.ID: StateProposed}
	for id, st := range states {
		if c, err := s2.Get(id); err != nil || c.State != st {
			t.Errorf("change %s is %v (%v) on the replica, want %s", id, c, err, st)
		}
	}
	// The documents and diffs answer as on the first, but for the
	// tampered one, which is refused.
	for _, c := range want {
		if c.Config == rejected.Config {
			if _, err := s2.Document(c.Config); !errors.Is(err, ErrNotFound) {
				t.Fatalf("the tampered document was stored: %v", err)
			}
			continue
		}
		d1, _ := s.Document(c.Config)
		d2, err := s2.Document(c.Config)
		if err != nil || string(d1) != string(d2) {
			t.Fatalf("document %s on the replica: %s, %v", c.Config, d2, err)
		}
		x1, _ := s.Diff(c)
		x2, err := s2.Diff(c)
		if err != nil || mustJSON(t, x1) != mustJSON(t, x2) {
			t.Fatalf("diff of %s on the replica: %v, %v; want %v", c.ID, x2, err, x1)
		}
	}
	src, _ := ids.Agent("bot")
	dst, _ := ids2.Agent("bot")
	if dst.Config != src.Config || dst.ConfigPolicy != identity.PolicyEnforce || dst.Config != rollback.Config {
		t.Fatalf("replica's agent runs %s policy %q, want %s policy enforce", dst.Config, dst.ConfigPolicy, src.Config)
	}
	// The settings recorded last are the replica's: self-approval stays
	// allowed without a new entry, and turning it off is recorded.
	if changed, err := RecordSettings(ctx, l2, true); err != nil || changed {
		t.Fatalf("the replica recorded the same settings again (%v)", err)
	}
	if changed, err := RecordSettings(ctx, l2, false); err != nil || !changed {
		t.Fatalf("the replica did not record self-approval turned off (%v)", err)
	}
	// config=enforce on the replica: the replaced configuration is refused.
	now := time.Now()
	req := agentlog.NewConfiguredSessionRequest("bot", "task", second.Config, 0, now, priv)
	if _, err := ids2.OpenSession(ctx, req, now, ed25519.Sign(priv, req.SignedBytes())); !errors.Is(err, identity.ErrConfigRefused) {
		t.Fatalf("a session declaring the replaced configuration: %v, want ErrConfigRefused", err)
	}
	req = agentlog.NewConfiguredSessionRequest("bot", "task", rollback.Config, 0, now, priv)
	if _, err := ids2.OpenSession(ctx, req, now, ed25519.Sign(priv, req.SignedBytes())); err != nil {
		t.Fatalf("a session declaring the approved configuration: %v", err)
	}
	// A proposal made before the takeover is approved after it.
	if _, err := s2.Approve(ctx, approver, pending.ID, "after the takeover"); err != nil {
		t.Fatalf("approving, on the replica, a change proposed on the first: %v", err)
	}
}

// storesWith opens a log, its identity store and a change store with o
// in a new directory.
func storesWith(t *testing.T, o Options) (*alog.Log, *identity.Store, *Store) {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(l.DB(), l, ids, o)
	if err != nil {
		t.Fatal(err)
	}
	return l, ids, s
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
