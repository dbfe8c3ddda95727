package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/agentlog/agentlog/client"
)

func runSession(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want \"agentlog session open|close [flags]\"")
	}
	fs := newFlags("session "+args[0], stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	switch args[0] {
	case "open":
		keyFile := fs.String("agent-key", "", "the agent's key file (from agent register --key-out)")
		task := fs.String("task", "", "the task this session is for, recorded in every entry (required)")
		ttl := fs.Duration("ttl", 0, "session lifetime (default: the server's, 1h)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *keyFile == "" || *task == "" {
			return usagef("--agent-key and --task are required")
		}
		if *ttl < 0 || *ttl%time.Second != 0 {
			return usagef("--ttl must be a positive whole number of seconds")
		}
		text, err := readSecret(*keyFile)
		if err != nil {
			return err
		}
		id, key, err := client.ParseAgentKey(text)
		if err != nil {
			return fmt.Errorf("%s: %w", *keyFile, err)
		}
		a, err := client.NewAgent(*server, client.AgentConfig{ID: id, Key: key, Task: *task, TTL: *ttl})
		if err != nil {
			return usagef("%s", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		s, err := a.Open(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "session %s for agent %s, task %q, expires %s\n", s.Session, s.Agent, s.Task, s.Expires.Format(time.RFC3339))
		// The credential alone on stdout, so $(agentlog session open ...) works.
		fmt.Fprintln(stdout, s.Credential)
		return nil
	case "close":
		tok := fs.String("session-token", "", "the session credential to close")
		tokFile := fs.String("session-token-file", "", "file holding the session credential")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		cred, err := sessionCredential(*tok, *tokFile)
		if err != nil {
			return err
		}
		a, err := client.NewAgent(*server, client.AgentConfig{Credential: cred})
		if err != nil {
			return usagef("%s", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "session closed")
		return nil
	}
	return usagef("unknown session verb %q: want open or close", args[0])
}

// sessionCredential takes the credential from a flag or a file.
func sessionCredential(tok, file string) (string, error) {
	if file != "" {
		return readSecret(file)
	}
	if tok == "" {
		return "", usagef("a session credential is required: --session-token T or --session-token-file FILE")
	}
	return tok, nil
}
