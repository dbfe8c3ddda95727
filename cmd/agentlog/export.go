package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/log/ocsf"
)

func runExport(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ocsf" {
		return runExportOCSF(args[1:], stdout, stderr)
	}
	return command.SubverbError("export", args)
}

// exportPage is the page size of export ocsf: a page's matches wait for
// its summary, which carries the checkpoint their proofs refer to.
const exportPage = 1000

func runExportOCSF(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export ocsf", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tf := addTokenFlags(fs, "auditor or admin")
	qf := addQueryFlags(fs)
	limit := fs.Int("limit", 0, "stop after this many events (0: all)")
	logKey := fs.String("log-key", "", "the log's verifier key file (log.pub): check every page's checkpoint and each entry's inclusion proof before writing its event")
	timeKey := fs.String("time-key", "", "the log's timestamp key file (time.pub); default: time.pub next to --log-key, if present")
	out := fs.String("out", "", "write the events to this file (replaced atomically once complete) instead of standard output")
	wait := fs.Duration("wait", 10*time.Second, "wait this long for a checkpoint that covers the entries appended before the export began (events carry their proofs; 0: export up to the current checkpoint)")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	tok, err := tf.read()
	if err != nil {
		return err
	}
	if *limit < 0 || *wait < 0 {
		return cmdline.Usagef("--limit and --wait must not be negative")
	}
	var logV, timeV note.Verifier
	if *logKey != "" {
		if logV, timeV, err = exportVerifiers(*logKey, *timeKey); err != nil {
			return err
		}
	} else if *timeKey != "" {
		return cmdline.Usagef("--time-key needs --log-key")
	}
	c, err := client.New(*server, client.WithToken(tok))
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var sb strings.Builder
	var w *bufio.Writer
	if *out != "" {
		w = bufio.NewWriter(&sb)
	} else {
		w = bufio.NewWriter(stdout)
	}
	if err := awaitCovered(ctx, c, *wait); err != nil {
		return err
	}
	src := ocsf.Source{Version: buildVersion(), URL: strings.TrimSuffix(*server, "/")}
	p := qf.params()
	p.Set("proof", "true")
	n := 0
	for {
		page := exportPage
		if *limit > 0 {
			page = min(page, *limit-n)
		}
		p.Set("limit", strconv.Itoa(page))
		var ms []client.QueryMatch
		sum, err := c.Query(ctx, p, func(m client.QueryMatch) error {
			ms = append(ms, m)
			return nil
		})
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			cp := []byte(sum.Checkpoint)
			root, err := exportCheckpoint(cp, sum.TreeSize, logV, timeV)
			if err != nil {
				return err
			}
			src.Origin = strings.SplitN(sum.Checkpoint, "\n", 2)[0]
			for _, m := range ms {
				if logV != nil {
					if err := proof.VerifyInclusion(rfc6962.DefaultHasher, m.Index, sum.TreeSize, rfc6962.DefaultHasher.HashLeaf(m.Entry), m.InclusionProof, root); err != nil {
						return fmt.Errorf("entry %d: its inclusion proof does not verify under the checkpoint: %w", m.Index, err)
					}
				}
				e, err := ocsf.Event(src, m.Index, m.Entry, &ocsf.Proof{Checkpoint: cp, TreeSize: sum.TreeSize, Path: m.InclusionProof})
				if err != nil {
					return fmt.Errorf("entry %d: %w", m.Index, err)
				}
				b, err := ocsf.Marshal(e)
				if err != nil {
					return fmt.Errorf("entry %d: %w", m.Index, err)
				}
				w.Write(b)
				if err := w.WriteByte('\n'); err != nil {
					return fmt.Errorf("writing the events: %w", err)
				}
			}
		}
		n += len(ms)
		if sum.Cursor == "" || (*limit > 0 && n >= *limit) {
			break
		}
		p.Set("cursor", sum.Cursor)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the events: %w", err)
	}
	if *out != "" {
		if err := atomicfile.Write(*out, []byte(sb.String()), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s to %s\n", plural(n, "OCSF event", "OCSF events"), *out)
	}
	if logV == nil {
		fmt.Fprintln(stderr, "warning: without --log-key the checkpoints and proofs in the events were not checked")
	}
	return nil
}

// awaitCovered waits up to wait for the published checkpoint to cover
// the tree as it is now (a query without proofs answers for the current
// tree): entries appended a moment ago are exported too, with their
// proofs. After wait the export goes on up to the checkpoint it has.
func awaitCovered(ctx context.Context, c *client.Client, wait time.Duration) error {
	if wait == 0 {
		return nil
	}
	sum, err := c.Query(ctx, url.Values{"limit": {"1"}}, func(client.QueryMatch) error { return nil })
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		raw, err := c.Checkpoint(ctx)
		if err == nil {
			if lines := strings.SplitN(string(raw), "\n", 3); len(lines) == 3 {
				if n, err := strconv.ParseUint(lines[1], 10, 64); err == nil && n >= sum.TreeSize {
					return nil
				}
			}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// exportVerifiers reads the log's keys (time.pub next to the log key
// by default).
func exportVerifiers(logKey, timeKey string) (note.Verifier, note.Verifier, error) {
	lk, err := os.ReadFile(logKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the log key: %w", err)
	}
	if timeKey == "" {
		if p := filepath.Join(filepath.Dir(logKey), "time.pub"); fileExists(p) {
			timeKey = p
		}
	}
	var tk []byte
	if timeKey != "" {
		if tk, err = os.ReadFile(timeKey); err != nil {
			return nil, nil, fmt.Errorf("reading the time key: %w", err)
		}
	}
	v, err := client.NewVerifier(string(lk), string(tk))
	if err != nil {
		return nil, nil, err
	}
	return v.Log, v.Time, nil
}

// exportCheckpoint checks a page's checkpoint (with the log's keys when
// given) and returns its root.
func exportCheckpoint(cp []byte, size uint64, logV, timeV note.Verifier) ([]byte, error) {
	if len(cp) == 0 {
		return nil, errors.New("the query answer carries no checkpoint for its proofs")
	}
	if logV == nil {
		return nil, nil
	}
	s, err := checkpoint.Open(cp, logV, timeV)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint of the query answer: %w", err)
	}
	if s.Size != size {
		return nil, fmt.Errorf("the checkpoint is of size %d, the answer of %d", s.Size, size)
	}
	return s.Root, nil
}

// buildVersion is the module version this binary was built as.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return ""
}
