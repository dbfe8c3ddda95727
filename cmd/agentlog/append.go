package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentlog/agentlog/client"
)

func runAppend(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("append", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	sessionToken := fs.String("session-token", "", "the agent's session credential (from agentlog session open)")
	tokenFile := fs.String("session-token-file", "", "file holding the session credential")
	fs.StringVar(tokenFile, "token-file", "", "same as --session-token-file")
	action := fs.String("action", "", "what the agent did (required)")
	tool := fs.String("tool", "", "tool the agent used")
	resource := fs.String("resource", "", "resource the action touched")
	outcome := fs.String("outcome", "", "outcome, e.g. success or error")
	var attrs multiFlag
	fs.Var(&attrs, "attr", "attribute key=value, stored as a JSON string (\"rows\": \"3\"); repeatable. Typed values: the HTTP API or an SDK")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	tok, err := sessionCredential(*sessionToken, *tokenFile)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*action) == "" {
		return usagef("--action is required")
	}
	kv := map[string]string{}
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return usagef("--attr %q: want key=value", a)
		}
		kv[k] = v
	}
	rec := client.Record{Action: *action, Tool: *tool, Resource: *resource, Outcome: *outcome, Attributes: client.Attributes(kv)}
	ag, err := client.NewAgent(*server, client.AgentConfig{Credential: tok})
	if err != nil {
		return usagef("%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := ag.Append(ctx, rec)
	if err != nil {
		return err
	}
	for _, r := range res {
		fmt.Fprintf(stdout, "index %d time %s leaf_hash %x\n", r.Index, r.Time, r.LeafHash)
	}
	return nil
}
