package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
)

func runSession(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return command.SubverbError("session", args)
	}
	fs := newFlags("session "+args[0], stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	switch args[0] {
	case "open":
		keyFile := fs.String("agent-key", "", "the agent's key file (from agent register --key-out)")
		task := fs.String("task", "", "the task this session is for, recorded in every entry (required)")
		ttl := fs.Duration("ttl", 0, "session lifetime (default: the server's, 1h)")
		out := fs.String("out", "", "write the credential to this new file (mode 0600; refuses to overwrite) instead of stdout; use it with --session-token-file")
		cfgFile := fs.String("config", "", "the configuration the agent runs under (JSON file): its digest is declared and carried by every action")
		cfgDigest := fs.String("config-digest", "", "the digest sha256:HEX of the configuration the agent runs under (instead of --config)")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *cfgFile != "" && *cfgDigest != "" {
			return cmdline.Usagef("give --config or --config-digest, not both")
		}
		digest := *cfgDigest
		if *cfgFile != "" {
			_, d, err := client.LoadConfig(*cfgFile)
			if err != nil {
				return err
			}
			digest = d
		}
		if *keyFile == "" || *task == "" {
			return cmdline.Usagef("--agent-key and --task are required")
		}
		if *ttl < 0 || *ttl%time.Second != 0 {
			return cmdline.Usagef("--ttl must be a positive whole number of seconds")
		}
		text, err := cmdline.ReadSecret(*keyFile)
		if err != nil {
			return err
		}
		id, key, err := agentlog.ParseKeyFile(text)
		if err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
		a, err := client.NewAgent(*server, client.AgentConfig{ID: id, Key: key, Task: *task, TTL: *ttl, Config: digest})
		if err != nil {
			return cmdline.Usagef("%s", err)
		}
		pending, err := cmdline.SecretOut(*out)
		if err != nil {
			return err
		}
		defer pending.Abort()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		s, err := a.Open(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "session %s for agent %s, task %q, expires %s\n", s.Session, s.Agent, s.Task, s.Expires.Format(time.RFC3339))
		if digest != "" {
			fmt.Fprintf(stderr, "declared configuration %s\n", digest)
		}
		if pending != nil {
			if err := pending.Commit([]byte(s.Credential + "\n")); err != nil {
				return fmt.Errorf("session %s is open, but its credential could not be saved: %w", s.Session, err)
			}
			fmt.Fprintf(stderr, "credential written to %s (mode 0600)\n", *out)
			return nil
		}
		// The credential alone on stdout, so $(agentlog session open ...) works.
		fmt.Fprintln(stdout, s.Credential)
		return nil
	case "close":
		tok := fs.String("session-token", "", "the session credential to close")
		tokFile := fs.String("session-token-file", "", "file holding the session credential")
		if err := cmdline.ParseFlags(fs, args[1:]); err != nil {
			return err
		}
		cred, err := sessionCredential(*tok, *tokFile)
		if err != nil {
			return err
		}
		a, err := client.NewAgent(*server, client.AgentConfig{Credential: cred})
		if err != nil {
			return cmdline.Usagef("%s", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "session closed")
		return nil
	case "list", "end":
		o := &operatorFlags{server: server, timeout: timeout}
		o.tokenFile = fs.String("admin-token-file", "", "admin (or, for list, auditor) token file")
		fs.StringVar(o.tokenFile, "token-file", "", "same as --admin-token-file")
		// Each takes only its own flag: list ignored --id and end --agent.
		agent, id := new(string), new(string)
		if args[0] == "list" {
			agent = fs.String("agent", "", "list only this agent's sessions")
		} else {
			id = fs.String("id", "", "the session to end (from session list)")
		}
		c, ctx, cancel, err := o.connect(fs, args[1:])
		if err != nil {
			return err
		}
		defer cancel()
		if args[0] == "end" {
			if *id == "" {
				return cmdline.Usagef("--id is required")
			}
			se, err := c.EndSession(ctx, *id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "ended session %s of agent %s (task %q)\n", se.ID, se.Agent, se.Task)
			return nil
		}
		list, err := c.Sessions(ctx, *agent)
		if err != nil {
			return err
		}
		// A revoked agent's sessions stop working at once, though the
		// server keeps them as they were: show them as such.
		agents, err := c.Agents(ctx)
		if err != nil {
			return err
		}
		revoked := map[string]bool{}
		for _, a := range agents {
			revoked[a.ID] = a.Status == "revoked"
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tAGENT\tTASK\tOPENED\tEXPIRES\tSTATE")
		now := time.Now()
		for _, se := range list {
			st := "open"
			switch {
			case se.Closed:
				st = "closed"
			case revoked[se.Agent]:
				st = "agent revoked"
			case !now.Before(se.Expires):
				st = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\n", se.ID, se.Agent, se.Task, se.Opened.Format(time.RFC3339), se.Expires.Format(time.RFC3339), st)
		}
		return tw.Flush()
	}
	return command.SubverbError("session", args)
}

// sessionCredential takes the session credential from --session-token or
// --session-token-file.
func sessionCredential(tok, file string) (string, error) {
	return cmdline.Credential(tok, file, "session-token", "session-token-file", "a session credential is required: --session-token T or --session-token-file FILE")
}
