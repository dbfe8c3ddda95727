package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/cmdline"
)

// parsePolicy reads --policy: "" or config=enforce|alert.
func parsePolicy(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	k, p, ok := strings.Cut(v, "=")
	if !ok || k != "config" || (p != "enforce" && p != "alert") {
		return "", cmdline.Usagef("--policy %q: want config=enforce or config=alert", v)
	}
	return p, nil
}

func runChange(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return command.SubverbError("change", args)
	}
	verb := args[0]
	fs := newFlags("change "+verb, stderr)
	who := map[string]string{"propose": "admin or approver", "approve": "approver or admin other than the proposer", "reject": "approver or admin"}[verb]
	if who == "" {
		who = "admin, approver or auditor"
	}
	// digest runs offline: it takes no server or token flags. Only the
	// verbs about one change take --id (propose and list ignored it).
	var o *operatorFlags
	if verb != "digest" {
		o = addOperatorFlags(fs, who)
	}
	var id *string
	switch verb {
	case "approve", "reject", "show", "attest":
		id = fs.String("id", "", "the change id (from change propose or change list)")
	}
	switch verb {
	case "digest":
		cfgFile := fs.String("config", "", "the configuration file, JSON (docs/changes.md; required)")
		canonical := fs.Bool("canonical", false, "print the RFC 8785 canonical form instead of the digest")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *cfgFile == "" {
			return cmdline.Usagef("--config is required")
		}
		canon, digest, err := client.LoadConfig(*cfgFile)
		if err != nil {
			return err
		}
		if *canonical {
			_, err = fmt.Fprintf(stdout, "%s\n", canon)
			return err
		}
		_, err = fmt.Fprintln(stdout, digest)
		return err
	case "propose":
		agent := fs.String("agent", "", "the agent whose configuration changes (required)")
		cfgFile := fs.String("config", "", "the proposed configuration, JSON (docs/changes.md; required)")
		desc := fs.String("description", "", "what changes and why (required)")
		testing := fs.String("testing", "", "how the change was tested (required)")
		rollback := fs.String("rollback", "", "how to roll the change back (required)")
		risk := fs.String("risk", "", "risk: low, medium or high")
		ticket := fs.String("ticket", "", "URL of the change ticket")
		policy := fs.String("policy", "", "config=enforce: once approved, refuse sessions under any other configuration (config=alert: alert only)")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *agent == "" || *cfgFile == "" || *desc == "" || *testing == "" || *rollback == "" {
			return cmdline.Usagef("--agent, --config, --description, --testing and --rollback are required")
		}
		pol, err := parsePolicy(*policy)
		if err != nil {
			return err
		}
		canon, digest, err := client.LoadConfig(*cfgFile)
		if err != nil {
			return err
		}
		c, ctx, cancel, err := o.client()
		if err != nil {
			return err
		}
		defer cancel()
		ch, err := c.ProposeChange(ctx, client.ChangeProposal{Agent: *agent, Config: canon, ConfigPolicy: pol, Description: *desc,
			Testing: *testing, Rollback: *rollback, Risk: *risk, Ticket: *ticket})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "proposed change %s: agent %s to configuration %s", ch.ID, ch.Agent, digest)
		if ch.RollbackOf != "" {
			fmt.Fprintf(stderr, " (a rollback to the configuration of change %s)", ch.RollbackOf)
		}
		fmt.Fprintln(stderr, "; another approver or admin approves it with \"agentlog change approve --id "+ch.ID+"\"")
		// The id alone on the last line, so $(agentlog change propose ...) works.
		fmt.Fprintln(stdout, ch.ID)
		return nil
	case "approve", "reject":
		comment := fs.String("comment", "", "a comment recorded with the decision")
		c, ctx, cancel, err := o.connect(fs, args[1:], "id")
		if err != nil {
			return err
		}
		defer cancel()
		var ch *client.ChangeInfo
		if verb == "approve" {
			ch, err = c.ApproveChange(ctx, *id, *comment)
		} else {
			ch, err = c.RejectChange(ctx, *id, *comment)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "change %s is %s (agent %s, configuration %s)\n", ch.ID, ch.State, ch.Agent, ch.Config)
		return nil
	case "list":
		agent := fs.String("agent", "", "only this agent's changes")
		state := fs.String("state", "", "only changes in this state: proposed, approved, rejected or superseded")
		jsonOut := fs.Bool("json", false, "print JSON")
		c, ctx, cancel, err := o.connect(fs, args[1:])
		if err != nil {
			return err
		}
		defer cancel()
		list, err := c.Changes(ctx, *agent, *state)
		if err != nil {
			return err
		}
		if *jsonOut {
			return json.NewEncoder(stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAGENT\tSTATE\tCONFIG\tPROPOSED BY\tDECIDED BY\tDESCRIPTION")
		for _, ch := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ch.ID, ch.Agent, ch.State, shortDigest(ch.Config), ch.ProposedBy, dash(ch.DecidedBy), oneLine(ch.Description, 60))
		}
		return tw.Flush()
	case "show":
		jsonOut := fs.Bool("json", false, "print JSON")
		c, ctx, cancel, err := o.connect(fs, args[1:], "id")
		if err != nil {
			return err
		}
		defer cancel()
		d, err := c.Change(ctx, *id)
		if err != nil {
			return err
		}
		if *jsonOut {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		}
		printChange(stdout, d)
		return nil
	case "attest":
		out := fs.String("out", "", "write the in-toto Statement to this file (default: stdout)")
		c, ctx, cancel, err := o.connect(fs, args[1:], "id")
		if err != nil {
			return err
		}
		defer cancel()
		st, err := c.ChangeAttestation(ctx, *id)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = stdout.Write(st)
			return err
		}
		return atomicfile.Write(*out, st, 0o644)
	}
	return command.SubverbError("change", args)
}

