package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkHTTPCall is one record=after call through the gateway at a
// time, to a real log and upstream on loopback: its allocations per call
// (-benchmem) are those of the gateway, the log's append and both
// clients together, and are steady on a loaded machine, unlike timings.
func BenchmarkHTTPCall(b *testing.B) {
	tl := newTestLog(b)
	cred := tl.session(b, "bench-bot", "", "bench")
	answer := strings.Repeat("x", 512)
	up := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	})
	gw := newGateway(b, tl, `{"routes": {"tools": {"upstream": "{tools}"}}}`, map[string]*upstream{"tools": up})
	body := strings.Repeat("y", 512)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", gw.URL+"/tools/run", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(ReceiptHeader) == "" {
			b.Fatalf("answer %d, receipt %q", resp.StatusCode, resp.Header.Get(ReceiptHeader))
		}
	}
}
