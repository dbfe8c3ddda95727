package evidence

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/url"
	"testing"

	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// tlogTree is an independent RFC 6962 implementation (x/mod's sumdb/tlog)
// to check verifySpan against.
type tlogTree struct {
	stored []tlog.Hash
	leaves [][]byte // leaf hashes
}

func newTLogTree(t *testing.T, n int) *tlogTree {
	t.Helper()
	tr := &tlogTree{}
	for i := 0; i < n; i++ {
		data := []byte(fmt.Sprintf(`{"time":"x","n":%d}`, i))
		hs, err := tlog.StoredHashes(int64(i), data, tr)
		if err != nil {
			t.Fatal(err)
		}
		tr.stored = append(tr.stored, hs...)
		h := tlog.RecordHash(data)
		tr.leaves = append(tr.leaves, h[:])
	}
	return tr
}

func (tr *tlogTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = tr.stored[x]
	}
	return out, nil
}

func (tr *tlogTree) prove(t *testing.T, i, size int) [][]byte {
	t.Helper()
	p, err := tlog.ProveRecord(int64(size), int64(i), tr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for k := range p {
		out[k] = p[k][:]
	}
	return out
}

func (tr *tlogTree) root(t *testing.T, size int) []byte {
	t.Helper()
	h, err := tlog.TreeHash(int64(size), tr)
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

// TestVerifySpan checks the range proof of every span of trees up to 33
// leaves, built and proven by x/mod's tlog: genuine spans pass, and a
// changed, dropped, duplicated or shifted leaf fails.
func TestVerifySpan(t *testing.T) {
	tr := newTLogTree(t, 33)
	other := sha256.Sum256([]byte("other"))
	for size := 1; size <= 33; size++ {
		root := tr.root(t, size)
		for lo := 0; lo < size; lo++ {
			for hi := lo + 1; hi <= size; hi++ {
				first, last := tr.prove(t, lo, size), tr.prove(t, hi-1, size)
				// The proofs are also what merkle verifies.
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(lo), uint64(size), tr.leaves[lo], first, root); err != nil {
					t.Fatalf("x/mod proof of %d in %d: %v", lo, size, err)
				}
				span := tr.leaves[lo:hi]
				if err := verifySpan(uint64(lo), span, uint64(size), root, first, last); err != nil {
					t.Fatalf("span [%d, %d) of %d: %v", lo, hi, size, err)
				}
				if hi-lo < 3 {
					continue
				}
				// An inner leaf changed.
				bad := append([][]byte(nil), span...)
				bad[1] = other[:]
				if verifySpan(uint64(lo), bad, uint64(size), root, first, last) == nil {
					t.Fatalf("span [%d, %d) of %d with a changed leaf verified", lo, hi, size)
				}
				// An inner leaf dropped, or duplicated in its place.
				bad = append(append([][]byte(nil), span[:1]...), span[2:]...)
				if verifySpan(uint64(lo), bad, uint64(size), root, first, last) == nil {
					t.Fatalf("span [%d, %d) of %d without a leaf verified", lo, hi, size)
				}
				bad = append(append([][]byte(nil), span[:2]...), span[1:len(span)-1]...)
				bad = append(bad, span[len(span)-1])
				if verifySpan(uint64(lo), bad[:len(span)], uint64(size), root, first, last) == nil {
					t.Fatalf("span [%d, %d) of %d with a duplicated leaf verified", lo, hi, size)
				}
			}
		}
	}
}

func validProofFile(t testing.TB) []byte {
	cp := []byte("evidence.test/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— evidence.test/log AAAAAAAA\n")
	h := sha256.Sum256([]byte("x"))
	b, err := marshalTLogProof(2, [][]byte{h[:], h[:]}, cp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseTLogProof: the reader never panics, and what it accepts is
// what transparency-dev/formats reads and writes back identically.
func FuzzParseTLogProof(f *testing.F) {
	f.Add(validProofFile(f))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\ncp\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AAAA\nindex 00\nAAAA\n\ncp"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\r\nindex 1\r\n\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseTLogProof(b)
		if err != nil {
			return
		}
		var q tproof.TLogProof
		if err := q.Unmarshal(b); err != nil {
			t.Fatalf("accepted a proof formats cannot read: %v", err)
		}
		if !bytes.Equal(q.Marshal(), b) || !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("accepted a proof that is not canonical: %q", b)
		}
	})
}

func validManifest() []byte {
	return marshalManifest(&Manifest{
		Format: Format, Origin: "o", TreeSize: 3, Root: make([]byte, 32), Query: "agent=a",
		End: 3, Matches: 1, Files: map[string]string{"entries.ndjson": fmt.Sprintf("%x", sha256.Sum256(nil)), "proofs/1.tlog-proof": fmt.Sprintf("%x", sha256.Sum256([]byte("p")))},
	})
}

// FuzzParseManifest: never panics, and an accepted manifest re-encodes
// to the same bytes and names only safe relative paths.
func FuzzParseManifest(f *testing.F) {
	f.Add(validManifest())
	f.Add([]byte(`{"format":"agentlog-evidence/v1"}`))
	f.Add(bytes.Replace(validManifest(), []byte("proofs/1"), []byte("../x"), 1))
	f.Add(append(validManifest(), "{}"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(marshalManifest(m), b) {
			t.Fatal("accepted a manifest that is not canonical")
		}
		for p := range m.Files {
			if bytes.Contains([]byte(p), []byte("..")) && p != ".." || p == "" || p[0] == '/' {
				if checkEvidencePath(p) == nil {
					t.Fatalf("accepted path %q", p)
				}
			}
		}
	})
}

// FuzzParseEntryLines: never panics, and accepted lines are written back
// identically by appendEntryLine.
func FuzzParseEntryLines(f *testing.F) {
	f.Add([]byte(`{"index":3,"entry":{"time":"2026-03-02T08:00:00.000000000Z","kind":"action"}}` + "\n"))
	f.Add([]byte(`{"index":03,"entry":{}}` + "\n"))
	f.Add([]byte(`{"index":1,"entry":{"a":"}"}}` + "\n" + `{"index":1,"entry":{}}` + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseEntryLines(b)
		if err != nil {
			return
		}
		var out []byte
		for _, e := range es {
			out = appendEntryLine(out, e.Index, e.Leaf)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted %q, writes back %q", b, out)
		}
	})
}

// FuzzCanonicalQuery: never panics; an accepted query re-encodes to itself.
func FuzzCanonicalQuery(f *testing.F) {
	f.Add("agent=alice&from=2026-03-02T10%3A00%3A00Z&to=2026-03-02T20%3A00%3A00Z")
	f.Add("outside_hours=09%3A00-17%3A00&tz=Europe%2FParis&weekdays=mon-fri")
	f.Add("resource=customers%2F%2A&limit=3")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		c, _, err := canonicalQuery(q)
		if err != nil {
			return
		}
		q2, err := url.ParseQuery(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, _, err := canonicalQuery(q2)
		if err != nil || c2 != c {
			t.Fatalf("%q: canonical %q re-encodes to %q (%v)", s, c, c2, err)
		}
	})
}
