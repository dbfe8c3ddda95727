package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
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
	var attrs, jsonAttrs cmdline.MultiFlag
	fs.Var(&attrs, "attr", "attribute `key=value`, stored as a JSON string (rows=3 is \"rows\": \"3\"); repeatable")
	fs.Var(&jsonAttrs, "attr-json", "attribute `key=JSON`, stored as that JSON value (rows=3 is \"rows\": 3); repeatable")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	tok, err := sessionCredential(*sessionToken, *tokenFile)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*action) == "" {
		return cmdline.Usagef("--action is required")
	}
	kv := map[string]any{}
	for _, a := range attrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return cmdline.Usagef("--attr %q: want key=value", a)
		}
		kv[k] = v
	}
	for _, a := range jsonAttrs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" || !json.Valid([]byte(v)) {
			return cmdline.Usagef("--attr-json %q: want key=JSON, e.g. rows=3 or tags='[\"a\",\"b\"]' (for a string, --attr)", a)
		}
		if _, dup := kv[k]; dup {
			return cmdline.Usagef("attribute %q is given twice", k)
		}
		kv[k] = json.RawMessage(v)
	}
	rec := client.Record{Action: *action, Tool: *tool, Resource: *resource, Outcome: *outcome}
	if len(kv) > 0 {
		b, err := json.Marshal(kv) // keys sorted; values strings or valid JSON
		if err != nil {
			return cmdline.Usagef("attributes: %s", err)
		}
		rec.Attributes = b
	}
	ag, err := client.NewAgent(*server, client.AgentConfig{Credential: tok})
	if err != nil {
		return cmdline.Usagef("%s", err)
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
