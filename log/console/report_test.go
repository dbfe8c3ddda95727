package console_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/client/report"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/console"
)

// TestConsoleReportButton signs in, makes the period report from the
// Report view in Chromium, and checks what the browser downloaded: a zip of
// the report and its evidence export that verifies offline (the evidence
// against the log key, the report recomputed from it), over exactly the
// period's entries.
func TestConsoleReportButton(t *testing.T) {
	s := newStack(t)
	off := offHoursLog(t, s)
	ctx := browser(t)
	s.signIn(t, ctx, auditorTok)
	do(t, ctx,
		chromedp.WaitVisible(chromedp.ID("cp-verified")),
		goHash("#/report?from=2026-11-23T00:00:00Z&to=2026-11-30T00:00:00Z&tz=UTC"),
		chromedp.WaitVisible(chromedp.ID("r-make")),
		chromedp.Click(chromedp.ID("r-make")),
		chromedp.WaitVisible(chromedp.CSS("#report-download, #report-status #error")),
	)
	if !exists(t, ctx, "#report-download") {
		t.Fatalf("no report: %s", text(t, ctx, "#report-status"))
	}
	// Click the link and take the file Chromium saves.
	dl := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	do(t, ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: &yes,
			})
			return err
		}),
		chromedp.Click(chromedp.ID("report-download")),
	)
	var zb []byte
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
		if ev.State != cdpbrowser.DownloadProgressStateCompleted {
			continue
		}
		if zb, err = os.ReadFile(filepath.Join(dl, ev.GUID)); err != nil {
			t.Fatal(err)
		}
		break
	}
	dir := unzip(t, zb)
	ev, err := evidence.Verify(filepath.Join(dir, report.EvidenceDir), s.keys.LogVKey, nil)
	if err != nil {
		t.Fatalf("the evidence does not verify: %v", err)
	}
	if err := report.Check(dir, ev); err != nil {
		t.Fatalf("the report does not follow from its evidence: %v", err)
	}
	var r report.Report
	b, _ := os.ReadFile(filepath.Join(dir, report.JSONFile))
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Every entry of the log is in the period (the stack's clock starts on
	// 2026-11-23 and offHoursLog's last action is on 2026-11-28).
	size := s.sign().Size
	if r.From != "2026-11-23T00:00:00Z" || r.To != "2026-11-30T00:00:00Z" || r.Start != 0 || r.End != size || uint64(r.Entries) != size {
		t.Errorf("report of %s to %s: %d entries in [%d, %d), want the %d of the log", r.From, r.To, r.Entries, r.Start, r.End, size)
	}
	for _, i := range off {
		if i >= r.End {
			t.Errorf("the off-hours entry %d is outside the report's range", i)
		}
	}
	if page := text(t, ctx, "#report-status"); !hasAll(page, "report.html", "agentlog evidence verify") {
		t.Errorf("the page says: %s", page)
	}
}

// TestConsoleReportRefusals is the report endpoint's authorization matrix
// and its bad requests: only auditor and admin tokens get a report (the
// export's queries are the caller's), and every refusal is JSON.
func TestConsoleReportRefusals(t *testing.T) {
	s := newStack(t)
	offHoursLog(t, s)
	s.ids.AddStatic("console-test-approver-token", alog.Principal{ID: "approver", Role: api.RoleApprover})
	s.ids.AddStatic("console-test-gateway-token", alog.Principal{ID: "gw", Role: api.RoleGateway})
	good := url.Values{"from": {"2026-11-23T00:00:00Z"}, "to": {"2026-11-30T00:00:00Z"}, "log_key": {s.keys.LogVKey}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for k, vs := range good {
			q[k] = vs
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for _, c := range []struct {
		name, token string
		q           url.Values
		want        int
	}{
		{"auditor", auditorTok, good, 200},
		{"admin", adminTok, good, 200},
		{"no token", "", good, 401},
		{"unknown token", "not-a-token", good, 401},
		{"approver", "console-test-approver-token", good, 403},
		{"gateway", "console-test-gateway-token", good, 403},
		{"no period", auditorTok, with("from", ""), 400},
		{"empty period", auditorTok, with("to", "2026-11-23T00:00:00Z"), 400},
		{"bad zone", auditorTok, with("tz", "Mars/Olympus"), 400},
		{"no log key", auditorTok, with("log_key", ""), 400},
		{"another log's key", auditorTok, with("log_key", s.other.LogVKey), 502},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.hs.URL+console.ReportPath+"?"+c.q.Encode(), nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, res.StatusCode, body, c.want)
			continue
		}
		if c.want == 200 {
			if _, err := zip.NewReader(bytes.NewReader(body), int64(len(body))); err != nil || res.Header.Get("Content-Type") != "application/zip" {
				t.Errorf("%s: not a zip (%v)", c.name, err)
			}
			continue
		}
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d answer is not a JSON error: %s", c.name, res.StatusCode, body)
		}
	}
	if ents, _ := os.ReadDir(os.TempDir()); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "agentlog-console-report-") {
				t.Errorf("left behind: %s", e.Name())
			}
		}
	}
}

func unzip(t *testing.T, b []byte) string {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the download is not a zip: %v", err)
	}
	dir := t.TempDir()
	for _, f := range z.File {
		if strings.Contains(f.Name, "..") || strings.HasPrefix(f.Name, "/") {
			t.Fatalf("zip entry %q", f.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
