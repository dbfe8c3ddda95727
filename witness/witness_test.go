package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentlog/agentlog/witness/witnesstest"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

type testWitness struct {
	url   string
	vkey  string
	store Store
}

func startWitness(t *testing.T, store Store, limit func(string) bool, logs ...*testLog) *testWitness {
	t.Helper()
	s, vkey := newTestSigner(t, "witness.example/w1")
	m := map[string][]note.Verifier{}
	for _, l := range logs {
		m[l.Origin] = append(m[l.Origin], l.Verifier())
	}
	w, err := New(Config{Signer: s, Logs: m, Store: store, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(ServerConfig{Witness: w}))
	t.Cleanup(srv.Close)
	return &testWitness{url: srv.URL, vkey: vkey, store: store}
}

// TestAddCheckpointConformance walks one witness through every answer of
// c2sp.org/tlog-witness, in order, since each step depends on the state the
// previous ones left.
func TestAddCheckpointConformance(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	empty := newTestLog(t, "example.com/empty")
	w := startWitness(t, &MemStore{}, nil, lg, empty)
	wv, err := fnote.NewVerifierForCosignatureV1(w.vkey)
	if err != nil {
		t.Fatal(err)
	}

	lg.Grow(5, "a")
	cp5 := lg.Checkpoint()
	lg.Grow(3, "a")
	cp8 := lg.Checkpoint()
	fork := newTestLog(t, "example.com/log")
	fork.Signer = lg.Signer
	fork.Grow(8, "b")
	fork5 := fork.Sign(5, fork.Root(5), lg.Signer)
	fork12 := func() []byte { fork.Grow(4, "b"); return fork.Checkpoint() }()
	lg.Grow(4, "a")
	cp12 := lg.Checkpoint()

	other := newTestLog(t, "example.com/log") // same origin, untrusted key
	other.Grow(5, "a")
	badSig := lg.Sign(5, lg.Root(5), witnesstest.CorruptSigner{Signer: lg.Signer})
	unknown := newTestLog(t, "example.com/unknown")
	unknown.Grow(1, "x")

	longProof := make([][]byte, 64)
	for i := range longProof {
		longProof[i] = make([]byte, 32)
	}

	type step struct {
		name   string
		body   []byte
		code   int
		answer string // expected body for 409
	}
	steps := []step{
		{"malformed old line", []byte("old 01\n\n" + string(cp5)), 400, ""},
		{"no old line", cp5, 400, ""},
		{"proof line not base64", []byte("old 0\n!!!\n\n" + string(cp5)), 400, ""},
		{"unknown origin", body(0, nil, unknown.Checkpoint()), 404, ""},
		{"signed by an untrusted key of the origin", body(0, nil, other.Checkpoint()), 403, ""},
		{"bad signature by the trusted key", body(0, nil, badSig), 403, ""},
		{"old size larger than the checkpoint", body(6, nil, cp5), 400, ""},
		{"proof too long (64 lines)", body(0, longProof, cp5), 400, ""},
		{"non-empty proof from old size 0", body(0, lg.Proof(3, 5), cp5), 422, ""},
		{"first checkpoint, old size 0", body(0, nil, cp5), 200, ""},
		{"old size 0 after a cosignature", body(0, nil, cp8), 409, "5\n"},
		{"old size not the cosigned one", body(4, lg.Proof(4, 8), cp8), 409, "5\n"},
		{"same size, same root: cosigned again", body(5, nil, cp5), 200, ""},
		{"same size, different root", body(5, nil, fork5), 422, ""},
		{"bad proof (another tree)", body(5, fork.Proof(5, 12), fork12), 422, ""},
		{"proof from the wrong tree for a valid checkpoint", body(5, lg.Proof(6, 8), cp8), 422, ""},
		{"consistent growth", body(5, lg.Proof(5, 8), cp8), 200, ""},
		{"stale old size after growth", body(5, lg.Proof(5, 12), cp12), 409, "8\n"},
		{"rollback: smaller checkpoint", body(8, nil, cp5), 400, ""},
		{"consistent growth again", body(8, lg.Proof(8, 12), cp12), 200, ""},
		{"size-0 checkpoint with a wrong root", body(0, nil, empty.Sign(0, make([]byte, 32), empty.Signer)), 422, ""},
		{"size-0 checkpoint with the empty root", body(0, nil, empty.Checkpoint()), 200, ""},
		{"size-0 again", body(0, nil, empty.Checkpoint()), 200, ""},
		{"growth from size 0 needs no proof", body(0, nil, func() []byte { empty.Grow(3, "e"); return empty.Checkpoint() }()), 200, ""},
	}
	for _, s := range steps {
		code, ctype, out := post(t, w.url, s.body)
		if code != s.code {
			t.Fatalf("%s: got %d %q, want %d", s.name, code, out, s.code)
		}
		switch code {
		case 409:
			if ctype != "text/x.tlog.size" || string(out) != s.answer {
				t.Errorf("%s: 409 with Content-Type %q body %q, want text/x.tlog.size %q", s.name, ctype, out, s.answer)
			}
		case 200:
			// The answer is cosignature lines only, verifiable with
			// formats/note once appended to the checkpoint.
			req, _ := ParseRequest(s.body)
			lines, err := SignatureLines(out)
			if err != nil || len(lines) != 1 {
				t.Fatalf("%s: answer %q is not one signature line: %v", s.name, out, err)
			}
			merged, err := AddSignatures(req.Checkpoint, out)
			if err != nil {
				t.Fatal(err)
			}
			origin, _, _ := strings.Cut(string(req.Checkpoint), "\n")
			logV := lg.Verifier()
			if origin == empty.Origin {
				logV = empty.Verifier()
			}
			n, err := note.Open(merged, note.VerifierList(logV, wv))
			if err != nil || len(n.Sigs) != 2 {
				t.Fatalf("%s: cosigned checkpoint does not verify: %v", s.name, err)
			}
			ts, err := fnote.CoSigV1Timestamp(n.Sigs[1])
			if err != nil || !ts.Equal(fixedTime) {
				t.Errorf("%s: cosignature time %v, %v; want %v", s.name, ts, err, fixedTime)
			}
		}
	}

	// The monitoring endpoint serves the latest cosigned checkpoint with the
	// log's signature and the witness's.
	h := sha256.Sum256([]byte(lg.Origin))
	resp, err := http.Get(w.url + "/" + hex.EncodeToString(h[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("monitoring endpoint: %d %s", resp.StatusCode, got)
	}
	n, err := note.Open(got, note.VerifierList(lg.Verifier(), wv))
	if err != nil || len(n.Sigs) != 2 || !strings.HasPrefix(string(cp12), n.Text) {
		t.Fatalf("monitoring endpoint served %q: %v", got, err)
	}
	resp, err = http.Get(w.url + "/" + strings.Repeat("00", 32) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("monitoring endpoint for an unknown origin: %d", resp.StatusCode)
	}
}

func TestBodyTooLarge(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	w := startWitness(t, &MemStore{}, nil, lg)
	b := body(0, nil, lg.Checkpoint())
	b = append(b, bytes.Repeat([]byte("x"), DefaultMaxBodyBytes)...)
	if code, _, out := post(t, w.url, b); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d %s, want 413", code, out)
	}
}

func TestRateLimit(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	w := startWitness(t, &MemStore{}, RateLimit(1e-9, 2), lg)
	cp := lg.Checkpoint()
	for i, want := range []int{200, 200, 429} {
		if code, _, out := post(t, w.url, body(0, nil, cp)); code != want {
			t.Fatalf("request %d: got %d %s, want %d", i, code, out, want)
		}
	}
}

// TestConcurrentAdd races submissions that all start from the cosigned
// size: exactly one may win each round, the others get 409 with the winner's
// size.
func TestConcurrentAdd(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	w := startWitness(t, &MemStore{}, nil, lg)
	lg.Grow(1, "a")
	if code, _, out := post(t, w.url, body(0, nil, lg.Checkpoint())); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	old := uint64(1)
	for round := range 5 {
		const racers = 16
		bodies := make([][]byte, racers)
		sizes := make([]uint64, racers)
		for i := range racers {
			lg.Grow(1, "a")
			sizes[i] = lg.Size()
			bodies[i] = body(old, lg.Proof(old, sizes[i]), lg.Checkpoint())
		}
		codes := make([]int, racers)
		answers := make([]string, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				code, _, out := post(t, w.url, bodies[i])
				codes[i], answers[i] = code, string(out)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, c := range codes {
			if c == 200 {
				if winner >= 0 {
					t.Fatalf("round %d: two winners (%d and %d)", round, sizes[winner], sizes[i])
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner: %v", round, codes)
		}
		for i, c := range codes {
			if i != winner && (c != 409 || answers[i] != fmt.Sprintf("%d\n", sizes[winner])) {
				t.Fatalf("round %d: loser got %d %q, want 409 %d", round, c, answers[i], sizes[winner])
			}
		}
		stored, _ := w.store.Load(lg.Origin)
		if !bytes.Contains(stored, fmt.Appendf(nil, "\n%d\n", sizes[winner])) {
			t.Fatalf("round %d: stored %q, want size %d", round, stored, sizes[winner])
		}
		old = sizes[winner]
	}
}

// TestFileStoreRestart reopens a witness's state directory: it remembers
// what it cosigned, refuses a fork of it and a second process.
func TestFileStoreRestart(t *testing.T) {
	dir := t.TempDir()
	lg := newTestLog(t, "example.com/log")
	fs, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(dir); err == nil {
		t.Fatal("a second FileStore opened the same directory")
	}
	w := startWitness(t, fs, nil, lg)
	lg.Grow(7, "a")
	if code, _, out := post(t, w.url, body(0, nil, lg.Checkpoint())); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	fs.Close()

	fs2, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fs2.Close()
	w2 := startWitness(t, fs2, nil, lg)
	fork := newTestLog(t, lg.Origin)
	fork.Signer = lg.Signer
	fork.Grow(9, "b")
	for _, c := range []struct {
		b    []byte
		code int
	}{
		{body(0, nil, fork.Checkpoint()), 409},
		{body(7, fork.Proof(7, 9), fork.Checkpoint()), 422},
		{body(7, nil, fork.Sign(7, fork.Root(7), lg.Signer)), 422},
	} {
		if code, _, out := post(t, w2.url, c.b); code != c.code {
			t.Fatalf("after restart: got %d %s, want %d", code, out, c.code)
		}
	}
	lg.Grow(2, "a")
	if code, _, out := post(t, w2.url, body(7, lg.Proof(7, 9), lg.Checkpoint())); code != 200 {
		t.Fatalf("after restart, consistent growth: %d %s", code, out)
	}
}

// FuzzParseRequest: the request parser never panics, and what it accepts
// respects the protocol's limits and re-encodes to the same body.
func FuzzParseRequest(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	lg.Grow(3, "a")
	f.Add(body(0, nil, lg.Checkpoint()))
	f.Add(body(1, lg.Proof(1, 3), lg.Checkpoint()))
	f.Add([]byte("old 18446744073709551615\n\n"))
	f.Add([]byte("old 18446744073709551616\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(r.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines accepted", len(r.Proof))
		}
		if got := body(r.OldSize, r.Proof, r.Checkpoint); !bytes.Equal(got, b) {
			t.Fatalf("%q re-encodes as %q", b, got)
		}
	})
}
