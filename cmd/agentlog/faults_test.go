package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint/ntptest"
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

// rawGet sends one request on c and reads its answer.
func rawGet(c net.Conn, path, extra string) (*http.Response, []byte, error) {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, extra); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestFaultConnectionFlood: with --max-connections taken by idle clients,
// /healthz still answers on a reserve connection, other routes get a JSON
// 503 there, and connections beyond the reserve are closed instead of
// exhausting file descriptors; the server serves normally once they go.
func TestFaultConnectionFlood(t *testing.T) {
	const maxConns = 40
	srv, _ := startFaultServer(t, "--max-connections", fmt.Sprint(maxConns))
	addr := strings.TrimPrefix(srv.url, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		return c
	}
	// Each held connection is proved accepted by one answered request.
	for i := range maxConns {
		if resp, _, err := rawGet(dial(), "/checkpoint", ""); err != nil || resp.StatusCode >= 500 && resp.StatusCode != 503 {
			t.Fatalf("connection %d within the cap: %v", i, err)
		}
	}
	resp, b, err := rawGet(dial(), "/healthz", "")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the cap taken: %v %v %s", resp, err, b)
	}
	resp, b, err = rawGet(dial(), "/v1/entries/0", "")
	var e struct{ Error string }
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Fatalf("other route with the cap taken: %v %v %s, want a JSON 503", resp, err, b)
	}
	// Fill the reserve (the two above were closed by the server).
	for range connReserve {
		dial()
	}
	c := dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("beyond the reserve: read %d bytes, %v; want the connection closed", n, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitFor(t, "connections to be served again", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		resp, _, err := rawGet(c, "/v1/proof/consistency?old=0&size=0", "")
		return err == nil && resp.StatusCode == 200
	})
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
	resp, b, err := rawGet(c, "/healthz", "X-Junk: "+strings.Repeat("j", 64<<10)+"\r\n")
	var e struct{ Error string }
	if err != nil || resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Fatalf("huge headers: %v %v %q, want a JSON 431", resp, err, b)
	}
}
