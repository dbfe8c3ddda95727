package main

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/agentlog/agentlog/internal/proctest"
)

// TestBenchNull: bench null answers every POST /add with 1, so bench peer
// against it counts requests and no failure; a body over the cap is a 413
// and another path a 404, each with a JSON error; SIGTERM stops it with
// exit status 0.
func TestBenchNull(t *testing.T) {
	bin := devBinary(t)
	p := proctest.Start(t, bin, "agentlog-dev bench null serving ", "bench", "null", "--listen", "127.0.0.1:0")
	out := mustCLI(t, bin, "bench", "peer", "--url", p.URL, "--concurrency", "4", "--duration", "300ms")
	if m := regexp.MustCompile(`requests=(\d+) `).FindStringSubmatch(out); m == nil || m[1] == "0" || !strings.Contains(out, "failures=0") {
		t.Fatalf("bench peer against bench null:\n%s", out)
	}
	for _, c := range []struct {
		method, url string
		body        []byte
		status      int
	}{
		{http.MethodPost, p.URL, bytes.Repeat([]byte("x"), nullMaxBody+1), http.StatusRequestEntityTooLarge},
		{http.MethodGet, p.URL, nil, http.StatusNotFound},
		{http.MethodPost, strings.TrimSuffix(p.URL, "/add") + "/other", []byte("x"), http.StatusNotFound},
		{http.MethodPost, p.URL, bytes.Repeat([]byte("x"), nullMaxBody), http.StatusOK},
	} {
		req, err := http.NewRequest(c.method, c.url, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantBody := "1\n"
		if c.status != http.StatusOK {
			wantBody = `{"error":`
		}
		if resp.StatusCode != c.status || !strings.HasPrefix(string(b), wantBody) {
			t.Errorf("%s %s with %d bytes: %d %q, want %d %q", c.method, c.url, len(c.body), resp.StatusCode, b, c.status, wantBody)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	<-p.Done
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("bench null exited with %d after SIGTERM:\n%s", code, p.Stderr)
	}
}
