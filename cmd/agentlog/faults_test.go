package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/internal/proctest"
)

// The fault-injection suite: each test runs the real binary and states
// what must hold when the fault occurs.

// startFaultServer runs the binary on a fresh data directory with a
// loopback NTP server; it returns the server and its data directory.
func startFaultServer(t *testing.T, args ...string) (*serverProc, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	ntp := ntptest.Start(t, 0)
	data := t.TempDir()
	srv := startServer(t, agentlogBinary(t), append([]string{"--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--anomaly=false"}, args...)...)
	return srv, data
}

// TestFaultConnectionFlood: with --max-connections taken by idle clients,
// /healthz still answers on a reserve connection, other routes get a JSON
// 503 there, and connections beyond the reserve are closed instead of
// exhausting file descriptors; the server serves normally once they go.
func TestFaultConnectionFlood(t *testing.T) {
	const maxConns = 40
	srv, _ := startFaultServer(t, "--max-connections", fmt.Sprint(maxConns))
	proctest.CheckConnectionCap(t, strings.TrimPrefix(srv.url, "http://"), maxConns, connReserve, "/healthz", "/v1/proof/consistency?old=0&size=0", true)
	// The console too: its report takes minutes.
	proctest.CheckConnectionCap(t, strings.TrimPrefix(srv.url, "http://"), maxConns, connReserve, "/healthz", "/console/report", true)
}

// TestFaultGatewayConnectionFlood: the gateway's --max-connections, as the
// log's (20,000 idle connections took every file descriptor it needs for
// the upstreams and the log): /healthz on the reserve, a call there 503.
func TestFaultGatewayConnectionFlood(t *testing.T) {
	const maxConns = 20
	srv, _ := startFaultServer(t)
	gw := proctest.Start(t, agentlogBinary(t), "agentlog gateway listening on ", "gateway", "--log", srv.url, "--listen", "127.0.0.1:0",
		"--route", "tools=http://127.0.0.1:1", "--max-connections", fmt.Sprint(maxConns))
	proctest.CheckConnectionCap(t, strings.TrimPrefix(gw.URL, "http://"), maxConns, connReserve, "/healthz", "/tools/x", true)
}

// TestFaultHugeHeaders: headers over the limit get a JSON 431 (Go's server
// answers them itself, in plain text, unless rewritten).
func TestFaultHugeHeaders(t *testing.T) {
	srv, _ := startFaultServer(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, b, err := proctest.RawGet(c, "/healthz", "X-Junk: "+strings.Repeat("j", 64<<10)+"\r\n")
	var e struct{ Error string }
	if err != nil || resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Fatalf("huge headers: %v %v %q, want a JSON 431", resp, err, b)
	}
}

