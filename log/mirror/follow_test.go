package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/mod/sumdb/note"

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

// TestCosignedCheckpointReachesTheStandby: the active writes its last
// checkpoint again with a witness's cosignature (Cosigned), and the
// standby serves that version, cosignature included. A cosigned copy of a
// checkpoint that is no longer the latest, or written after another node
// replaced the bucket's checkpoint, leaves the bucket alone.
func TestCosignedCheckpointReachesTheStandby(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	lock, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	keys := t.TempDir()
	a, s := newNode(t, keys), newNode(t, keys)
	ma := newMirror(t, a, b, lock, "active", nil)
	run(t, ma)
	loop := newLoop(t, a, ma)
	wsigner, wverifier := witnessKey(t)
	cosign := func(c *checkpoint.Signed) *checkpoint.Signed {
		t.Helper()
		raw, err := note.Sign(&note.Note{Text: c.Note.Text, Sigs: c.Note.Sigs}, wsigner)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := checkpoint.Open(raw, a.keys.LogVerifier, a.keys.TimeVerifier)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	a.add(t, 10)
	c, err := loop.SignNow()
	if err != nil {
		t.Fatal(err)
	}
	cs := cosign(c)
	if err := ma.Cosigned(cs); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, e, "checkpoint"); !bytes.Equal(got, cs.Raw) {
		t.Fatalf("the bucket's checkpoint is\n%s\nwant the cosigned\n%s", got, cs.Raw)
	}

	lockS, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	ms := newMirror(t, s, b, lockS, "standby", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan *checkpoint.Signed, 100)
	go ms.Follow(ctx, s.log, func(c *checkpoint.Signed) { seen <- c })
	got := <-seen
	if !bytes.Equal(got.Raw, cs.Raw) {
		t.Fatalf("the standby adopted\n%s\nwant the cosigned checkpoint", got.Raw)
	}
	if _, err := note.Open(got.Raw, note.VerifierList(wverifier)); err != nil {
		t.Fatalf("the witness's cosignature does not verify on the standby's copy: %v", err)
	}

	// A later checkpoint: the old one's cosigned copy is not written.
	a.add(t, 5)
	c2, err := loop.SignNow()
	if err != nil {
		t.Fatal(err)
	}
	if err := ma.Cosigned(cosign(c)); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, e, "checkpoint"); !bytes.Equal(got, c2.Raw) {
		t.Fatal("a stale cosigned checkpoint replaced the latest in the bucket")
	}
	// Another node wrote the bucket's checkpoint: not ours to add to.
	otherWitness, _ := witnessKey(t)
	other, err := note.Sign(&note.Note{Text: c2.Note.Text, Sigs: c2.Note.Sigs}, otherWitness)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String(testPrefix + "checkpoint"), Body: bytes.NewReader(other),
	}); err != nil {
		t.Fatal(err)
	}
	if err := ma.Cosigned(cosign(c2)); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, e, "checkpoint"); !bytes.Equal(got, other) {
		t.Fatal("Cosigned replaced a checkpoint another node wrote")
	}
}

// witnessKey makes a note key pair standing in for a witness's.
func witnessKey(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(nil, "witness.example")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestConfigDocuments: a configuration document is written once under its
// digest, retained; the same bytes again are fine (a retry), other bytes
// under the digest are refused, and a standby reads it back.
func TestConfigDocuments(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	lock, _ := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	m := newMirror(t, newNode(t, t.TempDir()), b, lock, "active", nil)
	doc := []byte(`{"model":{"name":"m","version":"1"}}`)
	digest := "sha256:" + strings.Repeat("ab", 32)
	if err := m.SaveDocument(digest, doc); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveDocument(digest, doc); err != nil {
		t.Fatalf("saving the same document again: %v", err)
	}
	var ce *mirror.ConflictError
	if err := m.SaveDocument(digest, []byte(`{}`)); !errors.As(err, &ce) {
		t.Fatalf("other bytes under the same digest: %v, want a ConflictError", err)
	}
	if got, err := m.FetchDocument(digest); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("reading it back: %q %v", got, err)
	}
	if err := m.SaveDocument("sha256:../checkpoint", doc); err == nil {
		t.Fatal("a malformed digest was written")
	}
	out, err := e.client.GetObjectRetention(context.Background(), &s3.GetObjectRetentionInput{Bucket: aws.String(e.bucket), Key: aws.String(testPrefix + "config/sha256/" + strings.Repeat("ab", 32))})
	if err != nil || out.Retention == nil || out.Retention.RetainUntilDate == nil {
		t.Fatalf("the document's retention: %+v %v", out, err)
	}
}