func printChange(w io.Writer, d *client.ChangeDetail) {
	fmt.Fprintf(w, "change      %s (%s)\n", d.ID, d.State)
	fmt.Fprintf(w, "agent       %s\n", d.Agent)
	fmt.Fprintf(w, "config      %s\n", d.Config)
	if d.Previous != "" {
		fmt.Fprintf(w, "previous    %s\n", d.Previous)
	}
	if d.RollbackOf != "" {
		fmt.Fprintf(w, "rollback of %s\n", d.RollbackOf)
	}
	if d.Policy != "" {
		fmt.Fprintf(w, "policy      config=%s\n", d.Policy)
	}
	fmt.Fprintf(w, "proposed    %s by %s (%s), entry %d\n", d.Proposed.Format(time.RFC3339), d.ProposedBy, d.ProposerRole, d.ProposedIndex)
	if d.Decided != nil {
		idx := ""
		if d.DecidedIndex != nil {
			idx = fmt.Sprintf(", entry %d", *d.DecidedIndex)
		}
		fmt.Fprintf(w, "decided     %s by %s (%s)%s\n", d.Decided.Format(time.RFC3339), d.DecidedBy, d.DeciderRole, idx)
	}
	if d.SupersededBy != "" {
		fmt.Fprintf(w, "superseded  by %s\n", d.SupersededBy)
	}
	for _, f := range [][2]string{{"description", d.Description}, {"testing", d.Testing}, {"rollback", d.Rollback}, {"risk", d.Risk}, {"ticket", d.Ticket}, {"comment", d.Comment}} {
		if f[1] != "" {
			fmt.Fprintf(w, "%-11s %s\n", f[0], f[1])
		}
	}
	against := "the agent's current configuration"
	if d.State == "approved" || d.State == "superseded" {
		against = "the configuration it replaced"
	}
	fmt.Fprintf(w, "diff against %s:\n", against)
	if len(d.Diff) == 0 {
		fmt.Fprintln(w, "  (no differences)")
	}
	for _, c := range d.Diff {
		switch {
		case c.Old == "":
			fmt.Fprintf(w, "  + %s: %s\n", c.Path, c.New)
		case c.New == "":
			fmt.Fprintf(w, "  - %s: %s\n", c.Path, c.Old)
		default:
			fmt.Fprintf(w, "  ~ %s: %s -> %s\n", c.Path, c.Old, c.New)
		}
	}
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// reportDoc is the part of a changes report the command prints.
type reportDoc struct {
	TreeSize uint64 `json:"tree_size"`
	Start    uint64 `json:"start"`
	End      uint64 `json:"end"`
	Actions  int    `json:"actions"`
	Changes  []struct {
		client.ChangeInfo
		Steps []struct {
			Index  uint64    `json:"index"`
			Time   time.Time `json:"time"`
			Action string    `json:"action"`
			By     string    `json:"by"`
		} `json:"steps"`
	} `json:"changes"`
	Configs []struct {
		Config     string   `json:"config"`
		Agents     []string `json:"agents"`
		Actions    int      `json:"actions"`
		Unapproved int      `json:"unapproved_actions"`
		Undeclared int      `json:"undeclared_actions"`
	} `json:"configs"`
	Unapproved []struct {
		Index   uint64 `json:"index"`
		Agent   string `json:"agent"`
		Session string `json:"session"`
		Config  string `json:"config"`
		Status  string `json:"config_status"`
		Action  string `json:"action"`
	} `json:"unapproved"`
	Omitted int `json:"unapproved_omitted"`
}

func runChanges(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "report" {
		return command.SubverbError("changes", args)
	}
	fs := newFlags("changes report", stderr)
	o := addOperatorFlags(fs, "auditor or admin")
	from := fs.String("from", "", "start of the period, RFC 3339 (required)")
	to := fs.String("to", "", "end of the period (exclusive), RFC 3339 (required)")
	out := fs.String("out", "", "also write the report, an in-toto Statement per approval and the period's evidence export to this new directory")
	logKey := fs.String("log-key", "", "the log's verifier key (log.pub), to check and bundle with the evidence")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return cmdline.Usagef("--from and --to are required")
	}
	t1, err1 := time.Parse(time.RFC3339Nano, *from)
	t2, err2 := time.Parse(time.RFC3339Nano, *to)
	if err1 != nil || err2 != nil {
		return cmdline.Usagef("--from and --to must be RFC 3339 times")
	}
	if *out != "" {
		if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
			return fmt.Errorf("%s exists and is not empty", *out)
		}
	}
	c, ctx, cancel, err := o.client()
	if err != nil {
		return err
	}
	defer cancel()
	raw, err := c.ChangesReport(ctx, t1, t2)
	if err != nil {
		return err
	}
	var rep reportDoc
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("decoding the report: %w", err)
	}
	if *jsonOut {
		stdout.Write(raw)
	} else {
		printReport(stdout, &rep, *from, *to)
	}
	if *out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(*out, "attestations"), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(*out, "report.json"), raw, 0o644); err != nil {
		return err
	}
	for _, ch := range rep.Changes {
		if ch.State != "approved" && ch.State != "superseded" {
			continue
		}
		st, err := c.ChangeAttestation(ctx, ch.ID)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(*out, "attestations", ch.ID+".intoto.json"), st, 0o644); err != nil {
			return err
		}
	}
	var opts evidence.ExportOptions
	if *logKey != "" {
		b, err := os.ReadFile(*logKey)
		if err != nil {
			return fmt.Errorf("reading the log key: %w", err)
		}
		opts.LogVKey = string(b)
	}
	tok, err := cmdline.ReadSecret(*o.tokenFile)
	if err != nil {
		return err
	}
	ec, err := client.New(*o.server, client.WithToken(tok))
	if err != nil {
		return err
	}
	q := map[string][]string{"from": {*from}, "to": {*to}}
	ev, err := evidence.Export(ctx, ec, q, filepath.Join(*out, "evidence"), opts)
	if err != nil {
		return fmt.Errorf("exporting the evidence of the period: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s/report.json, %s/attestations/ and the evidence of entries [%d, %d) to %s/evidence (complete: %v); check it with \"agentlog evidence verify %s/evidence --log-key log.pub\"\n",
		*out, *out, ev.Manifest.Start, ev.Manifest.End, *out, ev.Complete, *out)
	return nil
}