// procStatus reads a field of /proc/PID/status in bytes (VmRSS is the
// resident set now, VmHWM its peak since start).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				t.Fatalf("%s: %q", field, line)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestFaultMemoryBounded: concurrent 15 MB appends, from one agent and
// from many at once, keep the server's peak RSS (VmHWM of the real
// process) under 1 GiB; every request is answered 200 or 503 with
// Retry-After (the byte budget), never 5xx otherwise; the entries of every
// 200 are in the log; and the resident memory falls back afterwards.
func TestFaultMemoryBounded(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	srv, data := startFaultServer(t)
	pid := srv.Cmd.Process.Pid
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	// 15 MB: 240 records of about 64 KB each.
	var sb strings.Builder
	sb.WriteString(`{"entries":[`)
	for i := range 240 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"action":"bulk.upload","resource":"r/%d","attributes":{"blob":"%s"}}`, i, strings.Repeat("z", 62000))
	}
	sb.WriteString(`]}`)
	body := sb.String()
	const agents, perAgent = 6, 15
	sessions := make([]string, agents)
	for i := range sessions {
		sessions[i] = provisionSession(t, srv.url, string(tok), fmt.Sprintf("bulk-%d", i), "memory")
	}
	base := procStatus(t, pid, "VmRSS")
	var mu sync.Mutex
	codes := map[int]int{}
	var acked []uint64 // first index of each acknowledged request
	round := func(sessions []string, n int) {
		var wg sync.WaitGroup
		for _, s := range sessions {
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("POST", srv.url+"/v1/entries", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+s)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Errorf("append: %v", err)
						return
					}
					defer resp.Body.Close()
					var ar struct {
						Entries []struct{ Index uint64 }
					}
					b, _ := io.ReadAll(resp.Body)
					mu.Lock()
					defer mu.Unlock()
					codes[resp.StatusCode]++
					switch {
					case resp.StatusCode == 200 && json.Unmarshal(b, &ar) == nil && len(ar.Entries) == 240:
						acked = append(acked, ar.Entries[0].Index)
					case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					default:
						t.Errorf("append: %d %.200s", resp.StatusCode, b)
					}
				}()
			}
		}
		wg.Wait()
	}
	// Sample the anonymous memory (the heap's share of RSS) under load.
	var anonPeak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			anonPeak.Store(max(anonPeak.Load(), procStatus(t, pid, "RssAnon")))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	round(sessions[:1], perAgent) // one agent, as the report
	round(sessions, perAgent/5)   // many agents at once
	close(stop)
	<-sampled
	peak := procStatus(t, pid, "VmHWM")
	t.Logf("RSS %d MiB before, peak %d MiB; answers %v", base>>20, peak>>20, codes)
	if peak >= 1<<30 {
		t.Fatalf("peak RSS %d MiB, want under 1 GiB", peak>>20)
	}
	if codes[200] == 0 || codes[503] == 0 {
		t.Fatalf("answers %v: want some appends through and some refused by the budget", codes)
	}
	// Every acknowledged request's entries are there.
	admin := mustClient(t, srv.url, string(tok))
	for _, i := range acked {
		for _, j := range []uint64{i, i + 239} {
			e, err := admin.Entry(context.Background(), j)
			if err != nil || !strings.Contains(string(e), `"action":"bulk.upload"`) {
				t.Fatalf("acknowledged entry %d: %v", j, err)
			}
		}
	}
	// The heap's share (anonymous memory; the rest is the value log's
	// file pages, which the kernel reclaims as it needs) goes back.
	waitFor(t, "anonymous memory to fall back", func() bool {
		return procStatus(t, pid, "RssAnon") < anonPeak.Load()/2
	})
	t.Logf("anonymous memory: peak %d MiB, after %d MiB; file-backed %d MiB", anonPeak.Load()>>20, procStatus(t, pid, "RssAnon")>>20, procStatus(t, pid, "RssFile")>>20)
}

// TestFaultDiskFull runs the log on a small tmpfs (root only: CI runs as
// root) and fills it, with its own appends and with another file. What
// must hold: the process never dies (Badger writes through memory maps,
// and a write the file system cannot back is a SIGBUS); appends get 507
// with Retry-After and write nothing; reads, proofs and /checkpoint keep
// working; /healthz fails and says why; a restart on the still-full disk
// serves reads; every acknowledged entry survives; and appends resume by
// themselves once space is freed.
func TestFaultDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=320m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	data := filepath.Join(mnt, "data")
	ntp := ntptest.Start(t, 0)
	args := []string{"--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--anomaly=false", "--value-log-file-mib", "16", "--disk-reserve-mib", "32"}
	srv := startServer(t, agentlogBinary(t), args...)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, string(tok), "filler", "disk")
	blob := strings.Repeat("d", 60000)
	var body strings.Builder
	body.WriteString(`{"entries":[`)
	for i := range 16 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"action":"fill","attributes":{"b":"%s"}}`, blob)
	}
	body.WriteString(`]}`)
	var acked []uint64
	appendOnce := func(url string) (int, http.Header) {
		req, _ := http.NewRequest("POST", url+"/v1/entries", strings.NewReader(body.String()))
		req.Header.Set("Authorization", "Bearer "+sess)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("append: %v (the server died?)\n%s", err, srv.stderr)
		}
		defer resp.Body.Close()
		var ar struct{ Entries []struct{ Index uint64 } }
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			if json.Unmarshal(b, &ar) != nil || len(ar.Entries) != 16 {
				t.Fatalf("append answer %s", b)
			}
			acked = append(acked, ar.Entries[0].Index)
		}
		return resp.StatusCode, resp.Header
	}
	// Our own appends fill the disk until they are refused.
	var code int
	var hdr http.Header
	for range 1000 {
		if code, hdr = appendOnce(srv.url); code != 200 {
			break
		}
	}
	if code != 507 || hdr.Get("Retry-After") == "" || len(acked) == 0 {
		t.Fatalf("appends on a filling disk ended with %d (Retry-After %q) after %d acknowledged, want 507", code, hdr.Get("Retry-After"), len(acked))
	}
	// Badger frees space by itself now and then (a flushed memtable log,
	// a compaction's inputs): another file keeps the free space just
	// under what appends need, which leaves the database its reserve.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	keepFull := func(url string) {
		t.Helper()
		h, err := healthz(url)
		if err != nil {
			t.Fatal(err)
		}
		need := int64(h["disk"].(map[string]any)["need_bytes"].(float64))
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		if free := int64(st.Bavail) * int64(st.Bsize); free >= need {
			if _, err := filler.Write(make([]byte, free-need+1<<20)); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkFull := func(url string) {
		t.Helper()
		keepFull(url)
		h, err := healthz(url)
		if err != nil || h["status"] != "failing" || !strings.Contains(fmt.Sprint(h["problems"]), "disk full") {
			t.Fatalf("/healthz on a full disk: %v %v", h, err)
		}
		for _, path := range []string{"/checkpoint", "/v1/proof/inclusion?index=0&size=2", "/tile/0/000.p/2"} {
			resp, err := http.Get(url + path)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s on a full disk: %v %v", path, resp, err)
			}
			resp.Body.Close()
		}
		admin := mustClient(t, url, string(tok))
		for _, i := range acked {
			if _, err := admin.Entry(context.Background(), i+15); err != nil {
				t.Fatalf("acknowledged entry %d: %v", i+15, err)
			}
		}
	}
	checkFull(srv.url)
	size := func(url string) float64 { h, _ := healthz(url); return h["tree_size"].(float64) }
	keepFull(srv.url)
	before := size(srv.url)
	if code, _ := appendOnce(srv.url); code != 507 || size(srv.url) != before {
		t.Fatalf("append on a full disk: %d, size %v -> %v", code, before, size(srv.url))
	}

	// Killed and restarted on the still-full disk: it serves reads.
	srv.kill()
	srv = startServer(t, agentlogBinary(t), args...)
	waitFor(t, "the restarted server to see the full disk", func() bool {
		keepFull(srv.url)
		h, err := healthz(srv.url)
		return err == nil && h["status"] == "failing"
	})
	checkFull(srv.url)

	// Space returns: appends resume without an operator.
	filler.Close()
	os.Remove(filler.Name())
	if out, err := exec.Command("mount", "-o", "remount,size=640m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	waitFor(t, "appends to resume", func() bool {
		c, _ := appendOnce(srv.url)
		return c == 200
	})
	if h, _ := healthz(srv.url); strings.Contains(fmt.Sprint(h["problems"]), "disk full") {
		t.Fatalf("/healthz after space returned: %v", h)
	}
	select {
	case <-srv.done:
		t.Fatalf("server exited:\n%s", srv.stderr)
	default:
	}
}

