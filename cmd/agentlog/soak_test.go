package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoak runs the server under steady mixed load (single-entry and
// batched appends, queries, proofs, refused credentials) for
// AGENTLOG_SOAK (a duration; `make soak` sets 30m) and samples its
// resident memory, heap share and open file descriptors every 10 s, with a
// tile cache small enough to be full early. Descriptors are counted in two
// sets: the database's files (Badger keeps every table and value log file
// open, so they grow with the data, about one per 64 MiB table) and all
// others (connections, sockets, our own files). What must hold: after the
// first fifth (warm-up), memory and the other descriptors are flat (the
// last quarter's mean within 25% + 32 MiB, and 16 descriptors, of the
// second quarter's), the database's descriptors stay within one per 8 MiB
// of its files, and no request failed. Not part of make test.
// It also samples the Go heap in use and, with AGENTLOG_SOAK_PROFILES=DIR,
// writes heap profiles at the end of the warm-up and at the end
// (heap-start.pprof, heap-end.pprof) for `go tool pprof -diff_base`.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("AGENTLOG_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set AGENTLOG_SOAK=30m (make soak) to run the soak test")
	}
	profDir := os.Getenv("AGENTLOG_SOAK_PROFILES")
	debugLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := debugLn.Addr().String()
	debugLn.Close()
	// A small tile cache, full within a minute: otherwise the cache
	// (bounded by --tile-cache, 256 MiB by default) fills over hours and
	// its growth looks like a leak.
	srv, data := startFaultServer(t, "--tile-cache", "512", "--debug-listen", debugAddr)
	heap := func(query string) []byte {
		resp, err := http.Get("http://" + debugAddr + "/debug/pprof/heap" + query)
		if err != nil {
			t.Logf("heap profile: %v", err)
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	heapInuse := func() int64 {
		for _, line := range strings.Split(string(heap("?debug=1")), "\n") {
			if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
		return 0
	}
	saveProfile := func(name string) {
		if profDir == "" {
			return
		}
		if err := os.WriteFile(filepath.Join(profDir, name), heap("?gc=1"), 0o644); err != nil {
			t.Errorf("heap profile: %v", err)
		}
	}
	pid := srv.Cmd.Process.Pid
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(tok))
	var sessions []string
	for i := range 4 {
		sessions = append(sessions, provisionSession(t, srv.url, admin, fmt.Sprintf("soak-%d", i), "soak"))
	}
	pad := strings.Repeat("s", 400)
	single := `{"entries":[{"action":"soak.single","resource":"r/1","attributes":{"pad":"` + pad + `"}}]}`
	var batch strings.Builder
	batch.WriteString(`{"entries":[`)
	for i := range 100 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"action":"soak.batch","resource":"r/%d","attributes":{"pad":"%s"}}`, i, pad)
	}
	batch.WriteString(`]}`)
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	do := func(method, path, tok, body string) {
		var rd *strings.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		var req *http.Request
		if rd != nil {
			req, _ = http.NewRequest(method, srv.url+path, rd)
		} else {
			req, _ = http.NewRequest(method, srv.url+path, nil)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		sent.Add(1)
		if err != nil {
			failed.Add(1)
			return
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != 503 {
			failed.Add(1)
		}
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := sessions[i%len(sessions)]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				switch {
				case i < 16:
					do("POST", "/v1/entries", sess, single)
				case i < 20:
					do("POST", "/v1/entries", sess, batch.String())
				case i < 22:
					do("GET", "/v1/query?action=soak.single&limit=100", admin, "")
				case i < 23:
					do("GET", "/v1/proof/inclusion?index=1&size=2", "", "")
				default:
					do("POST", "/v1/entries", "junk-credential", single)
				}
			}
		}()
	}
	type sample struct {
		at             time.Duration
		rss, anon, fds int64
		dbFDs, dbBytes int64
		heap           int64
		requests, size int64
		load           string
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(10 * time.Second)
	warm := false
	for time.Since(start) < d {
		<-tick.C
		fdDir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, _ := os.ReadDir(fdDir)
		var dbFDs int64
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && strings.HasPrefix(target, data+"/") {
				dbFDs++
			}
		}
		var dbBytes int64
		filepath.WalkDir(data, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					dbBytes += fi.Size()
				}
			}
			return nil
		})
		load, _ := os.ReadFile("/proc/loadavg")
		h, _ := healthz(srv.url)
		size, _ := h["tree_size"].(float64)
		s := sample{at: time.Since(start).Round(time.Second), rss: procStatus(t, pid, "VmRSS"), anon: procStatus(t, pid, "RssAnon"), fds: int64(len(fds)) - dbFDs,
			dbFDs: dbFDs, dbBytes: dbBytes, heap: heapInuse(), requests: sent.Load(), size: int64(size), load: strings.Join(strings.Fields(string(load))[:1], "")}
		samples = append(samples, s)
		t.Logf("%6v rss %4d MiB anon %4d MiB heap %4d MiB fds %4d db fds %4d db %6d MiB requests %9d entries %10d load %s", s.at, s.rss>>20, s.anon>>20, s.heap>>20, s.fds, s.dbFDs, s.dbBytes>>20, s.requests, s.size, s.load)
		if !warm && time.Since(start) >= d/5 {
			warm = true
			saveProfile("heap-start.pprof")
		}
	}
	tick.Stop()
	saveProfile("heap-end.pprof")
	close(stop)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed", f, sent.Load())
	}
	if len(samples) < 8 {
		t.Fatalf("%d samples: run for at least 80 s", len(samples))
	}
	mean := func(ss []sample, f func(sample) int64) float64 {
		var sum int64
		for _, s := range ss {
			sum += f(s)
		}
		return float64(sum) / float64(len(ss))
	}
	n := len(samples)
	second, last := samples[n/4:n/2], samples[3*n/4:]
	if a, b := samples[n/4], samples[n-1]; b.size > a.size {
		t.Logf("heap in use: %+.1f B/entry from %v to %v (%d entries)", float64(b.heap-a.heap)/float64(b.size-a.size), a.at, b.at, b.size-a.size)
	}
	for _, m := range []struct {
		name  string
		f     func(sample) int64
		slack float64
	}{
		{"anonymous memory", func(s sample) int64 { return s.anon }, 32 << 20},
		{"file descriptors (not the database's)", func(s sample) int64 { return s.fds }, 16},
	} {
		a, b := mean(second, m.f), mean(last, m.f)
		t.Logf("%s: mean of the second quarter %.0f, of the last quarter %.0f", m.name, a, b)
		if b > a*1.25+m.slack {
			t.Errorf("%s grew from %.0f to %.0f", m.name, a, b)
		}
	}
	for _, s := range samples {
		if s.dbFDs > 16+s.dbBytes/(8<<20) {
			t.Errorf("at %v the database holds %d descriptors for %d MiB of files", s.at, s.dbFDs, s.dbBytes>>20)
		}
	}
}
