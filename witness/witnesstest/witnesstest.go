// Package witnesstest provides an in-memory transparency log for testing
// witnesses and their clients: it signs checkpoints, gives consistency
// proofs, and can be made to fork.
package witnesstest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog/checkpoint"
)

// Log is an in-memory log with a note key, built on x/mod's tlog (an
// implementation independent of the tree package), so that it can also be
// made to fork.
type Log struct {
	t      testing.TB
	Origin string      // the log's origin, also its key name
	Signer note.Signer // the log's key; replace it to sign with another
	VKey   string      // verifier key of Signer

	mu     sync.Mutex
	hashes []tlog.Hash // stored hashes, as tlog.StoredHashes lays them out
	n      int64
}

// NewLog returns an empty log with a new Ed25519 key named origin.
func NewLog(t testing.TB, origin string) *Log {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &Log{t: t, Origin: origin, Signer: s, VKey: vkey}
}

func (l *Log) Verifier() note.Verifier {
	v, err := note.NewVerifier(l.VKey)
	if err != nil {
		l.t.Fatal(err)
	}
	return v
}

func (l *Log) reader() tlog.HashReader {
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
func (l *Log) Grow(n int, tag string) {
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

func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(l.n)
}

func (l *Log) Root(size uint64) []byte {
	h, err := tlog.TreeHash(int64(size), l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	return h[:]
}

// checkpoint signs the current tree head with the log key.
func (l *Log) Checkpoint() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Sign(uint64(l.n), l.Root(uint64(l.n)), l.Signer)
}

func (l *Log) Sign(size uint64, root []byte, signers ...note.Signer) []byte {
	body := log.Checkpoint{Origin: l.Origin, Size: size, Hash: root}.Marshal()
	raw, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		l.t.Fatal(err)
	}
	return raw
}

// ConsistencyProof returns the RFC 6962 consistency proof from old to size
// (witness.Prover).
func (l *Log) ConsistencyProof(old, size uint64) ([][]byte, error) {
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

func (l *Log) Proof(old, size uint64) [][]byte {
	if old == 0 || old == size {
		return nil
	}
	p, err := l.ConsistencyProof(old, size)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

// Body builds a c2sp.org/tlog-witness add-checkpoint request body.
func Body(old uint64, proof [][]byte, cp []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		fmt.Fprintf(&b, "%s\n", base64.StdEncoding.EncodeToString(h))
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

// Signed returns the log's current checkpoint as a [checkpoint.Signed]
// (without a timestamp signature), as the checkpoint loop publishes it.
func (l *Log) Signed() *checkpoint.Signed {
	raw := l.Checkpoint()
	size := l.Size()
	return &checkpoint.Signed{Origin: l.Origin, Size: size, Root: l.Root(size), Raw: raw}
}

// CorruptSigner signs with the right key ID but a wrong signature.
type CorruptSigner struct{ note.Signer }

// Sign returns the signature of the embedded signer with one bit flipped.
func (c CorruptSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := c.Signer.Sign(msg)
	sig[0] ^= 1
	return sig, err
}