// appendTimes appends n one-record requests with sess and returns the
// times the log stamped.
func appendTimes(t *testing.T, url, sess string, n int) []time.Time {
	t.Helper()
	var out []time.Time
	for range n {
		req, _ := http.NewRequest("POST", url+"/v1/entries", strings.NewReader(`{"entries":[{"action":"clock.check"}]}`))
		req.Header.Set("Authorization", "Bearer "+sess)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ar struct{ Entries []struct{ Time time.Time } }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(b, &ar) != nil || len(ar.Entries) != 1 {
			t.Fatalf("append: %d %s", resp.StatusCode, b)
		}
		out = append(out, ar.Entries[0].Time)
	}
	return out
}

// TestFaultLyingNTP: NTP servers that lie. What must hold: one server far
// off is outvoted (times stay within a second of the honest majority's);
// when every server becomes unreachable the log keeps accepting appends and
// /healthz says the clock is degraded; when a majority starts lying an hour
// behind, time never goes backwards (it holds, then moves on); entry times
// never decrease; checkpoints keep being signed throughout.
func TestFaultLyingNTP(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	var ntps []*ntptest.Server
	var args []string
	for _, off := range []time.Duration{0, 0, 0, 10 * 365 * 24 * time.Hour} {
		s := ntptest.Start(t, off)
		ntps = append(ntps, s)
		args = append(args, "--ntp", s.Addr())
	}
	data := t.TempDir()
	srv := startServer(t, agentlogBinary(t), append(args, "--data", data, "--checkpoint-interval", "100ms", "--ntp-interval", "200ms", "--anomaly=false")...)
	waitFor(t, "the clock to sync", func() bool { return clockSynced(srv.url) })
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, string(tok), "clock-bot", "ntp")
	var all []time.Time
	ts := appendTimes(t, srv.url, sess, 5)
	for _, tm := range ts {
		if d := time.Since(tm); d < -time.Second || d > 5*time.Second {
			t.Fatalf("entry time %v is %v from now: the far-off server was not outvoted", tm, d)
		}
	}
	all = append(all, ts...)

	for _, s := range ntps {
		s.SetSilent(true)
	}
	waitFor(t, "/healthz to report the clock degraded", func() bool {
		h, err := healthz(srv.url)
		return err == nil && h["status"] != "ok" && strings.Contains(fmt.Sprint(h["problems"]), "clock")
	})
	all = append(all, appendTimes(t, srv.url, sess, 5)...)

	// A majority of falsetickers an hour behind, after a silence.
	for i, s := range ntps {
		if i < 3 {
			s.SetOffset(-time.Hour)
		}
		s.SetSilent(false)
	}
	seen := ntps[0].Requests()
	waitFor(t, "the liars to be asked", func() bool { return ntps[0].Requests() > seen+2 })
	all = append(all, appendTimes(t, srv.url, sess, 5)...)
	for i := 1; i < len(all); i++ {
		if all[i].Before(all[i-1]) {
			t.Fatalf("entry time went backwards: %v then %v", all[i-1], all[i])
		}
	}
	waitFor(t, "a checkpoint covering every append", func() bool {
		h, err := healthz(srv.url)
		if err != nil {
			return false
		}
		cp, _ := h["checkpoint"].(map[string]any)
		return cp != nil && cp["size"] == h["tree_size"]
	})
}

