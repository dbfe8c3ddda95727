// Package proctest builds the repository's commands and runs them as real
// processes, for end-to-end tests: a server is started on a free port and
// ready once it prints the line that names its URL.
package proctest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is a command compiled once per test binary.
type Binary struct {
	// Tags, if set, are the build tags it is compiled with (go build -tags).
	Tags string

	once sync.Once
	path string
	err  error
}

// Get builds the package in pkgDir (a directory relative to the test's
// package, or an import path) as name on first use and returns the
// binary's path. A directory is built in the module that holds it, so a
// test in a separate module (log/interop, witness/interop) builds the
// command exactly as the repository's own go.mod and go.sum pin it.
func (b *Binary) Get(t testing.TB, name, pkgDir string) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-e2e-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		args := []string{"build", "-o", b.path}
		if b.Tags != "" {
			args = append(args, "-tags", b.Tags)
		}
		cmd := exec.Command("go", append(args, pkgDir)...)
		if strings.HasPrefix(pkgDir, ".") || filepath.IsAbs(pkgDir) {
			cmd = exec.Command("go", append(args, ".")...)
			cmd.Dir = pkgDir
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkgDir, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the binary, if it was built; call it from TestMain.
func (b *Binary) Remove() {
	if b.path != "" {
		os.RemoveAll(filepath.Dir(b.path))
	}
}

// Proc is a running server process.
type Proc struct {
	Cmd    *exec.Cmd
	URL    string        // from its ready line
	Done   chan struct{} // closed when it has exited
	Stderr *Buffer
}

// Buffer is a bytes.Buffer safe for a process to write while a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Start runs bin with args and waits for its first line on stdout, which
// must be ready followed by the URL it serves. The process is killed when
// the test ends.
func Start(t testing.TB, bin, ready string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, Stderr: &Buffer{}, Done: make(chan struct{})}
	cmd.Stderr = p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { cmd.Wait(); close(p.Done) }()
	t.Cleanup(p.Kill)
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, ready) {
			t.Fatalf("unexpected first line %q", l)
		}
		p.URL = strings.Fields(strings.TrimPrefix(l, ready))[0]
	case <-p.Done:
		t.Fatalf("%s exited at start:\n%s", filepath.Base(bin), p.Stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", filepath.Base(bin), p.Stderr)
	}
	return p
}

// Kill stops the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Done
}

// Run runs bin with args to its end and returns its stdout, its stderr
// and its exit status; a command that cannot run at all fails the test.
func Run(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", "", -1
}

// RawGet sends one GET of path on c (extra: more header lines, each ending
// in CRLF) and reads its answer, leaving c open: a connection held by a
// test, as a flood's clients hold theirs.
func RawGet(c net.Conn, path, extra string) (*http.Response, []byte, error) {
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

// CheckConnectionCap checks a server's connection cap (internal/listener)
// from outside: with max connections held by idle clients, each proved
// accepted by one answered request, a GET of health still answers 200 on
// a reserve connection and a GET of other gets 503 with Retry-After there
// (a JSON {"error"} if jsonErrors); with the reserve held too, the next
// connection is closed on accept; and once they all close, other is served
// again (any status but 503).
func CheckConnectionCap(t testing.TB, addr string, max, reserve int, health, other string, jsonErrors bool) {
	t.Helper()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		return c
	}
	for i := range max {
		if _, _, err := RawGet(dial(), health, ""); err != nil {
			t.Fatalf("connection %d within the cap: %v", i, err)
		}
	}
	if resp, b, err := RawGet(dial(), health, ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s with the cap taken: %v %v %s", health, resp, err, b)
	}
	resp, b, err := RawGet(dial(), other, "")
	var e struct{ Error string }
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || jsonErrors && (json.Unmarshal(b, &e) != nil || e.Error == "") {
		t.Fatalf("%s with the cap taken: %v %v %s, want 503 with Retry-After", other, resp, err, b)
	}
	// Fill the reserve (the server closed the two above once answered).
	for range reserve {
		dial()
	}
	c := dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", health)
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("beyond the reserve: read %d bytes, %v; want the connection closed", n, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// Until the server has seen them close, a new connection may still be
	// beyond the cap.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			resp, _, err := RawGet(c, other, "")
			c.Close()
			if err == nil && resp.StatusCode != 503 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served again once the connections closed", other)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
