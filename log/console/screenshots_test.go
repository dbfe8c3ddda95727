package console_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentlog/agentlog"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/identity"
)

// go test ./log/console/ -run TestViews -screenshots ../../docs/console
// regenerates the screenshots in docs/console (make screenshots).
var screenshots = flag.String("screenshots", "", "write a PNG of each view (1280x800) to this directory")

// demoLog fills s with a week of two agents' work, a few actions outside
// their declared scopes and hours, and the alerts the real anomaly rules
// raise for them.
func demoLog(t *testing.T, s *stack) (entry uint64) {
	admin := alog.Principal{ID: "admin", Role: api.RoleAdmin}
	ctx := context.Background()
	scopes := map[string]identity.Scope{
		"billing-bot": {Actions: []string{"db.*"}, Tools: []string{"sql"}, Resources: []string{"customers/*", "invoices/*"}, Hours: "08:00-19:00", TZ: "Europe/Paris", Weekdays: "mon-fri"},
		"support-bot": {Actions: []string{"ticket.*"}, Tools: []string{"zendesk"}},
	}
	principals := map[string]alog.Principal{}
	for _, id := range []string{"billing-bot", "support-bot"} {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := s.ids.Register(ctx, admin, identity.AgentSpec{ID: id, Owner: "payments-team", Description: "demo agent", PublicKey: pub, Scope: scopes[id]}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ids.Approve(ctx, alog.Principal{ID: "approver-ana", Role: api.RoleApprover}, id); err != nil {
			t.Fatal(err)
		}
		principals[id] = alog.Principal{ID: id, Role: api.RoleAgent, Agent: id, Session: fmt.Sprintf("%016x", len(id)), Task: "daily-" + id}
	}
	w, err := anomaly.New(anomaly.Options{Log: s.l, Config: anomaly.DefaultConfig(), Poll: 10 * time.Millisecond, Scope: func(a string) (identity.Scope, bool) {
		ag, err := s.ids.Agent(a)
		if err != nil {
			return identity.Scope{}, false
		}
		return ag.Scope, true
	}})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // a Monday
	for d := range 7 {
		for h := 0; h < 24; h++ {
			n := 0
			if d < 5 && h >= 8 && h < 17 {
				n = 3 + (h*7+d*3)%5
			} else if (h+d)%9 == 0 {
				n = 1
			}
			at := day.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour)
			for i := range n {
				s.act(principals["billing-bot"], at.Add(time.Duration(i)*time.Minute), agentlog.Record{Action: "db.query", Tool: "sql", Resource: fmt.Sprintf("customers/%d", 40+(h+i)%7), Outcome: "success"})
				if i%2 == 0 {
					s.act(principals["support-bot"], at.Add(time.Duration(i)*time.Minute+30*time.Second), agentlog.Record{Action: "ticket.update", Tool: "zendesk", Resource: fmt.Sprintf("tickets/%d", 900+h), Outcome: "success"})
				}
			}
			if d == 2 && h == 14 {
				entry = s.act(principals["billing-bot"], at.Add(30*time.Minute), agentlog.Record{Action: "payment.refund", Tool: "stripe", Resource: "ch_3Nf", Outcome: "success"})[0]
				s.act(principals["support-bot"], at.Add(31*time.Minute), agentlog.Record{Action: "db.export", Tool: "sql", Resource: "customers", Outcome: "success"})
			}
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(wctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for w.Status().Examined < s.l.Size() || w.Status().Lag > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the anomaly rules examined %d of %d entries", w.Status().Examined, s.l.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	s.sign()
	return entry
}

// TestViews opens every view of the console over a week of demo data and
// checks it renders (no error view); with -screenshots it writes a PNG of
// each at 1280x800.
func TestViews(t *testing.T) {
	s := newStack(t)
	entry := demoLog(t, s)
	ctx := browser(t)
	do(t, ctx, chromedp.EmulateViewport(1280, 800))
	shot := func(name string) {
		t.Helper()
		if name != "fork" && exists(t, ctx, "#error") {
			t.Fatalf("view %s shows an error: %s", name, text(t, ctx, "#error"))
		}
		if *screenshots == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do(t, ctx,
		chromedp.Navigate(s.hs.URL+"/console/#/signin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), auditorTok),
		chromedp.SetValue(chromedp.ID("logkey"), s.keys.LogVKey),
		chromedp.SetValue(chromedp.ID("timekey"), s.keys.TimeVKey),
	)
	shot("signin")
	do(t, ctx, chromedp.Click(chromedp.ID("signin-submit")), chromedp.WaitVisible(chromedp.ID("cp-verified")))
	shot("overview")
	do(t, ctx,
		goHash("#/search?agent=billing-bot&kind=action&outside_hours=09:00-17:00&tz=Europe/Paris&weekdays=mon-fri"),
		chromedp.Poll[chromedp.Void](`(() => { const m = window.agentlogConsole.search; return m && m.ended !== null && document.querySelectorAll("#results-rows tr").length === m.matches; })()`),
	)
	if n := eval[int](t, ctx, `window.agentlogConsole.search.matches`); n == 0 {
		t.Error("the off-hours search found nothing in the demo log")
	}
	shot("search")
	do(t, ctx, goHash(fmt.Sprintf("#/entry/%d", entry)), chromedp.WaitVisible(chromedp.CSS("#verified, #entry-failed")))
	if !exists(t, ctx, "#verified") {
		t.Fatalf("entry %d: %s", entry, text(t, ctx, "#entry-state"))
	}
	shot("entry")
	do(t, ctx, goHash("#/agent/billing-bot?tz=Europe/Paris"), chromedp.WaitVisible(chromedp.ID("heatmap")))
	if cells := eval[int](t, ctx, `[...document.querySelectorAll("#heatmap rect")].reduce((a, r) => a + Number(r.dataset.count), 0)`); cells == 0 {
		t.Error("the heatmap counts no actions")
	}
	if tl := text(t, ctx, "#timeline"); !hasAll(tl, "agent.registered", "agent.approved", "alert") {
		t.Errorf("timeline lacks the lifecycle: %s", tl)
	}
	shot("agent")
	do(t, ctx, goHash("#/alerts"), chromedp.WaitVisible(chromedp.ID("alert-table")))
	if al := text(t, ctx, "#alert-table"); !hasAll(al, "scope", "hours", fmt.Sprint(entry)) {
		t.Errorf("alerts view lacks the scope and hours alerts on entry %d:\n%s", entry, al)
	}
	shot("alerts")
	do(t, ctx, goHash("#/changes"), chromedp.WaitVisible(chromedp.ID("change-table")))
	shot("changes")
	do(t, ctx, goHash("#/consistency"), chromedp.WaitVisible(chromedp.ID("consistency-ok")))
	shot("consistency")
	do(t, ctx, goHash("#/guide"), chromedp.WaitVisible(chromedp.CSS("ol.steps")))
	shot("guide")
	do(t, ctx, goHash("#/report?from=2026-11-23T00:00:00Z&to=2026-11-30T00:00:00Z&tz=Europe/Paris"), chromedp.WaitVisible(chromedp.ID("report-command")))
	if cmd := text(t, ctx, "#report-command"); !hasAll(cmd, "agentlog report --server "+s.hs.URL, "--from 2026-11-23T00:00:00Z --to 2026-11-30T00:00:00Z --tz Europe/Paris") {
		t.Errorf("report command %q", cmd)
	}
	shot("report")
	// What a fork looks like.
	s.fault.Store(int32(forkedRoot))
	do(t, ctx, goHash("#/overview"), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("banner-old")))
	if exists(t, ctx, "#cp-verified") {
		t.Error("the overview shows a verified checkpoint over a fork")
	}
	shot("fork")
}
