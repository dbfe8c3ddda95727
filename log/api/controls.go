package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/query"
)

// Defaults of the control-status document (GET /v1/controls).
const (
	DefaultControlsWindow = 24 * time.Hour       // activity is judged over the last day
	DefaultApprovalMaxAge = 365 * 24 * time.Hour // an approval older than a year is due for review
	maxControlsWindow     = 90 * 24 * time.Hour
	maxControlsActions    = 100 // actions under unapproved configurations listed
)

// controlMeta is each control's criterion and title.
var controlMeta = map[string]struct{ criterion, title string }{
	agentlog.ControlCheckpointVerified:  {"CC7.3", "The log's checkpoint is signed, verifies and is kept current"},
	agentlog.ControlCheckpointWitnessed: {"CC7.3", "The checkpoint is cosigned by a quorum of independent witnesses"},
	agentlog.ControlConsistencyChecked:  {"CC7.3", "Each checkpoint is checked consistent with the previous one before it is signed"},
	agentlog.ControlNTPSynchronized:     {"CC7.3", "Entry and checkpoint times come from a clock disciplined by NTP"},
	agentlog.ControlAgentsOwnedScoped:   {"CC6.2", "Every agent has an owner and a declared scope"},
	agentlog.ControlApprovalsCurrent:    {"CC6.2", "Agents that act hold a current approval"},
	agentlog.ControlConfigsApproved:     {"CC8.1", "Agents act only under approved configurations"},
	agentlog.ControlAlertsOpen:          {"CC7.2", "No alert is open"},
}

func (s *Server) getControls(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "controls", RoleAuditor, RoleAdmin); err != nil {
		return err
	}
	window := DefaultControlsWindow
	if v := r.URL.Query().Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > maxControlsWindow {
			return fmt.Errorf("%w: \"window\" must be a duration from 1m to %s, such as 24h", errBadRequest, maxControlsWindow)
		}
		window = d
	}
	c, err := s.Controls(r.Context(), window)
	if err != nil {
		return err
	}
	return writeJSON(w, c)
}

