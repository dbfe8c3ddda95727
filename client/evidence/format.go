package evidence

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/transparency-dev/formats/proof"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/query"
)

// Format names the layout of an evidence directory (docs/evidence.md).
const Format = "agentlog-evidence/v1"

// Names inside an evidence directory, slash-separated.
const (
	evManifest   = "manifest.json"
	evCheckpoint = "checkpoint"
	evEntries    = "entries.ndjson"
	evProofDir   = "proofs"
	evRange      = "range.ndjson"
	evRangeDir   = "range"
	evKeyDir     = "keys"
	evLogPub     = "keys/log.pub"
	evTimePub    = "keys/time.pub"
	evPolicy     = "keys/policy"
	evSummary    = "summary.html"
	evProofExt   = ".tlog-proof"
)

// Limits on what verification reads, so a hostile directory costs little.
const (
	maxManifestBytes = 256 << 20
	maxProofBytes    = 1<<20 + 64*64 + 256 // a checkpoint (checkpoint.MaxSize) and 64 hashes
	maxKeyBytes      = 1 << 20
)

// Manifest is manifest.json. Every field is recomputed from the
// rest of the directory when it is verified, and the file must be exactly
// the indented encoding [marshalManifest] produces.
type Manifest struct {
	Format string `json:"format"` // Format
	Origin string `json:"origin"` // the checkpoint's origin
	// TreeSize and Root are the checkpoint's; every proof refers to them.
	TreeSize uint64 `json:"tree_size"`
	Root     []byte `json:"root"`
	// CheckpointTime is the time of the checkpoint's timestamp signature by
	// keys/time.pub (RFC 3339 UTC); empty without keys/time.pub.
	CheckpointTime string `json:"checkpoint_time,omitempty"`
	// Query holds the filter as URL query parameters, sorted by key (the
	// parameters of GET /v1/query, without limit, cursor and proof).
	Query string `json:"query"`
	// Start and End bound the index range [Start, End) the query's time
	// bounds select in the tree of TreeSize (0 and TreeSize without them).
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	// Complete is true for a time-range export: range.ndjson holds every
	// entry of [Start, End) and its neighbours, which proves that
	// entries.ndjson lists every entry of the range matching the query.
	Complete bool `json:"complete"`
	Matches  int  `json:"matches"` // lines of entries.ndjson
	// RangeEntries is the number of lines of range.ndjson.
	RangeEntries int `json:"range_entries"`
	// Files maps every other file of the directory to its hex SHA-256.
	Files map[string]string `json:"files"`
}

func marshalManifest(m *Manifest) []byte {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err) // a struct of plain values always encodes
	}
	return append(b, '\n')
}

// parseManifest decodes manifest.json, refusing unknown fields, trailing
// data, malformed paths and digests, and any encoding other than the
// canonical one.
func parseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("it is %d bytes, more than the %d allowed", len(b), maxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("it is not a valid manifest: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("it has data after the manifest object")
	}
	if m.Format != Format {
		return nil, fmt.Errorf("its format is %q, not %q", m.Format, Format)
	}
	for p, d := range m.Files {
		if err := checkEvidencePath(p); err != nil {
			return nil, fmt.Errorf("it lists %q: %w", p, err)
		}
		if len(d) != 64 || strings.ToLower(d) != d {
			return nil, fmt.Errorf("the digest of %s is not 64 lowercase hex digits", p)
		}
		if _, err := hex.DecodeString(d); err != nil {
			return nil, fmt.Errorf("the digest of %s is not 64 lowercase hex digits", p)
		}
	}
	if !bytes.Equal(marshalManifest(&m), b) {
		return nil, errors.New("it is not in canonical form (it was edited by hand or by another tool)")
	}
	return &m, nil
}

// checkEvidencePath accepts the relative, clean, slash-separated names an
// export writes: lowercase letters, digits, '.', '_' and '-', at most one
// directory level, never the manifest itself.
func checkEvidencePath(p string) error {
	if p == "" || p == evManifest || path.Clean(p) != p || strings.HasPrefix(p, "/") || strings.Count(p, "/") > 1 {
		return errors.New("not a file name an export writes")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return errors.New("not a file name an export writes")
		}
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return errors.New("not a file name an export writes")
		}
	}
	return nil
}

// canonicalQuery checks that q holds only filter parameters, each once,
// that they parse, and returns them encoded with sorted keys.
func canonicalQuery(q map[string][]string) (string, *query.Filter, error) {
	allowed := map[string]bool{"from": true, "to": true, "outside_hours": true, "tz": true, "weekdays": true}
	for _, f := range agentlog.QueryFields {
		allowed[f] = true
	}
	for k, vs := range q {
		if !allowed[k] {
			return "", nil, fmt.Errorf("%q is not a query filter parameter", k)
		}
		if len(vs) != 1 {
			return "", nil, fmt.Errorf("%q must be given exactly once", k)
		}
	}
	f, err := query.Parse(q)
	if err != nil {
		return "", nil, err
	}
	return url.Values(q).Encode(), f, nil // Encode sorts by key
}

