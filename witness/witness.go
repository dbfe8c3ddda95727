package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// MaxProofLines is the most consistency proof lines a request may carry
// (c2sp.org/tlog-witness). A proof between trees of at most 2^63 leaves
// never needs more.
const MaxProofLines = 63

// Errors of [Witness.Add]; the HTTP handler maps each to its status code.
var (
	ErrMalformed    = errors.New("malformed request")                                   // 400
	ErrOldTooLarge  = errors.New("the old size is larger than the checkpoint size")     // 400
	ErrUnknownLog   = errors.New("unknown log origin")                                  // 404
	ErrNotSigned    = errors.New("no valid signature by a trusted key of the log")      // 403
	ErrBadProof     = errors.New("the consistency proof does not verify")               // 422
	ErrRootMismatch = errors.New("the root hash differs from the one already cosigned") // 422
	ErrRateLimited  = errors.New("too many requests for this log")                      // 429
)

// ConflictError is returned when the old size of a request is not the size
// of the latest checkpoint the witness cosigned for the log (409).
type ConflictError struct {
	Size uint64 // size of the latest cosigned checkpoint; 0 if none
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the old size does not match the latest cosigned size %d", e.Size)
}

// A Signer makes cosignatures. checkpoint.TimeSigner, a c2sp.org/tlog-cosignature
// v1 signer taking its time from an NTP-anchored clock, is the one agentlog uses.
type Signer = note.Signer

// Config configures a [Witness].
type Config struct {
	// Signer makes the cosignatures; its name is the witness's name.
	Signer Signer
	// Logs are the verifier keys trusted for each origin. A checkpoint is
	// accepted if any key of its origin signed it (several keys allow a
	// rotation).
	Logs map[string][]note.Verifier
	// Store keeps the latest cosigned checkpoint of each log.
	Store Store
	// Limit, if not nil, is consulted for each request carrying a valid
	// signature of a known log; a false answer rejects it with
	// ErrRateLimited (429).
	Limit  func(origin string) bool
	Logger *slog.Logger // nil discards
}

// A Witness checks and cosigns checkpoints as specified by
// c2sp.org/tlog-witness. Its methods are safe for concurrent use.
type Witness struct {
	cfg   Config
	log   *slog.Logger
	locks sync.Map // origin -> *sync.Mutex, serializing compare-and-swap per log
}

// New returns a Witness.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil || cfg.Store == nil {
		return nil, errors.New("witness: New needs a Signer and a Store")
	}
	for origin, vs := range cfg.Logs {
		for _, v := range vs {
			if v.Name() != origin {
				return nil, fmt.Errorf("witness: key %q is listed for origin %q; a log key's name must be its origin", v.Name(), origin)
			}
		}
	}
	w := &Witness{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

// Name is the name of the witness's key.
func (w *Witness) Name() string { return w.cfg.Signer.Name() }

// Origins lists the logs the witness accepts.
func (w *Witness) Origins() []string {
	var o []string
	for k := range w.cfg.Logs {
		o = append(o, k)
	}
	return o
}

// Request is a parsed add-checkpoint request body.
type Request struct {
	OldSize    uint64
	Proof      [][]byte // consistency proof from OldSize to the checkpoint's size
	Checkpoint []byte   // the signed note
}

// ParseRequest parses an add-checkpoint body: "old <size>\n", at most
// [MaxProofLines] base64 hashes one a line, an empty line, then the signed
// checkpoint. Errors wrap ErrMalformed.
func ParseRequest(body []byte) (*Request, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, bad("no old size line")
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, bad(`the first line must be "old <size>"`)
	}
	old, err := parseSize(string(num))
	if err != nil {
		return nil, bad("old size: %v", err)
	}
	r := &Request{OldSize: old}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, bad("no empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProofLines {
			return nil, bad("more than %d consistency proof lines", MaxProofLines)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(line))
		if err != nil || len(h) != rfc6962.DefaultHasher.Size() {
			return nil, bad("proof line %d is not a base64 SHA-256 hash", len(r.Proof)+1)
		}
		r.Proof = append(r.Proof, h)
	}
	r.Checkpoint = rest
	return r, nil
}

// parseSize parses a decimal tree size without leading zeros.
func parseSize(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, fmt.Errorf("%q is not a decimal size without leading zeros", s)
	}
	var n uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal size", s)
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("%q overflows 64 bits", s)
		}
		n = n*10 + d
	}
	return n, nil
}

