package console_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/console"
)

// offHoursLog fills s with a week of billing-bot's actions, some outside
// 09:00-17:00 UTC on weekdays, signs a checkpoint, and returns the indexes
// of the off-hours ones.
func offHoursLog(t *testing.T, s *stack) []uint64 {
	p := s.agent("billing-bot", "refund-7731")
	rec := func(res string) alog.Record {
		return alog.Record{Action: "db.query", Tool: "sql", Resource: res, Outcome: "success"}
	}
	s.act(p, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), rec("customers/1"), rec("customers/2"), rec("invoices/9"))
	var off []uint64
	off = append(off, s.act(p, time.Date(2026, 11, 23, 23, 30, 0, 0, time.UTC), rec("customers/42"), rec("customers/43"))...)
	s.act(p, time.Date(2026, 11, 24, 16, 59, 0, 0, time.UTC), rec("customers/3"))
	off = append(off, s.act(p, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC), rec("customers/44"))...)
	s.sign()
	return off
}

// TestConsoleVerifiesEntry is the auditor's path: sign in, run an off-hours
// query, open an entry and see it verified in the browser.
func TestConsoleVerifiesEntry(t *testing.T) {
	s := newStack(t)
	off := offHoursLog(t, s)
	ctx := browser(t)

	s.signIn(t, ctx, auditorTok)
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("cp-verified")))
	if got, want := text(t, ctx, "#tree-size"), strconv.FormatUint(s.l.Size(), 10); got != want {
		t.Errorf("overview shows tree size %s, want %s", got, want)
	}
	if sig := text(t, ctx, "#signatures"); !hasAll(sig, origin, "log", "timestamp", "signature verified") {
		t.Errorf("signature table lacks the verified log and timestamp signatures:\n%s", sig)
	}

	// The off-hours query, from the form.
	do(t, ctx,
		goHash("#/search"),
		chromedp.WaitVisible(chromedp.ID("q-agent")),
		chromedp.SetValue(chromedp.ID("q-agent"), "billing-bot"),
		chromedp.SetValue(chromedp.ID("q-outside_hours"), "09:00-17:00"),
		chromedp.SetValue(chromedp.ID("q-tz"), "UTC"),
		chromedp.SetValue(chromedp.ID("q-kind"), "action"),
		chromedp.Click(chromedp.ID("q-submit")),
		chromedp.Poll[chromedp.Void](`(() => { const m = window.agentlogConsole.search; return m && m.ended !== null && document.querySelectorAll("#results-rows tr").length === m.matches; })()`),
	)
	var shown []uint64
	cells := eval[[]string](t, ctx, `[...document.querySelectorAll("#results-rows tr td:first-child")].map(td => td.textContent)`)
	for _, c := range cells {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			t.Fatalf("index cell %q", c)
		}
		shown = append(shown, n)
	}
	if !slices.Equal(shown, off) {
		t.Fatalf("off-hours search shows entries %v, want %v", shown, off)
	}
	if cmd := text(t, ctx, "#export-command"); !hasAll(cmd, "evidence export", "--agent billing-bot", "--outside-hours 09:00-17:00", "--tz UTC") {
		t.Errorf("export command %q does not repeat the query", cmd)
	}

	// Open the first match.
	do(t, ctx,
		chromedp.Click(chromedp.CSS("#results-rows a")),
		chromedp.WaitVisible(chromedp.CSS("#verified, #entry-failed")),
	)
	if exists(t, ctx, "#entry-failed") {
		t.Fatalf("entry %d failed to verify: %s", off[0], text(t, ctx, "#entry-error"))
	}
	leaf, err := s.l.Entry(off[0])
	if err != nil {
		t.Fatal(err)
	}
	lh := sha256.Sum256(append([]byte{0}, leaf...))
	if got := text(t, ctx, "#leaf-hash"); got != b64(lh[:]) {
		t.Errorf("leaf hash shown %s, want %s", got, b64(lh[:]))
	}
	if l := text(t, ctx, "#leaf"); !hasAll(l, `"agent": "billing-bot"`, `"resource": "customers/42"`) {
		t.Errorf("leaf shown:\n%s", l)
	}

	// Every request the page made went to this server.
	base, _ := url.Parse(s.hs.URL)
	requests := eval[[]string](t, ctx, `performance.getEntriesByType("resource").map(e => e.name)`)
	if len(requests) < 5 {
		t.Errorf("the page made only these requests: %v", requests)
	}
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != base.Host) {
			t.Errorf("the page requested %s, not on this server", r)
		}
	}
}

