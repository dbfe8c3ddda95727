package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/log/identity"
)

func runBench(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "append":
		return runBenchAppend(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "peer":
		return runBenchPeer(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "gateway":
		return runBenchGateway(args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "null":
		return runBenchNull(args[1:], stdout, stderr)
	}
	return command.SubverbError("bench", args)
}

// runBenchPeer drives a peer's single-entry HTTP append (Tessera's POSIX
// conformance server: POST /add, the body is the entry) with the same
// closed-loop clients and HTTP transport as "bench append --batch 1", so
// the two figures of one run compare.
func runBenchPeer(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench peer", stderr)
	url := fs.String("url", "http://127.0.0.1:18200/add", "the peer's append URL (one entry per POST, the body is the entry)")
	conc := fs.Int("concurrency", 256, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	size := fs.Int("size", 512, "bytes of each entry")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *conc < 1 || *size < 1 || *dur <= 0 {
		return cmdline.Usagef("--concurrency >= 1, --size >= 1 and a positive --duration are required")
	}
	hc := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2, IdleConnTimeout: time.Minute},
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var (
		mu       sync.Mutex
		lats     []time.Duration
		failures atomic.Int64
		firstErr atomic.Value
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			body := make([]byte, *size)
			for n := 0; ctx.Err() == nil; n++ {
				// Distinct entries: the peer may deduplicate.
				copy(body, fmt.Sprintf("%d-%d-%s", w, n, strings.Repeat("x", *size)))
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				my = append(my, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, my...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	fmt.Fprintf(stdout, "agentlog-dev bench peer %s concurrency=%d size=%d duration=%s\n", *url, *conc, *size, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "  requests=%d requests_per_s=%.0f\n", len(lats), float64(len(lats))/elapsed.Seconds())
	fmt.Fprintf(stdout, "  latency p50=%s p99=%s max=%s\n", pct(lats, 50), pct(lats, 99), pct(lats, 100))
	fmt.Fprintf(stdout, "  failures=%d\n", failures.Load())
	if f := failures.Load(); f > 0 {
		return fmt.Errorf("%d requests failed; first: %v", f, firstErr.Load())
	}
	return nil
}

// nullMaxBody caps the body bench null reads.
const nullMaxBody = 1 << 20

// runBenchNull serves POST /add like a peer's single-entry append, but
// does nothing with the entry: it reads the body (at most nullMaxBody) and
// answers "1". "bench peer" against it, in the same run as against
// agentlog and Tessera, gives the single-entry comparison's ceiling: the
// requests per second the load generator gets on this machine from a Go
// HTTP server that costs nothing beyond net/http itself. It serves until
// SIGINT or SIGTERM.
func runBenchNull(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench null", stderr)
	listen := fs.String("listen", "127.0.0.1:18201", "address to serve POST /add on")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/add" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"error":"bench null serves POST /add only"}`+"\n")
				return
			}
			if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, nullMaxBody)); err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				fmt.Fprintf(w, `{"error":"the body is over %d bytes"}`+"\n", nullMaxBody)
				return
			}
			io.WriteString(w, "1\n")
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stdout, "agentlog-dev bench null serving http://%s/add\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// benchSample is one acknowledged request: the largest index it got and
// when it was sent.
type benchSample struct {
	maxIndex uint64
	sent     time.Time
}

// cpObservation is a checkpoint size seen at a time.
type cpObservation struct {
	at   time.Time
	size uint64
}

func runBenchAppend(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench append", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tokenFile := fs.String("token-file", "", "admin token file: the bench registers and approves agents and opens their sessions")
	agents := fs.Int("agents", 16, "agents to register; each opens one session shared by concurrency/agents clients")
	conc := fs.Int("concurrency", 256, "concurrent clients")
	batch := fs.Int("batch", 1, "records per request")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	size := fs.Int("size", 512, "approximate bytes of each record")
	scope := fs.String("scope", "", "declared scope of the bench agents (agent register --scope form), so that the anomaly rules evaluate every entry")
	cfgFile := fs.String("config", "", "register the bench agents with this configuration (docs/changes.md); their sessions declare it, so every entry carries its digest")
	provable := fs.Bool("provable", true, "also measure the time from sending to being covered by a published checkpoint")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *tokenFile == "" {
		return cmdline.Usagef("--token-file is required")
	}
	if *conc < 1 || *batch < 1 || *batch > 10000 || *size < 16 || *dur <= 0 || *agents < 1 {
		return cmdline.Usagef("--concurrency >= 1, --agents >= 1, 1 <= --batch <= 10000, --size >= 16 and a positive --duration are required")
	}
	tok, err := cmdline.ReadSecret(*tokenFile)
	if err != nil {
		return err
	}
	hc := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2, IdleConnTimeout: time.Minute},
	}
	admin, err := client.New(*server, client.WithToken(tok), client.WithHTTPClient(hc))
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	var scopeJSON json.RawMessage
	if *scope != "" {
		sc, err := identity.ParseScope(*scope)
		if err != nil {
			return cmdline.Usagef("--scope: %s", err)
		}
		if scopeJSON, err = json.Marshal(sc); err != nil {
			return err
		}
	}
	var cfg benchConfig
	if *cfgFile != "" {
		if cfg.doc, cfg.digest, err = client.LoadConfig(*cfgFile); err != nil {
			return err
		}
	}
	sessions, err := benchSessions(*server, admin, hc, min(*agents, *conc), scopeJSON, cfg)
	if err != nil {
		return err
	}
	clients := make([]*client.Client, len(sessions))
	for i, cred := range sessions {
		clients[i], _ = client.New(*server, client.WithToken(cred), client.WithHTTPClient(hc))
	}
	c := admin // reads the public checkpoint
	body := benchBody(*batch, *size)

	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var (
		mu       sync.Mutex
		lats     []time.Duration
		samples  []benchSample
		entries  atomic.Int64
		pushback atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		maxIndex atomic.Uint64
	)
	// Poll the checkpoint while sending, to time appended-to-provable.
	var obs []cpObservation
	pollDone := make(chan struct{})
	stopPoll := make(chan struct{})
	if *provable {
		go func() {
			defer close(pollDone)
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				if s, err := checkpointSize(c); err == nil {
					obs = append(obs, cpObservation{time.Now(), s})
				}
				select {
				case <-stopPoll:
					return
				case <-t.C:
				}
			}
		}()
	} else {
		close(pollDone)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		c := clients[w%len(clients)]
		go func() {
			defer wg.Done()
			var myLats []time.Duration
			var mySamples []benchSample
			for ctx.Err() == nil {
				t0 := time.Now()
				res, err := c.AppendRaw(ctx, body)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					if errors.Is(err, client.ErrPushback) {
						pushback.Add(1)
						time.Sleep(50 * time.Millisecond) // the server asked us to back off
						continue
					}
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				myLats = append(myLats, time.Since(t0))
				entries.Add(int64(len(res)))
				last := res[len(res)-1].Index
				mySamples = append(mySamples, benchSample{last, t0})
				for {
					m := maxIndex.Load()
					if last <= m || maxIndex.CompareAndSwap(m, last) {
						break
					}
				}
			}
			mu.Lock()
			lats = append(lats, myLats...)
			samples = append(samples, mySamples...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	var provLats []time.Duration
	if *provable && len(samples) > 0 {
		// Wait (bounded) for a checkpoint covering the last entry.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if s, err := checkpointSize(c); err == nil && s > maxIndex.Load() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stopPoll)
		<-pollDone
		for _, s := range samples {
			i := sort.Search(len(obs), func(i int) bool { return obs[i].size > s.maxIndex && !obs[i].at.Before(s.sent) })
			if i < len(obs) {
				provLats = append(provLats, obs[i].at.Sub(s.sent))
			}
		}
	} else if *provable {
		close(stopPoll)
		<-pollDone
	}

	slices.Sort(lats)
	slices.Sort(provLats)
	n := entries.Load()
	fmt.Fprintf(stdout, "agentlog-dev bench append concurrency=%d batch=%d size=%d duration=%s\n", *conc, *batch, *size, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "  requests=%d entries=%d entries_per_s=%.0f requests_per_s=%.0f\n", len(lats), n, float64(n)/elapsed.Seconds(), float64(len(lats))/elapsed.Seconds())
	fmt.Fprintf(stdout, "  latency p50=%s p99=%s max=%s\n", pct(lats, 50), pct(lats, 99), pct(lats, 100))
	if *provable {
		fmt.Fprintf(stdout, "  provable p50=%s p99=%s (from sending to a published checkpoint covering it; %d of %d requests observed)\n", pct(provLats, 50), pct(provLats, 99), len(provLats), len(samples))
	}
	fmt.Fprintf(stdout, "  pushbacks=%d failures=%d\n", pushback.Load(), failures.Load())
	if f := failures.Load(); f > 0 {
		return fmt.Errorf("%d requests failed; first: %v", f, firstErr.Load())
	}
	return nil
}

// benchSessions registers and approves n agents with fresh keys, and opens
// one session for each; it returns the session credentials.
// benchConfig is the configuration bench agents are registered with.
type benchConfig struct {
	doc    []byte
	digest string
}

func benchSessions(server string, admin *client.Client, hc *http.Client, n int, scope json.RawMessage, cfg benchConfig) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	creds := make([]string, n)
	for i := range creds {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("bench-%s-%d", run, i)
		if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: id, Owner: "bench", Description: "agentlog-dev bench append", PublicKey: pub, Scope: scope, Config: cfg.doc}); err != nil {
			return nil, fmt.Errorf("registering bench agent %s: %w", id, err)
		}
		if _, err := admin.ApproveAgent(ctx, id); err != nil {
			return nil, fmt.Errorf("approving bench agent %s: %w", id, err)
		}
		a, err := client.NewAgent(server, client.AgentConfig{ID: id, Key: priv, Task: "bench-" + run, HTTPClient: hc, Config: cfg.digest})
		if err != nil {
			return nil, err
		}
		si, err := a.Open(ctx)
		if err != nil {
			return nil, fmt.Errorf("opening a session for %s: %w", id, err)
		}
		creds[i] = si.Credential
	}
	return creds, nil
}

// benchBody builds an append body of batch records of about size bytes.
func benchBody(batch, size int) []byte {
	pad := strings.Repeat("x", max(size-64, 1))
	recs := make([]map[string]any, batch)
	for i := range recs {
		recs[i] = map[string]any{
			"action":     "bench.append",
			"tool":       "bench",
			"resource":   "bench/" + strconv.Itoa(i),
			"outcome":    "success",
			"attributes": map[string]string{"pad": pad},
		}
	}
	b, _ := json.Marshal(map[string]any{"entries": recs})
	return b
}

// checkpointSize reads the size line of the served checkpoint. The bench
// only times publication; "agentlog verify" checks signatures.
func checkpointSize(c *client.Client) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	lines := bytes.SplitN(raw, []byte("\n"), 3)
	if len(lines) < 3 {
		return 0, errors.New("short checkpoint")
	}
	return strconv.ParseUint(string(lines[1]), 10, 64)
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	if i > 0 {
		i--
	}
	return d[min(i, len(d)-1)].Round(10 * time.Microsecond)
}
