package console_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
)

// BenchmarkSearchStream measures a 100,000-match search in the console:
// the time to the first rendered rows and to the end of the answer (every
// match parsed and counted, the first page of rows on screen), and, as the
// peer in the same run, the Go client reading the same NDJSON answer.
func BenchmarkSearchStream(b *testing.B) {
	s := newStack(b, true)
	p := s.agent("bulk-bot", "bulk")
	recs := make([]agentlog.Record, agentlog.MaxEntriesPerRequest)
	for i := range recs {
		recs[i] = agentlog.Record{Action: "db.query", Tool: "sql", Resource: "customers/" + strconv.Itoa(i)}
	}
	for range 10 {
		s.act(p, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC), recs...)
	}
	s.sign()
	ctx := browser(b)
	s.signIn(b, ctx, auditorTok)
	do(b, ctx, chromedp.WaitVisible(chromedp.ID("cp-verified")))
	c, err := client.New(s.hs.URL, client.WithToken(auditorTok))
	if err != nil {
		b.Fatal(err)
	}
	q := url.Values{"agent": {"bulk-bot"}, "kind": {"action"}, "limit": {"100000"}}
	type metrics struct {
		Started  float64 `json:"started"`
		FirstRow float64 `json:"firstRow"`
		Ended    float64 `json:"ended"`
		Matches  int     `json:"matches"`
	}
	var first, browserEnd, goEnd time.Duration
	for range b.N {
		do(b, ctx,
			goHash("#/consistency"),
			chromedp.WaitVisible(chromedp.ID("consistency-ok")),
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := chromedp.Evaluate[chromedp.Void]("window.agentlogConsole.search = null")(ctx, t)
				return err
			}),
			goHash("#/search?"+q.Encode()),
			chromedp.Poll[chromedp.Void](`(() => { const m = window.agentlogConsole.search; return m && m.ended !== null && m.firstRow !== null; })()`, chromedp.WithPollingTimeout(2*time.Minute)),
		)
		m := eval[metrics](b, ctx, `window.agentlogConsole.search`)
		if m.Matches != 100000 {
			b.Fatalf("%d matches", m.Matches)
		}
		first += time.Duration((m.FirstRow - m.Started) * float64(time.Millisecond))
		browserEnd += time.Duration((m.Ended - m.Started) * float64(time.Millisecond))
		start := time.Now()
		n := 0
		if _, err := c.QueryAll(b.Context(), q, 0, func(client.QueryMatch) error { n++; return nil }); err != nil || n != 100000 {
			b.Fatalf("Go client: %d matches, %v", n, err)
		}
		goEnd += time.Since(start)
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-first-rows")
	b.ReportMetric(float64(browserEnd.Milliseconds())/float64(b.N), "ms-console-end")
	b.ReportMetric(float64(goEnd.Milliseconds())/float64(b.N), "ms-goclient-end")
}