// TestConsoleShowsFailures serves what a compromised server would; the page
// must say so and never show the verified badge.
func TestConsoleShowsFailures(t *testing.T) {
	cases := []struct {
		name  string
		fault fault
		// seenFirst: the browser visits the honest log first (so it holds
		// a checkpoint to compare with).
		seenFirst bool
		want      []string // in the page once it has failed
	}{
		{"flipped proof byte", flipProof, true, []string{"verification failed", "inclusion proof"}},
		{"checkpoint by another key", otherKey, false, []string{"does not verify", "is not signed by the log key"}},
		{"inconsistent checkpoint", forkedRoot, true, []string{"not consistent with what this browser saw", "consistency proof"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStack(t)
			off := offHoursLog(t, s)
			ctx := browser(t)
			if c.seenFirst {
				s.signIn(t, ctx, auditorTok)
				do(t, ctx, chromedp.WaitVisible(chromedp.ID("cp-verified")))
			}
			if c.fault == forkedRoot {
				// The log grows; the server then shows a checkpoint of the
				// new size, signed with the log's key, over another tree.
				p := s.agent("other-bot", "t")
				s.act(p, time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC), alog.Record{Action: "db.query"})
				s.sign()
			}
			s.fault.Store(int32(c.fault))
			if !c.seenFirst {
				s.signIn(t, ctx, auditorTok)
			}
			do(t, ctx,
				goHash(fmt.Sprintf("#/entry/%d", off[0])),
				chromedp.Reload(),
				chromedp.WaitVisible(chromedp.CSS("#entry-failed, #error, #verified")),
			)
			if exists(t, ctx, "#verified") {
				t.Fatal("the page shows the verified badge")
			}
			page := text(t, ctx, "body")
			if !hasAll(page, c.want...) {
				t.Errorf("the page does not say %q:\n%s", c.want, page)
			}
			if c.fault != flipProof {
				if !exists(t, ctx, "#banner:not([hidden]) #banner-new") {
					t.Error("no red banner with the served checkpoint")
				}
			}
			if c.fault == forkedRoot {
				if old := text(t, ctx, "#banner-old"); !strings.Contains(old, origin) {
					t.Errorf("the banner does not show the checkpoint seen before: %q", old)
				}
				// The browser keeps the good checkpoint: an honest server
				// is consistent with it again.
				s.fault.Store(int32(honest))
				do(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#verified, #entry-failed, #error")))
				if !exists(t, ctx, "#verified") {
					t.Errorf("after the honest server is back, the entry does not verify: %s", text(t, ctx, "main"))
				}
			}
		})
	}
}

// TestConsoleHeaders checks the console's Content-Security-Policy and that
// its files make no third-party reference and run no inline script.
func TestConsoleHeaders(t *testing.T) {
	s := newStack(t)
	s.sign()
	res, err := http.Get(s.hs.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /console/: %d", res.StatusCode)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).Match(body) || !strings.Contains(string(body), `<script type="module" src="app.js">`) {
		t.Errorf("index.html has inline script or lacks its module:\n%s", body)
	}
	files, err := fsFiles()
	if err != nil {
		t.Fatal(err)
	}
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, b := range files {
		for _, m := range ext.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" { // the SVG namespace name, never fetched
				t.Errorf("%s refers to %s", name, m)
			}
		}
	}
	if res, err := http.Get(s.hs.URL + "/console"); err != nil || res.Request.URL.Path != "/console/" {
		t.Errorf("/console does not redirect to /console/: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.hs.URL+"/console/", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %v %v", res.StatusCode, err)
	}
	// The API still answers beside the console.
	if res, err := http.Get(s.hs.URL + "/checkpoint"); err != nil || res.StatusCode != 200 {
		t.Errorf("GET /checkpoint beside the console: %v %v", res.StatusCode, err)
	}
}

func fsFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	fsys := console.Assets()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		out[p] = b
		return err
	})
	return out, err
}

// goHash moves the page to another view of the console.
func goHash(h string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[string]("location.hash = "+jsString(h))(ctx, t)
		return err
	})
}

// TestConsoleStreamsLargeSearch runs a search with 100,000 matches: the
// first rows are on the page before the answer has ended, and the page
// shows a bounded number of rows while counting every match.
func TestConsoleStreamsLargeSearch(t *testing.T) {
	s := newStack(t, true)
	p := s.agent("bulk-bot", "bulk")
	const n = 100000
	recs := make([]alog.Record, alog.MaxEntriesPerRequest)
	for i := range recs {
		recs[i] = alog.Record{Action: "db.query", Tool: "sql", Resource: "customers/" + strconv.Itoa(i)}
	}
	for range n / len(recs) {
		s.act(p, time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC), recs...)
	}
	s.sign()
	ctx := browser(t)
	s.signIn(t, ctx, auditorTok)
	do(t, ctx,
		chromedp.WaitVisible(chromedp.ID("cp-verified")),
		goHash("#/search?agent=bulk-bot&kind=action&limit=100000"),
		chromedp.Poll[chromedp.Void](`(() => { const m = window.agentlogConsole.search; return m && m.ended !== null; })()`, chromedp.WithPollingTimeout(50*time.Second)),
	)
	type metrics struct {
		Started  float64  `json:"started"`
		FirstRow *float64 `json:"firstRow"`
		Ended    float64  `json:"ended"`
		Matches  int      `json:"matches"`
	}
	m := eval[metrics](t, ctx, `window.agentlogConsole.search`)
	if m.Matches != n {
		t.Fatalf("the page counted %d matches, want %d", m.Matches, n)
	}
	if m.FirstRow == nil || *m.FirstRow >= m.Ended {
		t.Fatalf("the first rows rendered at %v ms, the answer ended at %.0f ms: not streamed", m.FirstRow, m.Ended)
	}
	t.Logf("first rows after %.0f ms, answer ended after %.0f ms", *m.FirstRow-m.Started, m.Ended-m.Started)
	do(t, ctx, chromedp.Poll[chromedp.Void](`document.querySelectorAll("#results-rows tr").length === 1000`))
	if st := text(t, ctx, "#search-status"); !hasAll(st, "Showing the first 1000 rows", "100000 matches") {
		t.Errorf("status %q", st)
	}
	do(t, ctx,
		chromedp.Click(chromedp.ID("show-more")),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#results-rows tr").length === 2000`),
	)
	if last := text(t, ctx, "#results-rows tr:last-child td:first-child"); last != strconv.FormatUint(s.l.Size()-100000+1999, 10) {
		t.Errorf("the 2000th row is entry %s", last)
	}
}