func printReport(w io.Writer, r *reportDoc, from, to string) {
	fmt.Fprintf(w, "change management %s to %s: entries [%d, %d) of tree size %d, %d actions\n", from, to, r.Start, r.End, r.TreeSize, r.Actions)
	fmt.Fprintf(w, "\n%d changes:\n", len(r.Changes))
	for _, ch := range r.Changes {
		fmt.Fprintf(w, "  %s  agent %s  %s  %s\n", ch.ID, ch.Agent, ch.State, ch.Config)
		fmt.Fprintf(w, "    proposed by %s; decided by %s\n", ch.ProposedBy, dash(ch.DecidedBy))
		fmt.Fprintf(w, "    description: %s\n    testing: %s\n    rollback: %s\n", oneLine(ch.Description, 100), oneLine(ch.Testing, 100), oneLine(ch.Rollback, 100))
		for _, s := range ch.Steps {
			fmt.Fprintf(w, "    entry %d  %s  %s by %s\n", s.Index, s.Time.Format(time.RFC3339), s.Action, s.By)
		}
	}
	fmt.Fprintf(w, "\nactions by configuration:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CONFIG\tAGENTS\tACTIONS\tUNAPPROVED\tUNDECLARED")
	for _, c := range r.Configs {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\n", dash(c.Config), strings.Join(c.Agents, ","), c.Actions, c.Unapproved, c.Undeclared)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d actions under an unapproved or undeclared configuration", len(r.Unapproved)+r.Omitted)
	if r.Omitted > 0 {
		fmt.Fprintf(w, " (%d listed)", len(r.Unapproved))
	}
	fmt.Fprintln(w, ":")
	for _, a := range r.Unapproved {
		fmt.Fprintf(w, "  entry %d  agent %s  session %s  %s  %s  %s\n", a.Index, a.Agent, a.Session, a.Status, dash(a.Config), a.Action)
	}
}
