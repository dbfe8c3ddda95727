package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/ntptest"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/servicetest"
)

// replicationEnv is a bucket on the test S3 server, with the AWS
// environment set for the processes the test starts, and a loopback NTP
// server.
type replicationEnv struct {
	s3     *s3.Client
	bucket string
	ntp    string
}

func newReplicationEnv(t *testing.T) *replicationEnv {
	t.Helper()
	servicetest.S3Env(t)
	c := servicetest.S3Client(os.Getenv("AWS_ENDPOINT_URL"))
	ntp, err := ntptest.Listen("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ntp.Close() })
	return &replicationEnv{s3: c, bucket: servicetest.Bucket(t, c), ntp: ntp.Addr()}
}

// pgLockFlag returns a --lock URL for the test database without its
// password, which goes to a PGPASSFILE in the environment.
func pgLockFlag(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(servicetest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	pass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pass, fmt.Appendf(nil, "%s:%s:*:%s:%s\n", u.Hostname(), u.Port(), u.User.Username(), pw), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pass)
	u.User = url.User(u.User.Username())
	// Each test gets its own lock row: the lock is keyed by the origin.
	return u.String()
}

// bucketCheckpoint returns the bucket's latest checkpoint, nil if none.
func (e *replicationEnv) bucketCheckpoint(t *testing.T, prefix string) []byte {
	t.Helper()
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(prefix + "checkpoint")})
	if err != nil {
		if strings.Contains(err.Error(), "NoSuchKey") || strings.Contains(err.Error(), "404") {
			return nil
		}
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b
}

