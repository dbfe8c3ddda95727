package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/internal/hectest"
	"github.com/agentlog/agentlog/internal/rsyslogtest"
	"github.com/agentlog/agentlog/internal/tlsfile"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/ocsf"
	"github.com/agentlog/agentlog/log/sink"
)

const origin = "sink.test/log"

func openLog(t testing.TB, dir string) *alog.Log {
	t.Helper()
	l, err := alog.Open(alog.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendActions appends n actions of one agent, in batches of up to 50,
// each with a resource of size pad (to make events large).
func appendActions(t testing.TB, l *alog.Log, n, pad int) {
	t.Helper()
	p := alog.Principal{ID: "agent-1", Role: "agent", Agent: "agent-1", Session: "s-1", Task: "t-1"}
	for done := 0; done < n; {
		k := min(50, n-done)
		recs := make([]alog.Record, k)
		for j := range recs {
			recs[j] = alog.Record{Action: "tool.call", Tool: "shell", Resource: fmt.Sprintf("r/%d/%s", done+j, strings.Repeat("x", pad)), Outcome: "success"}
		}
		if _, err := l.Append(context.Background(), p, alog.KindAction, recs); err != nil {
			t.Fatal(err)
		}
		done += k
	}
}

// want is what every sink must deliver for entries [from, to): the events
// of package ocsf, in order.
func want(t testing.TB, l *alog.Log, src ocsf.Source, from, to uint64) [][]byte {
	t.Helper()
	var out [][]byte
	err := l.ForEachEntry(context.Background(), from, to, func(i uint64, leaf []byte) error {
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

func lines(t testing.TB, paths ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			out = append(out, bytes.Clone(sc.Bytes()))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// running is a Set running until stop.
type running struct {
	set  *sink.Set
	stop func()
}

func start(t testing.TB, o sink.Options) *running {
	t.Helper()
	if o.Origin == "" {
		o.Origin = origin
	}
	set, err := sink.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { set.Run(ctx) })
	r := &running{set: set, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(r.stop)
	return r
}

// caughtUp waits until every sink has delivered up to size.
func (r *running) caughtUp(t testing.TB, size uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for _, st := range r.set.Status() {
			done = done && st.Next >= size
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sinks not caught up with size %d: %+v", size, r.set.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func equalLines(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("line %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// TestFileSink delivers every entry to a file, in order, exactly as
// mapped; stopped and started again on the same log, it resumes where it
// stopped (a clean stop leaves no duplicate), and the position survives
// reopening the database.
func TestFileSink(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	path := filepath.Join(dir, "events.jsonl")
	cfg := sink.Config{URL: "https://log.example", Sinks: []sink.Sink{{Name: "archive", Type: sink.TypeFile, Path: path, BatchEvents: 7}}}
	src := ocsf.Source{Origin: origin, Version: "v-test", URL: "https://log.example"}
	appendActions(t, l, 120, 0)

	r := start(t, sink.Options{Log: l, Config: cfg, Version: "v-test"})
	r.caughtUp(t, l.Size())
	appendActions(t, l, 30, 0)
	r.caughtUp(t, l.Size())
	r.stop()
	equalLines(t, lines(t, path), want(t, l, src, 0, l.Size()))

	// More entries while the sink is stopped, and the database reopened.
	appendActions(t, l, 45, 0)
	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	r = start(t, sink.Options{Log: l, Config: cfg, Version: "v-test"})
	if st := r.set.Status()[0]; st.Next != 150 || st.Lag != size-150 {
		t.Errorf("after restart: next %d lag %d, want 150 and %d", st.Next, st.Lag, size-150)
	}
	r.caughtUp(t, size)
	r.stop()
	equalLines(t, lines(t, path), want(t, l, src, 0, size))
	st := r.set.Status()[0]
	if st.Delivered != size-150 || st.Failures != 0 || st.Lag != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestFromNow starts a new sink at the log's size; an existing position
// is kept whatever From says.
func TestFromNow(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	appendActions(t, l, 20, 0)
	path := filepath.Join(dir, "now.jsonl")
	cfg := sink.Config{Sinks: []sink.Sink{{Name: "now", Type: sink.TypeFile, Path: path, From: "now"}}}
	r := start(t, sink.Options{Log: l, Config: cfg})
	appendActions(t, l, 5, 0)
	r.caughtUp(t, l.Size())
	r.stop()
	src := ocsf.Source{Origin: origin}
	equalLines(t, lines(t, path), want(t, l, src, 20, 25))
}

// TestRotation rotates the file by size: no batch is split, the files
// together hold every event once in order, and the oldest beyond
// max_files are removed.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	path := filepath.Join(dir, "ocsf.jsonl")
	cfg := sink.Config{Sinks: []sink.Sink{{Name: "rot", Type: sink.TypeFile, Path: path, MaxSizeMiB: 1, MaxFiles: 2, BatchEvents: 50}}}
	// About 6 KiB an event: 1 MiB is about 170 events.
	appendActions(t, l, 700, 4096)
	r := start(t, sink.Options{Log: l, Config: cfg})
	r.caughtUp(t, l.Size())
	r.stop()
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.3 exists (max_files 2): %v", path, err)
	}
	var got [][]byte
	for _, p := range []string{path + ".2", path + ".1", path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, beyond 1 MiB", p, fi.Size())
		}
		got = append(got, lines(t, p)...)
	}
	all := want(t, l, ocsf.Source{Origin: origin}, 0, l.Size())
	if len(got) == 0 || len(got) >= len(all) {
		t.Fatalf("%d lines in the kept files of %d events: expected the oldest removed", len(got), len(all))
	}
	// The kept files are the newest events, ending with the last.
	equalLines(t, got, all[len(all)-len(got):])
	if (len(all)-len(got))%50 != 0 {
		t.Errorf("%d events removed: not whole batches", len(all)-len(got))
	}
}

// failingWriter fails until healed.
type failingWriter struct {
	mu    sync.Mutex
	ok    bool
	lines bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ok {
		return 0, errors.New("destination down")
	}
	return w.lines.Write(p)
}

// TestDownThenCatchUp: a sink whose destination fails reports it in its
// status and metrics, retries, and once the destination is back delivers
// everything in order; appends went on meanwhile.
func TestDownThenCatchUp(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	w := &failingWriter{}
	reg := prometheus.NewRegistry()
	cfg := sink.Config{Sinks: []sink.Sink{{Name: "out", Type: sink.TypeStdout, MaxLagEntries: 10}}}
	r := start(t, sink.Options{Log: l, Config: cfg, Stdout: w, RetryBase: time.Millisecond, RetryMax: 20 * time.Millisecond, Registerer: reg})
	appendActions(t, l, 100, 0)
	deadline := time.Now().Add(30 * time.Second)
	for r.set.Status()[0].Failures < sink.FailingAfter {
		if time.Now().After(deadline) {
			t.Fatal("no failures reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := r.set.Status()
	p := sink.Problems(st)
	if len(p) != 2 || !strings.Contains(p[0], "sink out failed") || !strings.Contains(p[0], "destination down") || !strings.Contains(p[1], "100 entries behind") {
		t.Errorf("problems %q", p)
	}
	if n := (metric(t, reg, "agentlog_sink_lag_entries")); n != 100 {
		t.Errorf("lag metric %v", n)
	}
	w.mu.Lock()
	w.ok = true
	w.mu.Unlock()
	r.caughtUp(t, l.Size())
	r.stop()
	got := bytes.Split(bytes.TrimSuffix(w.lines.Bytes(), []byte("\n")), []byte("\n"))
	equalLines(t, got, want(t, l, ocsf.Source{Origin: origin}, 0, l.Size()))
	if p := sink.Problems(r.set.Status()); len(p) != 0 {
		t.Errorf("problems after catching up: %q", p)
	}
	if n := (metric(t, reg, "agentlog_sink_delivered_events_total")); n != 100 {
		t.Errorf("delivered metric %v", n)
	}
}

// metric returns the value of the one series of name in reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			m := mf.Metric[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no single series %s", name)
	return 0
}

// TestRecordConfig records a configuration once, again when it changes,
// and "no sinks" when they are removed; secrets are never recorded.
func TestRecordConfig(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	ctx := context.Background()
	if changed, err := sink.RecordConfig(ctx, l, nil); err != nil || changed {
		t.Fatalf("nil on a new log: %v %v (a log that never ran a sink records nothing)", changed, err)
	}
	cfg := &sink.Config{Sinks: []sink.Sink{{Name: "a", Type: sink.TypeFile, Path: filepath.Join(dir, "a.jsonl")}}}
	for i, c := range []struct {
		cfg     *sink.Config
		changed bool
	}{{cfg, true}, {cfg, false}, {&sink.Config{Sinks: []sink.Sink{}}, true}, {nil, false}, {cfg, true}} {
		changed, err := sink.RecordConfig(ctx, l, c.cfg)
		if err != nil || changed != c.changed {
			t.Fatalf("step %d: changed %v, %v; want %v", i, changed, err, c.changed)
		}
	}
	if l.Size() != 3 {
		t.Fatalf("size %d, want 3 records", l.Size())
	}
	var recs []map[string]any
	l.ForEachEntry(ctx, 0, 3, func(i uint64, leaf []byte) error {
		f, err := agentlog.ParseLeaf(leaf)
		if err != nil || f.Kind != agentlog.KindSystem || f.Action != sink.Action {
			t.Errorf("entry %d: %+v %v", i, f, err)
		}
		var m map[string]any
		json.Unmarshal(f.Attributes, &m)
		recs = append(recs, m)
		return nil
	})
	if s, _ := recs[1]["sinks"].([]any); s == nil || len(s) != 0 {
		t.Errorf("removal recorded as %v", recs[1])
	}
	if s, _ := recs[0]["sinks"].([]any); len(s) != 1 || s[0].(map[string]any)["path"] != filepath.Join(dir, "a.jsonl") {
		t.Errorf("first record %v", recs[0])
	}
}

// TestSyslogRsyslog delivers to Debian's rsyslogd, over TCP and over TLS:
// every message parses as RFC 5424 with the fields the sink sets, and its
// MSG is the event exactly as mapped, in order.
func TestSyslogRsyslog(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[withTLS], func(t *testing.T) {
			dir := t.TempDir()
			var tc *rsyslogtest.TLS
			s := sink.Sink{Name: "siem", Type: sink.TypeSyslog, Hostname: "agentlog-test", BatchEvents: 16}
			if withTLS {
				tc = &rsyslogtest.TLS{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "cert.pem")}
				if err := tlsfile.WriteSelfSigned(tc.CertFile, tc.KeyFile, "rsyslog-test"); err != nil {
					t.Fatal(err)
				}
				s.TLS = &sink.TLS{CAFile: tc.CAFile}
			}
			rs := rsyslogtest.Start(t, tc)
			s.Address = rs.Addr
			l := openLog(t, filepath.Join(dir, "db"))
			defer l.Close()
			appendActions(t, l, 60, 0)
			// A larger event, and an alert (severity 3: syslog warning).
			appendActions(t, l, 1, 32<<10)
			if _, err := l.Append(context.Background(), alog.Principal{ID: "agentlog", Role: "system"}, alog.KindAlert,
				[]alog.Record{{Action: "alert.scope", Attributes: json.RawMessage(`{"rule":"scope","detail":"out of scope"}`)}}); err != nil {
				t.Fatal(err)
			}
			r := start(t, sink.Options{Log: l, Config: sink.Config{Sinks: []sink.Sink{s}}})
			r.caughtUp(t, l.Size())
			w := want(t, l, ocsf.Source{Origin: origin}, 0, l.Size())
			var msgs []rsyslogtest.Message
			deadline := time.Now().Add(30 * time.Second)
			for msgs = rs.Messages(t); len(msgs) < len(w); msgs = rs.Messages(t) {
				if time.Now().After(deadline) {
					t.Fatalf("rsyslogd wrote %d messages of %d", len(msgs), len(w))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(msgs) != len(w) {
				t.Fatalf("%d messages, want %d", len(msgs), len(w))
			}
			for i, m := range msgs {
				var ev struct {
					Time     int64 `json:"time"`
					Severity int   `json:"severity_id"`
				}
				json.Unmarshal(w[i], &ev)
				pri := 13*8 + 6
				if ev.Severity == 3 {
					pri = 13*8 + 4
				}
				wantSD := fmt.Sprintf(`[agentlog@32473 index="%d" origin="%s"]`, i, origin)
				wantTime := time.UnixMilli(ev.Time).UTC().Format("2006-01-02T15:04:05.000Z07:00")
				// rsyslog writes the time in its own RFC 3339 form.
				gotTime, err := time.Parse(time.RFC3339Nano, m.Time)
				if err != nil || !gotTime.Equal(time.UnixMilli(ev.Time)) {
					t.Errorf("message %d: time %q, want %s", i, m.Time, wantTime)
				}
				if m.Pri != fmt.Sprint(pri) || m.Host != "agentlog-test" || m.App != "agentlog" || m.ProcID != "-" || m.MsgID != "ocsf" || m.SD != wantSD {
					t.Errorf("message %d: %+v, want pri %d and SD %s", i, m, pri, wantSD)
				}
				if !bytes.Equal(m.Msg, w[i]) {
					t.Fatalf("message %d:\n got %s\nwant %s", i, m.Msg, w[i])
				}
			}
		})
	}
}

// TestWebhook delivers NDJSON batches to an HTTPS server: each signed
// with the HMAC key and carrying the bearer token, the headers naming
// the batch; refused batches are retried, and what the receiver kept is
// every event once, exactly as mapped, in order.
func TestWebhook(t *testing.T) {
	dir := t.TempDir()
	key := "0123456789abcdef-hmac-key"
	token := "webhook-bearer-token"
	os.WriteFile(filepath.Join(dir, "key"), []byte(key+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	var mu sync.Mutex
	var got [][]byte
	requests, refused := 0, 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests%3 == 1 {
			refused++
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get(sink.SinkHeader) != "hook" {
			t.Errorf("headers %v", r.Header)
		}
		if sig := r.Header.Get(anomaly.SignatureHeader); sig != anomaly.Sign([]byte(key), body) {
			t.Errorf("signature %q does not match the body", sig)
		}
		ls := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
		if r.Header.Get(sink.FirstIndexHeader) != fmt.Sprint(len(got)) || r.Header.Get(sink.CountHeader) != fmt.Sprint(len(ls)) {
			t.Errorf("first %s count %s, want %d and %d", r.Header.Get(sink.FirstIndexHeader), r.Header.Get(sink.CountHeader), len(got), len(ls))
		}
		got = append(got, ls...)
	}))
	defer srv.Close()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)

	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	appendActions(t, l, 95, 0)
	cfg := sink.Config{Sinks: []sink.Sink{{Name: "hook", Type: sink.TypeWebhook, URL: srv.URL + "/ingest?x=1", TLS: &sink.TLS{CAFile: ca},
		TokenFile: filepath.Join(dir, "token"), SecretFile: filepath.Join(dir, "key"), BatchEvents: 10}}}
	// Through the file, as the server reads it.
	b, _ := json.Marshal(cfg)
	cf := filepath.Join(dir, "sinks.json")
	os.WriteFile(cf, b, 0o600)
	read, err := sink.ReadConfigFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, sink.Options{Log: l, Config: read, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	r.caughtUp(t, l.Size())
	r.stop()
	mu.Lock()
	defer mu.Unlock()
	equalLines(t, got, want(t, l, ocsf.Source{Origin: origin}, 0, l.Size()))
	if refused < 3 {
		t.Errorf("only %d refusals exercised", refused)
	}
}

// TestHEC delivers to an HTTP Event Collector with and without indexer
// acknowledgement: each HEC event carries the OCSF event exactly as
// mapped and its time, in order; a busy collector is retried; a token
// without acknowledgement is reported when ack is asked for.
func TestHEC(t *testing.T) {
	for _, ack := range []bool{false, true} {
		t.Run(map[bool]string{false: "noack", true: "ack"}[ack], func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "hec.token"), []byte("hec-token-0123\n"), 0o600)
			h := hectest.New("hec-token-0123", ack)
			srv := httptest.NewServer(h)
			defer srv.Close()
			l := openLog(t, filepath.Join(dir, "db"))
			defer l.Close()
			appendActions(t, l, 75, 0)
			s := sink.Sink{Name: "splunk", Type: sink.TypeHEC, URL: srv.URL, TokenFile: filepath.Join(dir, "hec.token"), Ack: ack, Index: "agents", BatchEvents: 10}
			r := start(t, sink.Options{Log: l, Config: sink.Config{Sinks: []sink.Sink{s}}, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
			r.caughtUp(t, l.Size())
			r.stop()
			w := want(t, l, ocsf.Source{Origin: origin}, 0, l.Size())
			var got [][]byte
			for i, e := range h.Events() {
				var ev struct {
					Time int64 `json:"time"`
				}
				json.Unmarshal(e.Event, &ev)
				if e.Time.String() != fmt.Sprintf("%d.%03d", ev.Time/1000, ev.Time%1000) || e.Host != origin || e.Source != origin || e.SourceType != "ocsf" || e.Index != "agents" {
					t.Errorf("HEC event %d: time %s host %q source %q sourcetype %q index %q", i, e.Time, e.Host, e.Source, e.SourceType, e.Index)
				}
				got = append(got, e.Event)
			}
			equalLines(t, got, w)
			if n, acked := h.Acks(); ack && (n == 0 || acked != n) {
				t.Errorf("%d ackIds given, %d reported indexed", n, acked)
			}
		})
	}
	// ack asked for, the token without it: reported, never delivered.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hec.token"), []byte("hec-token-0123\n"), 0o600)
	h := hectest.New("hec-token-0123", false)
	h.BusyEvery = 0
	srv := httptest.NewServer(h)
	defer srv.Close()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	appendActions(t, l, 3, 0)
	s := sink.Sink{Name: "splunk", Type: sink.TypeHEC, URL: srv.URL, TokenFile: filepath.Join(dir, "hec.token"), Ack: true}
	r := start(t, sink.Options{Log: l, Config: sink.Config{Sinks: []sink.Sink{s}}, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
	deadline := time.Now().Add(30 * time.Second)
	for st := r.set.Status()[0]; st.Failures < sink.FailingAfter; st = r.set.Status()[0] {
		if time.Now().After(deadline) {
			t.Fatal("no failure reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.set.Status()[0]; st.Next != 0 || !strings.Contains(st.LastError, "indexer acknowledgement") {
		t.Errorf("status %+v", st)
	}
}

// TestFilePartialLine: a crash in the middle of a write leaves a partial
// line; the sink cuts it before appending, so the file holds whole events.
func TestFilePartialLine(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	path := filepath.Join(dir, "events.jsonl")
	appendActions(t, l, 10, 0)
	all := want(t, l, ocsf.Source{Origin: origin}, 0, l.Size())
	// Entries 0 and 1 written, 2 cut short; the stored position says 2.
	os.WriteFile(path, append(append(append(append([]byte{}, all[0]...), '\n'), append(all[1], '\n')...), all[2][:100]...), 0o640)
	if err := l.SetPosition([]byte("s/pos/archive"), 2); err != nil {
		t.Fatal(err)
	}
	r := start(t, sink.Options{Log: l, Config: sink.Config{Sinks: []sink.Sink{{Name: "archive", Type: sink.TypeFile, Path: path}}}})
	r.caughtUp(t, l.Size())
	r.stop()
	equalLines(t, lines(t, path), all)
}
