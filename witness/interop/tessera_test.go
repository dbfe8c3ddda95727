package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

// A served is an agentlog witness behind a real HTTP server on loopback,
// with its state in fsynced files as in cmd/agentlog-witness.
type served struct {
	URL      string
	VKey     string        // cosignature v1 verifier key, as in witness.pub
	Verifier note.Verifier // of VKey, from formats/note

	mu    sync.Mutex
	codes []int // add-checkpoint answers, in order
}

func (s *served) addCodes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.codes)
}

func serveWitness(t *testing.T, name string, logs ...note.Verifier) *served {
	t.Helper()
	dir := t.TempDir()
	signer, _, err := witness.LoadOrCreateKey(dir, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := witness.OpenFileStore(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	m := map[string][]note.Verifier{}
	for _, v := range logs {
		m[v.Name()] = append(m[v.Name()], v)
	}
	w, err := witness.New(witness.Config{Signer: signer, Logs: m, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, witness.PubFile))
	if err != nil {
		t.Fatal(err)
	}
	s := &served{VKey: strings.TrimSpace(string(pub))}
	if s.Verifier, err = fnote.NewVerifierForCosignatureV1(s.VKey); err != nil {
		t.Fatal(err)
	}
	h := witness.NewServer(witness.ServerConfig{Witness: w})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := &codeRecorder{ResponseWriter: rw, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.URL.Path == "/add-checkpoint" {
			s.mu.Lock()
			s.codes = append(s.codes, rec.code)
			s.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (r *codeRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// latest is the witness's view of origin, from its monitoring endpoint
// GET /<hex SHA-256 of origin>/checkpoint.
func (s *served) latest(t *testing.T, origin string) []byte {
	t.Helper()
	h := sha256.Sum256([]byte(origin))
	resp, err := http.Get(s.URL + "/" + hex.EncodeToString(h[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("witness checkpoint of %s: %d %v %s", origin, resp.StatusCode, err, b)
	}
	return b
}

// tesseraLog is a Tessera log on the POSIX driver whose checkpoints are
// published only when its witness policy is met (FailOpen false).
type tesseraLog struct {
	app      *tessera.Appender
	await    *tessera.PublicationAwaiter
	shutdown func(context.Context) error
	cancel   context.CancelFunc
}

func openTessera(t *testing.T, dir string, signer note.Signer, policy []byte, hc *http.Client) *tesseraLog {
	t.Helper()
	group, err := tessera.NewWitnessGroupFromPolicy(policy)
	if err != nil {
		t.Fatalf("Tessera rejects the policy: %v\n%s", err, policy)
	}
	ctx, cancel := context.WithCancel(context.Background())
	driver, err := posix.New(ctx, posix.Config{Path: dir, HTTPClient: hc})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(100*time.Millisecond). // the POSIX driver's minimum
		WithBatching(64, 10*time.Millisecond).
		WithWitnesses(group, &tessera.WitnessOptions{Timeout: 10 * time.Second, FailOpen: false})
	app, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		cancel()
		t.Fatalf("starting Tessera (it publishes a witnessed size-0 checkpoint first): %v", err)
	}
	return &tesseraLog{
		app:      app,
		await:    tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 10*time.Millisecond),
		shutdown: shutdown,
		cancel:   cancel,
	}
}

func (l *tesseraLog) close(t *testing.T) {
	t.Helper()
	defer l.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.shutdown(ctx); err != nil {
		t.Errorf("Tessera shutdown: %v", err)
	}
}

// append adds n entries and returns the checkpoint Tessera publishes for
// them; publication is Tessera's own schedule, so it is polled for, with a
// deadline.
func (l *tesseraLog) append(t *testing.T, n int, tag string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	futures := make([]tessera.IndexFuture, n)
	for i := range futures {
		futures[i] = l.app.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "%s entry %d", tag, i)))
	}
	var last tessera.Index
	for _, f := range futures {
		idx, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if idx.Index >= last.Index {
			last = idx
		}
	}
	_, cp, err := l.await.Await(ctx, func() (tessera.Index, error) { return last, nil })
	if err != nil {
		t.Fatalf("waiting for Tessera to publish a checkpoint holding index %d: %v", last.Index, err)
	}
	return cp
}

// checkCosigned checks that cp, a checkpoint published by Tessera, is signed
// by the log and cosigned by each witness, with formats/note and a
// cosignature v1 time taken during the test; it returns the checkpoint body.
func checkCosigned(t *testing.T, cp []byte, size uint64, start time.Time, logV note.Verifier, ws ...*served) string {
	t.Helper()
	vs := []note.Verifier{logV}
	for _, w := range ws {
		vs = append(vs, w.Verifier)
	}
	n, err := note.Open(cp, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("formats/note: %v\n%s", err, cp)
	}
	if len(n.Sigs) != len(vs) || len(n.UnverifiedSigs) != 0 {
		t.Fatalf("%d verified and %d unverified signatures, want %d and 0\n%s", len(n.Sigs), len(n.UnverifiedSigs), len(vs), cp)
	}
	lines := strings.Split(n.Text, "\n")
	if lines[0] != logV.Name() || lines[1] != strconv.FormatUint(size, 10) {
		t.Fatalf("checkpoint of %q size %s, want %q size %d", lines[0], lines[1], logV.Name(), size)
	}
	for _, s := range n.Sigs[1:] {
		ts, err := fnote.CoSigV1Timestamp(s)
		if err != nil {
			t.Fatalf("cosignature of %s: %v", s.Name, err)
		}
		if ts.Before(start.Truncate(time.Second)) || ts.After(time.Now()) {
			t.Fatalf("cosignature of %s has time %v, outside the test (started %v)", s.Name, ts, start)
		}
	}
	return n.Text
}

// checkWitnessView checks that the witness's monitoring endpoint shows the
// checkpoint body Tessera published, with the log's signature and the
// witness's cosignature.
func checkWitnessView(t *testing.T, w *served, logV note.Verifier, text string) {
	t.Helper()
	b := w.latest(t, logV.Name())
	n, err := note.Open(b, note.VerifierList(logV, w.Verifier))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("the witness's checkpoint does not verify with formats/note: %v\n%s", err, b)
	}
	if n.Text != text {
		t.Fatalf("the witness holds\n%s\nbut Tessera published\n%s", n.Text, text)
	}
}

// TestTesseraWithOurWitness: a Tessera log (POSIX driver) whose witness
// policy names agentlog's witness publishes only checkpoints our witness
// cosigned (FailOpen off), from its witnessed size-0 checkpoint on, each
// later one with a consistency proof; the cosignatures verify with
// formats/note, and the witness's monitoring endpoint follows the log. The
// same policy text configures Tessera and agentlog's policy verifier. Then
// the log restarts with a second, new witness in its policy: Tessera offers
// it the old size it knows, learns from our 409 (text/x.tlog.size) that the
// witness has seen nothing, and gets both cosignatures.
func TestTesseraWithOurWitness(t *testing.T) {
	const origin = "tessera.interop.example/log"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	logS, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logV, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wa := serveWitness(t, "a.interop.example/witness", logV)

	dir, err := os.MkdirTemp("", "tessera-interop")
	if err != nil {
		t.Fatal(err)
	}
	// Tessera's background loops stop when their context is cancelled,
	// with nothing to wait for; a second RemoveAll covers a lock file one
	// of them may recreate in between.
	t.Cleanup(func() {
		if os.RemoveAll(dir) != nil {
			os.RemoveAll(dir)
		}
	})
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)

	policyText := fmt.Appendf(nil, "log %s\nwitness A %s %s\nquorum A\n", vkey, wa.VKey, wa.URL)
	ours, err := policy.Parse(policyText)
	if err != nil {
		t.Fatal(err)
	}
	lg := openTessera(t, dir, logS, policyText, hc)
	closed := false
	defer func() {
		if !closed {
			lg.close(t)
		}
	}()
	if codes := wa.addCodes(); !slices.Equal(codes, []int{http.StatusOK}) {
		t.Fatalf("the witness answered %v to Tessera's start, want one 200 for its size-0 checkpoint", codes)
	}
	checkWitnessView(t, wa, logV, origin+"\n0\n"+"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")

	var size uint64
	for round := range 4 {
		n := 1 + round*9 // sizes 1, 11, 30, 58: proofs of several shapes
		size += uint64(n)
		cp := lg.append(t, n, fmt.Sprintf("round %d", round))
		text := checkCosigned(t, cp, size, start, logV, wa)
		if v, err := ours.Verify(cp); err != nil || len(v.Cosigners) != 1 || v.Size != size {
			t.Fatalf("round %d: agentlog policy: %v", round, err)
		}
		checkWitnessView(t, wa, logV, text)
	}
	for _, c := range wa.addCodes() {
		if c != http.StatusOK {
			t.Fatalf("the witness answered %v; Tessera tracked its size, so all should be 200", wa.addCodes())
		}
	}
	lg.close(t)
	closed = true

	wb := serveWitness(t, "b.interop.example/witness", logV)
	policyText = fmt.Appendf(nil, "log %s\nwitness A %s %s\nwitness B %s %s\ngroup both all A B\nquorum both\n",
		vkey, wa.VKey, wa.URL, wb.VKey, wb.URL)
	if ours, err = policy.Parse(policyText); err != nil {
		t.Fatal(err)
	}
	lg = openTessera(t, dir, logS, policyText, hc)
	closed = false
	size += 5
	cp := lg.append(t, 5, "after restart")
	text := checkCosigned(t, cp, size, start, logV, wa, wb)
	if v, err := ours.Verify(cp); err != nil || len(v.Cosigners) != 2 {
		t.Fatalf("agentlog policy: %v", err)
	}
	checkWitnessView(t, wa, logV, text)
	checkWitnessView(t, wb, logV, text)
	if codes := wb.addCodes(); len(codes) < 2 || codes[0] != http.StatusConflict || codes[len(codes)-1] != http.StatusOK {
		t.Fatalf("the new witness answered %v, want 409 (Tessera offered size %d) then 200", codes, size-5)
	}
	if !bytes.Contains(cp, []byte("\n— b.interop.example/witness ")) {
		t.Fatalf("no cosignature line of the new witness:\n%s", cp)
	}
}
