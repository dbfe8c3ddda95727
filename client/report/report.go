// Package report computes the SOC 2 period report from an evidence export
// of the period (docs/evidence.md, docs/report.md): one section per
// criterion of the Trust Services Criteria that agentlog answers (CC6.1,
// CC6.2, CC6.3, CC7.2, CC7.3, CC8.1), each with the control, the evidence
// with counts and charts, the exceptions, and how to verify it.
//
// The report is a pure function of the export: [Compute] reads only the
// verified entries, manifest and checkpoint, so anyone holding the export
// recomputes the same report.json and report.html byte for byte (agentlog
// evidence verify does). Every count that a query can reproduce carries
// that query (the parameters of GET /v1/query), so an auditor can check
// each number against the log.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentlog/agentlog"
)

// Format names the layout of report.json.
const Format = "agentlog-report/v1"

// Input is what a report is computed from: the verified contents of an
// evidence export of the period.
type Input struct {
	Origin         string
	TreeSize       uint64
	Root           []byte
	CheckpointTime string // RFC 3339, empty if the timestamp key was not given
	Checkpoint     []byte // the signed checkpoint, verbatim
	Start, End     uint64 // the index range the period selects
	Complete       bool   // the export proves that it holds every entry of [Start, End)
	From, To       time.Time
	Zone           string    // IANA zone of the heatmap and the business days
	Generated      time.Time // when the report was made (recorded, not recomputed)
	Entries        []Entry   // every entry of [Start, End), in index order
}

// Entry is one leaf of the period.
type Entry struct {
	Index uint64
	Leaf  []byte
}

// Report is report.json.
type Report struct {
	Format         string    `json:"format"`
	Origin         string    `json:"origin"`
	From           string    `json:"from"`
	To             string    `json:"to"`
	Zone           string    `json:"zone"`
	Generated      string    `json:"generated"`
	TreeSize       uint64    `json:"tree_size"`
	Root           []byte    `json:"root"`
	CheckpointTime string    `json:"checkpoint_time,omitempty"`
	Signers        []string  `json:"signers"` // key names of the checkpoint's signature lines
	Start          uint64    `json:"start"`
	End            uint64    `json:"end"`
	Complete       bool      `json:"complete"`
	Entries        int       `json:"entries"`
	Sections       []Section `json:"sections"`
	// Charts of the whole period.
	Daily   []Bucket   `json:"daily"`   // actions per day (UTC)
	Heatmap [7][24]int `json:"heatmap"` // actions by weekday (0 = Monday) and hour in Zone
}

// Section is one criterion.
type Section struct {
	ID         string      `json:"id"` // "CC6.1"
	Title      string      `json:"title"`
	Control    string      `json:"control"`
	Counts     []Count     `json:"counts"`
	Tables     []Table     `json:"tables,omitempty"`
	Bars       []Bucket    `json:"bars,omitempty"` // the section's chart
	BarsTitle  string      `json:"bars_title,omitempty"`
	Exceptions []Exception `json:"exceptions"`
	Verify     []string    `json:"verify"` // commands that check the section independently
}

// Count is one number of the report. Query, when set, is the GET /v1/query
// parameters whose matches it counts.
type Count struct {
	ID    string `json:"id"`
	Label string `json:"label"`
	Value int    `json:"value"`
	Query string `json:"query,omitempty"`
}

// Table is a list of rows; cells are text.
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	// Queries, if set, holds for each row the query that reproduces the
	// number in its last cell.
	Queries []string `json:"queries,omitempty"`
}

// Exception is a finding an auditor must look at, with the entry that
// shows it.
type Exception struct {
	Index uint64 `json:"index"`
	Time  string `json:"time"`
	Agent string `json:"agent,omitempty"`
	What  string `json:"what"`
}

// Bucket is one bar of a chart.
type Bucket struct {
	Label string `json:"label"`
	Value int    `json:"value"`
}

type leaf struct {
	agentlog.Leaf
	Attrs map[string]any
	Index uint64
}

// by names who wrote the entry: the principal, and the operator token's id
// when there is one ("alice (token 3f2a...)"), since a name can be reused
// once its token is revoked.
func (l *leaf) by() string {
	if l.TokenID == "" {
		return l.Principal
	}
	return l.Principal + " (token " + l.TokenID + ")"
}

