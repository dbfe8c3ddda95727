package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/report"
)

// TestReportCLI builds a log with known anomalies through the real server
// (actions outside declared scopes, refused attempts, a session left to
// expire, a revocation), runs agentlog report over the period and checks
// that each section lists exactly those exceptions, that every number with
// a query matches that query, that the HTML refers to nothing outside
// itself, and that evidence verify checks the export and the report.
func TestReportCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--origin", "report.e2e/log")
	tokFile := filepath.Join(data, "admin.token")
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := mustClient(t, srv.url, string(tok))
	ctx := context.Background()
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)

	open := func(id, scope string, ttl time.Duration) *client.Client {
		key, _ := agentlog.GenerateAgentKey(id)
		if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: id, Owner: "payments", PublicKey: key.Public().(ed25519.PublicKey), Scope: json.RawMessage(scope)}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.ApproveAgent(ctx, id); err != nil {
			t.Fatal(err)
		}
		a, err := client.NewAgent(srv.url, client.AgentConfig{ID: id, Key: key, Task: "task-" + id, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		s, err := a.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return mustClient(t, srv.url, s.Credential)
	}
	act := func(c *client.Client, action, tool, resource string) uint64 {
		res, err := c.Append(ctx, client.Record{Action: action, Tool: tool, Resource: resource, Outcome: "success"})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Index
	}
	billing := open("billing-bot", `{"actions":["db.*"],"tools":["sql"]}`, time.Hour)
	support := open("support-bot", `{"actions":["ticket.*"]}`, 2*time.Second)
	act(billing, "db.query", "sql", "customers/1")
	act(billing, "db.query", "sql", "customers/2")
	refund := act(billing, "payment.refund", "stripe", "ch_1") // outside billing-bot's scope
	act(support, "ticket.update", "", "T-1")
	drop := act(support, "db.drop", "", "customers") // outside support-bot's scope
	act(billing, "db.query", "sql", "customers/3")
	// A refused attempt by a proven identity: an operator token may not append.
	req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/entries", strings.NewReader(`{"entries":[{"action":"db.query"}]}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("append with the admin token: %d", res.StatusCode)
	}
	// billing-bot's session ends properly; support-bot's is left to expire.
	sessions, err := admin.Sessions(ctx, "billing-bot")
	if err != nil || len(sessions) != 1 {
		t.Fatalf("billing-bot sessions: %v %v", sessions, err)
	}
	if _, err := admin.EndSession(ctx, sessions[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeAgent(ctx, "billing-bot"); err != nil {
		t.Fatal(err)
	}
	// Another: billing-bot's ended session tries once more.
	if _, err := billing.Append(ctx, client.Record{Action: "db.query", Tool: "sql"}); err == nil {
		t.Fatal("an ended session appended")
	}
	supportSessions, err := admin.Sessions(ctx, "support-bot")
	if err != nil || len(supportSessions) != 1 {
		t.Fatalf("support-bot sessions: %v %v", supportSessions, err)
	}
	waitFor(t, "support-bot's session to expire", func() bool { return time.Now().After(supportSessions[0].Expires) })
	waitFor(t, "two alerts", func() bool {
		n := 0
		admin.QueryAll(ctx, url.Values{"kind": {"alert"}}, 0, func(client.QueryMatch) error { n++; return nil })
		return n == 2
	})
	to := time.Now().UTC().Add(time.Second).Truncate(time.Second).Add(time.Second)
	waitFor(t, "the period to end", func() bool { return time.Now().After(to) })
	keyFile := filepath.Join(data, "log.pub")
	out := filepath.Join(t.TempDir(), "q4")
	stdout := mustCLI(t, bin, "report", "--server", srv.url, "--token-file", tokFile, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--out", out, "--log-key", keyFile)
	if !strings.Contains(stdout, "report of report.e2e/log") {
		t.Errorf("report printed %q", stdout)
	}
	raw, err := os.ReadFile(filepath.Join(out, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err := report.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]report.Section{}
	var ids []string
	for _, s := range r.Sections {
		sections[s.ID] = s
		ids = append(ids, s.ID)
	}
	if want := []string{"CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC7.3", "CC8.1"}; !slices.Equal(ids, want) {
		t.Fatalf("sections %v, want %v", ids, want)
	}

	// The exceptions are exactly the anomalies.
	indexes := func(q url.Values) []uint64 {
		var out []uint64
		q.Set("from", from.Format(time.RFC3339))
		q.Set("to", to.Format(time.RFC3339))
		if _, err := admin.QueryAll(ctx, q, 0, func(m client.QueryMatch) error { out = append(out, m.Index); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	exc := func(id string) []uint64 {
		var out []uint64
		for _, e := range sections[id].Exceptions {
			out = append(out, e.Index)
		}
		return out
	}
	denied := indexes(url.Values{"kind": {"denied"}})
	if len(denied) != 2 || !slices.Equal(exc("CC6.1"), denied) {
		t.Errorf("CC6.1 exceptions %v, want the refused attempts %v", exc("CC6.1"), denied)
	}
	alerts := indexes(url.Values{"kind": {"alert"}})
	if !slices.Equal(exc("CC7.2"), alerts) {
		t.Errorf("CC7.2 exceptions %v, want the alerts %v", exc("CC7.2"), alerts)
	}
	var raised []string
	for _, e := range sections["CC7.2"].Exceptions {
		raised = append(raised, e.What)
	}
	if len(raised) != 2 || !strings.Contains(raised[0], "entry "+strconv.FormatUint(refund, 10)) || !strings.Contains(raised[1], "entry "+strconv.FormatUint(drop, 10)) {
		t.Errorf("CC7.2 exceptions %q, want alerts on entries %d and %d", raised, refund, drop)
	}
	supportOpened := indexes(url.Values{"kind": {"session"}, "action": {"session.opened"}, "agent": {"support-bot"}})
	if !slices.Equal(exc("CC6.3"), supportOpened) || !strings.Contains(sections["CC6.3"].Exceptions[0].What, "expired") {
		t.Errorf("CC6.3 exceptions %+v, want support-bot's expired session %v", sections["CC6.3"].Exceptions, supportOpened)
	}
	for _, id := range []string{"CC6.2", "CC7.3", "CC8.1"} {
		if len(sections[id].Exceptions) != 0 {
			t.Errorf("%s exceptions %+v, want none", id, sections[id].Exceptions)
		}
	}

	// Every number with a query is that query's count.
	count := func(q string) int {
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if _, err := admin.QueryAll(ctx, v, 0, func(client.QueryMatch) error { n++; return nil }); err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		return n
	}
	checked := 0
	for _, s := range r.Sections {
		for _, c := range s.Counts {
			if c.Query == "" {
				continue
			}
			if n := count(c.Query); n != c.Value {
				t.Errorf("%s %s = %d, but its query %s finds %d", s.ID, c.ID, c.Value, c.Query, n)
			}
			checked++
		}
		for _, tb := range s.Tables {
			for i, q := range tb.Queries {
				row := tb.Rows[i]
				if n := count(q); strconv.Itoa(n) != row[len(row)-1] {
					t.Errorf("%s %q row %v, but its query %s finds %d", s.ID, tb.Title, row, q, n)
				}
				checked++
			}
		}
	}
	if checked < 15 {
		t.Errorf("only %d numbers carry a query", checked)
	}
	if got, want := r.Entries, len(indexes(url.Values{})); got != want || uint64(got) != r.End-r.Start {
		t.Errorf("report counts %d entries in [%d, %d), the period's query %d", got, r.Start, r.End, want)
	}

	// The HTML is self-contained and shows the numbers.
	html, err := os.ReadFile(filepath.Join(out, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`(?i)<script`, `(?i)<link`, `(?i)<img`, `(?i)<iframe`, `(?i)\s(src|href|action|xlink:href|srcset|poster|data)\s*=`, `(?i)url\(`, `(?i)@import`, `(?i)https?:`, `//[a-z0-9-]+\.[a-z]`} {
		if m := regexp.MustCompile(re).Find(html); m != nil {
			t.Errorf("report.html has an external reference: %q", m)
		}
	}
	for _, s := range r.Sections {
		for _, c := range s.Counts {
			if !bytes.Contains(html, []byte(`data-count="`+c.ID+`">`+strconv.Itoa(c.Value)+`<`)) {
				t.Errorf("report.html lacks %s = %d", c.ID, c.Value)
			}
		}
		if !bytes.Contains(html, []byte(`<section id="`+s.ID+`">`)) {
			t.Errorf("report.html lacks section %s", s.ID)
		}
	}
	if findChromium("") != "" {
		pdf, err := os.ReadFile(filepath.Join(out, report.PDFFile))
		if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
			t.Errorf("report.pdf: %v (%d bytes)", err, len(pdf))
		}
	}

	// Offline: evidence verify checks the export and recomputes the report.
	srv.kill()
	v := mustCLI(t, bin, "evidence", "verify", out, "--log-key", keyFile)
	if !strings.Contains(v, "completeness OK") || !strings.Contains(v, "report OK") {
		t.Errorf("evidence verify printed:\n%s", v)
	}
	forged := bytes.Replace(raw, []byte(`"id": "cc72.alerts",
          "label": "alerts raised",
          "value": 2`), []byte(`"id": "cc72.alerts",
          "label": "alerts raised",
          "value": 0`), 1)
	if bytes.Equal(forged, raw) {
		t.Fatal("could not find the alert count in report.json")
	}
	if err := os.WriteFile(filepath.Join(out, report.JSONFile), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, bin, "evidence", "verify", out, "--log-key", keyFile); code == 0 || !strings.Contains(stderr, "report.json differs") {
		t.Errorf("verify of an edited report: exit %d, %s", code, stderr)
	}

	// Bad input writes nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	if _, stderr, code := cli(t, bin, "report", "--server", srv.url, "--token-file", tokFile, "--from", to.Format(time.RFC3339), "--to", from.Format(time.RFC3339), "--out", bad); code == 0 || !strings.Contains(stderr, "--from must be before --to") {
		t.Errorf("reversed period: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a refused report left %s behind", bad)
	}
}