// TestFaultWitnessesMisbehave: of a policy's two witnesses one hangs (never
// answers) and one answers garbage. What must hold: the quorum is never
// met, yet checkpoints keep being signed and published log-signed (with
// --unwitnessed publish), appends are unaffected, /healthz says why, and
// the hanging witness does not hold up the signing loop.
func TestFaultWitnessesMisbehave(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-injection tests build and run the binary")
	}
	data := t.TempDir()
	const origin = "faults.example/witnessed"
	keys, _, err := checkpoint.LoadOrCreateKeys(data, origin)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("\x00\xffnot a cosignature\n"))
	}))
	defer garbage.Close()
	_, hkey, _ := checkpoint.GenerateTimeKey(nil, "hang.faults.example")
	_, gkey, _ := checkpoint.GenerateTimeKey(nil, "garbage.faults.example")
	policy := fmt.Sprintf("log %s\nwitness H %s %s\nwitness G %s %s\ngroup Q 1 H G\nquorum Q\n", keys.LogVKey, hkey, hang.URL, gkey, garbage.URL)
	policyFile := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	ntp := ntptest.Start(t, 0)
	srv := startServer(t, agentlogBinary(t), "--data", data, "--origin", origin, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--anomaly=false", "--witness-policy", policyFile, "--unwitnessed", "publish")
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, string(tok), "witnessed", "faults")
	for round := range 3 {
		appendTimes(t, srv.url, sess, 3)
		h, _ := healthz(srv.url)
		want := h["tree_size"].(float64)
		waitFor(t, fmt.Sprintf("round %d: /checkpoint at size %v", round, want), func() bool {
			code, raw, err := getBody(srv.url + "/checkpoint")
			if err != nil || code != 200 {
				return false
			}
			c, err := checkpoint.Open(raw, keys.LogVerifier, nil)
			return err == nil && float64(c.Size) >= want
		})
	}
	waitFor(t, "/healthz to report the missing quorum", func() bool {
		h, err := healthz(srv.url)
		return err == nil && h["status"] == "degraded" && strings.Contains(fmt.Sprint(h["problems"]), "witness quorum")
	})
}

// TestFaultClientsDisconnect: clients that go away mid-request (half a body
// sent; a whole body sent, then gone before the answer). What must hold:
// the server stays healthy, a half-sent append writes nothing, and no
// request is counted as a 5xx (the operations guide alerts on those).
func TestFaultClientsDisconnect(t *testing.T) {
	srv, data := startFaultServer(t)
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	sess := provisionSession(t, srv.url, string(tok), "leaver", "faults")
	addr := strings.TrimPrefix(srv.url, "http://")
	h, _ := healthz(srv.url)
	before := h["tree_size"].(float64)
	body := `{"entries":[{"action":"gone.early"}]}`
	for i := range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", sess, len(body)+100)
		if i%2 == 0 {
			io.WriteString(c, body[:len(body)/2]) // half, then gone
		} else {
			io.WriteString(c, body+strings.Repeat(" ", 100)) // all, then gone before the answer
		}
		c.Close()
	}
	defer func() {
		if t.Failed() {
			t.Logf("metrics:\n%s", metricsText(t, srv.url))
		}
	}()
	waitFor(t, "the server to finish with the departed clients", func() bool {
		m := metricsText(t, srv.url)
		n := 0
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, `agentlog_http_request_seconds_count{code=`) && strings.Contains(line, `route="append"`) {
				v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				n += int(v)
			}
		}
		return n >= 40
	})
	m := metricsText(t, srv.url)
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "agentlog_http_request_seconds_count{code=\"5") {
			t.Fatalf("a departed client was counted as a server error: %s", line)
		}
	}
	h, err = healthz(srv.url)
	if err != nil || h["status"] != "ok" {
		t.Fatalf("/healthz after departed clients: %v %v", h, err)
	}
	if got := h["tree_size"].(float64) - before; got > 20 {
		t.Fatalf("%v entries written, at most the 20 whole bodies", got)
	}
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	_, b, err := getBody(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
