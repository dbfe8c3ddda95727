package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/client"
)

// TestQueryCLI runs "agentlog query" against the real server: the table,
// --json with the summary line, --limit, and refusals.
func TestQueryCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms")
	adminFile := filepath.Join(data, "admin.token")
	adminTok, _ := os.ReadFile(adminFile)
	ctx := context.Background()
	for _, id := range []string{"bot-a", "bot-b"} {
		cred := provisionSession(t, srv.url, string(adminTok), id, "ticket-"+id)
		c := mustClient(t, srv.url, cred)
		for i := 0; i < 7; i++ {
			if _, err := c.Append(ctx, client.Record{Action: "db.query", Tool: "sql", Resource: fmt.Sprintf("customers/%d", i)}, client.Record{Action: "payment.refund", Resource: fmt.Sprintf("orders/%d", i), Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := "--server=" + srv.url
	out := mustCLI(t, bin, "query", s, "--token-file", adminFile, "--agent", "bot-b", "--action", "payment.*")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+7+1 || !strings.HasPrefix(lines[0], "INDEX") || !strings.Contains(lines[len(lines)-1], "7 matches") || !strings.Contains(lines[len(lines)-1], "complete") {
		t.Fatalf("table output:\n%s", out)
	}
	for _, l := range lines[1:8] {
		if !strings.Contains(l, "bot-b") || !strings.Contains(l, "payment.refund") || !strings.Contains(l, "orders/") {
			t.Fatalf("row %q does not match the filter", l)
		}
	}
	out = mustCLI(t, bin, "query", s, "--token-file", adminFile, "--resource", "customers/*", "--json", "--limit", "10")
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	var sum struct{ Summary client.QuerySummary }
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"summary":`) {
			if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var m client.QueryMatch
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		var l struct{ Resource string }
		json.Unmarshal(m.Entry, &l)
		if !strings.HasPrefix(l.Resource, "customers/") {
			t.Fatalf("match %s outside the filter", m.Entry)
		}
		n++
	}
	if n != 10 || sum.Summary.TreeSize == 0 || sum.Summary.Next >= sum.Summary.End {
		t.Fatalf("--json --limit 10: %d matches, summary %+v", n, sum.Summary)
	}
	// Refusals: no credential (usage), an agent session (403), a bad filter (400).
	if _, _, code := cli(t, bin, "query", s, "--agent", "x"); code != 2 {
		t.Fatalf("query without a credential exited %d, want 2", code)
	}
	cred := provisionSession(t, srv.url, string(adminTok), "bot-c", "probe")
	if out, errs, code := cli(t, bin, "query", s, "--token", cred); code != 1 || !strings.Contains(errs, "403") || out != "" {
		t.Fatalf("query with an agent session: exit %d, stdout %q, %s; want 1, nothing on stdout (not even the table's header)", code, out, errs)
	}
	if _, errs, code := cli(t, bin, "query", s, "--token-file", adminFile, "--outside-hours", "nine-to-five"); code != 1 || !strings.Contains(errs, "400") {
		t.Fatalf("query with a bad window: exit %d %s", code, errs)
	}
}

// TestQueryFollow runs "agentlog query --follow --json": the matches so
// far and the summary, then each matching entry appended later, exactly
// once and in order, and a clean exit on Ctrl-C.
func TestQueryFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms")
	adminFile := filepath.Join(data, "admin.token")
	adminTok, _ := os.ReadFile(adminFile)
	c := mustClient(t, srv.url, provisionSession(t, srv.url, string(adminTok), "tail-bot", "tail"))
	appendOne := func(resource string) uint64 {
		t.Helper()
		res, err := c.Append(t.Context(), client.Record{Action: "db.query", Resource: resource})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Index
	}
	first := appendOne("customers/1")
	appendOne("orders/1")

	cmd := exec.Command(bin, "query", "--server", srv.url, "--token-file", adminFile, "--resource", "customers/*", "--json", "--follow", "--interval", "20ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("query --follow exited: %s", stderr.String())
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("query --follow printed nothing for 30s")
		}
		return nil
	}
	if m := next(); m["index"] != float64(first) {
		t.Fatalf("first line %v, want the match at %d", m, first)
	}
	if m := next(); m["summary"] == nil {
		t.Fatalf("second line %v, want the summary", m)
	}
	var want []uint64
	for i := range 3 {
		want = append(want, appendOne(fmt.Sprintf("customers/%d", 10+i)))
		appendOne("orders/x") // not a match
	}
	for _, w := range want {
		if m := next(); m["index"] != float64(w) {
			t.Fatalf("followed %v, want the match at %d", m, w)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	for l := range lines {
		t.Errorf("after the last match: %s", l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("query --follow after Ctrl-C: %v\n%s", err, stderr.String())
	}
}