// parseBody parses a checkpoint body (origin, size, root, optional
// extension lines).
func parseBody(text []byte) (*log.Checkpoint, error) {
	cp, err := checkpoint.ParseBody(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return cp, nil
}

// Add checks the checkpoint of r against the latest one cosigned for its
// log and, if it is consistent, cosigns it, durably records it as the
// latest, and returns the cosignature as note signature lines. The check and
// the update are one atomic compare-and-swap per log: of concurrent requests
// with the same old size, at most one that grows the tree succeeds.
//
// The checks run in the order of c2sp.org/tlog-witness: unknown origin
// (ErrUnknownLog), signature (ErrNotSigned), old size larger than the new
// (ErrOldTooLarge), old size not the recorded size (*ConflictError), then the
// proof (ErrBadProof) or, for an equal size or an empty tree, the root
// (ErrRootMismatch). With no recorded checkpoint the recorded size is 0 and
// the checkpoint is trusted on first use.
func (w *Witness) Add(ctx context.Context, r *Request) ([]byte, error) {
	origin, _, ok := bytes.Cut(r.Checkpoint, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: the checkpoint has no origin line", ErrMalformed)
	}
	vs, ok := w.cfg.Logs[string(origin)]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownLog, origin)
	}
	if len(r.Checkpoint) > checkpoint.MaxSize {
		return nil, fmt.Errorf("%w: the checkpoint is larger than %d bytes", ErrMalformed, checkpoint.MaxSize)
	}
	n, err := note.Open(r.Checkpoint, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w: %v", ErrNotSigned, err)
		}
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note: %v", ErrMalformed, err)
	}
	// Only requests signed by the log count against its rate limit, so
	// others cannot use up the log's share.
	if w.cfg.Limit != nil && !w.cfg.Limit(string(origin)) {
		return nil, fmt.Errorf("%w %q", ErrRateLimited, origin)
	}
	cp, err := parseBody([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if r.OldSize > cp.Size {
		return nil, fmt.Errorf("%w (%d > %d)", ErrOldTooLarge, r.OldSize, cp.Size)
	}
	if cp.Size == 0 && !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return nil, fmt.Errorf("%w: a checkpoint of size 0 must have the empty tree's root", ErrRootMismatch)
	}

	mu, _ := w.locks.LoadOrStore(cp.Origin, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	prev, err := w.cfg.Store.Load(cp.Origin)
	if err != nil {
		return nil, fmt.Errorf("loading the state of %q: %w", cp.Origin, err)
	}
	var prevSize uint64
	var prevRoot []byte
	if prev != nil {
		pcp, err := parseBody(noteText(prev))
		if err != nil {
			return nil, fmt.Errorf("the stored checkpoint of %q is corrupt: %v", cp.Origin, err)
		}
		prevSize, prevRoot = pcp.Size, pcp.Hash
	}
	if r.OldSize != prevSize {
		return nil, &ConflictError{Size: prevSize}
	}
	switch {
	case cp.Size == prevSize:
		if len(r.Proof) != 0 {
			return nil, fmt.Errorf("%w: the proof must be empty for an unchanged size", ErrBadProof)
		}
		if prev != nil && !bytes.Equal(cp.Hash, prevRoot) {
			w.log.Error("INCONSISTENT CHECKPOINT: same size, different root", "origin", cp.Origin, "size", cp.Size,
				"cosigned", string(prev), "submitted", string(r.Checkpoint))
			return nil, fmt.Errorf("%w at size %d", ErrRootMismatch, cp.Size)
		}
	case prevSize == 0:
		if len(r.Proof) != 0 {
			return nil, fmt.Errorf("%w: the proof must be empty when the old size is 0", ErrBadProof)
		}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, prevSize, cp.Size, r.Proof, prevRoot, cp.Hash); err != nil {
			w.log.Error("INCONSISTENT CHECKPOINT: the consistency proof does not verify", "origin", cp.Origin,
				"old_size", prevSize, "size", cp.Size, "err", err, "cosigned", string(prev), "submitted", string(r.Checkpoint))
			return nil, fmt.Errorf("%w from size %d to %d: %v", ErrBadProof, prevSize, cp.Size, err)
		}
	}
	line, err := w.cosign([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	// Record the checkpoint as verified, with the log's signatures and ours
	// (not the other witnesses', which are not checked), so the monitoring
	// endpoint serves what this witness vouches for.
	signed, err := AddSignatures(stripSigs(n), line)
	if err != nil {
		return nil, err
	}
	if err := w.cfg.Store.Store(cp.Origin, signed); err != nil {
		return nil, fmt.Errorf("storing the checkpoint of %q: %w", cp.Origin, err)
	}
	return line, nil
}

// cosign signs text and returns the signature line.
func (w *Witness) cosign(text []byte) ([]byte, error) {
	s := w.cfg.Signer
	sig, err := s.Sign(text)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	b := make([]byte, 4, 4+len(sig))
	binary.BigEndian.PutUint32(b, s.KeyHash())
	return fmt.Appendf(nil, "— %s %s\n", s.Name(), base64.StdEncoding.EncodeToString(append(b, sig...))), nil
}

// Latest returns the latest checkpoint cosigned for origin, with the log's
// signatures and this witness's cosignature, or nil if there is none.
func (w *Witness) Latest(origin string) ([]byte, error) {
	if _, ok := w.cfg.Logs[origin]; !ok {
		return nil, nil
	}
	return w.cfg.Store.Load(origin)
}

// noteText returns the text of a signed note (up to and including the
// newline before the blank line).
func noteText(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i+1]
	}
	return raw
}

// stripSigs returns the text of n followed by its verified signatures only.
func stripSigs(n *note.Note) []byte {
	out := append([]byte(n.Text), '\n')
	for _, s := range n.Sigs {
		out = fmt.Appendf(out, "— %s %s\n", s.Name, s.Base64)
	}
	return out
}
