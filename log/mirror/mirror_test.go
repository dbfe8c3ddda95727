package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/internal/servicetest"
	"github.com/agentlog/agentlog/log/mirror"
	"github.com/agentlog/agentlog/tree"
)

// TestMirrorIsAStaticLog grows a log across tile and level boundaries,
// commits checkpoints through the mirror, and reads the bucket back as a
// c2sp.org/tlog-tiles log with x/mod's tlog (an independent tile reader):
// every checkpoint in the bucket's history verifies, its tiles prove its
// root, its bundles hold the leaves the tiles hash, and every object
// version carries the configured retention.
func TestMirrorIsAStaticLog(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "compliance")
	lock, err := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, t.TempDir())
	m := newMirror(t, n, b, lock, "node-a", nil)
	run(t, m)
	loop := newLoop(t, n, m)
	var sizes []uint64
	for _, grow := range []int{1, 254, 1, 300, 65536 - 556 + 3, 700} {
		n.add(t, grow)
		c, err := loop.SignNow()
		if err != nil {
			t.Fatalf("signing at size %d: %v", n.log.Size(), err)
		}
		if m.Mirrored() != c.Size {
			t.Fatalf("mirrored size %d after committing %d", m.Mirrored(), c.Size)
		}
		sizes = append(sizes, c.Size)
		if !bytes.Equal(getObject(t, e, "checkpoint"), c.Raw) {
			t.Fatalf("the bucket's checkpoint is not the one committed at size %d", c.Size)
		}
		proveFromBucket(t, e, c, false)
	}
	checkStaticLog(t, e, loop.Latest())
	if st := m.Status(); st.LagEntries != 0 || st.MirroredSize != n.log.Size() || st.LastError != "" {
		t.Fatalf("status after the last commit: %+v", st)
	}

	// The bucket's checkpoint history holds every committed checkpoint,
	// each verified and matching the local tree.
	hist := checkpointHistory(t, e, n)
	if len(hist) != len(sizes) {
		t.Fatalf("the bucket holds %d checkpoint versions, want %d", len(hist), len(sizes))
	}
	for _, c := range hist {
		root, err := n.log.Tree().RootAt(c.Size)
		if err != nil || !bytes.Equal(root, c.Root) {
			t.Fatalf("checkpoint version at size %d has a root the log does not: %v", c.Size, err)
		}
	}
	checkRetention(t, e, types.ObjectLockRetentionModeCompliance)
}

// checkStaticLog reads the bucket's latest checkpoint and proves it from
// the bucket's tiles and bundles alone.
func checkStaticLog(t *testing.T, e *s3env, want *checkpoint.Signed) {
	t.Helper()
	raw := getObject(t, e, "checkpoint")
	if !bytes.Equal(raw, want.Raw) {
		t.Fatalf("bucket checkpoint:\n%s\nwant:\n%s", raw, want.Raw)
	}
	proveFromBucket(t, e, want, true)
}

// proveFromBucket proves checkpoint want from the bucket's tiles alone,
// and with bundles that its entry bundles hold the leaves the tiles hash.
func proveFromBucket(t *testing.T, e *s3env, want *checkpoint.Signed, bundles bool) {
	t.Helper()
	r := &bucketTiles{t: t, e: e}
	var root tlog.Hash
	copy(root[:], want.Root)
	th := tlog.Tree{N: int64(want.Size), Hash: root}
	hr := tlog.TileHashReader(th, r)
	got, err := tlog.TreeHash(th.N, hr)
	if err != nil {
		t.Fatalf("tree hash from the bucket's tiles at size %d: %v", want.Size, err)
	}
	if got != root {
		t.Fatalf("the bucket's tiles hash to %v at size %d, the checkpoint says %v", got, want.Size, root)
	}
	// Each entry bundle's leaves hash to the level-0 hashes.
	for start := uint64(0); start < want.Size; start += tree.TileWidth {
		w := min(want.Size-start, tree.TileWidth)
		bundle := getObject(t, e, "tile/"+agentlog.TilePath{Index: start / tree.TileWidth, Width: int(w), Entries: true}.String())
		idx := make([]int64, w)
		for i := range idx {
			idx[i] = tlog.StoredHashIndex(0, int64(start)+int64(i))
		}
		hs, err := hr.ReadHashes(idx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if len(bundle) < 2 {
				t.Fatalf("bundle at %d ends after %d entries", start, i)
			}
			l := int(bundle[0])<<8 | int(bundle[1])
			leaf := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			if tlog.RecordHash(leaf) != hs[i] {
				t.Fatalf("entry %d in the bucket's bundle does not hash to the tile's leaf hash", start+i)
			}
		}
		if len(bundle) != 0 {
			t.Fatalf("bundle at %d has %d trailing bytes", start, len(bundle))
		}
	}
}

