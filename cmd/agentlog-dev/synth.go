package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/cmdline"
	alog "github.com/agentlog/agentlog/log"
)

// burst is a run of actions one agent takes within one minute.
type burst struct {
	at    time.Time
	agent int
	n     int
}

// runSynth builds a synthetic log for benchmarks and demos: agents act in
// bursts, mostly in business hours (09:00-17:00 UTC on weekdays), less at
// night and at weekends, over the given number of days ending now. The
// data directory then serves with "agentlog serve --data DIR", its admin
// token in DIR/admin.token.
func runSynth(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("synth", stderr)
	data := fs.String("data", "agentlog-synth", "new data directory for the synthetic log")
	origin := fs.String("origin", "synth.agentlog.local/log", "log origin")
	entries := fs.Int("entries", 10_000_000, "entries to write")
	agents := fs.Int("agents", 1000, "agents")
	days := fs.Int("days", 365, "days of activity, ending now")
	offHours := fs.Float64("off-hours", 0.1, "share of activity outside business hours")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *entries < 1 || *agents < 1 || *days < 1 || *offHours < 0 || *offHours > 1 {
		return cmdline.Usagef("--entries, --agents and --days must be positive and --off-hours in [0, 1]")
	}
	if _, err := os.Stat(filepath.Join(*data, "db")); err == nil {
		return fmt.Errorf("%s already holds a log; give a new --data directory", *data)
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	keys, _, err := checkpoint.LoadOrCreateKeys(*data, *origin)
	if err != nil {
		return err
	}
	if _, err := cmdline.LoadOrCreateToken(filepath.Join(*data, "admin.token")); err != nil {
		return err
	}
	var now atomic.Int64
	l, err := alog.Open(alog.Config{
		Dir:      filepath.Join(*data, "db"),
		Clock:    func() time.Time { return time.Unix(0, now.Load()) },
		BulkLoad: true,
	})
	if err != nil {
		return err
	}
	defer l.Close()

	r := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))
	actions := []string{"db.query", "db.query", "db.query", "db.write", "http.get", "http.post", "file.read", "email.send", "payment.refund", "shell.exec"}
	tools := []string{"sql", "sql", "http", "fs", "smtp", "stripe", "bash"}
	outcomes := []string{"success", "success", "success", "success", "success", "success", "success", "success", "error", "denied"}
	resources := []string{"customers/%d", "orders/%d", "invoices/%d", "tickets/%d"}
	recs := make([]alog.Record, 200)

	end := time.Now().UTC().Truncate(24 * time.Hour)
	begin := end.AddDate(0, 0, -*days)
	perDay := float64(*entries) / float64(*days)
	start := time.Now()
	written := 0
	var bursts []burst
	seq := map[int]uint64{} // next sequence number of each agent's session of the day
	for d := 0; d < *days && written < *entries; d++ {
		day := begin.AddDate(0, 0, d)
		weekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
		target := perDay
		if weekend {
			target *= 0.3
		} else {
			target *= 1.28 // keep the weekly total near perDay*7
		}
		bursts = bursts[:0]
		for n := 0; n < int(target); {
			b := burst{agent: r.IntN(*agents), n: 1 + r.IntN(150)}
			var minute int
			if weekend || r.Float64() < *offHours {
				minute = r.IntN(24 * 60)
			} else {
				minute = 9*60 + r.IntN(8*60)
			}
			b.at = day.Add(time.Duration(minute)*time.Minute + time.Duration(r.IntN(60_000))*time.Millisecond)
			bursts = append(bursts, b)
			n += b.n
		}
		slices.SortFunc(bursts, func(a, b burst) int { return a.at.Compare(b.at) })
		clear(seq) // one session per agent per day
		for _, b := range bursts {
			n := min(b.n, *entries-written)
			if n <= 0 {
				break
			}
			agent := fmt.Sprintf("agent-%04d", b.agent)
			p := alog.Principal{
				ID: agent, Role: "agent", Agent: agent,
				Session: fmt.Sprintf("s%04d%04d", b.agent, d),
				Task:    fmt.Sprintf("task-%d", r.IntN(5000)),
			}
			for i := 0; i < n; i++ {
				a := r.IntN(len(actions))
				recs[i] = alog.Record{
					Action:   actions[a],
					Tool:     tools[a%len(tools)],
					Resource: fmt.Sprintf(resources[r.IntN(len(resources))], r.IntN(100_000)),
					Outcome:  outcomes[r.IntN(len(outcomes))],
					Seq:      seq[b.agent] + uint64(i+1),
				}
			}
			seq[b.agent] += uint64(n)
			now.Store(b.at.UnixNano())
			if _, err := l.Append(context.Background(), p, alog.KindAction, recs[:n]); err != nil {
				return fmt.Errorf("appending: %w", err)
			}
			written += n
		}
		if d%30 == 29 {
			fmt.Fprintf(stderr, "synth: day %d of %d, %d entries, %.0f entries/s\n", d+1, *days, written, float64(written)/time.Since(start).Seconds())
		}
	}
	// Sign a checkpoint of the whole log so the directory serves at once.
	loop, err := signer.New(signer.Config{Keys: keys, Source: l.Tree(), Store: signer.FileStore{Path: filepath.Join(*data, "checkpoint")}})
	if err != nil {
		return err
	}
	if _, err := loop.SignNow(); err != nil && !errors.Is(err, signer.ErrClockNotSynced) {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d entries by %d agents over %d days to %s in %s (%.0f entries/s)\n",
		written, *agents, *days, *data, time.Since(start).Round(time.Second), float64(written)/time.Since(start).Seconds())
	return nil
}
