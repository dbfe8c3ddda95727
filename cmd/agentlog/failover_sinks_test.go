package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/mirror"
)

// TestFailoverSinks runs an active and a standby, each with a webhook
// sink to one receiver (the SIEM both deliver to, on its own path per
// node) and a file sink in its own directory, under load. The standby
// runs no sink while it follows. The active is killed with SIGKILL while
// its sinks deliver; once the standby takes over, its sinks resume from
// the positions the active published to the bucket. The receiver's
// stream, the old active's events then the new one's, holds every entry
// of the log at least once, in order, exactly as mapped, nothing missing;
// the new active's first event is the entry of the last position the old
// active published, so the duplicates are exactly the events the old
// active delivered after it (counted and logged); the two files, one
// after the other, hold the same. An alert webhook (the same URL on both
// nodes) refuses every alert while the old active lives: the scope alerts
// the old active raised and never delivered are delivered by the new
// active, in order.
func TestFailoverSinks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	type batch struct {
		node   string
		events [][]byte
	}
	var mu sync.Mutex
	var got []batch
	var oldAlive atomic.Bool
	oldAlive.Store(true)
	var alertsGot []uint64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if r.URL.Path == "/alerts" {
			var a struct {
				Index uint64 `json:"index"`
			}
			if oldAlive.Load() || err != nil || json.Unmarshal(body, &a) != nil {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			mu.Lock()
			alertsGot = append(alertsGot, a.Index)
			mu.Unlock()
			return
		}
		n, _ := strconv.Atoi(r.Header.Get("X-Agentlog-Count"))
		lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
		if err != nil || len(lines) != n {
			// A sender killed mid-request: not kept, as a real receiver
			// keeps only a whole batch.
			http.Error(w, "incomplete batch", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, batch{r.URL.Path, lines})
		mu.Unlock()
	}))
	defer recv.Close()
	dirA, dirS := t.TempDir(), t.TempDir()
	config := func(dir, node string) string {
		p := filepath.Join(dir, "sinks.json")
		c := fmt.Sprintf(`{"url": "https://log.example", "sinks": [
			{"name": "siem", "type": "webhook", "url": %q, "batch_events": 25},
			{"name": "archive", "type": "file", "path": %q, "batch_events": 40}]}`, recv.URL+"/"+node, filepath.Join(dir, "events.jsonl"))
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := filepath.Join(dirA, "anomaly.json")
	if err := os.WriteFile(rules, []byte(`{"rules": {"scope": true}, "webhooks": [{"url": "`+recv.URL+`/alerts"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fp := startFailoverPairSides(t, "failover-sinks.example", false,
		[]string{"--sinks", config(dirA, "a")}, []string{"--sinks", config(dirS, "s")}, "--anomaly-config", rules)
	origin := fp.common[slices.Index(fp.common, "--origin")+1]
	tok, _ := os.ReadFile(filepath.Join(fp.dataA, "admin.token"))
	sess := provisionSession(t, fp.a.url, string(tok), "sink-writer", "failover-sinks")

	// A scoped agent acts out of scope three times: three scope alerts,
	// which the webhook refuses while the old active lives.
	ctx := context.Background()
	admin := mustClient(t, fp.a.url, string(tok))
	key, _ := agentlog.GenerateAgentKey("rogue")
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: "rogue", Owner: "e2e", PublicKey: key.Public().(ed25519.PublicKey), Scope: json.RawMessage(`{"actions":["db.*"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, "rogue"); err != nil {
		t.Fatal(err)
	}
	rogue, err := client.NewAgent(fp.a.url, client.AgentConfig{ID: "rogue", Key: key, Task: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rogue.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := rogue.Append(ctx, client.Record{Action: "payment.refund", Resource: fmt.Sprint("orders/", i)}); err != nil {
			t.Fatal(err)
		}
	}
	scopeAlerts := func(url string) []uint64 {
		var out []uint64
		mustClient(t, url, string(tok)).QueryAll(ctx, neturl.Values{"action": {"alert.scope"}}, 0, func(m client.QueryMatch) error {
			out = append(out, m.Index)
			return nil
		})
		return out
	}
	waitFor(t, "the old active's scope alerts on the standby", func() bool { return len(scopeAlerts(fp.s.url)) == 3 })
	oldAlerts := scopeAlerts(fp.s.url)

	stop := crashLoad(t, fp.a.url, sess)
	waitFor(t, "the active's sinks to deliver under load", func() bool {
		st, err := sinkHealth(fp.a.url)
		if err != nil || len(st) != 2 {
			return false
		}
		for _, s := range st {
			next, _ := s["next_index"].(float64)
			published, _ := s["published_next_index"].(float64)
			if next < 300 || published < 100 {
				return false
			}
		}
		return true
	})
	// The standby runs no sink while it follows.
	if st, err := sinkHealth(fp.s.url); err != nil || len(st) != 0 {
		t.Fatalf("the standby reports sinks %v (%v)", st, err)
	}
	if _, err := os.Stat(filepath.Join(dirS, "events.jsonl")); !os.IsNotExist(err) {
		t.Fatalf("the standby opened its file sink before taking over: %v", err)
	}
	fp.a.Cmd.Process.Signal(syscall.SIGKILL)
	<-fp.a.done
	oldAlive.Store(false)
	stop()
	mu.Lock()
	for _, b := range got {
		if b.node != "/a" {
			t.Fatalf("the standby delivered to %s before the takeover", b.node)
		}
	}
	mu.Unlock()
	// The positions the old active last published, read before the new
	// active publishes its own.
	published := map[string]mirror.SinkPosition{}
	for _, name := range []string{"siem", "archive"} {
		o, err := fp.e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(fp.e.bucket), Key: aws.String("log/sink-position/" + name)})
		if err != nil {
			t.Fatalf("the active's published position of %s: %v", name, err)
		}
		raw, _ := io.ReadAll(o.Body)
		o.Body.Close()
		p, err := mirror.ParseSinkPosition(raw, name)
		if err != nil {
			t.Fatal(err)
		}
		published[name] = p
	}

	// The standby takes over and its sinks continue, under more load.
	waitFor(t, "the standby to take over", func() bool {
		h, err := healthz(fp.s.url)
		m, _ := h["mirror"].(map[string]any)
		return err == nil && m["role"] == "active"
	})
	stop = crashLoad(t, fp.s.url, sess)
	waitFor(t, "appends on the new active", func() bool {
		h, err := healthz(fp.s.url)
		size, _ := h["tree_size"].(float64)
		return err == nil && uint64(size) > published["siem"].Next+300
	})
	stop()
	waitFor(t, "the new active's sinks to catch up", func() bool { return sinksCaughtUp(fp.s.url) })
	waitFor(t, "the old active's undelivered alerts from the new active", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(alertsGot) >= len(oldAlerts)
	})
	fp.s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-fp.s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the new active did not stop")
	}

	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(alertsGot[:len(oldAlerts)], oldAlerts) {
		t.Errorf("the alert webhook got %v, want first the old active's %v", alertsGot, oldAlerts)
	}
	t.Logf("alert webhook: the old active's %d undelivered alerts %v delivered by the new active", len(oldAlerts), oldAlerts)
	var stream [][]byte
	var oldTail int // events the old active delivered at or after its last published position
	firstNew := -1
	for _, b := range got {
		for _, ev := range b.events {
			i := sequence(t, ev)
			switch {
			case b.node == "/a" && uint64(i) >= published["siem"].Next:
				oldTail++
			case b.node == "/s" && firstNew < 0:
				firstNew = i
			case b.node != "/a" && b.node != "/s":
				t.Fatalf("a batch on %s", b.node)
			}
			stream = append(stream, ev)
		}
	}
	if len(stream) == 0 {
		t.Fatal("the receiver got nothing")
	}
	want := mapped(t, fp.dataS, origin, stream[0])
	dups := sinkStream(t, stream, want)
	if firstNew != int(published["siem"].Next) {
		t.Errorf("the new active's webhook began at entry %d, not at the published position %d", firstNew, published["siem"].Next)
	}
	if dups != oldTail {
		t.Errorf("%d duplicates, want the %d events the old active delivered after its last published position", dups, oldTail)
	}
	t.Logf("webhook: %d entries, %d delivered again after the takeover (the old active published %d at %v, holder %s)",
		len(want), dups, published["siem"].Next, published["siem"].Written, published["siem"].Holder)

	// The file sinks: the old node's file, then the new node's.
	fileA, fileS := readLines(t, filepath.Join(dirA, "events.jsonl")), readLines(t, filepath.Join(dirS, "events.jsonl"))
	if n := len(fileA); n > 0 && !json.Valid(fileA[n-1]) {
		// The kill tore the last write; a restart of that node would cut
		// it (TestFilePartialLine), and its events are not counted done.
		t.Logf("the old active's file ends in a torn line of %d bytes", len(fileA[n-1]))
		fileA = fileA[:n-1]
	}
	if len(fileS) == 0 {
		t.Fatal("the new active's file sink wrote nothing")
	}
	if first := sequence(t, fileS[0]); first != int(published["archive"].Next) {
		t.Errorf("the new active's file begins at entry %d, not at the published position %d", first, published["archive"].Next)
	}
	fdups := sinkStream(t, append(fileA, fileS...), want)
	if tail := len(fileA) - int(published["archive"].Next); fdups != tail {
		t.Errorf("file: %d duplicates, want the %d events the old active wrote after its last published position", fdups, tail)
	}
	t.Logf("file: %d lines on the old active, %d on the new, %d duplicates", len(fileA), len(fileS), fdups)
}

// sequence returns an OCSF event's entry index (metadata.sequence).
func sequence(t *testing.T, ev []byte) int {
	t.Helper()
	var m struct {
		Metadata struct {
			Sequence int `json:"sequence"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(ev, &m); err != nil {
		t.Fatalf("event %.200s: %v", ev, err)
	}
	return m.Metadata.Sequence
}
