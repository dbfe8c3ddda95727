package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/internal/secretfile"
	"github.com/agentlog/agentlog/log/identity"
)

func runAgent(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return command.SubverbError("agent", args)
	}
	verb := args[0]
	fs := newFlags("agent "+verb, stderr)
	who := map[string]string{"approve": "approver or admin", "list": "admin, approver or auditor", "show": "admin, approver or auditor"}[verb]
	if who == "" {
		who = "admin"
	}
	o := addOperatorFlags(fs, who)
	id := new(string) // list lists every agent: it takes no --id (it ignored one)
	if verb != "list" {
		id = fs.String("id", "", "agent id: 1 to 64 letters, digits, '.', '_' or '-'")
	}
	switch verb {
	case "register":
		owner := fs.String("owner", "", "who is accountable for the agent (default: the operator running this)")
		desc := fs.String("description", "", "what the agent is for")
		var scope cmdline.MultiFlag
		fs.Var(&scope, "scope", "declared `scope`, e.g. 'actions=db.*;tools=sql;resources=customers/*;hours=09:00-17:00;tz=UTC;weekdays=mon-fri;rate=100/m' or its JSON form (repeatable: parts are joined)")
		keyOut := fs.String("key-out", "", "file to write the agent's new private key to (mode 0600; give it to the agent)")
		pubIn := fs.String("public-key-file", "", "register this agent key file's key instead of generating one (with no --key-out)")
		cfgFile := fs.String("config", "", "the agent's configuration, JSON (docs/changes.md): recorded as its first approved change")
		policy := fs.String("policy", "", "with --config: config=enforce refuses sessions under any other configuration")
		noApprove := fs.Bool("no-approve", false, "only register; an approver approves later with \"agentlog agent approve\"")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" || (*keyOut == "") == (*pubIn == "") {
			return cmdline.Usagef("--id and exactly one of --key-out or --public-key-file are required")
		}
		if !agentlog.ValidID(*id) {
			return cmdline.Usagef("--id %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", *id)
		}
		sc, err := parseScopeFlags(scope)
		if err != nil {
			return cmdline.Usagef("--scope: %s", err)
		}
		scJSON, _ := json.Marshal(sc)
		pol, err := parsePolicy(*policy)
		if err != nil {
			return err
		}
		var cfgDoc []byte
		var digest string
		if *cfgFile != "" {
			if cfgDoc, digest, err = client.LoadConfig(*cfgFile); err != nil {
				return err
			}
		} else if pol != "" {
			return cmdline.Usagef("--policy needs --config")
		}
		if *owner == "" {
			*owner = os.Getenv("USER")
			if *owner == "" {
				*owner = "unknown"
			}
		}
		c, ctx, cancel, err := o.client()
		if err != nil {
			return err
		}
		defer cancel()
		commitKey := func() error { return nil }
		var key ed25519.PublicKey
		if *keyOut != "" {
			priv, text := agentlog.GenerateAgentKey(*id)
			// The key is durable (beside --key-out) before it is
			// registered, so a registered key is never lost, and it
			// becomes --key-out only once the server accepted it, so a
			// refused registration leaves no file behind.
			pending, err := secretfile.Create(*keyOut, []byte(text))
			if err != nil {
				return err
			}
			defer pending.Abort()
			commitKey = func() error { return pending.Commit(nil) }
			key = priv.Public().(ed25519.PublicKey)
		} else {
			text, err := cmdline.ReadSecret(*pubIn)
			if err != nil {
				return err
			}
			kid, priv, err := agentlog.ParseKeyFile(text)
			if err != nil {
				return err
			}
			if kid != *id {
				return fmt.Errorf("%s is the key of agent %q, not %q", *pubIn, kid, *id)
			}
			key = priv.Public().(ed25519.PublicKey)
		}
		a, err := c.RegisterAgent(ctx, client.AgentRegistration{ID: *id, Owner: *owner, Description: *desc, PublicKey: key, Scope: scJSON, Config: cfgDoc, ConfigPolicy: pol})
		if err != nil {
			return err
		}
		if err := commitKey(); err != nil {
			return fmt.Errorf("agent %s is registered, but its key could not be saved: %w", a.ID, err)
		}
		fmt.Fprintf(stdout, "registered agent %s (owner %s)\n", a.ID, a.Owner)
		if digest != "" {
			fmt.Fprintf(stdout, "approved configuration %s\n", digest)
		}
		if *noApprove {
			fmt.Fprintf(stdout, "agent %s awaits approval\n", a.ID)
			return nil
		}
		if a, err = c.ApproveAgent(ctx, *id); err != nil {
			return fmt.Errorf("registered, but approving failed: %w", err)
		}
		fmt.Fprintf(stdout, "approved agent %s\n", a.ID)
		return nil
	case "approve", "revoke", "show":
		c, ctx, cancel, err := o.connect(fs, args[1:], "id")
		if err != nil {
			return err
		}
		defer cancel()
		var a *client.AgentInfo
		switch verb {
		case "approve":
			a, err = c.ApproveAgent(ctx, *id)
		case "revoke":
			a, err = c.RevokeAgent(ctx, *id)
		default:
			a, err = c.Agent(ctx, *id)
		}
		if err != nil {
			return err
		}
		if verb == "show" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(a)
		}
		fmt.Fprintf(stdout, "agent %s is %s\n", a.ID, a.Status)
		return nil
	case "scope":
		var scope cmdline.MultiFlag
		fs.Var(&scope, "scope", "the new declared `scope` (same form as for register; repeatable)")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *id == "" {
			return cmdline.Usagef("--id is required")
		}
		sc, err := parseScopeFlags(scope)
		if err != nil {
			return cmdline.Usagef("--scope: %s", err)
		}
		scJSON, _ := json.Marshal(sc)
		c, ctx, cancel, err := o.client()
		if err != nil {
			return err
		}
		defer cancel()
		a, err := c.SetAgentScope(ctx, *id, scJSON)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agent %s scope is now %s\n", a.ID, a.Scope)
		return nil
	case "list":
		c, ctx, cancel, err := o.connect(fs, args[1:])
		if err != nil {
			return err
		}
		defer cancel()
		agents, err := c.Agents(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tSTATUS\tREGISTERED\tBY\tSCOPE")
		for _, a := range agents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Owner, a.Status, a.Registered.Format(time.RFC3339), a.RegisteredBy, a.Scope)
		}
		return tw.Flush()
	}
	return command.SubverbError("agent", args)
}

// parseScopeFlags reads the --scope values: one JSON object, or key=value
// parts that are joined with ";".
func parseScopeFlags(vals []string) (identity.Scope, error) {
	if len(vals) == 1 {
		return identity.ParseScope(vals[0])
	}
	for _, v := range vals {
		if strings.HasPrefix(strings.TrimSpace(v), "{") {
			return identity.Scope{}, fmt.Errorf("a JSON scope must be the only --scope")
		}
	}
	return identity.ParseScope(strings.Join(vals, ";"))
}
