package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/client/report"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/witness/policy"
)

// runEvidence is "agentlog evidence export|verify"; "agentlog help
// evidence" lists both (internal/cmdline, from groups).
func runEvidence(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "export":
		return runEvidenceExport(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "verify":
		return runEvidenceVerify(args[1:], stdout, stderr)
	}
	return command.SubverbError("evidence", args)
}

func runEvidenceExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("evidence export", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tf := addTokenFlags(fs, "auditor or admin")
	out := fs.String("out", "", "directory to write the evidence to (must not exist or be empty)")
	logKey := fs.String("log-key", "", "the log's verifier key file (log.pub): check the checkpoint and bundle the key")
	timeKey := fs.String("time-key", "", "the log's timestamp key file (time.pub); default: time.pub next to --log-key, if present")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: require the witness quorum and bundle the policy")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	mirrorURL := fs.String("mirror", "", "read the checkpoint, tiles and entry bundles from this copy of the log (s3://BUCKET[/PREFIX] with the AWS environment's credentials, or an http(s) URL); the query still goes to --server")
	qf := addQueryFlags(fs)
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return cmdline.Usagef("--out is required")
	}
	tok, err := tf.read()
	if err != nil {
		return err
	}
	q := qf.params()
	opts, err := exportOptions(*logKey, *timeKey, *policyFile)
	if err != nil {
		return err
	}
	copts, err := withMirror([]client.Option{client.WithToken(tok)}, *mirrorURL)
	if err != nil {
		return err
	}
	c, err := client.New(*server, copts...)
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ev, err := evidence.Export(ctx, c, q, *out, opts)
	if err != nil {
		return err
	}
	m := ev.Manifest
	fmt.Fprintf(stdout, "exported %s of %s (tree size %d, index range [%d, %d)) to %s\n", plural(m.Matches, "matching entry", "matching entries"), m.Origin, m.TreeSize, m.Start, m.End, *out)
	if ev.Complete {
		fmt.Fprintf(stdout, "completeness: proven with the %s of the range and its neighbours\n", plural(m.RangeEntries, "entry", "entries"))
	} else {
		fmt.Fprintln(stdout, "completeness: not proven (give --from or --to to prove a time range complete)")
	}
	if *logKey == "" {
		fmt.Fprintln(stderr, "warning: without --log-key the checkpoint was not authenticated; verify the export with the log's key before relying on it")
	}
	return nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func runEvidenceVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("evidence verify", stderr)
	logKey := fs.String("log-key", "", "the log's verifier key file (log.pub), obtained independently of the evidence")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: also require the checkpoint's witness quorum")
	// The directory may come before or after the flags.
	var dir string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cmdline.UsageError{Msg: err.Error()}
	}
	switch {
	case dir == "" && fs.NArg() == 1:
		dir = fs.Arg(0)
	case fs.NArg() > 0:
		return cmdline.Usagef("unexpected argument %q", fs.Arg(0))
	case dir == "":
		return cmdline.Usagef("the evidence directory is required")
	}
	if *logKey == "" {
		return cmdline.Usagef("--log-key is required")
	}
	lk, err := os.ReadFile(*logKey)
	if err != nil {
		return fmt.Errorf("reading the log key: %w", err)
	}
	var pol *policy.Policy
	if *policyFile != "" {
		if pol, err = readPolicy(*policyFile, string(lk)); err != nil {
			return err
		}
	}
	// A report directory (agentlog report) holds its period's export in
	// evidence/; the report is then recomputed from the verified export.
	isReport := fileExists(filepath.Join(dir, report.JSONFile)) && dirExists(filepath.Join(dir, report.EvidenceDir))
	evDir := dir
	if isReport {
		evDir = filepath.Join(dir, report.EvidenceDir)
	}
	ev, err := evidence.Verify(evDir, string(lk), pol)
	if err != nil {
		if errors.Is(err, evidence.ErrInvalid) {
			return fmt.Errorf("FAILED: %s: %w", dir, err)
		}
		return err
	}
	m := ev.Manifest
	fmt.Fprintf(stdout, "checkpoint OK: origin %s, size %d, root %x", m.Origin, m.TreeSize, m.Root)
	if m.CheckpointTime != "" {
		fmt.Fprintf(stdout, ", signed at %s (per keys/time.pub)", m.CheckpointTime)
	}
	fmt.Fprintln(stdout)
	if pol != nil {
		names := strings.Join(ev.Cosigners, ", ")
		if names == "" {
			names = "(none needed)"
		}
		fmt.Fprintf(stdout, "witness quorum OK: cosigned by %s\n", names)
	}
	fmt.Fprintf(stdout, "query: %s\n", m.Query)
	fmt.Fprintf(stdout, "entries OK: %s the query, each proven by its tlog-proof\n", plural(m.Matches, "entry matches", "entries match"))
	if ev.Complete {
		fmt.Fprintf(stdout, "completeness OK: index range [%d, %d) is exactly the query's time range, and every matching entry in it is exported\n", m.Start, m.End)
	} else {
		fmt.Fprintln(stdout, "completeness: not proven (the query has no time range)")
	}
	fmt.Fprintln(stdout, "all files match manifest.json")
	if isReport {
		if err := report.Check(dir, ev); err != nil {
			return fmt.Errorf("FAILED: %s: %w", dir, err)
		}
		fmt.Fprintf(stdout, "report OK: %s and %s are exactly what the evidence gives\n", report.JSONFile, report.HTMLFile)
	}
	return nil
}

// plural says "1 entry" or "n entries".
func plural[N ~int | ~int64 | ~uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
