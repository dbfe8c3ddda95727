package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	refclient "github.com/transparency-dev/witness/client/http"
	"github.com/transparency-dev/witness/persistence/inmemory"
	refwitness "github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
	"github.com/agentlog/agentlog/witness/witnesstest"
)

// startReference runs a transparency-dev witness for lg on loopback HTTP
// and returns its URL and cosignature v1 verifier key.
func startReference(t *testing.T, lg *witnesstest.Log) (string, string) {
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, "ref.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := refwitness.New(ctx, refwitness.Opts{
		Persistence: inmemory.New(),
		Signers:     []note.Signer{signer},
		VerifierForLog: func(_ context.Context, origin string) (note.Verifier, bool, error) {
			if origin != lg.Origin {
				return nil, false, nil
			}
			return lg.Verifier(), true, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", refwitness.NewHTTPHandler(w).AddCheckpoint)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, vkey
}

// startOurs runs an agentlog witness for lg on loopback HTTP.
func startOurs(t *testing.T, lg *witnesstest.Log) (string, string) {
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, "agentlog.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewTimeSigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Signer: s, Logs: map[string][]note.Verifier{lg.Origin: {lg.Verifier()}}, Store: &witness.MemStore{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(witness.NewServer(witness.ServerConfig{Witness: w}))
	t.Cleanup(srv.Close)
	return srv.URL, vkey
}

// TestOurClientWithReferenceWitness: agentlog's witness client pushes a
// growing log to a transparency-dev witness and to ours; the quorum needs
// both, and the published checkpoints verify against the policy and with
// formats/note.
func TestOurClientWithReferenceWitness(t *testing.T) {
	lg := witnesstest.NewLog(t, "interop.example/log")
	refURL, refKey := startReference(t, lg)
	ourURL, ourKey := startOurs(t, lg)
	p, err := policy.Parse(fmt.Appendf(nil, "log %s\nwitness ref %s %s\nwitness ours %s %s\ngroup both all ref ours\nquorum both\n",
		lg.VKey, refKey, refURL, ourKey, ourURL))
	if err != nil {
		t.Fatal(err)
	}
	pub := make(chan *checkpoint.Signed, 100)
	cl, err := witness.NewClient(witness.ClientConfig{Policy: p, Prover: lg, Publish: func(s *checkpoint.Signed) { pub <- s },
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	refV, _ := fnote.NewVerifierForCosignatureV1(refKey)
	for round := range 6 {
		lg.Grow(1+round*5, "x") // sizes 1, 7, 18, ...: proofs of several shapes
		cl.Submit(lg.Signed())
		var got *checkpoint.Signed
		for got == nil || got.Size < lg.Size() {
			got = <-pub
		}
		v, err := p.Verify(got.Raw)
		if err != nil || len(v.Cosigners) != 2 {
			t.Fatalf("round %d: %v\n%s", round, err, got.Raw)
		}
		n, err := note.Open(got.Raw, note.VerifierList(lg.Verifier(), refV))
		if err != nil || len(n.Sigs) != 2 {
			t.Fatalf("round %d: formats/note: %v", round, err)
		}
		if ts, err := fnote.CoSigV1Timestamp(n.Sigs[1]); err != nil || time.Since(ts) > time.Hour {
			t.Fatalf("round %d: reference cosignature time %v %v", round, ts, err)
		}
	}
}

// TestReferenceClientWithOurWitness: the transparency-dev witness client
// pushes to agentlog's witness and understands its answers, 409 included.
func TestReferenceClientWithOurWitness(t *testing.T) {
	lg := witnesstest.NewLog(t, "interop.example/log")
	ourURL, ourKey := startOurs(t, lg)
	u, _ := url.Parse(ourURL)
	c := refclient.NewWitness(u, http.DefaultClient)
	ctx := context.Background()
	wv, _ := fnote.NewVerifierForCosignatureV1(ourKey)

	lg.Grow(4, "x")
	sigs, _, err := c.Update(ctx, 0, lg.Checkpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(append(lg.Checkpoint(), sigs...), note.VerifierList(lg.Verifier(), wv)); err != nil {
		t.Fatalf("cosignature: %v", err)
	}
	lg.Grow(9, "x")
	_, size, err := c.Update(ctx, 0, lg.Checkpoint(), nil)
	if !errors.Is(err, refwitness.ErrCheckpointStale) || size != 4 {
		t.Fatalf("stale old size: %d %v", size, err)
	}
	sigs, _, err = c.Update(ctx, size, lg.Checkpoint(), lg.Proof(4, 13))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(append(lg.Checkpoint(), sigs...), note.VerifierList(lg.Verifier(), wv)); err != nil {
		t.Fatalf("cosignature: %v", err)
	}
	fork := witnesstest.NewLog(t, lg.Origin)
	fork.Signer = lg.Signer
	fork.Grow(20, "y")
	if _, _, err := c.Update(ctx, 13, fork.Checkpoint(), fork.Proof(13, 20)); !errors.Is(err, refwitness.ErrInvalidProof) {
		t.Fatalf("fork: %v", err)
	}
}