// Compute builds the report. It fails if an entry is not a leaf or the
// entries are not the consecutive indexes [Start, End).
func Compute(in Input) (*Report, error) {
	loc, err := agentlog.LoadZone(in.Zone)
	if err != nil {
		return nil, fmt.Errorf("report zone %q: %w", in.Zone, err)
	}
	if uint64(len(in.Entries)) != in.End-in.Start {
		return nil, fmt.Errorf("the report needs every entry of [%d, %d): got %d", in.Start, in.End, len(in.Entries))
	}
	ls := make([]*leaf, len(in.Entries))
	for i, e := range in.Entries {
		if e.Index != in.Start+uint64(i) {
			return nil, fmt.Errorf("entry %d where %d was expected", e.Index, in.Start+uint64(i))
		}
		l := &leaf{Index: e.Index}
		if err := json.Unmarshal(e.Leaf, &l.Leaf); err != nil {
			return nil, fmt.Errorf("entry %d: %w", e.Index, err)
		}
		if len(l.Attributes) > 0 {
			json.Unmarshal(l.Attributes, &l.Attrs)
		}
		ls[i] = l
	}
	r := &Report{
		Format: Format, Origin: in.Origin, Zone: in.Zone,
		From: in.From.UTC().Format(time.RFC3339), To: in.To.UTC().Format(time.RFC3339),
		Generated: in.Generated.UTC().Format(time.RFC3339),
		TreeSize:  in.TreeSize, Root: in.Root, CheckpointTime: in.CheckpointTime,
		Signers: signers(in.Checkpoint), Start: in.Start, End: in.End, Complete: in.Complete,
		Entries: len(ls),
	}
	b := builder{r: r, ls: ls, period: periodQuery(in.From, in.To)}
	r.Daily, r.Heatmap = b.activity(loc)
	r.Sections = []Section{b.cc61(), b.cc62(), b.cc63(), b.cc72(), b.cc73(), b.cc81()}
	return r, nil
}

// signers lists the key names of a signed note's signature lines.
func signers(cp []byte) []string {
	var out []string
	_, sigs, ok := strings.Cut(string(cp), "\n\n")
	if !ok {
		return nil
	}
	for _, line := range strings.Split(sigs, "\n") {
		if rest, ok := strings.CutPrefix(line, "\u2014 "); ok {
			if name, _, ok := strings.Cut(rest, " "); ok {
				out = append(out, name)
			}
		}
	}
	return out
}

func periodQuery(from, to time.Time) url.Values {
	return url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
}

type builder struct {
	r      *Report
	ls     []*leaf
	period url.Values
}

