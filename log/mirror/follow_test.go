package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/internal/servicetest"
	"github.com/agentlog/agentlog/log/mirror"
)

// TestStandbyFollowsAndTakesOver runs an active node and a standby on one
// bucket and postgres lock. The standby imports what the bucket holds,
// verified, while the active renews its lease; when the active stops, the
// standby holds its last checkpoint, takes the lock, and signs on from
// it. The old active is superseded at its next checkpoint.
func TestStandbyFollowsAndTakesOver(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	name := "follow-" + servicetest.RandomName(t)
	keys := t.TempDir()
	a, s := newNode(t, keys), newNode(t, keys)
	ma := newMirror(t, a, b, pgLock(t, name), "active", nil)
	if err := ma.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(context.Background())
	renewing := make(chan struct{})
	go func() { defer close(renewing); ma.Run(ctxA) }()
	loopA := newLoop(t, a, ma)

	ms := newMirror(t, s, b, pgLock(t, name), "standby", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan *checkpoint.Signed, 100)
	followed := make(chan error, 1)
	go func() {
		followed <- ms.Follow(ctx, s.log, func(c *checkpoint.Signed) { seen <- c })
	}()
	var last *checkpoint.Signed
	for _, n := range []int{1, 300, 5000} {
		a.add(t, n)
		c, err := loopA.SignNow()
		if err != nil {
			t.Fatal(err)
		}
		for last == nil || last.Size < c.Size {
			select {
			case last = <-seen:
			case err := <-followed:
				t.Fatalf("Follow returned while the active renews: %v", err)
			}
		}
		if !bytes.Equal(last.Raw, c.Raw) {
			t.Fatalf("standby saw checkpoint size %d, want %d", last.Size, c.Size)
		}
		root, _ := s.log.Tree().RootAt(c.Size)
		if s.log.Size() != c.Size || !bytes.Equal(root, c.Root) {
			t.Fatalf("standby holds %d entries with another root after checkpoint %d", s.log.Size(), c.Size)
		}
	}
	// Entries verified: the standby has the active's leaves byte for byte.
	for _, i := range []uint64{0, 255, 256, 5300} {
		la, _ := a.log.Entry(i)
		ls, err := s.log.Entry(i)
		if err != nil || !bytes.Equal(la, ls) {
			t.Fatalf("entry %d differs on the standby: %v", i, err)
		}
	}

	// The active stops renewing; the standby takes over.
	stopA()
	<-renewing
	start := time.Now()
	if err := <-followed; err != nil {
		t.Fatalf("Follow: %v", err)
	}
	if err := ms.TakeOver(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("took over %v after the active's last renewal stopped", time.Since(start))
	loopS := newLoop(t, s, ms)
	s.add(t, 10)
	cs, err := loopS.SignNow()
	if err != nil || cs.Size != a.log.Size()+10 {
		t.Fatalf("the new active signing: %v, %v", cs, err)
	}
	a.add(t, 1)
	if _, err := loopA.SignNow(); !errors.Is(err, checkpoint.ErrSuperseded) {
		t.Fatalf("the old active: %v, want ErrSuperseded", err)
	}
	checkStaticLog(t, e, cs)
}

// TestStandbyRefusesATamperedBucket changes an entry bundle in the bucket
// (as someone with write access but not the log's key could): the standby
// imports nothing of it.
func TestStandbyRefusesATamperedBucket(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	lock, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	keys := t.TempDir()
	a, s := newNode(t, keys), newNode(t, keys)
	ma := newMirror(t, a, b, lock, "active", nil)
	run(t, ma)
	a.add(t, 300)
	if _, err := newLoop(t, a, ma).SignNow(); err != nil {
		t.Fatal(err)
	}
	// A new version of the first bundle with one entry's byte changed.
	bundle := getObject(t, e, "tile/entries/000")
	bundle[40] ^= 1
	if _, err := e.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String(testPrefix + "tile/entries/000"), Body: bytes.NewReader(bundle),
	}); err != nil {
		t.Fatal(err)
	}
	lockS, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	ms := newMirror(t, s, b, lockS, "standby", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := ms.Follow(ctx, s.log, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Follow: %v", err)
	}
	if s.log.Size() != 0 {
		t.Fatalf("the standby imported %d entries from a tampered bucket", s.log.Size())
	}
	if st := ms.Status(); st.LastError == "" {
		t.Fatal("the standby reports no error")
	}
}
