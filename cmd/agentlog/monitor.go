package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/cmdline"
)

func runMonitor(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("monitor", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: every checkpoint must satisfy it; its witnesses with a URL are cross-checked")
	logKey := fs.String("log-key", "", "file holding the log's verifier key (log.pub), trusted in addition to the policy's log lines")
	stateFile := fs.String("state", "", "file holding the last trusted checkpoint (created on first use)")
	interval := fs.Duration("interval", time.Minute, "time between checks")
	once := fs.Bool("once", false, "check once and exit")
	mirrorURL := fs.String("mirror", "", "read the checkpoint and tiles from this copy of the log (s3://BUCKET[/PREFIX] with the AWS environment's credentials, or an http(s) URL) instead of --server")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *policyFile == "" {
		return cmdline.Usagef("%s", noPolicyHint)
	}
	if *stateFile == "" {
		return cmdline.Usagef("--state is required")
	}
	if *interval <= 0 {
		return cmdline.Usagef("--interval must be positive")
	}
	p, err := loadPolicy(*policyFile, *logKey)
	if err != nil {
		return err
	}
	trusted, err := os.ReadFile(*stateFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the monitor state: %w", err)
	}
	opts, err := withMirror(nil, *mirrorURL)
	if err != nil {
		return err
	}
	c, err := client.New(*server, opts...)
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	m, err := c.NewMonitor(client.MonitorConfig{
		Policy:  p,
		Trusted: trusted,
		Save:    func(raw []byte) error { return atomicfile.Write(*stateFile, raw, 0o644) },
	})
	if err != nil {
		return fmt.Errorf("%s: %w", *stateFile, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, max(*interval, 30*time.Second))
		r, err := m.Check(cctx)
		cancel()
		var ie *client.InconsistencyError
		switch {
		case errors.As(err, &ie):
			fmt.Fprintf(stdout, "INCONSISTENCY DETECTED (%s) against %s\n%s\n", ie.Kind, ie.Source, ie.Error())
			return fmt.Errorf("%s: the log signed two checkpoints that contradict each other (printed above)", ie.Kind)
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && *once:
			return err
		case err != nil:
			fmt.Fprintf(stderr, "%s monitor: %v (retrying)\n", time.Now().UTC().Format(time.RFC3339), err)
		default:
			printMonitor(stdout, r)
		}
		if *once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func printMonitor(w io.Writer, r *client.MonitorResult) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s size %d root %x", time.Now().UTC().Format(time.RFC3339), r.Origin, r.Size, r.Root)
	switch {
	case r.First:
		b.WriteString(" (trusted on first use)")
	case r.Stale:
		fmt.Fprintf(&b, " (the log served an older checkpoint, consistent)")
	case r.Size > r.Previous:
		fmt.Fprintf(&b, " (grew by %d, consistent)", r.Size-r.Previous)
	}
	for _, v := range r.Witnesses {
		switch {
		case v.Agrees:
			fmt.Fprintf(&b, "; witness %s at %d agrees", v.Name, v.Size)
		default:
			fmt.Fprintf(&b, "; witness %s not compared: %s", v.Name, v.Note)
		}
	}
	fmt.Fprintln(w, b.String())
}