// q is the period's query with the given field filters.
func (b *builder) q(kv ...string) string {
	v := url.Values{}
	for k, x := range b.period {
		v[k] = x
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func (b *builder) where(f func(*leaf) bool) []*leaf {
	var out []*leaf
	for _, l := range b.ls {
		if f(l) {
			out = append(out, l)
		}
	}
	return out
}

func kindAction(kind, action string) func(*leaf) bool {
	return func(l *leaf) bool { return l.Kind == kind && (action == "" || l.Action == action) }
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (b *builder) count(id, label string, ls []*leaf, kv ...string) Count {
	c := Count{ID: id, Label: label, Value: len(ls)}
	if kv != nil {
		c.Query = b.q(kv...)
	}
	return c
}

func str(m map[string]any, k string) string {
	if m == nil {
		return ""
	}
	switch v := m[k].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%d", int64(v))
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func (b *builder) activity(loc *time.Location) ([]Bucket, [7][24]int) {
	var grid [7][24]int
	days := map[string]int{}
	for _, l := range b.ls {
		if l.Kind != agentlog.KindAction {
			continue
		}
		days[l.Time.UTC().Format("2006-01-02")]++
		lt := l.Time.In(loc)
		grid[(int(lt.Weekday())+6)%7][lt.Hour()]++
	}
	var out []Bucket
	for d, n := range days {
		out = append(out, Bucket{Label: d, Value: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, grid
}

func (b *builder) verifyCmds(extra ...string) []string {
	r := strings.NewReplacer("FROM", b.r.From, "TO", b.r.To, "START", fmt.Sprint(b.r.Start), "END", fmt.Sprint(b.r.End))
	out := []string{"agentlog evidence verify REPORT_DIR --log-key log.pub"}
	for _, e := range extra {
		out = append(out, r.Replace(e))
	}
	return out
}

func (b *builder) cc61() Section {
	actions := b.where(kindAction(agentlog.KindAction, ""))
	denials := b.where(kindAction(agentlog.KindDenied, ""))
	// A denial of a proven identity is its own entry; those that proved
	// none are counted in a denied.summary entry a minute.
	var denied, summaries []*leaf
	refused := 0
	for _, l := range denials {
		if l.Action == "denied.summary" {
			summaries = append(summaries, l)
			if n, ok := l.Attrs["total"].(float64); ok {
				refused += int(n)
			}
		} else {
			denied = append(denied, l)
			refused++
		}
	}
	per := map[string]int{}
	for _, l := range actions {
		per[l.Agent]++
	}
	agents := make([]string, 0, len(per))
	for a := range per {
		agents = append(agents, a)
	}
	sort.Strings(agents)
	t := Table{Title: "Actions by agent", Columns: []string{"agent", "actions"}}
	for _, a := range agents {
		t.Rows = append(t.Rows, []string{a, fmt.Sprint(per[a])})
		t.Queries = append(t.Queries, b.q("agent", a, "kind", agentlog.KindAction))
	}
	s := Section{
		ID: "CC6.1", Title: "Logical access is restricted to authorized programs",
		Control: "Every write to the log is authenticated and attributed to one identity: each agent has its own Ed25519 key and writes with task-scoped session credentials; operators use named tokens with a role. A refused attempt is itself recorded as an entry of kind denied.",
		Counts: []Count{
			b.count("cc61.actions", "agent actions recorded", actions, "kind", agentlog.KindAction),
			{ID: "cc61.agents", Label: "distinct agents that acted", Value: len(agents)},
			b.count("cc61.denials", "denial entries (kind denied)", denials, "kind", agentlog.KindDenied),
			b.count("cc61.denied", "refused attempts by a proven identity, one entry each", denied),
			b.count("cc61.summaries", "summaries of refused attempts that proved no identity (one a minute at most)", summaries, "kind", agentlog.KindDenied, "action", "denied.summary"),
			{ID: "cc61.refused", Label: "refused attempts in all (each entry, plus the totals of the summaries)", Value: refused},
		},
		Tables:     []Table{t},
		Exceptions: []Exception{},
		Verify:     b.verifyCmds("agentlog query --token-file auditor.token --kind denied --from FROM --to TO"),
	}
	for _, l := range summaries {
		s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), What: fmt.Sprintf("%s refused attempts that proved no identity, %s to %s: %s", str(l.Attrs, "total"), str(l.Attrs, "from"), str(l.Attrs, "to"), str(l.Attrs, "groups"))})
	}
	for _, l := range denied {
		what := "refused: " + str(l.Attrs, "reason")
		if r := str(l.Attrs, "path"); r != "" {
			what += " (" + str(l.Attrs, "method") + " " + r + ")"
		}
		if l.Action != "" {
			what += ", route " + l.Action
		}
		s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: what})
	}
	sort.Slice(s.Exceptions, func(i, j int) bool { return s.Exceptions[i].Index < s.Exceptions[j].Index })
	return s
}

func (b *builder) cc62() Section {
	reg := b.where(kindAction(agentlog.KindAgent, "agent.registered"))
	appr := b.where(kindAction(agentlog.KindAgent, "agent.approved"))
	scope := b.where(kindAction(agentlog.KindAgent, "agent.scope_changed"))
	tokC := b.where(kindAction(agentlog.KindToken, "token.created"))
	tokR := b.where(kindAction(agentlog.KindToken, "token.revoked"))
	approved := map[string]*leaf{}
	for _, l := range appr {
		if _, ok := approved[l.Agent]; !ok {
			approved[l.Agent] = l
		}
	}
	t := Table{Title: "Agents provisioned in the period", Columns: []string{"agent", "owner", "registered", "by", "approved", "by"}}
	s := Section{
		ID: "CC6.2", Title: "Agents are provisioned formally before they act",
		Control: "An agent is registered with its public key, owner and declared scope, and cannot open a session until an approver or admin approves it. Registration, approval, scope changes and operator tokens are entries of the log, naming who did them and when.",
		Counts: []Count{
			b.count("cc62.registered", "agents registered", reg, "kind", agentlog.KindAgent, "action", "agent.registered"),
			b.count("cc62.approved", "approvals", appr, "kind", agentlog.KindAgent, "action", "agent.approved"),
			b.count("cc62.scope", "scope changes", scope, "kind", agentlog.KindAgent, "action", "agent.scope_changed"),
			b.count("cc62.tokens", "operator tokens created", tokC, "kind", agentlog.KindToken, "action", "token.created"),
			b.count("cc62.tokens_revoked", "operator tokens revoked", tokR, "kind", agentlog.KindToken, "action", "token.revoked"),
		},
		Exceptions: []Exception{},
		Verify:     b.verifyCmds("agentlog query --token-file auditor.token --kind agent --from FROM --to TO"),
	}
	for _, l := range reg {
		a := approved[l.Agent]
		row := []string{l.Agent, str(l.Attrs, "owner"), ts(l.Time), l.by(), "", ""}
		if a != nil && a.Index > l.Index {
			row[4], row[5] = ts(a.Time), a.by()
		} else {
			s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: "registered in the period and not approved by its end"})
		}
		t.Rows = append(t.Rows, row)
	}
	s.Tables = []Table{t}
	if len(scope) > 0 {
		st := Table{Title: "Scope changes", Columns: []string{"entry", "time", "agent", "by", "scope"}}
		for _, l := range scope {
			st.Rows = append(st.Rows, []string{fmt.Sprint(l.Index), ts(l.Time), l.Agent, l.by(), str(l.Attrs, "scope")})
		}
		s.Tables = append(s.Tables, st)
	}
	return s
}

