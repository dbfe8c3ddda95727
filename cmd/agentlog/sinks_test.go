package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/hectest"
	"github.com/agentlog/agentlog/internal/rsyslogtest"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/ocsf"
)

// sinkStream checks what a sink delivered against the log: every event
// exactly as package ocsf maps its entry, in index order, no entry
// missing; an event sent again (after a crash, from the stored position)
// is allowed and counted. got are the events as received, one JSON
// document each.
func sinkStream(t *testing.T, got [][]byte, want [][]byte) (dups int) {
	t.Helper()
	next := 0
	for k, g := range got {
		var m struct {
			Metadata struct {
				Sequence int `json:"sequence"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(g, &m); err != nil {
			t.Fatalf("event %d received is not JSON: %v: %.200s", k, err, g)
		}
		i := m.Metadata.Sequence
		switch {
		case i > next:
			t.Fatalf("event %d received is entry %d, but entry %d was never delivered (lost)", k, i, next)
		case i >= len(want):
			t.Fatalf("event %d received is entry %d, beyond the log's %d entries", k, i, len(want))
		case !bytes.Equal(g, want[i]):
			t.Fatalf("entry %d received differs from its mapping:\n got %s\nwant %s", i, g, want[i])
		case i < next:
			dups++
		default:
			next++
		}
	}
	if next != len(want) {
		t.Fatalf("delivered up to entry %d of %d", next, len(want))
	}
	return dups
}

// mapped reads a stopped server's log and returns its entries as OCSF
// events, with the version and URL the server stamped (taken from the
// first received event).
func mapped(t *testing.T, data, origin string, first []byte) [][]byte {
	t.Helper()
	var m struct {
		Metadata struct {
			Product struct {
				Version string `json:"version"`
			} `json:"product"`
		} `json:"metadata"`
		Unmapped struct {
			Agentlog struct {
				CheckpointURL string `json:"checkpoint_url"`
			} `json:"agentlog"`
		} `json:"unmapped"`
	}
	json.Unmarshal(first, &m)
	src := ocsf.Source{Origin: origin, Version: m.Metadata.Product.Version, URL: strings.TrimSuffix(m.Unmapped.Agentlog.CheckpointURL, "/checkpoint")}
	l, err := alog.Open(alog.Config{Dir: filepath.Join(data, "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out [][]byte
	err = l.ForEachEntry(context.Background(), 0, l.Size(), func(i uint64, leaf []byte) error {
		e, err := ocsf.Event(src, i, leaf, nil)
		if err != nil {
			return err
		}
		b, err := ocsf.Marshal(e)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// crashLoad appends from a few agents' goroutines until the returned stop
// is called; it returns how many entries were acknowledged.
func crashLoad(t *testing.T, url string, sess string) (stop func() int) {
	t.Helper()
	c, err := client.New(url, client.WithToken(sess))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				res, err := c.Append(context.Background(), client.Record{Action: "sink.e2e", Tool: "shell", Resource: fmt.Sprintf("w%d/%d", w, i)})
				if err != nil {
					return
				}
				mu.Lock()
				n += len(res)
				mu.Unlock()
			}
		})
	}
	return func() int { close(done); wg.Wait(); return n }
}

// sinkHealth returns the sinks of /healthz.
func sinkHealth(url string) ([]map[string]any, error) {
	h, err := healthz(url)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	s, _ := h["sinks"].([]any)
	for _, v := range s {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out, nil
}

// caughtUp reports whether every sink of the server has delivered the
// whole tree.
func sinksCaughtUp(url string) bool {
	h, err := healthz(url)
	if err != nil {
		return false
	}
	size, _ := h["tree_size"].(float64)
	s, _ := h["sinks"].([]any)
	for _, v := range s {
		m, _ := v.(map[string]any)
		if next, _ := m["next_index"].(float64); next < size {
			return false
		}
	}
	return len(s) > 0
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

// TestSinksFileCrash runs the server with a file sink under load, kills
// it with SIGKILL, starts it again, and checks that the file holds every
// entry of the log exactly as mapped and in order (duplicates from the
// resent batch allowed and counted), that /healthz and /metrics report
// the sink, and that the configuration is recorded in the log.
func TestSinksFileCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	events := filepath.Join(dir, "events.jsonl")
	cfg := filepath.Join(dir, "sinks.json")
	os.WriteFile(cfg, []byte(`{"url": "https://log.example", "sinks": [{"name": "archive", "type": "file", "path": "`+events+`", "batch_events": 20}]}`), 0o644)

	// A bad configuration stops the server before it writes anything.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"sinks": [{"name": "archive", "type": "file"}]}`), 0o644)
	out, err := exec.Command(bin, "serve", "--data", data, "--sinks", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "a file sink needs a path") {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data directory was created for a refused configuration: %v", err)
	}

	crashRun(t, bin, ntp.Addr(), data, cfg, func(url string) {
		st, _ := sinkHealth(url)
		if st[0]["name"] != "archive" || st[0]["type"] != "file" || st[0]["lag_entries"] != 0.0 || st[0]["consecutive_failures"] != 0.0 {
			t.Errorf("healthz sink %v", st[0])
		}
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(metrics, []byte(`agentlog_sink_lag_entries{sink="archive",type="file"} 0`)) {
			t.Errorf("metrics lack the sink's lag:\n%s", metrics)
		}
	})

	got := readLines(t, events)
	want := mapped(t, data, "sinks.example/log", got[0])
	dups := sinkStream(t, got, want)
	t.Logf("%d entries delivered, %d duplicates after the SIGKILL", len(want), dups)
	// The configuration is recorded once: unchanged, it is not recorded
	// again on the restart.
	recorded := 0
	for _, e := range want {
		if bytes.Contains(e, []byte(`"activity_name":"sinks.configured"`)) {
			recorded++
			if !bytes.Contains(e, []byte(`\"name\":\"archive\"`)) {
				t.Errorf("configuration event lacks the sink: %.400s", e)
			}
		}
	}
	if recorded != 1 {
		t.Errorf("configuration recorded %d times, want once", recorded)
	}
}

// crashRun runs the server with the sinks file cfg under load, kills it
// with SIGKILL once its sinks have delivered 200 entries, starts it again,
// appends more, and once the sinks have caught up calls caughtUp (if not
// nil) and stops the server.
func crashRun(t *testing.T, bin, ntpAddr, data, cfg string, caughtUp func(url string)) {
	t.Helper()
	args := []string{"--data", data, "--ntp", ntpAddr, "--checkpoint-interval", "100ms", "--origin", "sinks.example/log", "--sinks", cfg}
	srv := startServer(t, bin, args...)
	tok, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	sess := provisionSession(t, srv.url, string(tok), "sink-writer", "sink-test")
	stop := crashLoad(t, srv.url, sess)
	waitFor(t, "the sink to deliver under load", func() bool {
		st, err := sinkHealth(srv.url)
		next, _ := st[0]["next_index"].(float64)
		return err == nil && len(st) == 1 && next > 200
	})
	srv.Cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	acked := stop()
	if acked == 0 {
		t.Fatal("nothing acknowledged before the kill")
	}

	srv = startServer(t, bin, args...)
	stop = crashLoad(t, srv.url, sess)
	waitFor(t, "appends after the restart", func() bool {
		h, err := healthz(srv.url)
		size, _ := h["tree_size"].(float64)
		return err == nil && int(size) > acked+100
	})
	stop()
	waitFor(t, "the sink to catch up", func() bool { return sinksCaughtUp(srv.url) })
	if caughtUp != nil {
		caughtUp(srv.url)
	}
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
	case <-time.After(60 * time.Second):
		t.Fatal("server did not stop")
	}

}

