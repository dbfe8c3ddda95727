package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
)

// queryFlags are the filter flags shared by query and evidence export.
type queryFlags struct {
	fields                 map[string]*string
	from, to               *string
	outsideHours, tz, days *string
}

func addQueryFlags(fs interface {
	String(name, value, usage string) *string
}) *queryFlags {
	q := &queryFlags{fields: map[string]*string{}}
	for _, f := range []struct{ name, usage string }{
		{"agent", "agent id"}, {"action", "action"}, {"tool", "tool"}, {"resource", "resource"},
		{"outcome", "outcome"}, {"kind", "leaf kind: action, agent, session, token, denied, alert, system, change"}, {"session", "session id"}, {"task", "task id"},
		{"config", "configuration digest sha256:HEX (actions run under it, changes about it)"},
	} {
		q.fields[f.name] = fs.String(f.name, "", f.usage+" (exact, or a prefix ending in *)")
	}
	q.from = fs.String("from", "", "entries at or after this RFC 3339 time")
	q.to = fs.String("to", "", "entries before this RFC 3339 time")
	q.outsideHours = fs.String("outside-hours", "", "only entries outside business hours HH:MM-HH:MM")
	q.tz = fs.String("tz", "", "IANA time zone of --outside-hours (default UTC)")
	q.days = fs.String("weekdays", "", "business days of --outside-hours, e.g. mon-fri (the default)")
	return q
}

// params turns the flags into query parameters; the server validates them.
func (q *queryFlags) params() url.Values {
	p := url.Values{}
	for k, v := range q.fields {
		if *v != "" {
			p.Set(k, *v)
		}
	}
	for k, v := range map[string]*string{"from": q.from, "to": q.to, "outside_hours": q.outsideHours, "tz": q.tz, "weekdays": q.days} {
		if *v != "" {
			p.Set(k, *v)
		}
	}
	return p
}

func runQuery(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tf := addTokenFlags(fs, "auditor or admin")
	qf := addQueryFlags(fs)
	limit := fs.Int("limit", 0, "stop after this many matches (0: all)")
	asJSON := fs.Bool("json", false, "print NDJSON (one match a line, then the summary) instead of a table")
	withProof := fs.Bool("proof", false, "include each match's inclusion proof against the published checkpoint (with --json)")
	follow := fs.Bool("follow", false, "after the matches so far, keep printing new matches as they are appended, until Ctrl-C")
	interval := fs.Duration("interval", time.Second, "with --follow, how often to look for new entries")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	tok, err := tf.read()
	if err != nil {
		return err
	}
	if *limit < 0 {
		return cmdline.Usagef("--limit must not be negative")
	}
	if *follow && (*limit != 0 || *interval <= 0) {
		return cmdline.Usagef("--follow takes no --limit, and a positive --interval")
	}
	if *withProof && !*asJSON {
		return cmdline.Usagef("--proof needs --json: the proofs are part of the NDJSON output (or use agentlog evidence export)")
	}
	c, err := client.New(*server, client.WithToken(tok))
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	p := qf.params()
	if *withProof {
		p.Set("proof", "true")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	var sum *client.QuerySummary
	if *asJSON {
		enc := json.NewEncoder(stdout)
		sum, err = c.QueryAll(ctx, p, *limit, func(m client.QueryMatch) error { return enc.Encode(m) })
		if err != nil {
			return err
		}
		if err := enc.Encode(map[string]any{"summary": sum}); err != nil || !*follow {
			return err
		}
		return followQuery(ctx, c, p, sum.End, *interval, func(m client.QueryMatch) error { return enc.Encode(m) })
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tAGENT\tTASK\tACTION\tTOOL\tRESOURCE\tOUTCOME")
	n := 0
	row := func(m client.QueryMatch) error {
		var l agentlog.Leaf
		if err := json.Unmarshal(m.Entry, &l); err != nil {
			return fmt.Errorf("entry %d: %w", m.Index, err)
		}
		who := l.Agent
		if who == "" {
			who = l.Principal
			if l.TokenID != "" {
				who += " (token " + l.TokenID + ")"
			}
		}
		n++
		_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Index, l.Time.UTC().Format(time.RFC3339),
			cell(l.Kind), cell(who), cell(l.Task), cell(l.Action), cell(l.Tool), cell(l.Resource), cell(l.Outcome))
		return err
	}
	sum, err = c.QueryAll(ctx, p, *limit, row)
	if err != nil {
		if n > 0 {
			tw.Flush() // the rows before the error; a refused query prints no header
		}
		return err
	}
	tw.Flush()
	if *follow {
		fmt.Fprintf(stdout, "%d matches up to index %d; following (Ctrl-C stops)\n", n, sum.End)
		return followQuery(ctx, c, p, sum.End, *interval, func(m client.QueryMatch) error {
			if err := row(m); err != nil {
				return err
			}
			return tw.Flush()
		})
	}
	complete := "complete"
	if sum.Next < sum.End {
		complete = fmt.Sprintf("stopped at index %d (--limit)", sum.Next)
	}
	fmt.Fprintf(stdout, "%d matches in %s; %s for tree size %d, index range [%d, %d)\n", n, time.Since(start).Round(time.Millisecond), complete, sum.TreeSize, sum.Start, sum.End)
	return nil
}

// cell keeps a table cell on one line and readable.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// followQuery calls fn for each match at index next or later, as entries
// are appended, until ctx ends (nil error: the user stopped it). Entry
// times never decrease with the index, so the entries from next on are
// those at or after the time of entry next-1: each round asks from that
// time and drops what it already saw.
func followQuery(ctx context.Context, c *client.Client, p url.Values, next uint64, interval time.Duration, fn func(client.QueryMatch) error) error {
	userFrom := p.Get("from")
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		q := url.Values{}
		for k, v := range p {
			q[k] = v
		}
		if next > 0 {
			leaf, err := c.Entry(ctx, next-1)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			var l agentlog.Leaf
			if err := json.Unmarshal(leaf, &l); err != nil {
				return fmt.Errorf("entry %d: %w", next-1, err)
			}
			from := l.Time.UTC().Format(time.RFC3339Nano)
			if uf, err := time.Parse(time.RFC3339, userFrom); err == nil && uf.After(l.Time) {
				from = userFrom
			}
			q.Set("from", from)
		}
		sum, err := c.QueryAll(ctx, q, 0, func(m client.QueryMatch) error {
			if m.Index < next {
				return nil
			}
			return fn(m)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		next = max(next, sum.End)
	}
}