// bucketTiles is a tlog.TileReader of the test bucket.
type bucketTiles struct {
	t *testing.T
	e *s3env
}

func (r *bucketTiles) Height() int { return tree.TileHeight }
func (r *bucketTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tl := range tiles {
		p := agentlog.TilePath{Level: uint64(tl.L), Index: uint64(tl.N), Width: tl.W}
		out[i] = getObject(r.t, r.e, "tile/"+p.String())
	}
	return out, nil
}
func (r *bucketTiles) SaveTiles([]tlog.Tile, [][]byte) {}

const testPrefix = "logs/one/"

func getObject(t *testing.T, e *s3env, key string) []byte {
	t.Helper()
	out, err := e.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(testPrefix + key)})
	if err != nil {
		t.Fatalf("reading %s from the bucket: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkpointHistory returns every version of the bucket's checkpoint,
// verified with n's keys.
func checkpointHistory(t *testing.T, e *s3env, n *node) []*checkpoint.Signed {
	t.Helper()
	var out []*checkpoint.Signed
	for _, v := range versions(t, e) {
		if *v.Key != testPrefix+"checkpoint" {
			continue
		}
		o, err := e.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: v.Key, VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(o.Body)
		o.Body.Close()
		c, err := checkpoint.Open(raw, n.keys.LogVerifier, n.keys.TimeVerifier)
		if err != nil {
			t.Fatalf("checkpoint version %s does not verify: %v", *v.VersionId, err)
		}
		out = append(out, c)
	}
	return out
}

func versions(t *testing.T, e *s3env) []types.ObjectVersion {
	t.Helper()
	var out []types.ObjectVersion
	p := s3.NewListObjectVersionsPaginator(e.client, &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(testPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing object versions: %v", err)
		}
		out = append(out, page.Versions...)
	}
	return out
}

// checkRetention checks that every object version but the lock's carries
// Object Lock retention in mode for about testRetention.
func checkRetention(t *testing.T, e *s3env, mode types.ObjectLockRetentionMode) {
	t.Helper()
	vs := versions(t, e)
	if len(vs) == 0 {
		t.Fatal("the bucket is empty")
	}
	checked := 0
	for _, v := range vs {
		if *v.Key == testPrefix+"lock" {
			continue
		}
		r, err := e.client.GetObjectRetention(context.Background(), &s3.GetObjectRetentionInput{Bucket: aws.String(e.bucket), Key: v.Key, VersionId: v.VersionId})
		if err != nil {
			t.Fatalf("%s version %s: no retention: %v", *v.Key, *v.VersionId, err)
		}
		if r.Retention.Mode != mode || time.Until(*r.Retention.RetainUntilDate) < testRetention-time.Hour {
			t.Fatalf("%s version %s: retention %s until %v, want %s for %v", *v.Key, *v.VersionId, r.Retention.Mode, r.Retention.RetainUntilDate, mode, testRetention)
		}
		checked++
	}
	t.Logf("%d object versions checked for retention", checked)
}

// TestOpenBucketRefusesUnlockedBuckets checks the start-up errors for a
// bucket without versioning and one without Object Lock.
func TestOpenBucketRefusesUnlockedBuckets(t *testing.T) {
	t.Parallel()
	c := servicetest.S3Client(servicetest.S3Endpoint(t))
	ctx := context.Background()
	plain := servicetest.PlainBucket(t, c)
	_, err := mirror.OpenBucket(ctx, mirror.BucketConfig{Client: c, URL: "s3://" + plain, Retention: time.Hour, Mode: "compliance"})
	if err == nil || !strings.Contains(err.Error(), "versioning is not enabled") {
		t.Fatalf("bucket without versioning: %v", err)
	}
	versioned := servicetest.PlainBucket(t, c)
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(versioned), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	_, err = mirror.OpenBucket(ctx, mirror.BucketConfig{Client: c, URL: "s3://" + versioned, Retention: time.Hour, Mode: "compliance"})
	if err == nil || !strings.Contains(err.Error(), "Object Lock is not enabled") {
		t.Fatalf("bucket without Object Lock: %v", err)
	}
	locked := servicetest.Bucket(t, c)
	for _, bad := range []mirror.BucketConfig{
		{Client: c, URL: "s3://" + locked, Retention: time.Hour, Mode: "legal-hold"},
		{Client: c, URL: "s3://" + locked, Retention: 0, Mode: "compliance"},
		{Client: c, URL: "https://" + locked, Retention: time.Hour, Mode: "compliance"},
		{Client: c, URL: "s3:///x", Retention: time.Hour, Mode: "compliance"},
	} {
		if _, err := mirror.OpenBucket(ctx, bad); err == nil {
			t.Errorf("OpenBucket(%+v) succeeded", bad)
		}
	}
}

// TestLockBackends is the test every Lock backend must pass: concurrent
// swaps from one state let exactly one through, and a stale state never
// swaps.
func TestLockBackends(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) mirror.Lock{
		"postgres": func(t *testing.T) mirror.Lock { return pgLock(t, "lock-test-"+servicetest.RandomName(t)) },
		"s3": func(t *testing.T) mirror.Lock {
			l, err := mirror.OpenLock(context.Background(), "s3", testOrigin, newS3(t).open(t, "governance"))
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := open(t)
			st, err := l.Load(ctx)
			if err != nil || st.Seq != 0 || st.Checkpoint != nil {
				t.Fatalf("fresh lock: %+v, %v", st, err)
			}
			for round := range 5 {
				const racers = 8
				var wg sync.WaitGroup
				wins := make(chan mirror.LockState, racers)
				for i := range racers {
					wg.Go(func() {
						next := mirror.LockState{Checkpoint: fmt.Appendf(nil, "cp %d by %d", round, i), Holder: fmt.Sprint("node-", i), Seq: st.Seq + 1}
						got, err := l.Swap(ctx, st, next)
						switch {
						case err == nil:
							wins <- got
						case !errors.Is(err, mirror.ErrLockChanged):
							t.Errorf("swap: %v", err)
						}
					})
				}
				wg.Wait()
				close(wins)
				var won []mirror.LockState
				for w := range wins {
					won = append(won, w)
				}
				if len(won) != 1 {
					t.Fatalf("round %d: %d swaps from the same state succeeded, want 1", round, len(won))
				}
				cur, err := l.Load(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if cur.Seq != won[0].Seq || cur.Holder != won[0].Holder || !bytes.Equal(cur.Checkpoint, won[0].Checkpoint) {
					t.Fatalf("round %d: Load = %+v after the winning swap %+v", round, cur, won[0])
				}
				// The state before the round is stale now.
				if _, err := l.Swap(ctx, st, mirror.LockState{Holder: "late", Seq: st.Seq + 1}); !errors.Is(err, mirror.ErrLockChanged) {
					t.Fatalf("swap from a stale state: %v, want ErrLockChanged", err)
				}
				st = cur
			}
			if _, err := l.Swap(ctx, st, mirror.LockState{Holder: "x", Seq: st.Seq + 2}); err == nil {
				t.Fatal("a swap skipping a seq succeeded")
			}
		})
	}
}

// TestSupersededStopsSigning runs two nodes of one log on one bucket and
// lock: the second cannot take the lock while the first renews it; once
// the first stops renewing the second takes over, and the first finds
// itself superseded at its next checkpoint, for good.
func TestSupersededStopsSigning(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"postgres", "s3"} {
		t.Run(backend, func(t *testing.T) {
			e := newS3(t)
			b := e.open(t, "governance")
			var lockA, lockB mirror.Lock
			if backend == "s3" {
				lockA, _ = mirror.OpenLock(context.Background(), "s3", testOrigin, b)
				lockB, _ = mirror.OpenLock(context.Background(), "s3", testOrigin, b)
			} else {
				name := "split-" + servicetest.RandomName(t)
				lockA, lockB = pgLock(t, name), pgLock(t, name)
			}
			keys := t.TempDir()
			a, bn := newNode(t, keys), newNode(t, keys)
			superseded := make(chan error, 1)
			ma := newMirror(t, a, b, lockA, "node-a", func(err error) { superseded <- err })
			if err := ma.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			loopA := newLoop(t, a, ma)
			a.add(t, 300)
			if _, err := loopA.SignNow(); err != nil {
				t.Fatal(err)
			}
			ctxA, stopA := context.WithCancel(context.Background())
			renewed := make(chan struct{})
			go func() { defer close(renewed); ma.Run(ctxA) }()

			// b, a second node starting empty, cannot take a lock that a
			// renews.
			mb := newMirror(t, bn, b, lockB, "node-b", nil)
			var held *mirror.HeldError
			if err := mb.Acquire(context.Background()); !errors.As(err, &held) || held.Holder != "node-a" {
				t.Fatalf("acquiring a renewed lock: %v, want a HeldError naming node-a", err)
			}
			// a stops renewing (a paused or partitioned node): b waits the
			// lease out, but its tree is behind the lock's checkpoint.
			stopA()
			<-renewed
			mb = newMirror(t, bn, b, lockB, "node-b", nil)
			var behind *mirror.BehindError
			if err := mb.Acquire(context.Background()); !errors.As(err, &behind) || behind.Locked.Size != 300 {
				t.Fatalf("acquiring with a tree behind the lock: %v, want a BehindError at 300", err)
			}
			// b catches up with a's entries (as a standby does from the
			// bucket) and diverges after them.
			copyEntries(t, a, bn, 300)
			bn.add(t, 5)
			mb = newMirror(t, bn, b, lockB, "node-b", nil)
			if err := mb.Acquire(context.Background()); err != nil {
				t.Fatalf("taking over a lapsed lease: %v", err)
			}
			loopB := newLoop(t, bn, mb)
			cb, err := loopB.SignNow()
			if err != nil || cb.Size != 305 {
				t.Fatalf("b signing after takeover: %v, %v", cb, err)
			}
			// a wakes up with new entries: its commit fails and it never
			// signs again.
			a.add(t, 7)
			_, err = loopA.SignNow()
			if !errors.Is(err, checkpoint.ErrSuperseded) {
				t.Fatalf("a signing after b took over: %v, want ErrSuperseded", err)
			}
			if err := <-superseded; !errors.Is(err, checkpoint.ErrSuperseded) {
				t.Fatalf("OnSuperseded got %v", err)
			}
			a.add(t, 1)
			if _, err := loopA.SignNow(); !errors.Is(err, checkpoint.ErrSuperseded) {
				t.Fatalf("a signing again: %v", err)
			}
			if st := loopA.Status(); !st.Superseded || !st.Refusing {
				t.Fatalf("a's loop status %+v", st)
			}
			if st := ma.Status(); st.Superseded == "" || st.MirroredSize != 300 || st.LagEntries != 8 {
				t.Fatalf("a's mirror status %+v", st)
			}
			if ma.LeaseHeld() {
				t.Fatal("a superseded node reports its lease held (its sinks would deliver)")
			}
			if err := ma.SaveSinkPosition(context.Background(), "siem", 1); err == nil {
				t.Fatal("a superseded node published a sink position")
			}
			// The bucket and the lock hold b's checkpoint, consistent with
			// everything published before.
			checkStaticLog(t, e, cb)
			for _, c := range checkpointHistory(t, e, bn) {
				root, err := bn.log.Tree().RootAt(c.Size)
				if err != nil || !bytes.Equal(root, c.Root) {
					t.Fatalf("bucket checkpoint at size %d is not in b's tree (a fork): %v", c.Size, err)
				}
			}
		})
	}
}

