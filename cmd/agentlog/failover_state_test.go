package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/faultproxy"
)

// TestFailoverKeepsState: what the old active knew from its own disk
// carries over to the standby that takes over, rebuilt from the log's
// entries, with processes and a real failover (SIGKILL):
//   - an approved configuration change: config=enforce refuses, on the
//     new active, a session under the configuration it replaced, and the
//     change answers are the old active's, documents and diffs included
//     (the documents went to the bucket); a change proposed on the old
//     active is approved on the new one;
//   - a request whose answer was lost (a fault proxy drops it after the
//     old active committed and replicated it) and that the Go SDK retries
//     on the standby across the failover is answered with the original
//     receipt: the entry is in the log once;
//   - the anomaly rules run after the takeover: a new out-of-scope action
//     is flagged, and the old active's alert is not raised again;
//   - with a witness policy, the standby serves the bucket's checkpoint
//     with the witness's cosignature (it meets the policy), and the new
//     active's checkpoints are cosigned by the same witness.
func TestFailoverKeepsState(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	fp := startFailoverPair(t, "failover-state.example", true)
	a, s := fp.a, fp.s
	ctx := context.Background()
	adminTok, _ := os.ReadFile(filepath.Join(fp.dataA, "admin.token"))
	admin := mustClient(t, a.url, string(adminTok))

	// An agent with a scope and an enforced configuration, changed once
	// by the two-person rule.
	key, _ := agentlog.GenerateAgentKey("bot")
	doc := func(v string) json.RawMessage { return json.RawMessage(`{"model":{"name":"m","version":"` + v + `"}}`) }
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: "bot", Owner: "e2e", PublicKey: key.Public().(ed25519.PublicKey),
		Scope: json.RawMessage(`{"actions":["db.*"]}`), Config: doc("1"), ConfigPolicy: "enforce"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	_, approverTok, err := admin.CreateToken(ctx, "alice", "approver")
	if err != nil {
		t.Fatal(err)
	}
	initial, err := admin.Changes(ctx, "bot", "approved")
	if err != nil || len(initial) != 1 {
		t.Fatalf("the initial configuration: %v %v", initial, err)
	}
	ch, err := admin.ProposeChange(ctx, client.ChangeProposal{Agent: "bot", Config: doc("2"), Description: "v2", Testing: "t", Rollback: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustClient(t, a.url, approverTok).ApproveChange(ctx, ch.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	pending, err := admin.ProposeChange(ctx, client.ChangeProposal{Agent: "bot", Config: doc("3"), Description: "v3", Testing: "t", Rollback: "r"})
	if err != nil {
		t.Fatal(err)
	}
	wantDetail, err := admin.Change(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantChanges, err := admin.Changes(ctx, "bot", "")
	if err != nil {
		t.Fatal(err)
	}

	// The agent writes through a fault proxy to the active, and knows the
	// standby.
	proxy, err := faultproxy.New(a.url)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	agent, err := client.NewAgent(proxy.URL, client.AgentConfig{ID: "bot", Key: key, Task: "failover", Config: ch.Config,
		Servers: []string{s.url}, MaxRetries: 40})
	if err != nil {
		t.Fatal(err)
	}
	out1, err := agent.Append(ctx, client.Record{Action: "payment.refund", Resource: "orders/1"})
	if err != nil {
		t.Fatal(err)
	}
	alerts := func(c *client.Client) map[uint64]int {
		t.Helper()
		got := map[uint64]int{}
		_, err := c.QueryAll(ctx, url.Values{"action": {"alert.scope"}}, 0, func(m client.QueryMatch) error {
			var v struct{ Attributes struct{ Entry uint64 } }
			if err := json.Unmarshal(m.Entry, &v); err != nil {
				return err
			}
			got[v.Attributes.Entry]++
			return nil
		})
		if err != nil {
			return nil
		}
		return got
	}
	waitFor(t, "the old active's scope alert", func() bool { return alerts(admin)[out1[0].Index] == 1 })

	// The standby serves the active's checkpoint with its cosignature.
	waitFor(t, "a witnessed checkpoint on the standby", func() bool { return fp.witnessed(t, s.url) > out1[0].Index })

	// The answer to the next append is lost after the old active
	// replicated the entry; the active dies; the SDK retries on the
	// standby.
	proxy.Set(faultproxy.Faults{DropAfter: 1, Only: func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/v1/entries" }})
	sAdmin := mustClient(t, s.url, string(adminTok))
	count := func(c *client.Client, action string) []uint64 {
		var idx []uint64
		c.QueryAll(ctx, url.Values{"action": {action}}, 0, func(m client.QueryMatch) error { idx = append(idx, m.Index); return nil })
		return idx
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		deadline := time.Now().Add(30 * time.Second)
		for len(count(sAdmin, "db.retried")) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		a.kill()
		proxy.Close()
	}()
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	retried, err := agent.Append(rctx, client.Record{Action: "db.retried", Resource: "orders/2"})
	<-killed
	if err != nil {
		t.Fatalf("the append retried across the failover: %v", err)
	}
	if proxy.DroppedAfter.Load() == 0 {
		t.Fatal("no answer was dropped: the test did not exercise a lost answer")
	}
	if got := count(sAdmin, "db.retried"); len(got) != 1 || got[0] != retried[0].Index {
		for _, i := range got {
			leaf, _ := sAdmin.Entry(ctx, i)
			t.Logf("entry %d: %s", i, leaf)
		}
		t.Fatalf("the retried record is at %v on the new active, and its receipt says %d: want once, at the receipt's index", got, retried[0].Index)
	}
	next, err := agent.Append(ctx, client.Record{Action: "db.query", Resource: "customers/1"})
	if err != nil || next[0].Index <= retried[0].Index {
		t.Fatalf("the next append on the new active: %+v %v", next, err)
	}

	// The change answers and config=enforce on the new active.
	gotChanges, err := sAdmin.Changes(ctx, "bot", "")
	if err != nil || len(gotChanges) != len(wantChanges) {
		t.Fatalf("changes on the new active: %v %v, want %d", gotChanges, err, len(wantChanges))
	}
	for i := range wantChanges {
		w, g := wantChanges[i], gotChanges[i]
		if w.ID != g.ID || w.State != g.State || w.Config != g.Config || w.ProposedIndex != g.ProposedIndex || w.DecidedBy != g.DecidedBy {
			t.Fatalf("change %d on the new active is %+v, want %+v", i, g, w)
		}
	}
	// With the documents, which went to the bucket.
	gotDetail, err := sAdmin.Change(ctx, ch.ID)
	if err != nil || string(gotDetail.Document) != string(wantDetail.Document) || len(gotDetail.Diff) != len(wantDetail.Diff) || len(gotDetail.Diff) == 0 {
		t.Fatalf("change %s on the new active: %+v %v, want %+v", ch.ID, gotDetail, err, wantDetail)
	}
	old, err := client.NewAgent(s.url, client.AgentConfig{ID: "bot", Key: key, Task: "old-config", Config: initial[0].Config})
	if err != nil {
		t.Fatal(err)
	}
	var he *client.HTTPError
	if _, err := old.Open(ctx); !errors.As(err, &he) || he.Status != http.StatusForbidden {
		t.Fatalf("a session under the replaced configuration on the new active: %v, want 403", err)
	}

	// The rules after the takeover: a new out-of-scope action is flagged
	// once, and the old active's alert is not raised again.
	out2, err := agent.Append(ctx, client.Record{Action: "payment.refund", Resource: "orders/3"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new active's scope alert", func() bool { return alerts(sAdmin)[out2[0].Index] == 1 })
	got := alerts(sAdmin)
	if len(got) != 2 || got[out1[0].Index] != 1 || got[out2[0].Index] != 1 {
		t.Fatalf("scope alerts on the new active by entry: %v, want one for %d and one for %d", got, out1[0].Index, out2[0].Index)
	}
	waitFor(t, "a witnessed checkpoint of the new active", func() bool { return fp.witnessed(t, s.url) > out2[0].Index })
	if h, err := healthz(s.url); err != nil || h["anomaly"] == nil {
		t.Fatalf("the new active's /healthz reports no anomaly rules: %v %v", h, err)
	}
	// A change proposed on the old active is approved on the new one.
	if _, err := mustClient(t, s.url, approverTok).ApproveChange(ctx, pending.ID, "after the takeover"); err != nil {
		t.Fatalf("approving on the new active a change proposed on the old one: %v", err)
	}
	if strings.Contains(s.stderr.String(), "rebuilding the anomaly rules' state") {
		t.Fatalf("the new active could not rebuild the rules' state:\n%s", s.stderr.String())
	}
}
