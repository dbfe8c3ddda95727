package gateway

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// queued is how many entries wait behind the append in flight for cred.
func (r *recorder) queued(cred string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.queues[cred]; q != nil {
		return len(q.pending)
	}
	return 0
}

func newServer(t *testing.T, g *Gateway) *httptest.Server {
	hs := httptest.NewServer(g)
	t.Cleanup(hs.Close)
	return hs
}

// waitUntil polls cond, a state of other goroutines, until it holds.
func waitUntil(t *testing.T, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("timed out waiting")
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