func (b *builder) cc63() Section {
	opened := b.where(kindAction(agentlog.KindSession, "session.opened"))
	closed := b.where(kindAction(agentlog.KindSession, "session.closed"))
	revoked := b.where(kindAction(agentlog.KindAgent, "agent.revoked"))
	isClosed := map[string]bool{}
	for _, l := range closed {
		isClosed[l.Session] = true
	}
	// Expired by the end of the period, or by the time of the report for
	// a period that has not ended yet.
	end, _ := time.Parse(time.RFC3339, b.r.To)
	if gen, _ := time.Parse(time.RFC3339, b.r.Generated); gen.Before(end) {
		end = gen
	}
	var expired, open []*leaf
	for _, l := range opened {
		if isClosed[l.Session] {
			continue
		}
		exp, err := time.Parse(time.RFC3339Nano, str(l.Attrs, "expires"))
		if err == nil && exp.Before(end) {
			expired = append(expired, l)
		} else {
			open = append(open, l)
		}
	}
	s := Section{
		ID: "CC6.3", Title: "Access is removed when it is no longer needed",
		Control: "Agents write with session credentials scoped to one task that expire (the server caps their lifetime) and are closed when the task ends; revoking an agent ends all its sessions at once. Each step is an entry of the log.",
		Counts: []Count{
			b.count("cc63.opened", "sessions opened", opened, "kind", agentlog.KindSession, "action", "session.opened"),
			b.count("cc63.closed", "sessions closed", closed, "kind", agentlog.KindSession, "action", "session.closed"),
			{ID: "cc63.expired", Label: "sessions that expired without being closed", Value: len(expired)},
			{ID: "cc63.open", Label: "sessions still open at the end of the period", Value: len(open)},
			b.count("cc63.revoked", "agents revoked", revoked, "kind", agentlog.KindAgent, "action", "agent.revoked"),
		},
		Exceptions: []Exception{},
		Verify:     b.verifyCmds("agentlog query --token-file auditor.token --kind session --from FROM --to TO"),
	}
	// An action after its agent's revocation would defeat the control.
	revokedAt := map[string]uint64{}
	for _, l := range revoked {
		if _, ok := revokedAt[l.Agent]; !ok {
			revokedAt[l.Agent] = l.Index
		}
	}
	for _, l := range b.ls {
		if at, ok := revokedAt[l.Agent]; ok && l.Kind == agentlog.KindAction && l.Index > at {
			s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("action after the agent was revoked at entry %d", at)})
		}
	}
	for _, l := range expired {
		s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("session %s (task %s) expired at %s without being closed", l.Session, l.Task, str(l.Attrs, "expires"))})
	}
	if len(revoked) > 0 {
		t := Table{Title: "Revocations", Columns: []string{"entry", "time", "agent", "by", "sessions ended"}}
		for _, l := range revoked {
			t.Rows = append(t.Rows, []string{fmt.Sprint(l.Index), ts(l.Time), l.Agent, l.by(), str(l.Attrs, "sessions_ended")})
		}
		s.Tables = append(s.Tables, t)
	}
	return s
}

