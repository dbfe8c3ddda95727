package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"
	cosig "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoTimestamp is wrapped by the error [Open] returns when it was given a
// timestamp verifier but the checkpoint carries no signature by that key.
var ErrNoTimestamp = errors.New("no timestamp signature")

// HashSize is the size of a root hash (SHA-256).
const HashSize = sha256.Size

// MaxSize bounds the size of a signed checkpoint accepted by [Open]. A
// checkpoint body is about 100 bytes and note.Open accepts at most 100
// signature lines, so this leaves room for large (ML-DSA) cosignatures.
const MaxSize = 1 << 20

// Sign returns a signed checkpoint for the tree of the given size and root
// hash: the body is origin, size and base64 root (no extension lines), followed
// by the log's signature and a timestamp signature whose time is the
// TimeSigner's clock.
func Sign(k *Keys, size uint64, root []byte) ([]byte, error) {
	if k.TimeSigner == nil {
		return nil, errNoTimeKey
	}
	return sign(k, size, root, k.TimeSigner)
}

// SignAt is like [Sign] but the timestamp signature carries t (truncated to
// whole seconds) instead of the TimeSigner's clock.
func SignAt(k *Keys, size uint64, root []byte, t time.Time) ([]byte, error) {
	if k.TimeSigner == nil {
		return nil, errNoTimeKey
	}
	return sign(k, size, root, k.TimeSigner.At(t))
}

var errNoTimeKey = errors.New("checkpoint: the keys have no timestamp signer")

func sign(k *Keys, size uint64, root []byte, ts note.Signer) ([]byte, error) {
	if len(root) != HashSize {
		return nil, fmt.Errorf("cannot sign a root hash of %d bytes; a SHA-256 root has %d", len(root), HashSize)
	}
	body := log.Checkpoint{Origin: k.Origin, Size: size, Hash: root}.Marshal()
	return note.Sign(&note.Note{Text: string(body)}, k.LogSigner, ts)
}

// ErrSuperseded is wrapped by the errors that mean another node now holds
// the log's lock (package mirror): the node that gets it never signs
// again (package signer stops).
var ErrSuperseded = errors.New("superseded: another node holds the log's lock")

// Signed is a checkpoint whose signatures [Open] verified.
type Signed struct {
	Origin string
	Size   uint64    // number of leaves
	Root   []byte    // RFC 6962 root hash at Size, 32 bytes
	Time   time.Time // from the timestamp signature (UTC, whole seconds); zero if it was not verified
	Raw    []byte    // the signed note as given to Open
	Note   *note.Note
}

// Open parses and verifies a signed checkpoint.
//
// logV is required: the note must carry a valid signature by it, and the
// origin line must equal its key name. If timeV is not nil, the note must also
// carry a valid cosignature v1 by it, whose time becomes [Signed.Time];
// otherwise Time is zero. Signatures by other keys (witnesses) are ignored,
// but a bad signature by logV or timeV rejects the note. The body must be
// exactly origin, size and root as agentlog writes them: a size without
// leading zeros, a 32-byte root in canonical base64 and no extension lines.
func Open(raw []byte, logV, timeV note.Verifier) (*Signed, error) {
	if logV == nil {
		return nil, errors.New("checkpoint: Open needs the log's verifier key")
	}
	if len(raw) > MaxSize {
		return nil, fmt.Errorf("the checkpoint is %d bytes, more than the %d allowed", len(raw), MaxSize)
	}
	vs := []note.Verifier{logV}
	if timeV != nil {
		if timeV.Name() == logV.Name() && timeV.KeyHash() == logV.KeyHash() {
			return nil, errors.New("checkpoint: the timestamp verifier must differ from the log verifier")
		}
		vs = append(vs, timeV)
	}
	n, err := note.Open(raw, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fmt.Errorf("the checkpoint is not signed by the log key %s: %w", logV.Name(), err)
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("the checkpoint has an invalid signature: %w", err)
		}
		return nil, fmt.Errorf("the checkpoint is not a well-formed signed note: %w", err)
	}
	if findSig(n, logV) == nil {
		return nil, fmt.Errorf("the checkpoint is not signed by the log key %s", logV.Name())
	}
	var cp log.Checkpoint
	rest, err := cp.Unmarshal([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("the checkpoint body is malformed: %w", err)
	}
	if len(rest) > 0 {
		return nil, errors.New("the checkpoint has extension lines, which agentlog never signs")
	}
	if len(cp.Hash) != HashSize {
		return nil, fmt.Errorf("the checkpoint root hash has %d bytes, not %d", len(cp.Hash), HashSize)
	}
	if !bytes.Equal(cp.Marshal(), []byte(n.Text)) {
		return nil, errors.New("the checkpoint body is not in canonical form (leading zeros in the size, or non-canonical base64)")
	}
	if cp.Origin != logV.Name() {
		return nil, fmt.Errorf("the checkpoint origin %q differs from the log key name %q", cp.Origin, logV.Name())
	}
	s := &Signed{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Raw: raw, Note: n}
	if timeV != nil {
		sig := findSig(n, timeV)
		if sig == nil {
			return nil, fmt.Errorf("the checkpoint has no timestamp signature by %s: %w", timeV.Name(), ErrNoTimestamp)
		}
		t, err := cosig.CoSigV1Timestamp(*sig)
		if err != nil || t.Unix() < 0 {
			return nil, fmt.Errorf("the timestamp signature by %s is malformed", timeV.Name())
		}
		s.Time = t.UTC()
	}
	return s, nil
}

// ParseBody parses the text of any log's checkpoint (c2sp.org/tlog-checkpoint:
// origin, size and root lines, extension lines allowed), checking only
// that the root is a SHA-256 hash. It verifies no signature: witnesses and
// policies read the bodies of logs other than agentlog's with it.
func ParseBody(text []byte) (*log.Checkpoint, error) {
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(text); err != nil {
		return nil, err
	}
	if len(cp.Hash) != HashSize {
		return nil, fmt.Errorf("the root hash has %d bytes, not %d", len(cp.Hash), HashSize)
	}
	return &cp, nil
}

// findSig returns the verified signature of n made by v, or nil.
func findSig(n *note.Note, v note.Verifier) *note.Signature {
	for i := range n.Sigs {
		if n.Sigs[i].Name == v.Name() && n.Sigs[i].Hash == v.KeyHash() {
			return &n.Sigs[i]
		}
	}
	return nil
}

// OpenOwn opens a checkpoint signed with k, taking the time from the
// timestamp signature when it verifies with k's timestamp key (a checkpoint
// signed before the timestamp key was replaced still opens, with a zero
// Time).
func (k *Keys) OpenOwn(raw []byte) (*Signed, error) {
	s, err := Open(raw, k.LogVerifier, k.TimeVerifier)
	if errors.Is(err, ErrNoTimestamp) {
		return Open(raw, k.LogVerifier, nil)
	}
	return s, err
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
