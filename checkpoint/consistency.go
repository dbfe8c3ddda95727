package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Prover gives the roots and consistency proofs of the log's tree. The tree
// package implements it.
type Prover interface {
	// RootAt returns the RFC 6962 root hash of the first size leaves
	// (SHA-256 of the empty string for size 0). It fails if the tree has
	// fewer than size leaves.
	RootAt(size uint64) ([]byte, error)
	// ConsistencyProof returns the RFC 6962 consistency proof from the tree
	// of size old to the tree of size size, for 0 < old <= size.
	ConsistencyProof(old, size uint64) ([][]byte, error)
}

// ErrInconsistent is wrapped by every error that holds two checkpoints
// (or a checkpoint and a tree head) no single append-only tree explains:
// the log's refusal to sign ([InconsistentError]) and a monitor's finding
// of a fork or split view (client.InconsistencyError).
var ErrInconsistent = errors.New("inconsistent checkpoints")

// InconsistentError is the evidence that signing a candidate tree head would
// contradict the last signed checkpoint: the log would fork or roll back. The
// log must not sign the candidate; an operator has to look at both.
type InconsistentError struct {
	Last          []byte // the last signed checkpoint, the signed note verbatim
	LastSize      uint64 // its tree size
	LastRoot      []byte // its root hash
	CandidateSize uint64 // the tree head that was about to be signed
	CandidateRoot []byte
	Reason        string // what does not match, as a sentence fragment
}

// Unwrap makes errors.Is(err, ErrInconsistent) true.
func (e *InconsistentError) Unwrap() error { return ErrInconsistent }

func (e *InconsistentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to sign checkpoint size %d root %s: it is inconsistent with the last signed checkpoint (size %d root %s): %s",
		e.CandidateSize, b64(e.CandidateRoot), e.LastSize, b64(e.LastRoot), e.Reason)
	if len(e.Last) > 0 {
		fmt.Fprintf(&b, "; last signed checkpoint:\n%s", e.Last)
	}
	return b.String()
}

// CheckConsistent reports whether the tree head (size, root) may be signed
// after last: the size must not shrink, an equal size must have an equal
// root, the tree's root at last.Size must be last.Root, and the tree's
// consistency proof from last.Size to size must verify against both roots.
// A contradiction is returned as an *InconsistentError; an error of p is
// wrapped as is. A nil last is consistent with anything.
func CheckConsistent(last *Signed, size uint64, root []byte, p Prover) error {
	if last == nil {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &InconsistentError{
			Last: last.Raw, LastSize: last.Size, LastRoot: last.Root,
			CandidateSize: size, CandidateRoot: root,
			Reason: fmt.Sprintf(format, args...),
		}
	}
	switch {
	case size < last.Size:
		return fail("the tree has %d leaves, fewer than the %d already signed (was an old data directory restored?)", size, last.Size)
	case size == last.Size && !bytes.Equal(root, last.Root):
		return fail("the same tree size has a different root hash")
	}
	oldRoot, err := p.RootAt(last.Size)
	if err != nil {
		return fmt.Errorf("cannot compute the tree's root at the last signed size %d: %w", last.Size, err)
	}
	if !bytes.Equal(oldRoot, last.Root) {
		return fail("the tree's root at size %d is %s, not the signed one", last.Size, b64(oldRoot))
	}
	if size == last.Size || last.Size == 0 {
		return nil
	}
	pf, err := p.ConsistencyProof(last.Size, size)
	if err != nil {
		return fmt.Errorf("cannot compute the consistency proof from size %d to %d: %w", last.Size, size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, last.Size, size, pf, last.Root, root); err != nil {
		return fail("the consistency proof from size %d to %d does not verify: %v", last.Size, size, err)
	}
	return nil
}
