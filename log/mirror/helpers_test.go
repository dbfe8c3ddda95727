package mirror_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/servicetest"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/mirror"
)

const testOrigin = "example.com/mirror-test"

// node is one log with its own data directory, keys shared with its peers.
type node struct {
	dir  string
	log  *alog.Log
	keys *checkpoint.Keys
}

func newNode(t *testing.T, keysDir string) *node {
	t.Helper()
	keys, _, err := checkpoint.LoadOrCreateKeys(keysDir, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := alog.Open(alog.Config{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &node{dir: dir, log: l, keys: keys}
}

// add appends n entries in batches.
func (n *node) add(t *testing.T, count int) {
	t.Helper()
	p := alog.Principal{ID: "admin", Role: "admin"}
	for count > 0 {
		k := min(count, alog.MaxEntriesPerRequest)
		recs := make([]alog.Record, k)
		for i := range recs {
			recs[i] = alog.Record{Action: fmt.Sprintf("act-%d-%d", n.log.Size(), i)}
		}
		if _, err := n.log.Append(context.Background(), p, alog.KindAction, recs); err != nil {
			t.Fatal(err)
		}
		count -= k
	}
}

// s3env is the test S3 server, a fresh locked bucket on it, and a client.
type s3env struct {
	client *s3.Client
	bucket string
	url    string
}

func newS3(t *testing.T) *s3env {
	t.Helper()
	c := servicetest.S3Client(servicetest.S3Endpoint(t))
	b := servicetest.Bucket(t, c)
	return &s3env{client: c, bucket: b, url: "s3://" + b + "/logs/one"}
}

const testRetention = 48 * time.Hour

func (e *s3env) open(t *testing.T, mode string) *mirror.Bucket {
	t.Helper()
	b, err := mirror.OpenBucket(context.Background(), mirror.BucketConfig{Client: e.client, URL: e.url, Retention: testRetention, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newMirror makes a mirror of n holding lock as holder.
func newMirror(t *testing.T, n *node, b *mirror.Bucket, lock mirror.Lock, holder string, onSuperseded func(error)) *mirror.Mirror {
	t.Helper()
	m, err := mirror.New(context.Background(), mirror.Config{
		Bucket: b, Lock: lock, Source: mirror.FromLog(n.log), Keys: n.keys, Holder: holder,
		LeaseTime: 2 * time.Second, OnSuperseded: onSuperseded,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run acquires the lock for m and renews it until the test ends.
func run(t *testing.T, m *mirror.Mirror) {
	t.Helper()
	if err := m.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// newLoop is a checkpoint loop of n committing through m.
func newLoop(t *testing.T, n *node, m *mirror.Mirror) *signer.Loop {
	t.Helper()
	loop, err := signer.New(signer.Config{
		Keys: n.keys, Source: n.log.Tree(),
		Store:  signer.FileStore{Path: filepath.Join(n.dir, "checkpoint")},
		Commit: m.Commit,
	})
	if err != nil {
		t.Fatal(err)
	}
	return loop
}

func pgLock(t *testing.T, name string) mirror.Lock {
	t.Helper()
	l, err := mirror.OpenLock(context.Background(), servicetest.Postgres(t), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
