package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/proctest"
)

var agentlogBuild, witnessBuild proctest.Binary

func agentlogBinary(t *testing.T) string { return agentlogBuild.Get(t, "agentlog", ".") }

// witnessBinary compiles cmd/agentlog-witness once per test binary.
func witnessBinary(t *testing.T) string {
	return witnessBuild.Get(t, "agentlog-witness", "../agentlog-witness")
}

// serverProc is a running "agentlog serve" or "agentlog-witness serve",
// with short names for what the tests use.
type serverProc struct {
	*proctest.Proc
	url    string
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *proctest.Buffer
}

// startServer runs "agentlog serve" on a free loopback port and waits
// until it prints its address.
func startServer(t *testing.T, bin string, args ...string) *serverProc {
	t.Helper()
	return startProc(t, bin, "agentlog listening on ", append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
}

// startProc runs bin with args and waits for its first stdout line, which
// must be ready followed by the URL it serves.
func startProc(t *testing.T, bin, ready string, args ...string) *serverProc {
	t.Helper()
	p := proctest.Start(t, bin, ready, args...)
	return &serverProc{Proc: p, url: p.URL, cmd: p.Cmd, done: p.Done, stderr: p.Stderr}
}

func (p *serverProc) kill() { p.Kill() }

// waitFor polls cond (a readiness probe of another process) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func healthz(url string) (map[string]any, error) {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h map[string]any
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

func clockSynced(url string) bool {
	h, err := healthz(url)
	if err != nil {
		return false
	}
	c, _ := h["clock"].(map[string]any)
	synced, _ := c["synced"].(bool)
	return synced
}

type acked struct {
	index uint64
	hash  []byte
	time  string
}

// TestCrashRecovery is the end-to-end test of the log core: the real
// binary, a loopback NTP server whose clock is 3 hours ahead, appends from
// many goroutines, SIGKILL in the middle of the load, restart; every
// acknowledged entry must be present and provable, the new checkpoint
// consistent with one signed before the crash, and entry times must follow
// the NTP clock rather than the local one.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	const offset = 3 * time.Hour
	ntp, err := ntptest.Listen("127.0.0.1:0", offset)
	if err != nil {
		t.Fatal(err)
	}
	defer ntp.Close()
	data := t.TempDir()
	args := []string{"--data", data, "--ntp", ntp.Addr(), "--checkpoint-interval", "100ms", "--origin", "e2e.example/log", "--require-ntp"}
	srv := startServer(t, bin, args...)
	waitFor(t, "the clock to sync", func() bool { return clockSynced(srv.url) })

	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(data, "admin.token")); st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Join(data, "log.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("log.key mode %v", st.Mode().Perm())
	}
	logPub, _ := os.ReadFile(filepath.Join(data, "log.pub"))
	timePub, _ := os.ReadFile(filepath.Join(data, "time.pub"))
	v, err := client.NewVerifier(string(logPub), string(timePub))
	if err != nil {
		t.Fatal(err)
	}
	// Agents append with a session credential; the admin reads.
	sess := provisionSession(t, srv.url, string(tok), "crash-writer", "crash-test")
	c, err := client.New(srv.url, client.WithToken(sess))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Load from many goroutines; kill the server once enough is acknowledged.
	var mu sync.Mutex
	var acks []acked
	var old atomicCheckpoint
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				recs := make([]client.Record, 1+i%4)
				for j := range recs {
					recs[j] = client.Record{Action: "e2e.write", Resource: fmt.Sprintf("w%d/%d/%d", w, i, j)}
				}
				res, err := c.Append(ctx, recs...)
				if err != nil {
					return // the server was killed
				}
				mu.Lock()
				for _, r := range res {
					acks = append(acks, acked{r.Index, r.LeafHash, r.Time})
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "a first checkpoint under load", func() bool {
		cp, err := c.VerifiedCheckpoint(ctx, v)
		if err != nil || cp.Size == 0 {
			return false
		}
		old.set(cp.Raw)
		return true
	})
	waitFor(t, "2000 acknowledged entries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) >= 2000
	})
	srv.kill() // SIGKILL mid-load
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("acknowledged %d entries before SIGKILL", len(acks))

	srv = startServer(t, bin, args...)
	c, _ = client.New(srv.url, client.WithToken(string(tok)))
	// The session survives the restart.
	if _, err := mustClient(t, srv.url, sess).Append(ctx, client.Record{Action: "after.restart"}); err != nil {
		t.Fatalf("session credential refused after restart: %v", err)
	}
	var maxIdx uint64
	for _, a := range acks {
		maxIdx = max(maxIdx, a.index)
	}
	var cp = waitCheckpoint(t, c, v, maxIdx+1)
	oldCP, err := openCP(old.get(), v)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyConsistency(ctx, oldCP, cp); err != nil {
		t.Fatalf("checkpoint after restart is not consistent with the one before the crash: %v", err)
	}
	now := time.Now()
	for _, a := range acks {
		leaf, err := c.Entry(ctx, a.index)
		if err != nil {
			t.Fatalf("acknowledged entry %d lost: %v", a.index, err)
		}
		if !bytes.Equal(client.LeafHash(leaf), a.hash) {
			t.Fatalf("entry %d differs from the acknowledged one", a.index)
		}
		if err := c.VerifyInclusion(ctx, cp, a.index, leaf); err != nil {
			t.Fatal(err)
		}
		var l struct{ Time time.Time }
		if err := json.Unmarshal(leaf, &l); err != nil {
			t.Fatal(err)
		}
		// Entry times follow the NTP clock (3h ahead), not the local one.
		if d := l.Time.Sub(now.Add(offset)); d > time.Minute || d < -5*time.Minute {
			t.Fatalf("entry %d time %v is not the NTP time (local now %v, NTP offset %v)", a.index, l.Time, now, offset)
		}
	}
	if d := cp.Time.Sub(now.Add(offset)); d > time.Minute || d < -5*time.Minute {
		t.Fatalf("checkpoint time %v is not the NTP time", cp.Time)
	}
	// Restarting cleanly (SIGTERM) drains and keeps everything.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.done
	if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("graceful shutdown exited %d:\n%s", code, srv.stderr)
	}
}

