package listener

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, cfg Config, maxHeader int) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(ln, cfg)
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if Overflow(r.Context()) && r.URL.Path != "/healthz" {
				w.Header().Set("Connection", "close")
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		}),
		ConnContext:    ConnContext,
		MaxHeaderBytes: maxHeader,
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l, ln.Addr().String()
}

func get(t *testing.T, c net.Conn, path string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCap: Max connections are served; the Reserve beyond it answers health
// checks only; beyond both a connection is closed at once; a closed
// connection frees its place.
func TestCap(t *testing.T) {
	l, addr := serve(t, Config{Max: 3, Reserve: 1}, 0)
	var held []net.Conn
	for range 3 {
		c := dial(t, addr)
		if resp, b := get(t, c, "/v1/x"); resp.StatusCode != 200 || b != "ok" {
			t.Fatalf("within the cap: %d %q", resp.StatusCode, b)
		}
		held = append(held, c)
	}
	spare := dial(t, addr)
	if resp, _ := get(t, spare, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("health check on the reserve: %d", resp.StatusCode)
	}
	if resp, _ := get(t, spare, "/v1/x"); resp.StatusCode != 503 {
		t.Fatalf("other route on the reserve: %d, want 503", resp.StatusCode)
	}
	// The 503 closed the spare; the reserve place is free again once the
	// server has counted the close (wait for it: a dial before then is
	// beyond the cap and refused).
	waitOpen(t, l, 3)
	spare = dial(t, addr)
	if resp, _ := get(t, spare, "/healthz"); resp.StatusCode != 200 {
		t.Fatalf("health check on the reserve: %d", resp.StatusCode)
	}
	over := dial(t, addr)
	over.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("beyond Max+Reserve: read %d, %v; want the connection closed", n, err)
	}
	if l.Open() != 4 {
		t.Fatalf("%d connections open, want 4", l.Open())
	}
	held[0].Close()
	spare.Close()
	// The server notices the closes when its reads end: wait for the count.
	waitOpen(t, l, 2)
	c := dial(t, addr)
	if resp, _ := get(t, c, "/v1/x"); resp.StatusCode != 200 {
		t.Fatalf("after a close: %d", resp.StatusCode)
	}
}

// waitOpen waits until at most n connections are counted open.
func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Open() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open, want at most %d", l.Open(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestJSONErrors: the answers Go's server writes by itself are JSON.
func TestJSONErrors(t *testing.T) {
	_, addr := serve(t, Config{Max: 10}, 1<<10)
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"malformed", "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad transfer encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, br\r\n\r\n", 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			var e struct{ Error string }
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
				t.Fatalf("%d %q %q, want %d with a JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.code)
			}
		})
	}
}