// Controls computes the control-status document over the window ending
// now. Each control is judged from the same state /healthz reports (the
// signing loop, the clock, the witness client), the identity store and
// the log's entries of the window; the change report of the window
// (package change) gives the actions under unapproved configurations.
func (s *Server) Controls(ctx context.Context, window time.Duration) (*agentlog.Controls, error) {
	now := s.cfg.Now().UTC()
	size := s.cfg.Log.Size()
	c := &agentlog.Controls{
		Format: agentlog.ControlsFormat, Origin: s.cfg.Origin, Generated: now,
		WindowSeconds: int64(window / time.Second), WindowFrom: now.Add(-window), TreeSize: size,
		Agents: []agentlog.ControlsAgent{},
	}
	add := func(id string, findings int, failed bool, detail string) {
		pass := findings == 0 && !failed
		st := "pass"
		if !pass {
			st = "fail"
		}
		m := controlMeta[id]
		c.Controls = append(c.Controls, agentlog.Control{ID: id, Criterion: m.criterion, Title: m.title, Passing: pass, Status: st, Findings: findings, Detail: detail})
	}

	// CC7.3: the checkpoint, its witnesses and consistency.
	cp := &c.Checkpoint
	cp.Cosigners = []string{}
	var verr error
	if latest := s.latest.Load(); latest != nil {
		cp.Published = true
		if s.cfg.LogVerifier != nil {
			var opened *checkpoint.Signed
			opened, verr = checkpoint.Open(latest.Raw, s.cfg.LogVerifier, s.cfg.TimeVerifier)
			if verr == nil {
				cp.Verified, cp.Size, cp.SignedAt = true, opened.Size, opened.Time
				if !opened.Time.IsZero() {
					cp.AgeSeconds = int64(now.Sub(opened.Time) / time.Second)
				}
			}
		} else {
			verr = fmt.Errorf("the server was not given the log's keys")
		}
		if s.cfg.Witnesses != nil {
			pol := s.cfg.Witnesses.Policy()
			cp.Witnesses = len(pol.Witnesses)
			v, err := pol.Verify(latest.Raw)
			if v != nil {
				for _, w := range v.Cosigners {
					cp.Cosigners = append(cp.Cosigners, w.Name)
				}
			}
			cp.QuorumMet = err == nil && v != nil
		}
	}
	inconsistent := false
	if s.cfg.Loop != nil {
		ls := s.cfg.Loop.Status()
		inconsistent = ls.Inconsistent
		cp.Refusing, cp.LastError, cp.CheckedAt, cp.Signatures = ls.Refusing, ls.LastError, ls.Checked.UTC(), ls.Signed
		if ls.Checked.IsZero() {
			cp.CheckedAt = time.Time{}
		}
		cp.Stale = size > ls.Size && (ls.Checked.IsZero() || time.Since(ls.Checked) > s.cfg.StaleAfter)
	}
	switch {
	case !cp.Published:
		add(agentlog.ControlCheckpointVerified, 1, true, "no checkpoint has been published yet")
	case !cp.Verified:
		add(agentlog.ControlCheckpointVerified, 1, true, fmt.Sprintf("the published checkpoint does not verify: %v", verr))
	case cp.Stale || cp.Refusing:
		add(agentlog.ControlCheckpointVerified, 1, true, fmt.Sprintf("the tree has grown to %d entries and no checkpoint covers it (last signed size %d): %s", size, cp.Size, cp.LastError))
	default:
		add(agentlog.ControlCheckpointVerified, 0, false,
			fmt.Sprintf("checkpoint of size %d signed %ds ago verifies with the log and timestamp keys", cp.Size, cp.AgeSeconds))
	}
	switch {
	case s.cfg.Witnesses == nil:
		add(agentlog.ControlCheckpointWitnessed, 1, true, "the log runs without a witness policy (serve --witness-policy): its checkpoints are not witnessed")
	case !cp.QuorumMet:
		add(agentlog.ControlCheckpointWitnessed, 1, true,
			fmt.Sprintf("the published checkpoint has %d valid cosignatures of the policy's %d witnesses: the quorum is not met", len(cp.Cosigners), cp.Witnesses))
	default:
		add(agentlog.ControlCheckpointWitnessed, 0, false,
			fmt.Sprintf("cosigned by %s (%d of %d witnesses; quorum met)", strings.Join(cp.Cosigners, ", "), len(cp.Cosigners), cp.Witnesses))
	}
	switch {
	case s.cfg.Loop == nil || cp.CheckedAt.IsZero():
		add(agentlog.ControlConsistencyChecked, 1, true, "no signing round has checked the tree yet")
	case inconsistent:
		add(agentlog.ControlConsistencyChecked, 1, true, "the tree is not consistent with the last signed checkpoint: "+cp.LastError)
	default:
		add(agentlog.ControlConsistencyChecked, 0, false,
			fmt.Sprintf("the tree was last checked against the signed checkpoint at %s; witnesses cosign only after their own consistency check", cp.CheckedAt.Format(time.RFC3339)))
	}

	// Authoritative time.
	if s.cfg.Clock != nil {
		st := s.cfg.Clock.Status()
		c.Clock = agentlog.ControlsClock{Configured: st.Servers > 0, Synced: st.Synced, Degraded: st.Degraded, OffsetNS: int64(st.Offset),
			LastSync: st.LastSync, Servers: st.Servers, Answered: st.Answered, LastError: st.LastError}
	}
	if k := c.Clock; k.Synced && !k.Degraded {
		add(agentlog.ControlNTPSynchronized, 0, false,
			fmt.Sprintf("synchronized: %d of %d servers answered, offset %s", k.Answered, k.Servers, time.Duration(k.OffsetNS)))
	} else {
		add(agentlog.ControlNTPSynchronized, 1, true,
			fmt.Sprintf("the clock is not synchronized with NTP (%d of %d servers answered; last error %q)", k.Answered, k.Servers, k.LastError))
	}

	// CC8.1 and activity: the window's change report.
	var rep *change.Report
	if s.cfg.Changes != nil {
		var err error
		if rep, err = s.cfg.Changes.BuildReport(ctx, s.cfg.Log, c.WindowFrom, time.Time{}); err != nil {
			return nil, err
		}
	}
	acted := map[string]int{} // the window's actions by agent
	cf := &c.Configs
	cf.Listed = []agentlog.ControlsAction{}
	if rep != nil {
		cf.Actions, acted = rep.Actions, rep.ByAgent
		for _, cc := range rep.Configs {
			cf.Unapproved += cc.Unapproved
			cf.Undeclared += cc.Undeclared
		}
		for _, a := range rep.Unapproved {
			if len(cf.Listed) >= maxControlsActions {
				cf.Omitted++
				continue
			}
			cf.Listed = append(cf.Listed, agentlog.ControlsAction{Index: a.Index, Time: a.Time.UTC(), Agent: a.Agent, Config: a.Config, Status: a.Status})
		}
		cf.Omitted += rep.Omitted
	}
	// CC6.2: agents.
	if s.cfg.Identity != nil {
		s.controlsAgents(c, acted)
	}
	unowned, stale := 0, 0
	for _, a := range c.Agents {
		for _, f := range a.Findings {
			switch f {
			case findingNoOwner, findingNoScope:
				unowned++
			case findingApprovalExpired, findingNotApproved:
				stale++
			}
		}
	}
	if unowned > 0 {
		add(agentlog.ControlAgentsOwnedScoped, unowned, false,
			fmt.Sprintf("%d missing owners or scopes among %d live agents (see agents[].findings)", unowned, len(c.Agents)))
	} else {
		add(agentlog.ControlAgentsOwnedScoped, 0, s.cfg.Identity == nil,
			fmt.Sprintf("each of the %d live agents has an owner and a scope naming its actions, tools or resources", len(c.Agents)))
	}
	if stale > 0 {
		add(agentlog.ControlApprovalsCurrent, stale, false,
			fmt.Sprintf("%d active agents hold no approval, or one older than %s", stale, s.cfg.ApprovalMaxAge))
	} else {
		add(agentlog.ControlApprovalsCurrent, 0, s.cfg.Identity == nil,
			fmt.Sprintf("every active agent was approved within the last %s", s.cfg.ApprovalMaxAge))
	}

	if n := cf.Unapproved + cf.Undeclared; n > 0 {
		add(agentlog.ControlConfigsApproved, n, false,
			fmt.Sprintf("%d of the window's %d actions ran under an unapproved configuration and %d under none declared", cf.Unapproved, cf.Actions, cf.Undeclared))
	} else {
		add(agentlog.ControlConfigsApproved, 0, s.cfg.Changes == nil,
			fmt.Sprintf("every one of the window's %d actions ran under its agent's approved configuration, or the agent has none", cf.Actions))
	}

	// CC7.2: open alerts.
	if err := s.controlsAlerts(ctx, c, size); err != nil {
		return nil, err
	}
	if c.Alerts.Open > 0 {
		var parts []string
		for _, h := range c.Alerts.Health {
			parts = append(parts, h.Rule+" (open)")
		}
		for _, r := range c.Alerts.ByRule {
			parts = append(parts, fmt.Sprintf("%s x%d", r.Rule, r.Count))
		}
		add(agentlog.ControlAlertsOpen, c.Alerts.Open, false, "open alerts: "+strings.Join(parts, ", "))
	} else {
		add(agentlog.ControlAlertsOpen, 0, false, "no health episode is open and no alert was raised in the window")
	}

	c.Passing = true
	for _, k := range c.Controls {
		c.Passing = c.Passing && k.Passing
	}
	return c, nil
}