func (b *builder) cc72() Section {
	alerts := b.where(kindAction(agentlog.KindAlert, ""))
	system := b.where(kindAction(agentlog.KindSystem, ""))
	per := map[string]int{}
	for _, l := range alerts {
		per[str(l.Attrs, "rule")]++
	}
	s := Section{
		ID: "CC7.2", Title: "Agent activity is monitored for anomalies",
		Control: "The log's anomaly rules check every committed action against what its agent declared (scope, hours, rate) and the operator's policy, and record each alert in the log as an entry of kind alert naming the action that raised it, exactly once; the alerting configuration itself is recorded (kind system) whenever it changes.",
		Counts: []Count{
			b.count("cc72.alerts", "alerts raised", alerts, "kind", agentlog.KindAlert),
			b.count("cc72.config", "changes of the log's own configuration (alerting and others, kind system)", system, "kind", agentlog.KindSystem),
		},
		BarsTitle:  "Alerts by rule",
		Exceptions: []Exception{},
		Verify:     b.verifyCmds("agentlog query --token-file auditor.token --kind alert --from FROM --to TO"),
	}
	rules := make([]string, 0, len(per))
	for k := range per {
		rules = append(rules, k)
	}
	sort.Strings(rules)
	for _, k := range rules {
		s.Bars = append(s.Bars, Bucket{Label: k, Value: per[k]})
	}
	for _, l := range alerts {
		s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("alert %s on entry %s: %s", str(l.Attrs, "rule"), str(l.Attrs, "entry"), str(l.Attrs, "detail"))})
	}
	for _, l := range system {
		if e, ok := l.Attrs["enabled"].(bool); ok && !e {
			s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), What: "the anomaly rules were turned off"})
		}
	}
	return s
}

func (b *builder) cc73() Section {
	var disorder []Exception
	type key struct{ session string }
	lastSeq := map[key]uint64{}
	var gaps []Exception
	for i, l := range b.ls {
		if i > 0 && l.Time.Before(b.ls[i-1].Time) {
			disorder = append(disorder, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: "time earlier than the previous entry's"})
		}
		if l.Kind == agentlog.KindAction && l.Seq > 0 && l.Session != "" {
			k := key{l.Session}
			if prev, ok := lastSeq[k]; ok && l.Seq != prev+1 {
				gaps = append(gaps, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("session %s: seq %d follows %d", l.Session, l.Seq, prev)})
			}
			lastSeq[k] = l.Seq
		}
	}
	complete := "no"
	if b.r.Complete {
		complete = "yes: the export holds every entry of the range and its two neighbours, each proven under the checkpoint"
	}
	t := Table{Title: "Checkpoint", Columns: []string{"field", "value"}, Rows: [][]string{
		{"origin", b.r.Origin},
		{"tree size", fmt.Sprint(b.r.TreeSize)},
		{"root hash", fmt.Sprintf("%x", b.r.Root)},
		{"signed at", b.r.CheckpointTime},
		{"signatures", strings.Join(b.r.Signers, ", ")},
		{"index range of the period", fmt.Sprintf("[%d, %d)", b.r.Start, b.r.End)},
		{"completeness proven", complete},
	}}
	s := Section{
		ID: "CC7.3", Title: "Events can be reconstructed completely",
		Control: "The log is an RFC 6962 Merkle tree whose checkpoints the log signs on a schedule with NTP-anchored time and independent witnesses cosign; entry times never decrease with the index, so the period is one contiguous index range, and an export of that range with a proof for each entry shows that nothing was left out, changed or back-dated.",
		Counts: []Count{
			{ID: "cc73.entries", Label: "entries in the period", Value: len(b.ls), Query: b.q()},
			{ID: "cc73.signers", Label: "signatures on the checkpoint (log, timestamp, witnesses)", Value: len(b.r.Signers)},
			{ID: "cc73.gaps", Label: "sequence gaps within sessions", Value: len(gaps)},
		},
		Tables:     []Table{t},
		Exceptions: append(append([]Exception{}, disorder...), gaps...),
		Verify: b.verifyCmds(
			"agentlog audit --token-file auditor.token --policy policy.txt --log-key log.pub --start START --end END",
			"agentlog verify --log-key log.pub --time-key time.pub --index N --token-file auditor.token"),
	}
	if !b.r.Complete {
		s.Exceptions = append(s.Exceptions, Exception{What: "the export does not prove the period complete"})
	}
	return s
}

