package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/log/query"
	"github.com/agentlog/agentlog/witness/policy"
)

// ErrInvalid is wrapped by every error of [Verify] that is about
// the contents of the directory (as opposed to, say, a bad key argument).
var ErrInvalid = errors.New("the evidence does not verify")

// Error says which check failed and in which file.
type Error struct {
	Path string // slash-separated, relative to the evidence directory
	Msg  string // a sentence saying what is wrong
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

func evErr(p, format string, a ...any) error {
	return &Error{Path: p, Msg: fmt.Sprintf(format, a...)}
}

// Verified is what a verified evidence directory proves.
type Verified struct {
	Manifest   *Manifest
	Checkpoint *checkpoint.Signed // verified with the log key; Time from keys/time.pub if present
	// Cosigners are the policy's witnesses whose cosignatures verified
	// (with a policy).
	Cosigners []string
	// Complete reports that the export proves it lists every entry of
	// [Manifest.Start, Manifest.End) matching the query.
	Complete bool
}

// Verify checks an evidence directory offline: the digest of every
// file against manifest.json, the checkpoint's signature by logVKey (and,
// if policy is not nil, its witness quorum), every tlog-proof (leaf hash,
// checkpoint, inclusion), that every entry matches the recorded query, and
// for a time-range export that the range is exactly the query's time range
// and that no entry in it matching the query is missing. The first failure
// is returned as an *[Error] naming the file.
//
// The checkpoint time is read with keys/time.pub from the directory, which
// is not an independently trusted key: compare it with the log's time.pub
// when the time matters.
func Verify(dir, logVKey string, pol *policy.Policy) (*Verified, error) {
	lv, err := note.NewVerifier(strings.TrimSpace(logVKey))
	if err != nil {
		return nil, fmt.Errorf("the log key is not a note verifier key: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return verifyEvidence(os.DirFS(dir), lv, strings.TrimSpace(logVKey), pol)
}

// verifyEvidence is Verify over any file system. A nil lv skips
// the signature checks (an export without the log key checks its own
// output this way).
func verifyEvidence(fsys fs.FS, lv note.Verifier, logVKey string, pol *policy.Policy) (*Verified, error) {
	raw, err := fs.ReadFile(fsys, evManifest)
	if err != nil {
		return nil, evErr(evManifest, "cannot be read: %v", err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, evErr(evManifest, "%v", err)
	}
	files, err := readEvidenceFiles(fsys, m)
	if err != nil {
		return nil, err
	}
	v := &evVerifier{m: m, files: files, expected: map[string]bool{}}
	ev, err := v.run(lv, logVKey, pol)
	if err != nil {
		return nil, err
	}
	for p := range files {
		if !v.expected[p] {
			return nil, evErr(p, "is not part of an evidence export (only the files docs/evidence.md lists may be present)")
		}
	}
	return ev, nil
}

// readEvidenceFiles reads every file of fsys but the manifest and checks
// it against the manifest's digests.
func readEvidenceFiles(fsys fs.FS, m *Manifest) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return evErr(p, "cannot be read: %v", err)
		}
		if p == "." || p == evManifest {
			return nil
		}
		if d.IsDir() {
			if p != evProofDir && p != evRangeDir && p != evKeyDir {
				return evErr(p, "is a directory an export never writes")
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return evErr(p, "is not a regular file")
		}
		want, ok := m.Files[p]
		if !ok {
			return evErr(p, "is not listed in manifest.json")
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return evErr(p, "cannot be read: %v", err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			return evErr(p, "its SHA-256 %x differs from the %s recorded in manifest.json, so the file was changed after the export", got, want)
		}
		files[p] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range m.Files {
		if _, ok := files[p]; !ok {
			return nil, evErr(p, "is listed in manifest.json but missing")
		}
	}
	return files, nil
}

type evVerifier struct {
	m        *Manifest
	files    map[string][]byte
	expected map[string]bool // files the contents call for
}

// need returns a file the evidence requires.
func (v *evVerifier) need(p string) ([]byte, error) {
	b, ok := v.files[p]
	if !ok {
		return nil, evErr(p, "is missing")
	}
	v.expected[p] = true
	return b, nil
}

func (v *evVerifier) run(lv note.Verifier, logVKey string, pol *policy.Policy) (*Verified, error) {
	m := v.m
	ev := &Verified{Manifest: m}

	var tv note.Verifier
	if b, ok := v.files[evTimePub]; ok {
		v.expected[evTimePub] = true
		var err error
		if tv, err = fnote.NewVerifierForCosignatureV1(strings.TrimSpace(string(b))); err != nil {
			return nil, evErr(evTimePub, "is not a cosignature/v1 verifier key: %v", err)
		}
	}
	if b, ok := v.files[evPolicy]; ok {
		v.expected[evPolicy] = true
		if _, err := policy.Parse(b); err != nil {
			return nil, evErr(evPolicy, "is not a valid policy: %v", err)
		}
	}

	// The checkpoint.
	raw, err := v.need(evCheckpoint)
	if err != nil {
		return nil, err
	}
	var cp *checkpoint.Signed
	if lv != nil {
		if cp, err = checkpoint.Open(raw, lv, tv); err != nil {
			return nil, evErr(evCheckpoint, "%v", err)
		}
	} else if cp, err = openUnverified(raw); err != nil {
		return nil, evErr(evCheckpoint, "%v", err)
	}
	// The bundled log key must be the one verification trusts.
	if b, ok := v.files[evLogPub]; ok {
		v.expected[evLogPub] = true
		if lv != nil && strings.TrimSpace(string(b)) != logVKey {
			return nil, evErr(evLogPub, "is not the log key given to verify (%s)", lv.Name())
		}
	}
	ev.Checkpoint = cp
	if pol != nil {
		pv, err := pol.Verify(raw)
		if err != nil {
			return nil, evErr(evCheckpoint, "does not satisfy the policy: %v", err)
		}
		for _, w := range pv.Cosigners {
			ev.Cosigners = append(ev.Cosigners, w.Name)
		}
	}
	var cpTime string
	if !cp.Time.IsZero() {
		cpTime = cp.Time.UTC().Format(time.RFC3339)
	}
	switch {
	case m.Origin != cp.Origin:
		return nil, evErr(evManifest, "its origin %q is not the checkpoint's %q", m.Origin, cp.Origin)
	case m.TreeSize != cp.Size:
		return nil, evErr(evManifest, "its tree size %d is not the checkpoint's %d", m.TreeSize, cp.Size)
	case !bytes.Equal(m.Root, cp.Root):
		return nil, evErr(evManifest, "its root hash is not the checkpoint's")
	case m.CheckpointTime != cpTime:
		return nil, evErr(evManifest, "its checkpoint time %q is not the time signed in the checkpoint (%q)", m.CheckpointTime, cpTime)
	}

	// The query.
	q, err := url.ParseQuery(m.Query)
	if err != nil {
		return nil, evErr(evManifest, "its query is not URL-encoded parameters: %v", err)
	}
	canon, f, err := canonicalQuery(q)
	if err != nil {
		return nil, evErr(evManifest, "its query is not valid: %v", err)
	}
	if canon != m.Query {
		return nil, evErr(evManifest, "its query is not in canonical form (%q)", canon)
	}
	ev.Complete = !f.From.IsZero() || !f.To.IsZero()
	if m.Complete != ev.Complete {
		return nil, evErr(evManifest, "says complete=%v but the query has %s time bounds", m.Complete, map[bool]string{true: "", false: "no"}[ev.Complete])
	}
	if m.Start > m.End || m.End > m.TreeSize {
		return nil, evErr(evManifest, "its index range [%d, %d) is not within the tree of size %d", m.Start, m.End, m.TreeSize)
	}
	if !ev.Complete && (m.Start != 0 || m.End != m.TreeSize) {
		return nil, evErr(evManifest, "its index range [%d, %d) is not the whole tree, though the query has no time bounds", m.Start, m.End)
	}

	// The matching entries and their proofs.
	eb, err := v.need(evEntries)
	if err != nil {
		return nil, err
	}
	entries, err := parseEntryLines(eb)
	if err != nil {
		return nil, evErr(evEntries, "%v", err)
	}
	if m.Matches != len(entries) {
		return nil, evErr(evManifest, "says %d matches but entries.ndjson has %d", m.Matches, len(entries))
	}
	for _, e := range entries {
		where := fmt.Sprintf("%s line %d (entry %d)", evEntries, e.Line, e.Index)
		if e.Index < m.Start || e.Index >= m.End {
			return nil, evErr(where, "is outside the index range [%d, %d) of the export", m.Start, m.End)
		}
		lf, err := query.DecodeLeaf(e.Leaf)
		if err != nil {
			return nil, evErr(where, "%v", err)
		}
		if !f.MatchEntry(lf.Time, lf.Field) {
			return nil, evErr(where, "does not match the query %q", m.Query)
		}
		pp := proofPath(evProofDir, e.Index)
		if err := v.checkProof(pp, e.Index, e.Leaf, raw, cp); err != nil {
			return nil, err
		}
	}

	if ev.Complete {
		if err := v.checkRange(f, cp, raw, entries); err != nil {
			return nil, err
		}
	} else if m.RangeEntries != 0 {
		return nil, evErr(evManifest, "says %d range entries, but an export without time bounds has none", m.RangeEntries)
	}

	// The summary is a deterministic rendering of what was just verified.
	sb, err := v.need(evSummary)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(sb, renderSummary(m, raw, f, entries)) {
		return nil, evErr(evSummary, "differs from the summary of the verified evidence, so it was edited")
	}
	return ev, nil
}

func proofPath(dir string, i uint64) string {
	return dir + "/" + strconv.FormatUint(i, 10) + evProofExt
}

// checkProof verifies a tlog-proof file for leaf at index i.
func (v *evVerifier) checkProof(p string, i uint64, leaf, rawCP []byte, cp *checkpoint.Signed) error {
	_, err := v.proofHashes(p, i, client.LeafHash(leaf), rawCP, cp)
	return err
}

// proofHashes reads the tlog-proof at p for index i, checks it names i
// and carries the export's checkpoint verbatim, verifies the inclusion of
// leafHash and returns the proof's hashes.
func (v *evVerifier) proofHashes(p string, i uint64, leafHash, rawCP []byte, cp *checkpoint.Signed) ([][]byte, error) {
	b, err := v.need(p)
	if err != nil {
		return nil, evErr(p, "is missing: entry %d has no tlog-proof", i)
	}
	tp, err := parseTLogProof(b)
	if err != nil {
		return nil, evErr(p, "%v", err)
	}
	if tp.Index != i {
		return nil, evErr(p, "proves index %d, not entry %d", tp.Index, i)
	}
	if !bytes.Equal(tp.Checkpoint, rawCP) {
		return nil, evErr(p, "carries a checkpoint other than the export's")
	}
	hashes := make([][]byte, len(tp.Hashes))
	for j := range tp.Hashes {
		hashes[j] = tp.Hashes[j][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leafHash, hashes, cp.Root); err != nil {
		return nil, evErr(p, "does not prove entry %d in the tree of size %d: %v", i, cp.Size, err)
	}
	return hashes, nil
}

// checkRange verifies range.ndjson: it must hold every entry of
// [lo, hi) = [Start-1, End+1) within the tree, proven by the tlog-proofs
// of its first and last entry; its times must be non-decreasing with the
// Start and End boundaries exactly where the query's time bounds fall; and
// every entry of [Start, End) matching the query must be in entries.ndjson.
func (v *evVerifier) checkRange(f *query.Filter, cp *checkpoint.Signed, rawCP []byte, entries []evEntry) error {
	m := v.m
	lo, hi := m.Start, m.End
	if lo > 0 {
		lo--
	}
	if hi < m.TreeSize {
		hi++
	}
	if m.RangeEntries != int(hi-lo) {
		return evErr(evManifest, "says %d range entries, but the range [%d, %d) with its neighbours has %d", m.RangeEntries, m.Start, m.End, hi-lo)
	}
	rb, err := v.need(evRange)
	if err != nil {
		return err
	}
	rng, err := parseEntryLines(rb)
	if err != nil {
		return evErr(evRange, "%v", err)
	}
	if uint64(len(rng)) != hi-lo {
		return evErr(evRange, "has %d entries, but the range [%d, %d) with its neighbours needs the %d entries %d to %d", len(rng), m.Start, m.End, hi-lo, lo, int64(hi)-1)
	}
	for k, e := range rng {
		if e.Index != lo+uint64(k) {
			return evErr(fmt.Sprintf("%s line %d", evRange, e.Line), "is entry %d, but entry %d belongs here: the range has a gap", e.Index, lo+uint64(k))
		}
	}
	if len(rng) == 0 {
		return nil // an empty tree
	}
	hashes := make([][]byte, len(rng))
	for k, e := range rng {
		hashes[k] = client.LeafHash(e.Leaf)
	}
	first, err := v.proofHashes(proofPath(evRangeDir, lo), lo, hashes[0], rawCP, cp)
	if err != nil {
		return err
	}
	last, err := v.proofHashes(proofPath(evRangeDir, hi-1), hi-1, hashes[len(hashes)-1], rawCP, cp)
	if err != nil {
		return err
	}
	if err := verifySpan(lo, hashes, cp.Size, cp.Root, first, last); err != nil {
		return evErr(evRange, "is not the log's entries %d to %d: %v", lo, hi-1, err)
	}

	// Times and boundaries.
	times := make([]time.Time, len(rng))
	fields := make([]*agentlog.Leaf, len(rng))
	for k, e := range rng {
		lf, err := query.DecodeLeaf(e.Leaf)
		if err != nil {
			return evErr(fmt.Sprintf("%s line %d (entry %d)", evRange, e.Line, e.Index), "%v", err)
		}
		fields[k], times[k] = lf, lf.Time
		if k > 0 && times[k].Before(times[k-1]) {
			return evErr(fmt.Sprintf("%s line %d (entry %d)", evRange, e.Line, e.Index), "is earlier than the entry before it, so entry times are not non-decreasing")
		}
	}
	at := func(i uint64) (time.Time, string) {
		k := i - lo
		return times[k], fmt.Sprintf("%s line %d (entry %d)", evRange, rng[k].Line, i)
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	if m.Start > 0 {
		t, where := at(m.Start - 1)
		if f.From.IsZero() {
			return evErr(evManifest, "the range starts at %d, but without \"from\" it must start at 0", m.Start)
		}
		if !t.Before(f.From) {
			return evErr(where, "has time %s, not before from=%s, so the range should start at or before it", ts(t), ts(f.From))
		}
	}
	if m.Start < m.End && !f.From.IsZero() {
		if t, where := at(m.Start); t.Before(f.From) {
			return evErr(where, "is the first entry of the range but its time %s is before from=%s", ts(t), ts(f.From))
		}
	}
	if m.End < m.TreeSize {
		t, where := at(m.End)
		if f.To.IsZero() {
			return evErr(evManifest, "the range ends at %d, but without \"to\" it must end at the tree size %d", m.End, m.TreeSize)
		}
		if t.Before(f.To) {
			return evErr(where, "has time %s, before to=%s, so the range should include it", ts(t), ts(f.To))
		}
	}
	if m.Start < m.End && !f.To.IsZero() {
		if t, where := at(m.End - 1); !t.Before(f.To) {
			return evErr(where, "is the last entry of the range but its time %s is not before to=%s", ts(t), ts(f.To))
		}
	}

	// Every entry of the range that matches is exported, byte for byte.
	k := 0
	for i := m.Start; i < m.End; i++ {
		e := rng[i-lo]
		match := f.MatchEntry(fields[i-lo].Time, fields[i-lo].Field)
		exported := k < len(entries) && entries[k].Index == i
		switch {
		case match && !exported:
			return evErr(fmt.Sprintf("%s line %d (entry %d)", evRange, e.Line, i), "matches the query but is missing from entries.ndjson")
		case !match && exported:
			return evErr(fmt.Sprintf("%s line %d (entry %d)", evEntries, entries[k].Line, i), "does not match the query")
		case exported && !bytes.Equal(entries[k].Leaf, e.Leaf):
			return evErr(fmt.Sprintf("%s line %d (entry %d)", evEntries, entries[k].Line, i), "differs from the same entry in range.ndjson")
		}
		if exported {
			k++
		}
	}
	return nil
}

// verifySpan checks that leafHashes are the leaves lo, lo+1, ... of the
// tree of the given size and root, given inclusion proofs of the first
// (first) and last (last) of them. The left siblings on the path of leaf
// lo are the perfect subtrees covering [0, lo); extending them with the
// span's leaves but the last gives the perfect subtrees covering
// [0, hi-1), which must be exactly the left siblings on the path of the
// last leaf, whose proof verified against the root.
func verifySpan(lo uint64, leafHashes [][]byte, size uint64, root []byte, first, last [][]byte) error {
	if len(leafHashes) == 0 {
		return nil
	}
	hi := lo + uint64(len(leafHashes)) // exclusive
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, lo, size, leafHashes[0], first, root); err != nil {
		return fmt.Errorf("the proof of entry %d does not verify: %w", lo, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, hi-1, size, leafHashes[len(leafHashes)-1], last, root); err != nil {
		return fmt.Errorf("the proof of entry %d does not verify: %w", hi-1, err)
	}
	left := leftSiblings(lo, size, first)
	slicesReverse(left)
	r, err := evRangeFactory.NewRange(0, lo, left)
	if err != nil {
		return fmt.Errorf("the proof of entry %d does not cover the entries before it: %w", lo, err)
	}
	for _, h := range leafHashes[:len(leafHashes)-1] {
		if err := r.Append(h, nil); err != nil {
			return err
		}
	}
	want := leftSiblings(hi-1, size, last)
	slicesReverse(want)
	got := r.Hashes()
	if len(got) != len(want) {
		return fmt.Errorf("the entries hash to %d subtrees left of entry %d, but its proof has %d", len(got), hi-1, len(want))
	}
	for k := range got {
		if !bytes.Equal(got[k], want[k]) {
			return errors.New("the entries do not hash to the subtrees the proof of the last entry commits to: an entry was changed, added or removed")
		}
	}
	return nil
}

var evRangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// leftSiblings returns the hashes of a verified RFC 6962 inclusion proof
// of index in a tree of size that lie left of the path (bottom-up); they
// are the perfect subtrees covering [0, index).
func leftSiblings(index, size uint64, p [][]byte) [][]byte {
	inner := bits.Len64(index ^ (size - 1))
	var out [][]byte
	for l, h := range p {
		if l >= inner || index>>uint(l)&1 == 1 {
			out = append(out, h)
		}
	}
	return out
}

func slicesReverse(s [][]byte) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// openUnverified reads a checkpoint without checking its signatures.
func openUnverified(raw []byte) (*checkpoint.Signed, error) {
	text, _, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		return nil, errors.New("the checkpoint is not a signed note")
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) != 3 {
		return nil, errors.New("the checkpoint body is not origin, size and root")
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return nil, fmt.Errorf("the checkpoint size %w", err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != checkpoint.HashSize {
		return nil, errors.New("the checkpoint root is not a base64 SHA-256 hash")
	}
	return &checkpoint.Signed{Origin: lines[0], Size: size, Root: root, Raw: raw}, nil
}

// signerNames lists the key names of a signed note's signature lines, in
// order.
func signerNames(raw []byte) []string {
	_, sigs, _ := bytes.Cut(raw, []byte("\n\n"))
	var out []string
	for _, l := range strings.Split(string(sigs), "\n") {
		if rest, ok := strings.CutPrefix(l, "— "); ok {
			name, _, _ := strings.Cut(rest, " ")
			out = append(out, name)
		}
	}
	return out
}
