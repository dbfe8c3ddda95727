package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/agentlog/agentlog/internal/cmdline"
	alog "github.com/agentlog/agentlog/log"
)

func runReindex(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reindex", stderr)
	data := fs.String("data", "agentlog-data", "data directory of a log no server is using")
	check := fs.Bool("check", false, "only compare the indexes with the entries; change nothing")
	stats := fs.Bool("stats", false, "only print the size of the indexes; change nothing")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*data, "db")); err != nil {
		return fmt.Errorf("no log database in %s: %w", *data, err)
	}
	// Badger's directory lock refuses a database a server holds open.
	l, err := alog.Open(alog.Config{Dir: filepath.Join(*data, "db")})
	if err != nil {
		return fmt.Errorf("%w (is a server using %s?)", err, *data)
	}
	defer l.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if *stats {
		keys, bytes, err := l.IndexSize()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "index: %d keys, %d bytes, %.1f bytes per entry over %d entries\n", keys, bytes, float64(bytes)/float64(max(l.Size(), 1)), l.Size())
		return nil
	}
	if *check {
		if err := l.CheckIndex(ctx); err != nil {
			return fmt.Errorf("the indexes do not match the entries: %w; run agentlog reindex --data %s", err, *data)
		}
		fmt.Fprintf(stdout, "indexes match the %d entries (%s)\n", l.Size(), time.Since(start).Round(time.Millisecond))
		if keys, bytes, err := l.IndexSize(); err == nil && l.Size() > 0 {
			fmt.Fprintf(stdout, "index: %d keys, %d bytes, %.1f bytes per entry\n", keys, bytes, float64(bytes)/float64(l.Size()))
		}
		return nil
	}
	last := time.Now()
	err = l.Reindex(ctx, func(done, total uint64) {
		if time.Since(last) > time.Second {
			fmt.Fprintf(stderr, "reindex: %d of %d entries\n", done, total)
			last = time.Now()
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reindexed %d entries in %s\n", l.Size(), time.Since(start).Round(time.Millisecond))
	return nil
}
