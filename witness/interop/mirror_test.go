package interop

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/servicetest"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/mirror"
)

// TestMirrorReadByTesseraClient mirrors an agentlog log to an Object Lock
// bucket on the test S3 server, makes the bucket's log publicly readable
// over plain HTTP, and reads it with Tessera's client as a static
// c2sp.org/tlog-tiles log: the checkpoint verifies with the log's key, the
// tiles prove every entry's inclusion and the consistency between
// checkpoints, and the entry bundles hold the log's entries.
func TestMirrorReadByTesseraClient(t *testing.T) {
	endpoint := servicetest.S3Endpoint(t)
	c := servicetest.S3Client(endpoint)
	bucket := servicetest.Bucket(t, c)
	ctx := context.Background()
	const origin = "interop.example/mirror"
	keys, _, err := checkpoint.LoadOrCreateKeys(t.TempDir(), origin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := alog.Open(alog.Config{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := mirror.OpenBucket(ctx, mirror.BucketConfig{Client: c, URL: "s3://" + bucket + "/log", Retention: 24 * time.Hour, Mode: "governance"})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := mirror.OpenLock(ctx, "s3", origin, b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mirror.New(ctx, mirror.Config{Bucket: b, Lock: lock, Source: mirror.FromLog(l), Keys: keys, Holder: "interop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	renewCtx, stopRenewing := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); m.Run(renewCtx) }()
	defer func() { stopRenewing(); <-renewed }()
	loop, err := signer.New(signer.Config{Keys: keys, Source: l.Tree(), Store: signer.FileStore{Path: filepath.Join(dir, "checkpoint")}, Commit: m.Commit})
	if err != nil {
		t.Fatal(err)
	}
	pol := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":["arn:aws:s3:::%[1]s/log/checkpoint","arn:aws:s3:::%[1]s/log/tile/*"]}]}`, bucket)
	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(pol)}); err != nil {
		t.Fatal(err)
	}
	root, _ := url.Parse(endpoint + "/" + bucket + "/log/")
	f, err := tclient.NewHTTPFetcher(root, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}

	p := alog.Principal{ID: "admin", Role: "admin"}
	var prev uint64
	for _, n := range []int{3, 260, 1000} {
		for n > 0 {
			k := min(n, alog.MaxEntriesPerRequest)
			recs := make([]alog.Record, k)
			for i := range recs {
				recs[i] = alog.Record{Action: "interop", Resource: fmt.Sprint(l.Size() + uint64(i))}
			}
			if _, err := l.Append(ctx, p, alog.KindAction, recs); err != nil {
				t.Fatal(err)
			}
			n -= k
		}
		signed, err := loop.SignNow()
		if err != nil {
			t.Fatal(err)
		}
		cp, raw, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, keys.LogVerifier, origin)
		if err != nil {
			t.Fatalf("Tessera's client reading the bucket's checkpoint: %v", err)
		}
		if string(raw) != string(signed.Raw) || cp.Size != signed.Size {
			t.Fatalf("the bucket's checkpoint (size %d) is not the one just committed (size %d)", cp.Size, signed.Size)
		}
		pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		if prev > 0 {
			cons, err := pb.ConsistencyProof(ctx, prev, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			oldRoot, _ := l.Tree().RootAt(prev)
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prev, cp.Size, cons, oldRoot, cp.Hash); err != nil {
				t.Fatalf("consistency %d -> %d from the bucket's tiles: %v", prev, cp.Size, err)
			}
		}
		// Every entry: in its bundle, and provably included.
		for i := uint64(0); i < cp.Size; i += 97 {
			bundle, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, i/layout.EntryBundleWidth, cp.Size)
			if err != nil {
				t.Fatalf("entry bundle of %d: %v", i, err)
			}
			got := bundle.Entries[i%layout.EntryBundleWidth]
			want, err := l.Entry(i)
			if err != nil || string(got) != string(want) {
				t.Fatalf("entry %d in the bucket differs from the log's: %v", i, err)
			}
			incl, err := pb.InclusionProof(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, rfc6962.DefaultHasher.HashLeaf(got), incl, cp.Hash); err != nil {
				t.Fatalf("inclusion of %d in %d from the bucket's tiles: %v", i, cp.Size, err)
			}
		}
		prev = cp.Size
	}
}
