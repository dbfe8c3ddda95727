// Package faultproxy is a loopback HTTP proxy for tests that stands between
// a client and a real server and injects faults: it fails requests with a
// status, drops connections before or after the server saw the request,
// or delays them, each with a probability set while it runs.
package faultproxy

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are the probabilities (0 to 1) of each fault per request; the
// rest pass through untouched.
type Faults struct {
	Fail      float64       // answer 503 without forwarding
	DropLost  float64       // close the connection without forwarding
	DropAfter float64       // forward, then close the connection without the answer
	Delay     float64       // forward after DelayBy
	DelayBy   time.Duration // how long a delayed request waits
	// Only, if set, limits the faults to requests it accepts.
	Only func(*http.Request) bool
}

// Proxy is a running fault proxy.
type Proxy struct {
	URL    string // the proxy's base URL, to use in place of the server's
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	faults Faults
	rnd    *rand.Rand
	// Counts of requests by outcome.
	Passed, Failed, Lost, DroppedAfter, Delayed atomic.Int64
}

// New starts a proxy to target (an http:// base URL).
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &Proxy{rp: httputil.NewSingleHostReverseProxy(u), rnd: rand.New(rand.NewPCG(1, 2))}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	return p, nil
}

// Set replaces the faults.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.CloseClientConnections(); p.srv.Close() }

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.faults
	x := p.rnd.Float64()
	p.mu.Unlock()
	if f.Only != nil && !f.Only(r) {
		p.Passed.Add(1)
		p.rp.ServeHTTP(w, r)
		return
	}
	switch {
	case x < f.Fail:
		p.Failed.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected fault</Message></Error>`)
	case x < f.Fail+f.DropLost:
		p.Lost.Add(1)
		hangUp(w)
	case x < f.Fail+f.DropLost+f.DropAfter:
		p.DroppedAfter.Add(1)
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		hangUp(w)
	case x < f.Fail+f.DropLost+f.DropAfter+f.Delay:
		p.Delayed.Add(1)
		time.Sleep(f.DelayBy)
		p.rp.ServeHTTP(w, r)
	default:
		p.Passed.Add(1)
		p.rp.ServeHTTP(w, r)
	}
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: connection cannot be hijacked")
	}
	c, _, err := hj.Hijack()
	if err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}