// Findings of an agent.
const (
	findingNoOwner         = "no owner"
	findingNoScope         = "no declared scope (it allows any action, tool and resource)"
	findingNotApproved     = "active without an approval"
	findingApprovalExpired = "active with an approval older than the review period"
)

func (s *Server) controlsAgents(c *agentlog.Controls, acted map[string]int) {
	idNow := s.cfg.Identity.Now()
	open := map[string]int{}
	for _, se := range s.cfg.Identity.Sessions("") {
		if !se.Closed && idNow.Before(se.Expires) {
			open[se.Agent]++
		}
	}
	for _, a := range s.cfg.Identity.Agents() {
		if a.Status == identity.StatusRevoked {
			continue
		}
		ca := agentlog.ControlsAgent{ID: a.ID, Owner: a.Owner, Status: a.Status, Approved: a.Approved,
			Scoped:  len(a.Scope.Actions)+len(a.Scope.Tools)+len(a.Scope.Resources) > 0,
			Actions: acted[a.ID], OpenSessions: open[a.ID], Findings: []string{}}
		ca.Active = ca.Actions > 0 || ca.OpenSessions > 0
		if strings.TrimSpace(a.Owner) == "" {
			ca.Findings = append(ca.Findings, findingNoOwner)
		}
		if !ca.Scoped {
			ca.Findings = append(ca.Findings, findingNoScope)
		}
		if a.Approved != nil {
			ca.ApprovalAgeSeconds = int64(idNow.Sub(*a.Approved) / time.Second)
		}
		switch {
		case !ca.Active:
		case a.Approved == nil:
			ca.Findings = append(ca.Findings, findingNotApproved)
		case idNow.Sub(*a.Approved) > s.cfg.ApprovalMaxAge:
			ca.Findings = append(ca.Findings, findingApprovalExpired)
		}
		c.Agents = append(c.Agents, ca)
	}
}

