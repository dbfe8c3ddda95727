package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentlog/agentlog/internal/cmdline"
)

// runBenchGateway measures what the gateway adds to a call: it serves a
// small upstream itself and calls it at --rate, open loop, both directly
// and through the gateway (a route to that upstream), at the same time so
// they share the machine's conditions; latency counts from each call's
// scheduled time. --direct-rate samples the direct path at a lower rate,
// so that the baseline adds less load of its own to the run.
func runBenchGateway(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench gateway", stderr)
	gw := fs.String("gateway", "http://127.0.0.1:8090/bench", "the gateway route's URL, whose upstream is --upstream-listen")
	listen := fs.String("upstream-listen", "127.0.0.1:9100", "where the bench serves the upstream tool")
	credFile := fs.String("session-token-file", "", "file holding the agent's session credential")
	rate := fs.Int("rate", 2000, "calls per second through the gateway (and as many direct, unless --direct-rate)")
	directRate := fs.Int("direct-rate", 0, "direct calls per second, the baseline interleaved with the gateway's (default: --rate); a lower rate measures the same conditions while adding less load")
	dur := fs.Duration("duration", 20*time.Second, "how long to measure, after --warmup")
	warmup := fs.Duration("warmup", 3*time.Second, "calls made first and not counted")
	size := fs.Int("size", 256, "bytes of each answer")
	workers := fs.Int("workers", 256, "concurrent callers on each path (at least rate x latency, or the bench itself falls behind: see \"started late\")")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *credFile == "" {
		return cmdline.Usagef("--session-token-file is required")
	}
	if *workers < 1 || *workers > 4096 {
		return cmdline.Usagef("--workers %d: want 1 to 4096", *workers)
	}
	if *rate < 1 || *rate > 100000 {
		return cmdline.Usagef("--rate %d: want 1 to 100000", *rate)
	}
	if *directRate == 0 {
		*directRate = *rate
	}
	if *directRate < 1 || *directRate > 100000 {
		return cmdline.Usagef("--direct-rate %d: want 1 to 100000", *directRate)
	}
	cred, err := cmdline.ReadSecret(*credFile)
	if err != nil {
		return err
	}
	body := []byte(`{"ok":true,"pad":"` + strings.Repeat("x", max(0, *size-20)) + `"}`)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serving the upstream on %s: %w", *listen, err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go up.Serve(ln)
	defer up.Close()
	direct := "http://" + ln.Addr().String() + "/x"
	via := strings.TrimRight(*gw, "/") + "/x"

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4096
	tr.MaxIdleConns = 0 // no cap in all (the default 100 would reconnect most of the two paths' callers after each burst)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	one := func(url string, auth bool) error {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"q":"lookup"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		if auth && resp.Header.Get("Agentlog-Receipt") == "" {
			return errors.New("the gateway's answer has no receipt")
		}
		return nil
	}
	if err := one(via, true); err != nil {
		return fmt.Errorf("a first call through the gateway: %w", err)
	}
	var mu sync.Mutex
	var lat [2][]time.Duration // direct, gateway
	var failed atomic.Int64
	var late [2]atomic.Int64 // measured calls started over 1 ms after their time
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now().Add(100 * time.Millisecond)
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*dur)
	// Each path has its own pool of workers taking the calls' scheduled
	// times in order: a call made late because every worker was busy counts
	// its lateness (open loop), and connections stay bounded.
	for k, url := range [2]string{direct, via} {
		interval := time.Second / time.Duration([2]int{*directRate, *rate}[k])
		n := int(end.Sub(start) / interval)
		sched := make(chan time.Time, 1024)
		go func() {
			for i := range n {
				sched <- start.Add(time.Duration(i) * interval)
			}
			close(sched)
		}()
		for range *workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range sched {
					if d := time.Until(at); d > 0 {
						time.Sleep(d)
					} else if d < -time.Millisecond && !at.Before(measureFrom) {
						late[k].Add(1)
					}
					if err := one(url, k == 1); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					if at.Before(measureFrom) {
						continue
					}
					d := time.Since(at)
					mu.Lock()
					lat[k] = append(lat[k], d)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for k := range lat {
		slices.Sort(lat[k])
	}
	if *directRate == *rate {
		fmt.Fprintf(stdout, "rate %d/s each way for %s (open loop, latency from the scheduled send)\n", *rate, *dur)
	} else {
		fmt.Fprintf(stdout, "rate %d/s through the gateway, %d/s direct, for %s (open loop, latency from the scheduled send)\n", *rate, *directRate, *dur)
	}
	fmt.Fprintf(stdout, "%-8s %8s %10s %10s %10s %10s %10s\n", "", "calls", "p50", "p90", "p99", "p99.9", "max")
	for k, name := range []string{"direct", "gateway"} {
		d := lat[k]
		if len(d) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "%-8s %8d %10s %10s %10s %10s %10s\n", name, len(d), pct(d, 50), pct(d, 90), pct(d, 99), pctf(d, 99.9), d[len(d)-1])
	}
	if len(lat[0]) > 0 && len(lat[1]) > 0 {
		fmt.Fprintf(stdout, "added by the gateway: p50 %s, p99 %s (target: p99 under 3ms at 2000/s, record=after)\n", pct(lat[1], 50)-pct(lat[0], 50), pct(lat[1], 99)-pct(lat[0], 99))
	}
	for k, name := range []string{"direct", "gateway"} {
		if n := late[k].Load(); n > 0 {
			fmt.Fprintf(stdout, "%s: %d calls started over 1ms late (all %d workers busy, or the machine slow to run them): the figures include that wait\n", name, n, *workers)
		}
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(stdout, "%d calls failed; first: %v\n", n, firstErr.Load())
	}
	return nil
}

func pctf(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)) * p / 100)
	return d[min(i, len(d)-1)]
}
