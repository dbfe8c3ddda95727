package change

import (
	"encoding/json"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
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
// What the entries do not hold is not rebuilt: the configuration
// documents themselves (GET /v1/configs/{digest}, the diff of a change)
// are only on the node a change was proposed to, so a proposal made there
// and approved after a takeover fails to find its document; propose it
// again. The times of the steps are the entries' times.
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
		return s.put(c)
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
