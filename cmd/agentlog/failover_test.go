package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/servicetest"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// TestFailover is the failover test with processes: an active log under
// load with --durability replicated and a standby following its bucket
// (postgres lock). The active is killed with SIGKILL; the standby takes
// over within 10 s and the agents carry on against it with the same
// session credential (rebuilt from the log's entries). Every acknowledged
// entry is on the new active at its index, and every checkpoint ever
// published (by either node, from the bucket's version history) is
// consistent with the new active's latest.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	fp := startFailoverPair(t, "failover.example", false)
	bin, e, common, dataA, a, s := fp.bin, fp.e, fp.common, fp.dataA, fp.a, fp.s
	adminTok, _ := os.ReadFile(filepath.Join(dataA, "admin.token"))
	sess := provisionSession(t, a.url, string(adminTok), "bot-1", "failover")
	logKey, _ := os.ReadFile(filepath.Join(dataA, "log.pub"))
	timeKey, _ := os.ReadFile(filepath.Join(dataA, "time.pub"))
	v, err := client.NewVerifier(strings.TrimSpace(string(logKey)), strings.TrimSpace(string(timeKey)))
	if err != nil {
		t.Fatal(err)
	}
	mirrorRole := func(url string) (string, float64) {
		h, err := healthz(url)
		if err != nil {
			return "", 0
		}
		m, _ := h["mirror"].(map[string]any)
		role, _ := m["role"].(string)
		size, _ := h["tree_size"].(float64)
		return role, size
	}
	if role, _ := mirrorRole(s.url); role != "standby" {
		t.Fatalf("the standby's role is %q", role)
	}
	// A standby refuses appends.
	if _, err := mustClient(t, s.url, sess).Append(context.Background(), client.Record{Action: "too-early"}); err == nil {
		t.Fatal("the standby accepted an append")
	}

	// Load: agents appending to the active, each entry acknowledged only
	// once in the bucket.
	type ack struct {
		index uint64
		hash  []byte
	}
	var mu sync.Mutex
	var acks []ack
	var killedAt time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			c := mustClient(t, a.url, sess)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.Append(context.Background(), client.Record{Action: "load", Resource: fmt.Sprint(g, "/", i)})
				if err != nil {
					return // the active died
				}
				mu.Lock()
				acks = append(acks, ack{res[0].Index, res[0].LeafHash})
				mu.Unlock()
			}
		})
	}
	waitFor(t, "acknowledged load", func() bool { mu.Lock(); defer mu.Unlock(); return len(acks) >= 200 })
	_, standbySize := mirrorRole(s.url)
	if standbySize == 0 {
		t.Fatal("the standby has not followed the bucket")
	}
	killedAt = time.Now()
	a.kill()
	close(stop)
	wg.Wait()

	// The standby takes over: an agent that knows both servers appends
	// with the same session credential, following the failover itself.
	agent, err := client.NewAgent(a.url, client.AgentConfig{Credential: sess, Servers: []string{s.url}, MaxRetries: 30})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := agent.Append(ctx, client.Record{Action: "after-failover"})
	if err != nil {
		t.Fatalf("the agent's append after the failover: %v", err)
	}
	takeover := time.Since(killedAt)
	c := mustClient(t, s.url, sess)
	t.Logf("takeover: first append on the standby %v after SIGKILL of the active (lease 2s); %d entries acknowledged before", takeover, len(acks))
	if takeover > 10*time.Second {
		t.Errorf("takeover took %v, more than 10s", takeover)
	}
	if role, _ := mirrorRole(s.url); role != "active" {
		t.Fatalf("after takeover the standby's role is %q", role)
	}
	final := waitCheckpoint(t, c, v, first[0].Index+1)

	// Every acknowledged entry is there at its index.
	admin := mustClient(t, s.url, string(adminTok))
	sort.Slice(acks, func(i, j int) bool { return acks[i].index < acks[j].index })
	for _, k := range acks {
		leaf, err := admin.Entry(context.Background(), k.index)
		if err != nil {
			t.Fatalf("acknowledged entry %d: %v", k.index, err)
		}
		h := sha256.Sum256(append([]byte{0}, leaf...))
		if !bytes.Equal(h[:], k.hash) {
			t.Fatalf("entry %d on the new active is not the acknowledged one", k.index)
		}
	}
	if first[0].Index <= acks[len(acks)-1].index {
		t.Fatalf("the new active appended at %d, at or below an acknowledged index %d", first[0].Index, acks[len(acks)-1].index)
	}

	// Every checkpoint ever published is consistent with the final one.
	hist := bucketHistory(t, e, "log/checkpoint", v)
	if len(hist) < 2 {
		t.Fatalf("the bucket holds %d checkpoints", len(hist))
	}
	for _, cp := range hist {
		if err := c.VerifyConsistency(context.Background(), cp, final); err != nil {
			t.Fatalf("published checkpoint at size %d is not consistent with the final one at %d: %v", cp.Size, final.Size, err)
		}
	}
	t.Logf("%d checkpoint versions in the bucket, all consistent with the final size %d", len(hist), final.Size)

	// The old active comes back: it finds the lock held and renewed by the
	// new active and refuses to start; what it committed beyond its last
	// published checkpoint (never acknowledged: replicated durability) is
	// in its quarantine directory, not signed.
	out, stderr, code := runBin(t, bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dataA}, common...)...)
	if code == 0 || !strings.Contains(stderr, "holds the log's lock") {
		t.Fatalf("the old active restarted: exit %d\n%s\n%s", code, out, stderr)
	}
	q, _ := filepath.Glob(filepath.Join(dataA, "quarantine", "*.ndjson"))
	ackedAt := map[uint64]bool{}
	for _, k := range acks {
		ackedAt[k.index] = true
	}
	quarantined := 0
	for _, f := range q {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct {
				Index uint64 `json:"index"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("quarantine line %q: %v", line, err)
			}
			if ackedAt[e.Index] {
				t.Fatalf("entry %d, acknowledged and in the log, was quarantined", e.Index)
			}
			quarantined++
		}
	}
	t.Logf("the old active refused to start; %d entries it committed but never acknowledged are in quarantine (%v)", quarantined, q)
	if cpNow := waitCheckpoint(t, c, v, final.Size); cpNow.Size < final.Size {
		t.Fatal("the new active's checkpoint went back")
	}
}

// failoverPair is an active log with --durability replicated, a postgres
// lock and a 2 s lease, and a standby of it following its bucket, given
// the log's keys and admin token: the same log on another machine. With
// witnessed, both run with a witness policy of one witness process; extra
// flags override those.
type failoverPair struct {
	bin          string
	e            *replicationEnv
	common       []string // the flags both were started with
	dataA, dataS string
	a, s         *serverProc
	policy       *policy.Policy // with witnessed
}

func startFailoverPair(t *testing.T, name string, witnessed bool, extra ...string) *failoverPair {
	t.Helper()
	return startFailoverPairWith(t, name, witnessed, nil, extra...)
}

// startFailoverPairWith is startFailoverPair with flags given to the
// active alone (after the common ones).
func startFailoverPairWith(t *testing.T, name string, witnessed bool, activeOnly []string, extra ...string) *failoverPair {
	t.Helper()
	return startFailoverPairSides(t, name, witnessed, activeOnly, nil, extra...)
}

// startFailoverPairSides is startFailoverPairWith with flags given to the
// standby alone too.
func startFailoverPairSides(t *testing.T, name string, witnessed bool, activeOnly, standbyOnly []string, extra ...string) *failoverPair {
	t.Helper()
	fp := &failoverPair{bin: agentlogBinary(t), e: newReplicationEnv(t), dataA: t.TempDir(), dataS: t.TempDir()}
	origin := name + "/" + servicetest.RandomName(t)
	fp.common = []string{"--ntp", fp.e.ntp, "--checkpoint-interval", "200ms", "--origin", origin,
		"--mirror", "s3://" + fp.e.bucket + "/log", "--mirror-retention", "2d", "--mirror-lock", "governance",
		"--lock", pgLockFlag(t), "--durability", "replicated", "--lease", "2s"}
	fp.common = append(fp.common, extra...) // later flags win
	if witnessed {
		keys, _, err := checkpoint.LoadOrCreateKeys(fp.dataA, origin) // the server reuses them
		if err != nil {
			t.Fatal(err)
		}
		wdir := t.TempDir()
		w := startWitnessProc(t, witnessBinary(t), "--data", wdir, "--listen", "127.0.0.1:0", "--name", "w0.failover.example", "--log", keys.LogVKey, "--ntp", fp.e.ntp)
		pub, err := os.ReadFile(filepath.Join(wdir, witness.PubFile))
		if err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("log %s\nwitness W0 %s %s\nquorum W0\n", keys.LogVKey, strings.TrimSpace(string(pub)), w.url)
		if fp.policy, err = policy.Parse([]byte(text)); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "policy")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fp.common = append(fp.common, "--witness-policy", file)
	}
	fp.a = startServer(t, fp.bin, append(append([]string{"--data", fp.dataA}, fp.common...), activeOnly...)...)
	waitFor(t, "the clock to sync", func() bool { return clockSynced(fp.a.url) })
	for _, f := range []string{checkpoint.LogKeyFile, "log.pub", checkpoint.TimeKeyFile, "time.pub", "admin.token"} {
		b, err := os.ReadFile(filepath.Join(fp.dataA, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fp.dataS, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fp.s = startServer(t, fp.bin, append(append([]string{"--data", fp.dataS, "--standby"}, fp.common...), standbyOnly...)...)
	return fp
}

// witnessed returns the size of url's /checkpoint if it meets the
// policy, and fails the test if it is served but does not.
func (fp *failoverPair) witnessed(t *testing.T, url string) uint64 {
	t.Helper()
	code, raw, err := getBody(url + "/checkpoint")
	if err != nil || code != http.StatusOK {
		return 0
	}
	v, err := fp.policy.Verify(raw)
	if err != nil {
		t.Fatalf("%s/checkpoint serves a checkpoint without the witness quorum: %v\n%s", url, err, raw)
	}
	return v.Size
}

// bucketHistory returns every version of key in the test bucket, verified.
func bucketHistory(t *testing.T, e *replicationEnv, key string, v *client.Verifier) []*checkpoint.Signed {
	t.Helper()
	var out []*checkpoint.Signed
	p := s3.NewListObjectVersionsPaginator(e.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(key)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, ver := range page.Versions {
			if *ver.Key != key {
				continue
			}
			o, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: ver.Key, VersionId: ver.VersionId})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(o.Body)
			o.Body.Close()
			cp, err := openCP(raw, v)
			if err != nil {
				t.Fatalf("checkpoint version %s: %v", *ver.VersionId, err)
			}
			out = append(out, cp)
		}
	}
	return out
}