func (s *Server) controlsAlerts(ctx context.Context, c *agentlog.Controls, size uint64) error {
	c.Alerts.ByRule, c.Alerts.Health = []agentlog.ControlsRule{}, []agentlog.ControlsHealth{}
	eps, err := anomaly.OpenEpisodes(s.cfg.Log)
	if err != nil {
		return err
	}
	for _, e := range eps {
		c.Alerts.Health = append(c.Alerts.Health, agentlog.ControlsHealth{Rule: e.Rule, Index: e.Index, Raised: e.Raised.UTC()})
	}
	by := map[string]*agentlog.ControlsRule{}
	flt := &query.Filter{Matches: []query.Match{{Field: "kind", Value: alog.KindAlert}}, From: c.WindowFrom}
	_, err = s.cfg.Log.Search(ctx, flt, 0, size, 0, func(i uint64, leaf []byte) error {
		var e struct {
			Attributes struct {
				Rule  string `json:"rule"`
				State string `json:"state"`
			} `json:"attributes"`
		}
		if err := json.Unmarshal(leaf, &e); err != nil {
			return fmt.Errorf("alert entry %d: %w", i, err)
		}
		if e.Attributes.State == "cleared" {
			return nil
		}
		r := by[e.Attributes.Rule]
		if r == nil {
			r = &agentlog.ControlsRule{Rule: e.Attributes.Rule}
			by[r.Rule] = r
		}
		r.Count++
		r.Last = i
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range by {
		c.Alerts.ByRule = append(c.Alerts.ByRule, *r)
		c.Alerts.Open += r.Count
	}
	slices.SortFunc(c.Alerts.ByRule, func(a, b agentlog.ControlsRule) int { return strings.Compare(a.Rule, b.Rule) })
	// A health episode raised within the window is counted there already.
	for _, h := range c.Alerts.Health {
		if h.Raised.Before(c.WindowFrom) {
			c.Alerts.Open++
		}
	}
	return nil
}
