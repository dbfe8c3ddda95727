package witness

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog/checkpoint"
)

// testLog is an in-memory log with a note key, built on x/mod's tlog (an
// implementation independent of the tree package), so that it can also be
// made to fork.
type testLog struct {
	t      testing.TB
	origin string
	signer note.Signer
	vkey   string

	mu     sync.Mutex
	hashes []tlog.Hash // stored hashes, as tlog.StoredHashes lays them out
	n      int64
}

func newTestLog(t testing.TB, origin string) *testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, origin: origin, signer: s, vkey: vkey}
}

func (l *testLog) verifier() note.Verifier {
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		l.t.Fatal(err)
	}
	return v
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("no hash %d", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// grow appends n leaves whose content is tag and their index.
func (l *testLog) grow(n int, tag string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		hs, err := tlog.StoredHashes(l.n, fmt.Appendf(nil, "%s %d", tag, l.n), l.reader())
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.n++
	}
}

func (l *testLog) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(l.n)
}

func (l *testLog) root(size uint64) []byte {
	h, err := tlog.TreeHash(int64(size), l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	return h[:]
}

// checkpoint signs the current tree head with the log key.
func (l *testLog) checkpoint() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sign(uint64(l.n), l.root(uint64(l.n)), l.signer)
}

func (l *testLog) sign(size uint64, root []byte, signers ...note.Signer) []byte {
	body := log.Checkpoint{Origin: l.origin, Size: size, Hash: root}.Marshal()
	raw, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		l.t.Fatal(err)
	}
	return raw
}

// ConsistencyProof implements [Prover].
func (l *testLog) ConsistencyProof(old, size uint64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := tlog.ProveTree(int64(size), int64(old), l.reader())
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out, nil
}

func (l *testLog) proof(old, size uint64) [][]byte {
	if old == 0 || old == size {
		return nil
	}
	p, err := l.ConsistencyProof(old, size)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// body builds an add-checkpoint request body.
func body(old uint64, proof [][]byte, cp []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		fmt.Fprintf(&b, "%s\n", b64(h))
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

// fixedTime is the time test witnesses put in their cosignatures.
var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestSigner returns a cosignature v1 signer and its verifier key.
func newTestSigner(t testing.TB, name string) (*checkpoint.TimeSigner, string) {
	skey, vkey, err := checkpoint.GenerateTimeKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.NewTimeSigner(skey, func() time.Time { return fixedTime })
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func post(t testing.TB, url string, b []byte) (int, string, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}
