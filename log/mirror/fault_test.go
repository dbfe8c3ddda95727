package mirror_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/faultproxy"
	"github.com/agentlog/agentlog/internal/servicetest"
	"github.com/agentlog/agentlog/log/mirror"
)

// TestMirrorSurvivesStoreFaults puts a proxy between the mirror and the
// store that fails, drops (before and after the store saw the request)
// and delays requests, and grows the log through it for 25 checkpoint
// rounds. Commits may fail, but every checkpoint that was published, and
// every checkpoint in the bucket's version history, is provable from the
// bucket alone; the mirror is never wrongly superseded (a lock write whose
// answer was lost is recognized as its own); and once the faults stop it
// catches up.
func TestMirrorSurvivesStoreFaults(t *testing.T) {
	t.Parallel()
	endpoint := servicetest.S3Endpoint(t)
	e := newS3(t)
	px, err := faultproxy.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	faulty := servicetest.S3Client(px.URL)
	b, err := mirror.OpenBucket(context.Background(), mirror.BucketConfig{Client: faulty, URL: e.url, Retention: testRetention, Mode: "governance"})
	if err != nil {
		t.Fatal(err)
	}
	lock, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	n := newNode(t, t.TempDir())
	m, err := mirror.New(context.Background(), mirror.Config{
		Bucket: b, Lock: lock, Source: mirror.FromLog(n.log), Keys: n.keys, Holder: "node-a", LeaseTime: 4 * time.Second, Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, m)
	var published []*checkpoint.Signed
	loop, err := signer.New(signer.Config{
		Keys: n.keys, Source: n.log.Tree(), Store: signer.FileStore{Path: filepath.Join(n.dir, "checkpoint")},
		Commit: m.Commit, Publish: func(c *checkpoint.Signed) { published = append(published, c) },
	})
	if err != nil {
		t.Fatal(err)
	}
	px.Set(faultproxy.Faults{Fail: 0.08, DropLost: 0.04, DropAfter: 0.08, Delay: 0.05, DelayBy: 30 * time.Millisecond,
		Only: func(r *http.Request) bool { return r.Method == http.MethodPut || r.Method == http.MethodGet }})
	rnd := rand.New(rand.NewPCG(3, 4))
	failed := 0
	for range 25 {
		n.add(t, 1+rnd.IntN(400))
		if _, err := loop.SignNow(); err != nil {
			failed++
			if !strings.Contains(err.Error(), "not committed") {
				t.Fatalf("SignNow: %v", err)
			}
		}
	}
	px.Set(faultproxy.Faults{})
	var final *checkpoint.Signed
	deadline := time.Now().Add(90 * time.Second)
	for final == nil || final.Size != n.log.Size() {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up after the faults stopped: %v", m.Status())
		}
		if final, err = loop.SignNow(); err != nil {
			final = nil
			time.Sleep(100 * time.Millisecond) // the mirror's retry backoff
		}
	}
	if err := m.Superseded(); err != nil {
		t.Fatalf("the mirror was superseded by faults alone: %v", err)
	}
	t.Logf("%d of 25 rounds failed; requests: %d passed, %d failed, %d lost, %d dropped after the store saw them, %d delayed; %d checkpoints published",
		failed, px.Passed.Load(), px.Failed.Load(), px.Lost.Load(), px.DroppedAfter.Load(), px.Delayed.Load(), len(published))
	if px.Failed.Load()+px.Lost.Load()+px.DroppedAfter.Load() == 0 {
		t.Fatal("no fault was injected")
	}
	checkStaticLog(t, e, final)
	for _, c := range published {
		proveFromBucket(t, e, c, false)
	}
	hist := checkpointHistory(t, e, n)
	for _, c := range hist {
		proveFromBucket(t, e, c, false)
	}
	t.Logf("%d checkpoint versions in the bucket, each provable from it", len(hist))
}