// Entry lines: {"index":N,"entry":LEAF} with the leaf verbatim, so the
// bytes that were hashed are the bytes on disk.
const (
	entryLinePrefix = `{"index":`
	entryLineMid    = `,"entry":`
)

func appendEntryLine(dst []byte, index uint64, leaf []byte) []byte {
	dst = append(dst, entryLinePrefix...)
	dst = strconv.AppendUint(dst, index, 10)
	dst = append(dst, entryLineMid...)
	dst = append(dst, leaf...)
	return append(dst, '}', '\n')
}

// checkLeafBytes reports whether a leaf can be stored verbatim in an
// entry line: a JSON object on one line.
func checkLeafBytes(leaf []byte) error {
	if len(leaf) == 0 || leaf[0] != '{' || leaf[len(leaf)-1] != '}' || !json.Valid(leaf) {
		return errors.New("the leaf is not a JSON object")
	}
	if bytes.ContainsAny(leaf, "\n\r") {
		return errors.New("the leaf spans more than one line")
	}
	return nil
}

// parseEntryLine reads one line (without its newline) written by
// appendEntryLine; nothing else is accepted.
func parseEntryLine(line []byte) (uint64, []byte, error) {
	rest, ok := bytes.CutPrefix(line, []byte(entryLinePrefix))
	if !ok {
		return 0, nil, fmt.Errorf("the line does not start with %s", entryLinePrefix)
	}
	digits, leaf, ok := bytes.Cut(rest, []byte(entryLineMid))
	if !ok {
		return 0, nil, errors.New(`the line has no "entry"`)
	}
	i, err := parseDecimal(string(digits))
	if err != nil {
		return 0, nil, fmt.Errorf("the index %w", err)
	}
	leaf, ok = bytes.CutSuffix(leaf, []byte("}"))
	if !ok {
		return 0, nil, errors.New("the line does not end with }")
	}
	if err := checkLeafBytes(leaf); err != nil {
		return 0, nil, err
	}
	return i, leaf, nil
}

// parseDecimal accepts a decimal uint64 without sign or leading zeros.
func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a decimal number without leading zeros", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number without leading zeros", s)
	}
	return n, nil
}

// evEntry is one parsed line of entries.ndjson or range.ndjson.
type evEntry struct {
	Index uint64
	Leaf  []byte
	Line  int // 1-based
}

// parseEntryLines reads an NDJSON file of entry lines: each line ends
// with '\n', indexes strictly increase.
func parseEntryLines(b []byte) ([]evEntry, error) {
	var out []evEntry
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, errors.New("the file does not end with a newline")
	}
	for n := 1; len(b) > 0; n++ {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		b = rest
		i, leaf, err := parseEntryLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(out) > 0 && i <= out[len(out)-1].Index {
			return nil, fmt.Errorf("line %d: entry %d is not after entry %d of the line before", n, i, out[len(out)-1].Index)
		}
		out = append(out, evEntry{Index: i, Leaf: leaf, Line: n})
	}
	return out, nil
}

// marshalTLogProof writes a c2sp.org/tlog-proof@v1 file.
func marshalTLogProof(index uint64, hashes [][]byte, cp []byte) ([]byte, error) {
	p := proof.TLogProof{Index: index, Checkpoint: cp, Hashes: make([][32]byte, len(hashes))}
	for i, h := range hashes {
		if len(h) != 32 {
			return nil, fmt.Errorf("proof hash %d has %d bytes, not 32", i, len(h))
		}
		p.Hashes[i] = [32]byte(h)
	}
	return p.Marshal(), nil
}

// parseTLogProof reads a c2sp.org/tlog-proof@v1 file with
// github.com/transparency-dev/formats/proof and accepts it only if it is
// exactly how that package writes the parsed proof: a decimal index
// without leading zeros, canonical base64, '\n' line ends and a checkpoint
// ending in a newline. Extra data is refused; agentlog never writes it.
func parseTLogProof(b []byte) (*proof.TLogProof, error) {
	if len(b) > maxProofBytes {
		return nil, fmt.Errorf("it is %d bytes, more than the %d allowed", len(b), maxProofBytes)
	}
	var p proof.TLogProof
	if err := p.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("it is not a c2sp.org/tlog-proof@v1 file: %w", err)
	}
	if p.ExtraData != nil {
		return nil, errors.New("it has an extra line, which agentlog never writes")
	}
	if len(p.Hashes) > 64 {
		return nil, fmt.Errorf("its inclusion proof has %d hashes; a tree of 2^64 leaves needs at most 64", len(p.Hashes))
	}
	if len(p.Checkpoint) == 0 {
		return nil, errors.New("it holds no checkpoint")
	}
	if !bytes.Equal(p.Marshal(), b) {
		return nil, errors.New("it is not in canonical c2sp.org/tlog-proof@v1 form (leading zeros, non-canonical base64, stray blank lines or carriage returns)")
	}
	return &p, nil
}