// copyEntries appends to dst the entries of src from dst's size to n, with
// the same bytes: dst then has src's tree up to n.
func copyEntries(t *testing.T, src, dst *node, n uint64) {
	t.Helper()
	for i := dst.log.Size(); i < n; i++ {
		leaf, err := src.log.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.log.Import(context.Background(), i, [][]byte{leaf}); err != nil {
			t.Fatal(err)
		}
	}
	ra, _ := src.log.Tree().RootAt(n)
	rb, _ := dst.log.Tree().RootAt(n)
	if !bytes.Equal(ra, rb) {
		t.Fatal("copied entries do not give the same root")
	}
}

// publicReadPolicy is the bucket policy of docs/replication.md for a log
// under prefix "logs/one": anyone may read the checkpoint and the hash
// tiles (levels 0 to 63: one or two characters), nobody anonymous the
// entry bundles (tile/entries/...), which hold the entries.
const publicReadPolicy = `{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "PublicCheckpointAndHashTiles",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": [
      "arn:aws:s3:::BUCKET/logs/one/checkpoint",
      "arn:aws:s3:::BUCKET/logs/one/tile/?/*",
      "arn:aws:s3:::BUCKET/logs/one/tile/??/*"
    ]
  }]
}`

// TestBucketPolicyKeepsBundlesPrivate applies the documented policy and
// reads the mirrored log anonymously over HTTP: the checkpoint and hash
// tiles (full and partial, levels 0 and 1) are public, the entry bundles
// and the lock are refused.
func TestBucketPolicyKeepsBundlesPrivate(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	lock, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	n := newNode(t, t.TempDir())
	m := newMirror(t, n, b, lock, "node-a", nil)
	run(t, m)
	n.add(t, 556)
	if _, err := newLoop(t, n, m).SignNow(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String(e.bucket), Policy: aws.String(strings.ReplaceAll(publicReadPolicy, "BUCKET", e.bucket)),
	}); err != nil {
		t.Fatal(err)
	}
	base := servicetest.S3Endpoint(t) + "/" + e.bucket + "/" + testPrefix
	for path, want := range map[string]int{
		"checkpoint":            http.StatusOK,
		"tile/0/000":            http.StatusOK,
		"tile/0/002.p/44":       http.StatusOK,
		"tile/1/000.p/2":        http.StatusOK,
		"tile/entries/000":      http.StatusForbidden,
		"tile/entries/002.p/44": http.StatusForbidden,
		"lock":                  http.StatusForbidden,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