func (b *builder) cc81() Section {
	changes := b.where(kindAction("change", ""))
	perStep := map[string]int{}
	for _, l := range changes {
		perStep[l.Action]++
	}
	unapproved := b.where(func(l *leaf) bool {
		r := str(l.Attrs, "rule")
		return l.Kind == agentlog.KindAlert && (r == "unapproved_config" || r == "undeclared_config")
	})
	configs := map[string]int{}
	for _, l := range b.ls {
		if l.Kind == agentlog.KindAction && l.Config != "" {
			configs[l.Config]++
		}
	}
	s := Section{
		ID: "CC8.1", Title: "Changes to agents are authorized, tested and recorded",
		Control: "An agent's configuration (model, prompts by digest, tool permissions) is identified by the SHA-256 of its canonical form; changes are proposed with testing and rollback notes and approved by a second person, each step an entry of kind change; sessions declare the configuration they run under and every action carries its digest, so actions under an unapproved configuration raise alerts.",
		Counts: []Count{
			b.count("cc81.changes", "change entries (proposals, approvals, rejections)", changes, "kind", "change"),
			{ID: "cc81.unapproved", Label: "alerts for actions under an unapproved or undeclared configuration", Value: len(unapproved)},
			{ID: "cc81.configs", Label: "distinct configurations actions ran under", Value: len(configs)},
		},
		BarsTitle:  "Change entries by step",
		Exceptions: []Exception{},
		Verify:     b.verifyCmds("agentlog query --token-file auditor.token --kind change --from FROM --to TO"),
	}
	steps := make([]string, 0, len(perStep))
	for k := range perStep {
		steps = append(steps, k)
	}
	sort.Strings(steps)
	for _, k := range steps {
		s.Bars = append(s.Bars, Bucket{Label: k, Value: perStep[k]})
	}
	if len(changes) > 0 {
		t := Table{Title: "Change entries", Columns: []string{"entry", "time", "agent", "step", "by", "change", "config"}}
		for _, l := range changes {
			id := str(l.Attrs, "id")
			if id == "" {
				id = str(l.Attrs, "change")
			}
			cfg := l.Config
			if cfg == "" {
				cfg = str(l.Attrs, "config")
			}
			t.Rows = append(t.Rows, []string{fmt.Sprint(l.Index), ts(l.Time), l.Agent, l.Action, l.by(), id, cfg})
		}
		s.Tables = append(s.Tables, t)
	}
	if len(configs) > 0 {
		t := Table{Title: "Actions by configuration", Columns: []string{"config", "actions"}}
		keys := make([]string, 0, len(configs))
		for k := range configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			t.Rows = append(t.Rows, []string{k, fmt.Sprint(configs[k])})
			t.Queries = append(t.Queries, b.q("config", k, "kind", agentlog.KindAction))
		}
		s.Tables = append(s.Tables, t)
	}
	for _, l := range changes {
		if l.Action == "change.approved" && l.Attrs["self_approved"] == true {
			s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("change %s approved by its own proposer %s (two-person rule waived by serve --allow-self-approval)", str(l.Attrs, "change"), l.by())})
		}
	}
	for _, l := range unapproved {
		s.Exceptions = append(s.Exceptions, Exception{Index: l.Index, Time: ts(l.Time), Agent: l.Agent, What: fmt.Sprintf("%s on entry %s: %s", str(l.Attrs, "rule"), str(l.Attrs, "entry"), str(l.Attrs, "detail"))})
	}
	return s
}

// JSON is report.json: indented, with a final newline.
func (r *Report) JSON() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err) // a Report always encodes
	}
	return append(b, '\n')
}

// Parse reads report.json.
func Parse(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report.json: %w", err)
	}
	if r.Format != Format {
		return nil, errors.New("report.json: not an " + Format + " report")
	}
	return &r, nil
}