// TestSinksSyslogCrash is TestSinksFileCrash with a syslog sink and
// Debian's rsyslogd as the receiver: every event arrives exactly as
// mapped, in order, across the SIGKILL (duplicates counted, no loss).
func TestSinksSyslogCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	rs := rsyslogtest.Start(t, nil)
	bin := agentlogBinary(t)
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "sinks.json")
	os.WriteFile(cfg, []byte(`{"sinks": [{"name": "siem", "type": "syslog", "address": "`+rs.Addr+`", "batch_events": 20}]}`), 0o644)
	crashRun(t, bin, ntp.Addr(), data, cfg, nil)
	var got [][]byte
	var want [][]byte
	waitFor(t, "rsyslogd to write every message", func() bool {
		msgs := rs.Messages(t)
		if len(msgs) == 0 {
			return false
		}
		if want == nil {
			want = mapped(t, data, "sinks.example/log", msgs[0].Msg)
		}
		got = got[:0]
		for _, m := range msgs {
			got = append(got, m.Msg)
		}
		return bytes.Contains(got[len(got)-1], fmt.Appendf(nil, `"sequence":%d,`, len(want)-1))
	})
	dups := sinkStream(t, got, want)
	t.Logf("%d entries delivered through rsyslogd, %d duplicates after the SIGKILL", len(want), dups)
}

// TestSinksHECCrash is TestSinksFileCrash with a Splunk HEC sink, indexer
// acknowledgement on, and a collector that is busy every 4th request
// (internal/hectest): every event arrives exactly as mapped, in order,
// across the SIGKILL (duplicates counted, no loss).
func TestSinksHECCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	hec := hectest.New("e2e-hec-token", true)
	hs := httptest.NewServer(hec)
	defer hs.Close()
	bin := agentlogBinary(t)
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	tok := filepath.Join(dir, "hec.token")
	os.WriteFile(tok, []byte("e2e-hec-token\n"), 0o600)
	cfg := filepath.Join(dir, "sinks.json")
	os.WriteFile(cfg, []byte(`{"sinks": [{"name": "splunk", "type": "splunk_hec", "url": "`+hs.URL+`", "token_file": "`+tok+`", "ack": true, "batch_events": 500}]}`), 0o644)
	crashRun(t, bin, ntp.Addr(), data, cfg, nil)
	var got [][]byte
	for _, e := range hec.Events() {
		got = append(got, e.Event)
	}
	want := mapped(t, data, "sinks.example/log", got[0])
	dups := sinkStream(t, got, want)
	given, indexed := hec.Acks()
	t.Logf("%d entries delivered to the collector, %d duplicates after the SIGKILL; %d ackIds given, %d reported indexed", len(want), dups, given, indexed)
}
