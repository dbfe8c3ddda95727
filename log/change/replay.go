package change

import (
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/config"
)

// Replay applies the log's entry at index to the store, as a standby
// rebuilds the changes of the log it copies (package mirror), after the
// identity store has replayed the same entry (identity.Store.Replay):
// "change.proposed", "change.approved" and "change.rejected" entries make
// the changes what they were on the node that wrote them, and an approval
// makes its configuration (and policy) the agent's, so config=enforce and
// the change routes answer on a standby, and after it takes over, as they
// did there. The "changes.configured" entries set the settings last
// recorded (RecordSettings). Other entries are ignored, and nothing is
// appended.
//
// The entries hold only the configuration documents' digests: a
// proposal's document is read with Options.FetchDocument (the bucket,
// where the proposing node saved it with Options.SaveDocument before
// appending) and stored only if it has the digest the entry names. The
// times of the steps are the entries' times.
func (s *Store) Replay(index uint64, leaf []byte) error {
	l, err := agentlog.ParseLeaf(leaf)
	if err != nil {
		return err
	}
	if l.Kind == alog.KindSystem && l.Action == "changes.configured" && l.Principal == SystemPrincipal.ID {
		// The settings RecordSettings compares with, once this node
		// takes over.
		return s.db.Update(func(txn *badger.Txn) error { return txn.Set(settingsKey, l.Attributes) })
	}
	if l.Kind != alog.KindChange {
		return nil
	}
	var a struct {
		Change      string `json:"change"`
		Initial     bool   `json:"initial"`
		Previous    string `json:"previous"`
		Policy      string `json:"config_policy"`
		Description string `json:"description"`
		Testing     string `json:"testing"`
		Rollback    string `json:"rollback"`
		Risk        string `json:"risk"`
		Ticket      string `json:"ticket"`
		RollbackOf  string `json:"rollback_of"`
		Comment     string `json:"comment"`
	}
	if len(l.Attributes) > 0 {
		if err := json.Unmarshal(l.Attributes, &a); err != nil {
			return fmt.Errorf("%s entry %d: attributes: %w", l.Action, index, err)
		}
	}
	if a.Change == "" {
		return fmt.Errorf("%s entry %d names no change", l.Action, index)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	t := l.Time.UTC()
	if l.Action == ActionProposed {
		c := &Change{ID: a.Change, Agent: l.Agent, Config: l.Config, Previous: a.Previous, Policy: a.Policy, State: StateProposed,
			Description: a.Description, Testing: a.Testing, Rollback: a.Rollback, Risk: a.Risk, Ticket: a.Ticket, RollbackOf: a.RollbackOf,
			Initial: a.Initial, ProposedBy: l.Principal, ProposerRole: l.Role, Proposed: t, ProposedIndex: index}
		if a.Initial {
			c.Testing, c.Rollback = "-", "-" // as RecordInitial writes them
		}
		if err := s.put(c); err != nil {
			return err
		}
		return s.fetchDocument(c.Config)
	}
	s.mu.RLock()
	old, ok := s.changes[a.Change]
	s.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%s entry %d for change %s, which was never proposed", l.Action, index, a.Change)
	}
	c := clone(old)
	i := index
	c.DecidedBy, c.DeciderRole, c.Decided, c.DecidedIndex, c.Comment = l.Principal, l.Role, &t, &i, a.Comment
	switch l.Action {
	case ActionRejected:
		c.State = StateRejected
		return s.put(c)
	case ActionApproved:
	default:
		return nil
	}
	c.State = StateApproved
	current := s.approvedOf(c.Agent)
	if err := s.put(c); err != nil {
		return err
	}
	if current != nil && current.ID != c.ID {
		sup := clone(current)
		sup.State, sup.SupersededBy = StateSuperseded, c.ID
		if err := s.put(sup); err != nil {
			return err
		}
	}
	if _, err := s.ids.SetConfig(c.Agent, c.Config, c.Policy); err != nil {
		return fmt.Errorf("applying change %s: %w", c.ID, err)
	}
	return nil
}

// fetchDocument stores the configuration document of digest from
// Options.FetchDocument, if the store lacks it, once it is checked to
// have that digest.
func (s *Store) fetchDocument(digest string) error {
	if s.o.FetchDocument == nil || digest == "" {
		return nil
	}
	if _, err := s.Document(digest); err == nil {
		return nil
	}
	b, err := s.o.FetchDocument(digest)
	if err != nil {
		return fmt.Errorf("reading configuration %s: %w", digest, err)
	}
	d, err := config.Parse(b)
	if err != nil || d.Digest != digest {
		return fmt.Errorf("the document given for configuration %s is not it", digest)
	}
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("c/d/"+d.Digest), d.Canonical) })
}