// TestRestoredOldDataRefused checks the log refuses to start when its
// database is older than the last checkpoint it signed (a restored backup),
// naming both checkpoints.
func TestRestoredOldDataRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	args := []string{"--data", data, "--ntp", "127.0.0.1:1", "--checkpoint-interval", "50ms"}
	srv := startServer(t, bin, args...)
	tok, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	sess := provisionSession(t, srv.url, string(tok), "restore-writer", "restore-test")
	c := mustClient(t, srv.url, sess)
	ctx := context.Background()
	res, err := c.Append(ctx, client.Record{Action: "first"})
	if err != nil {
		t.Fatal(err)
	}
	backupSize := res[0].Index + 1
	logPub, _ := os.ReadFile(filepath.Join(data, "log.pub"))
	v, _ := client.NewVerifier(string(logPub), "")
	waitCheckpoint(t, c, v, backupSize)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.done
	// "Back up" the database at its size now.
	backup := t.TempDir()
	copyDir(t, filepath.Join(data, "db"), backup)
	srv = startServer(t, bin, args...)
	c = mustClient(t, srv.url, sess)
	var laterSize uint64
	for i := 0; i < 3; i++ {
		res, err := c.Append(ctx, client.Record{Action: "later"})
		if err != nil {
			t.Fatal(err)
		}
		laterSize = res[0].Index + 1
	}
	waitCheckpoint(t, c, v, laterSize)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.done
	// Restore the old database; the checkpoint file says size 4.
	os.RemoveAll(filepath.Join(data, "db"))
	copyDir(t, backup, filepath.Join(data, "db"))
	out, err := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("server started on a restored old database: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refusing to start") || !strings.Contains(string(out), fmt.Sprintf("size %d", backupSize)) || !strings.Contains(string(out), fmt.Sprintf("size %d", laterSize)) {
		t.Fatalf("unclear refusal:\n%s", out)
	}
	t.Logf("refusal: %s", out)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

func waitCheckpoint(t *testing.T, c *client.Client, v *client.Verifier, size uint64) *checkpointSigned {
	t.Helper()
	var cp *checkpointSigned
	waitFor(t, fmt.Sprintf("a checkpoint of size >= %d", size), func() bool {
		got, err := c.VerifiedCheckpoint(context.Background(), v)
		if err != nil || got.Size < size {
			return false
		}
		cp = got
		return true
	})
	return cp
}

type atomicCheckpoint struct {
	mu  sync.Mutex
	raw []byte
}

func (a *atomicCheckpoint) set(b []byte) { a.mu.Lock(); a.raw = b; a.mu.Unlock() }
func (a *atomicCheckpoint) get() []byte  { a.mu.Lock(); defer a.mu.Unlock(); return a.raw }

type checkpointSigned = checkpoint.Signed

func openCP(raw []byte, v *client.Verifier) (*checkpoint.Signed, error) {
	return checkpoint.Open(raw, v.Log, v.Time)
}

// provisionSession registers and approves agent id with the admin token
// and opens a two-hour session for task, returning its credential.
func provisionSession(t *testing.T, url, adminTok, id, task string) string {
	t.Helper()
	ctx := context.Background()
	admin := mustClient(t, url, adminTok)
	key, _ := agentlog.GenerateAgentKey(id)
	if _, err := admin.RegisterAgent(ctx, client.AgentRegistration{ID: id, Owner: "e2e", PublicKey: key.Public().(ed25519.PublicKey)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApproveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	a, err := client.NewAgent(url, client.AgentConfig{ID: id, Key: key, Task: task, TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s.Credential
}

func mustClient(t *testing.T, url, tok string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.WithToken(strings.TrimSpace(tok)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShutdownCannotHang removes the database under a running server, then
// asks it to stop: it cannot flush, and must exit (non-zero) within its
// --shutdown-timeout instead of retrying forever.
func TestShutdownCannotHang(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	data := t.TempDir()
	srv := startServer(t, bin, "--data", data, "--ntp", "127.0.0.1:1", "--shutdown-timeout", "3s")
	tok, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	sess := provisionSession(t, srv.url, string(tok), "doomed-bot", "t")
	c := mustClient(t, srv.url, sess)
	for i := 0; i < 20; i++ {
		if _, err := c.Append(context.Background(), client.Record{Action: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(data, "db")); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("server still running a minute after SIGTERM:\n%s", srv.stderr)
	}
	t.Logf("exit code %d", srv.cmd.ProcessState.ExitCode())
}