// TestReplicatedServe runs the real server with a mirror, once with the s3
// lock and replicated durability (every acknowledged entry is already in
// the bucket under a checkpoint), once with the postgres lock and local
// durability (the bucket catches up, /healthz reports the lag). A restart
// after SIGKILL resumes as the same node; a second active on the same
// bucket and lock refuses to start while the first renews its lease.
func TestReplicatedServe(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := agentlogBinary(t)
	for _, tc := range []struct{ lock, durability string }{{"s3", "replicated"}, {"postgres", "local"}} {
		t.Run(tc.lock+"-"+tc.durability, func(t *testing.T) {
			e := newReplicationEnv(t)
			lock := tc.lock
			if lock == "postgres" {
				lock = pgLockFlag(t)
			}
			origin := "replication.example/" + servicetest.RandomName(t)
			data := t.TempDir()
			args := []string{"--ntp", e.ntp, "--checkpoint-interval", "100ms", "--origin", origin,
				"--mirror", "s3://" + e.bucket + "/log", "--mirror-retention", "2d", "--mirror-lock", "governance",
				"--lock", lock, "--durability", tc.durability, "--lease", "1s"}
			srv := startServer(t, bin, append([]string{"--data", data}, args...)...)
			waitFor(t, "the clock to sync", func() bool { return clockSynced(srv.url) })
			adminTok, err := os.ReadFile(filepath.Join(data, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			sess := provisionSession(t, srv.url, string(adminTok), "bot-1", "replicate")
			logKey, _ := os.ReadFile(filepath.Join(data, "log.pub"))
			timeKey, _ := os.ReadFile(filepath.Join(data, "time.pub"))
			v, err := client.NewVerifier(strings.TrimSpace(string(logKey)), strings.TrimSpace(string(timeKey)))
			if err != nil {
				t.Fatal(err)
			}

			// Appends from several agents' goroutines.
			c := mustClient(t, srv.url, sess)
			var mu sync.Mutex
			var last uint64
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 10 {
						res, err := c.Append(context.Background(), client.Record{Action: "replicate", Resource: fmt.Sprint(g, "/", i)})
						if err != nil {
							t.Error(err)
							return
						}
						idx := res[0].Index
						if tc.durability == "replicated" {
							// Acknowledged means in the bucket, under a
							// checkpoint that covers it.
							raw := e.bucketCheckpoint(t, "log/")
							cp, err := openCP(raw, v)
							if err != nil || cp.Size <= idx {
								t.Errorf("entry %d acknowledged, bucket checkpoint %v (%v)", idx, cp, err)
							}
						}
						mu.Lock()
						last = max(last, idx)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			// The bucket catches up, /checkpoint serves what the bucket
			// holds, and /healthz reports no lag.
			waitFor(t, "the mirror to catch up", func() bool {
				h, err := healthz(srv.url)
				if err != nil {
					return false
				}
				m, _ := h["mirror"].(map[string]any)
				lag, ok := m["lag_entries"].(float64)
				return ok && lag == 0 && h["status"] == "ok"
			})
			cp := waitCheckpoint(t, c, v, last+1)
			if b := e.bucketCheckpoint(t, "log/"); string(b) != string(cp.Raw) {
				t.Fatalf("/checkpoint serves\n%s\nthe bucket holds\n%s", cp.Raw, b)
			}

			// A second active with the same keys and another data
			// directory cannot take the renewed lock.
			other := t.TempDir()
			for _, f := range []string{checkpoint.LogKeyFile, "log.pub", checkpoint.TimeKeyFile, "time.pub"} {
				b, _ := os.ReadFile(filepath.Join(data, f))
				os.WriteFile(filepath.Join(other, f), b, 0o600)
			}
			out, stderr, code := runBin(t, bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", other}, args...)...)
			if code == 0 || !strings.Contains(stderr, "holds the log's lock") {
				t.Fatalf("second active: exit %d\n%s\n%s", code, out, stderr)
			}

			// SIGKILL: auditors and monitors read the log from the bucket
			// alone while the server is down.
			srv.kill()
			if tc.lock == "s3" {
				readFromMirror(t, bin, "s3://"+e.bucket+"/log", data, last+1)
			}

			// Restart: the same node resumes at once.
			start := time.Now()
			srv = startServer(t, bin, append([]string{"--data", data}, args...)...)
			t.Logf("restarted in %v", time.Since(start))
			c = mustClient(t, srv.url, sess)
			res, err := c.Append(context.Background(), client.Record{Action: "after-restart"})
			if err != nil {
				t.Fatal(err)
			}
			waitCheckpoint(t, c, v, res[0].Index+1)
			waitFor(t, "the bucket to hold the entry appended after the restart", func() bool {
				cp, err := openCP(e.bucketCheckpoint(t, "log/"), v)
				return err == nil && cp.Size > res[0].Index
			})
			if tc.lock == "s3" {
				// Evidence: the query from the server, the checkpoint,
				// bundles and proofs from the bucket; it verifies offline.
				ev := filepath.Join(t.TempDir(), "evidence")
				out, errs, code := runBin(t, bin, "evidence", "export", "--server", srv.url, "--mirror", "s3://"+e.bucket+"/log",
					"--token-file", filepath.Join(data, "admin.token"), "--agent", "bot-1", "--action", "replicate",
					"--log-key", filepath.Join(data, "log.pub"), "--out", ev)
				if code != 0 {
					t.Fatalf("evidence export with --mirror exited %d:\n%s\n%s", code, out, errs)
				}
				out, errs, code = runBin(t, bin, "evidence", "verify", ev, "--log-key", filepath.Join(data, "log.pub"))
				if code != 0 {
					t.Fatalf("evidence verify exited %d:\n%s\n%s", code, out, errs)
				}
			}
		})
	}
}

// readFromMirror runs audit, monitor and evidence export against the
// mirror with no server reachable (--server names a closed port): what they
// prove comes from the bucket, verified against the log's key.
func readFromMirror(t *testing.T, bin, mirrorURL, data string, size uint64) {
	t.Helper()
	dir := t.TempDir()
	logPub, _ := os.ReadFile(filepath.Join(data, "log.pub"))
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("log "+strings.TrimSpace(string(logPub))+"\nquorum none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dead := "http://127.0.0.1:1"
	tok := filepath.Join(data, "admin.token")
	out, errs, code := runBin(t, bin, "audit", "--server", dead, "--mirror", mirrorURL, "--token-file", tok, "--policy", policy, "--json")
	if code != 0 {
		t.Fatalf("audit from the mirror exited %d:\n%s\n%s", code, out, errs)
	}
	var r client.AuditReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.OK() || r.End < size {
		t.Fatalf("audit from the mirror: %v: %s", err, out)
	}
	state := filepath.Join(dir, "monitor.state")
	out, errs, code = runBin(t, bin, "monitor", "--once", "--server", dead, "--mirror", mirrorURL, "--policy", policy, "--state", state)
	if code != 0 {
		t.Fatalf("monitor from the mirror exited %d:\n%s\n%s", code, out, errs)
	}
}
