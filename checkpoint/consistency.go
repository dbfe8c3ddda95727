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

// ErrInconsistent is wrapped by every [*InconsistentError]: two tree heads
// of one log (two checkpoints, or a checkpoint and a tree head about to be
// signed) that no single append-only tree explains.
var ErrInconsistent = errors.New("inconsistent checkpoints")

// The kinds of [InconsistentError].
const (
	// KindRefusal: the log's own signer refused to sign a tree head that
	// would contradict its last signed checkpoint (it would fork or roll
	// back). Other is nil: the candidate was never signed.
	KindRefusal = "refusal"
	// KindFork: a monitor found the log's checkpoint contradicting the one
	// it trusted before.
	KindFork = "fork"
	// KindSplitView: a witness's view of the log contradicts the log's own.
	KindSplitView = "split view"
)

// An InconsistentError is the evidence that two tree heads of one log
// cannot both be views of one append-only tree. The log's signer returns it
// to refuse a candidate ([CheckConsistent]); a monitor returns it on finding
// a fork or a split view (client.Monitor). The checkpoints are kept
// verbatim, so they can be handed to anyone holding the log's key, and the
// sizes and roots are kept beside them.
type InconsistentError struct {
	Kind   string // KindRefusal, KindFork or KindSplitView
	Source string // where Other came from: the log's URL or "witness NAME (URL)"; empty for a refusal

	Trusted     []byte // the checkpoint trusted so far (for a refusal, the last signed), verbatim
	TrustedSize uint64
	TrustedRoot []byte

	Other     []byte // the contradicting checkpoint, verbatim; nil for a refusal
	OtherSize uint64 // the contradicting tree head (for a refusal, the candidate)
	OtherRoot []byte

	Reason string // what does not match, as a sentence fragment
}

// Unwrap makes errors.Is(err, ErrInconsistent) true.
func (e *InconsistentError) Unwrap() error { return ErrInconsistent }

func (e *InconsistentError) Error() string {
	if e.Kind != KindRefusal {
		return fmt.Sprintf("%s: %s\n\ntrusted checkpoint:\n%s\ncheckpoint from %s:\n%s", e.Kind, e.Reason, indentNote(e.Trusted), e.Source, indentNote(e.Other))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to sign checkpoint size %d root %s: it is inconsistent with the last signed checkpoint (size %d root %s): %s",
		e.OtherSize, b64(e.OtherRoot), e.TrustedSize, b64(e.TrustedRoot), e.Reason)
	if len(e.Trusted) > 0 {
		fmt.Fprintf(&b, "; last signed checkpoint:\n%s", e.Trusted)
	}
	return b.String()
}

func indentNote(b []byte) string {
	s := strings.TrimSuffix(string(b), "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
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
			Kind:    KindRefusal,
			Trusted: last.Raw, TrustedSize: last.Size, TrustedRoot: last.Root,
			OtherSize: size, OtherRoot: root,
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
