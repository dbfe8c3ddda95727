package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/witness/policy"
)

func runAudit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tokenFile := fs.String("token-file", "", "auditor or admin token file (entry bundles and agent keys need one)")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: the checkpoint audited against must satisfy it")
	logKey := fs.String("log-key", "", "file holding the log's verifier key (log.pub), trusted in addition to the policy's log lines")
	from := fs.String("from", "", "audit the entries from this time (RFC 3339)")
	to := fs.String("to", "", "audit the entries before this time (RFC 3339)")
	start := fs.Int64("start", -1, "first entry index to audit")
	end := fs.Int64("end", -1, "entry index to stop before (default: the checkpoint's size)")
	stateFile := fs.String("state", "", "progress file: resume the audit it records, and record progress in it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	concurrency := fs.Int("concurrency", 16, "entry bundles fetched at once")
	mirrorURL := fs.String("mirror", "", "read the checkpoint, tiles and entry bundles from this copy of the log (s3://BUCKET[/PREFIX] with the AWS environment's credentials, or an http(s) URL) instead of --server")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *tokenFile == "" {
		return cmdline.Usagef("--token-file is required (an auditor or admin token)")
	}
	if *policyFile == "" {
		return cmdline.Usagef("%s", noPolicyHint)
	}
	if (*from != "" || *to != "") && (*start >= 0 || *end >= 0) {
		return cmdline.Usagef("give --from/--to or --start/--end, not both")
	}
	cfg := client.AuditConfig{Concurrency: *concurrency}
	var err error
	if cfg.Policy, err = loadPolicy(*policyFile, *logKey); err != nil {
		return err
	}
	for _, t := range []struct {
		flag, v string
		dst     *time.Time
	}{{"from", *from, &cfg.From}, {"to", *to, &cfg.To}} {
		if t.v == "" {
			continue
		}
		if *t.dst, err = time.Parse(time.RFC3339Nano, t.v); err != nil {
			return cmdline.Usagef("--%s %q is not an RFC 3339 time", t.flag, t.v)
		}
	}
	if *start > 0 {
		cfg.Start = uint64(*start)
	}
	if *end >= 0 {
		if *end <= max(*start, 0) {
			return cmdline.Usagef("--end must be greater than --start")
		}
		cfg.End = uint64(*end)
	}
	tok, err := cmdline.ReadSecret(*tokenFile)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2 * max(*concurrency, 1)
	opts := []client.Option{client.WithToken(tok), client.WithHTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Minute})}
	opts, err = withMirror(opts, *mirrorURL)
	if err != nil {
		return err
	}
	c, err := client.New(*server, opts...)
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	if *stateFile != "" {
		st, err := loadAuditState(*stateFile)
		if err != nil {
			return err
		}
		if st != nil {
			if (*start >= 0 && uint64(*start) != st.Start) || (*end >= 0 && uint64(*end) != st.End) || *from != "" || *to != "" {
				return fmt.Errorf("%s records an audit of entries [%d, %d); give the same range or remove the file to start another audit", *stateFile, st.Start, st.End)
			}
			fmt.Fprintf(stderr, "resuming the audit of entries [%d, %d) at entry %d\n", st.Start, st.End, st.Next)
			cfg.State = st
		}
		cfg.Save = func(st *client.AuditState) error {
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			return atomicfile.Write(*stateFile, b, 0o600)
		}
	}
	p := newProgress(stderr)
	cfg.Progress = p.update
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := c.Audit(ctx, cfg)
	p.done()
	if err != nil {
		if errors.Is(err, context.Canceled) && *stateFile != "" {
			return fmt.Errorf("interrupted; run the same command again to resume from %s", *stateFile)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printAudit(stdout, r)
	}
	if !r.OK() {
		return fmt.Errorf("%d finding(s)", len(r.Findings))
	}
	return nil
}

func printAudit(w io.Writer, r *client.AuditReport) {
	fmt.Fprintf(w, "checkpoint: origin %s, size %d, root %x\n", r.Origin, r.TreeSize, r.Root)
	if len(r.Cosigners) > 0 {
		fmt.Fprintf(w, "cosigned by: %s\n", strings.Join(r.Cosigners, ", "))
	}
	fmt.Fprintf(w, "entries [%d, %d) audited: %d in this run in %s (%.0f entries/s), %d agent signatures verified\n",
		r.Start, r.End, r.Entries, r.Duration.Round(time.Millisecond), r.PerSecond, r.Signed)
	if len(r.Alerts) > 0 {
		var parts []string
		for _, a := range slices.Sorted(maps.Keys(r.Alerts)) {
			parts = append(parts, fmt.Sprintf("%s %d", a, r.Alerts[a]))
		}
		fmt.Fprintf(w, "alerts recorded by the anomaly rules in the range: %s (agentlog query --kind alert lists them)\n", strings.Join(parts, ", "))
	}
	if r.OK() {
		fmt.Fprintln(w, "no findings: every entry hashes into the checkpoint, times never go back, no sequence gaps, every signature verifies")
		return
	}
	fmt.Fprintf(w, "%d finding(s):\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// noPolicyHint is the error for audit and monitor without --policy: it
// names the policy of a log without witnesses.
const noPolicyHint = `--policy FILE is required: the witness policy checkpoints must satisfy (c2sp.org/tlog-policy). ` +
	`For a log without witnesses, write a file holding the one line "quorum none" ` +
	`(echo "quorum none" > no-witnesses.policy) and pass it with --log-key log.pub`

// loadPolicy reads the --policy file of audit and monitor for the log of
// the --log-key file (if given).
func loadPolicy(path, logKeyFile string) (*policy.Policy, error) {
	vkey, err := readLogKey(logKeyFile)
	if err != nil {
		return nil, err
	}
	return readPolicy(path, vkey)
}

func loadAuditState(path string) (*client.AuditState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit state: %w", err)
	}
	var st client.AuditState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is not an audit state file: %w", path, err)
	}
	return &st, nil
}

// progress draws a progress bar on a terminal, or writes a line every
// few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every && done < total {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-9)
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "audit: %d/%d entries (%.1f%%), %.0f entries/s\n", done, total, 100*frac, rate)
		return
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% %d/%d entries, %.0f/s ", strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*frac, done, total, rate)
	p.drawn = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
