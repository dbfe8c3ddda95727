package change

import (
	"context"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

func newStores(t *testing.T, dir string) (*alog.Log, *identity.Store, *Store) {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(l.DB(), l, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l, ids, s
}

var (
	admin    = alog.Principal{ID: "admin", Role: identity.RoleAdmin}
	approver = alog.Principal{ID: "alice", Role: identity.RoleApprover}
)

// TestOpenRepairs: a stop between an approval and what follows it (the
// superseding of the replaced change, the agent's configuration) is
// repaired when the store is opened again, from the stored changes.
func TestOpenRepairs(t *testing.T) {
	dir := t.TempDir()
	l, ids, s := newStores(t, dir)
	ctx := context.Background()
	pub := make([]byte, 32)
	cfg1 := jsontext.Value(`{"model":{"name":"m","version":"1"}}`)
	sp := identity.AgentSpec{ID: "bot", Owner: "o", PublicKey: pub, Config: cfg1}
	a, err := ids.Register(ctx, admin, sp)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.RecordInitial(ctx, admin, a, sp.Document())
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Propose(ctx, admin, Proposal{Agent: "bot", Config: jsontext.Value(`{"model":{"name":"m","version":"2"}}`), Description: "d", Testing: "t", Rollback: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, admin, c.ID, ""); err == nil {
		t.Fatal("the proposer approved their own change")
	}
	approved, err := s.Approve(ctx, approver, c.ID, "ok")
	if err != nil {
		t.Fatal(err)
	}
	// Simulate the stop: the old change still approved, the agent on the
	// old configuration.
	old, _ := s.Get(first.ID)
	old.State, old.SupersededBy = StateApproved, ""
	if err := s.put(old); err != nil {
		t.Fatal(err)
	}
	if _, err := ids.SetConfig("bot", first.Config, ""); err != nil {
		t.Fatal(err)
	}
	ids.Close()
	l.Close()

	l, ids, s = newStores(t, dir)
	defer l.Close()
	if got, _ := s.Get(first.ID); got.State != StateSuperseded || got.SupersededBy != approved.ID {
		t.Fatalf("the replaced change is %s (by %q) after reopening", got.State, got.SupersededBy)
	}
	if a, _ := ids.Agent("bot"); a.Config != approved.Config {
		t.Fatalf("the agent's configuration is %s, want %s", a.Config, approved.Config)
	}
	// The leaves: initial proposed+approved, the proposal, the approval.
	var actions []string
	for i := uint64(0); i < l.Size(); i++ {
		b, _ := l.Entry(i)
		lf, _ := agentlog.ParseLeaf(b)
		if lf.Kind == alog.KindChange {
			actions = append(actions, lf.Action+" "+lf.Principal)
		}
	}
	want := []string{"change.proposed admin", "change.approved admin", "change.proposed admin", "change.approved alice"}
	if len(actions) != len(want) {
		t.Fatalf("change leaves %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("change leaves %v, want %v", actions, want)
		}
	}
	// A rollback to the first configuration names the change it restores.
	rb, err := s.Propose(ctx, approver, Proposal{Agent: "bot", Config: cfg1, Description: "back", Testing: "t", Rollback: "r"})
	if err != nil || rb.RollbackOf != first.ID {
		t.Fatalf("rollback %+v %v, want rollback_of %s", rb, err, first.ID)
	}
	st, err := Attest(approved, "example.com/log")
	if err != nil || st.Predicate.LogIndex != *approved.DecidedIndex || st.Subject[0].Digest["sha256"] != approved.Config[len("sha256:"):] {
		t.Fatalf("attestation %+v %v", st, err)
	}

}

// TestOpenRecordsInitialConfig: a stop between an agent's registration
// with a configuration and the change recording it (two transactions) is
// repaired when the store is opened again: the configuration is recorded
// as approved by the registering admin, once. The document stays
// available when the stop came after it was stored.
func TestOpenRecordsInitialConfig(t *testing.T) {
	for _, stored := range []bool{false, true} {
		t.Run(map[bool]string{false: "before the document", true: "after the document"}[stored], func(t *testing.T) {
			dir := t.TempDir()
			l, ids, s := newStores(t, dir)
			ctx := context.Background()
			sp := identity.AgentSpec{ID: "bot", Owner: "o", PublicKey: make([]byte, 32), Config: jsontext.Value(`{"model":{"name":"m","version":"1"}}`)}
			if _, err := ids.Register(ctx, admin, sp); err != nil {
				t.Fatal(err)
			}
			d := sp.Document()
			if stored {
				if err := s.putDocument(d); err != nil {
					t.Fatal(err)
				}
			}
			// The stop: no RecordInitial.
			size := l.Size()
			l.Close()
			for range 2 { // opened twice: repaired once
				l, ids, s = newStores(t, dir)
				cs, err := s.List("bot", "")
				if err != nil {
					t.Fatal(err)
				}
				if len(cs) != 1 || cs[0].State != StateApproved || !cs[0].Initial || cs[0].Config != d.Digest || cs[0].ProposedBy != "admin" || cs[0].DecidedBy != "admin" {
					t.Fatalf("changes after reopening: %+v", cs)
				}
				if _, err := s.Document(d.Digest); (err == nil) != stored {
					t.Fatalf("document: %v", err)
				}
				if a, _ := ids.Agent("bot"); a.Config != d.Digest {
					t.Fatalf("agent config %q", a.Config)
				}
				if l.Size() != size+2 {
					t.Fatalf("tree size %d, want %d (the two change entries, once)", l.Size(), size+2)
				}
				for i := size; i < l.Size(); i++ {
					b, _ := l.Entry(i)
					lf, err := agentlog.ParseLeaf(b)
					if err != nil || lf.Kind != alog.KindChange || lf.Agent != "bot" || lf.Config != d.Digest || lf.Principal != "admin" || !strings.Contains(string(lf.Attributes), `"repaired":true`) {
						t.Fatalf("entry %d: %+v %v", i, lf, err)
					}
				}
				l.Close()
			}
		})
	}
}
