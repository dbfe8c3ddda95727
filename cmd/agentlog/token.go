package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
)

// operatorFlags are the flags every operator verb takes: the server and
// the operator's token file.
type operatorFlags struct {
	server    *string
	tokenFile *string
	timeout   *time.Duration
	who       string // whose token: "admin", "auditor or admin", ...
}

func addOperatorFlags(fs *flag.FlagSet, who string) *operatorFlags {
	o := &operatorFlags{
		server:  fs.String("server", "http://127.0.0.1:8080", "log server URL"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long"),
		who:     who,
	}
	o.tokenFile = fs.String("admin-token-file", "", "file holding the "+who+" token (e.g. DATA/admin.token)")
	fs.StringVar(o.tokenFile, "token-file", "", "same as --admin-token-file")
	return o
}

// client returns a client authenticated with the operator token, and a
// context bounded by --timeout.
func (o *operatorFlags) client() (*client.Client, context.Context, context.CancelFunc, error) {
	if *o.tokenFile == "" {
		return nil, nil, nil, cmdline.Usagef("--token-file FILE (or --admin-token-file) is required: the file holding the %s token", o.who)
	}
	tok, err := cmdline.ReadSecret(*o.tokenFile)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := client.New(*o.server, client.WithToken(tok))
	if err != nil {
		return nil, nil, nil, cmdline.Usagef("%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *o.timeout)
	return c, ctx, cancel, nil
}

// connect parses args into fs, checks that each flag named in required was
// given a value, and returns o.client(): the shape of every operator verb.
func (o *operatorFlags) connect(fs *flag.FlagSet, args []string, required ...string) (*client.Client, context.Context, context.CancelFunc, error) {
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return nil, nil, nil, err
	}
	var missing []string
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			missing = append(missing, "--"+name)
		}
	}
	switch n := len(missing); {
	case n == 1:
		return nil, nil, nil, cmdline.Usagef("%s is required", missing[0])
	case n > 1:
		return nil, nil, nil, cmdline.Usagef("%s and %s are required", strings.Join(missing[:n-1], ", "), missing[n-1])
	}
	return o.client()
}

// tokenFlags are --token and --token-file of the auditor verbs that take
// the token itself too (query, evidence export, export ocsf); operator
// verbs take a file only (operatorFlags).
type tokenFlags struct {
	token, file *string
	who         string
}

func addTokenFlags(fs *flag.FlagSet, who string) *tokenFlags {
	return &tokenFlags{
		token: fs.String("token", "", who+" token (prefer --token-file: arguments are visible to other users)"),
		file:  fs.String("token-file", "", "file holding the "+who+" token (mode 0600)"),
		who:   who,
	}
}

// read returns the token given, or read from its file (cmdline.Credential).
func (f *tokenFlags) read() (string, error) {
	return cmdline.Credential(*f.token, *f.file, "token", "token-file", "--token-file FILE (or --token T) is required: the file holding the "+f.who+" token")
}

func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return command.SubverbError("token", args)
	}
	fs := newFlags("token "+args[0], stderr)
	o := addOperatorFlags(fs, "admin")
	switch args[0] {
	case "create":
		role := fs.String("role", "", "role of the new token: admin, approver, auditor or gateway (required)")
		name := fs.String("name", "", "name of the token's holder, recorded in the log (required)")
		out := fs.String("out", "", "write the token to this new file (mode 0600; refuses to overwrite) instead of stdout")
		c, ctx, cancel, err := o.connect(fs, args[1:], "role", "name")
		if err != nil {
			return err
		}
		defer cancel()
		pending, err := cmdline.SecretOut(*out)
		if err != nil {
			return err
		}
		defer pending.Abort()
		t, cred, err := c.CreateToken(ctx, *name, *role)
		if err != nil {
			return err
		}
		if pending != nil {
			if err := pending.Commit([]byte(cred + "\n")); err != nil {
				return fmt.Errorf("created %s token %s, but could not save it (revoke it with \"agentlog token revoke --id %s\"): %w", t.Role, t.ID, t.ID, err)
			}
			fmt.Fprintf(stdout, "created %s token %s for %q in %s (mode 0600)\n", t.Role, t.ID, t.Name, *out)
			return nil
		}
		fmt.Fprintf(stderr, "created %s token %s for %q; it is shown only once (--out FILE saves it to a 0600 file):\n", t.Role, t.ID, t.Name)
		fmt.Fprintln(stdout, cred)
		return nil
	case "list":
		c, ctx, cancel, err := o.connect(fs, args[1:])
		if err != nil {
			return err
		}
		defer cancel()
		toks, err := c.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tBY\tSTATUS")
		for _, t := range toks {
			st := "active"
			if t.Revoked != nil {
				st = "revoked " + t.Revoked.Format(time.RFC3339) + " by " + t.RevokedBy
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Created.Format(time.RFC3339), t.CreatedBy, st)
		}
		return tw.Flush()
	case "revoke":
		id := fs.String("id", "", "id of the token to revoke (from token list)")
		c, ctx, cancel, err := o.connect(fs, args[1:], "id")
		if err != nil {
			return err
		}
		defer cancel()
		t, err := c.RevokeToken(ctx, *id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked token %s (%s, %s)\n", t.ID, t.Name, t.Role)
		return nil
	}
	return command.SubverbError("token", args)
}
