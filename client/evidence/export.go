// Package evidence exports the answer to an auditor's query as a
// directory that verifies offline, and verifies such a directory: the
// entries, a c2sp.org/tlog-proof for each, the signed checkpoint
// (c2sp.org/tlog-checkpoint, with its c2sp.org/tlog-cosignature witness
// lines), the keys and a c2sp.org/tlog-policy, a manifest of digests and
// an HTML summary. For a time-bounded query it also bundles every entry of
// the index range the bounds select and its two neighbours, proving the
// answer complete. docs/evidence.md describes the layout. Export talks to
// the server through [client.Client.Query]; Verify reads only files.
package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/witness/policy"
)

// ExportOptions are the keys an export is checked against and bundles.
type ExportOptions struct {
	// LogVKey is the log's note verifier key (log.pub). With it the
	// checkpoint's signature is checked before anything is written, and
	// the key is bundled as keys/log.pub. Without it nothing the server
	// sent is authenticated; proofs are still checked against the
	// checkpoint's root.
	LogVKey string
	// TimeVKey is the log's timestamp key (time.pub), optional; with it
	// the checkpoint time is read and the key bundled as keys/time.pub.
	// It needs LogVKey.
	TimeVKey string
	// Policy is a c2sp.org/tlog-policy file, optional: the checkpoint
	// must satisfy its witness quorum, and it is bundled as keys/policy.
	Policy []byte
}

// queryPageLimit is the page size an export asks GET /v1/query for (its
// maximum); tests lower it.
var queryPageLimit = 100000

// Export runs a query (the filter parameters of GET /v1/query: agent,
// action, tool, resource, outcome, kind, session, task, from, to,
// outside_hours, tz, weekdays) and writes what an auditor files away to
// dir, which must not exist or be empty: the matching entries, a
// c2sp.org/tlog-proof for each, the checkpoint, the keys, a manifest and
// an HTML summary (docs/evidence.md). When the query has a time bound, it
// also writes every entry of the index range the bounds select and its two
// neighbours, which proves the export complete.
//
// The credential of c must be an auditor's or an admin's. The export is
// verified before it is moved into place; the returned Verified is the
// result of that verification.
func Export(ctx context.Context, c *client.Client, q url.Values, dir string, opts ExportOptions) (*Verified, error) {
	canon, f, err := canonicalQuery(q)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	var lv, tv note.Verifier
	logVKey := strings.TrimSpace(opts.LogVKey)
	if logVKey != "" {
		v, err := client.NewVerifier(logVKey, opts.TimeVKey)
		if err != nil {
			return nil, err
		}
		lv, tv = v.Log, v.Time
	} else if strings.TrimSpace(opts.TimeVKey) != "" {
		return nil, errors.New("a time key needs the log key")
	}
	var pol *policy.Policy
	if opts.Policy != nil {
		if pol, err = policy.Parse(opts.Policy); err != nil {
			return nil, err
		}
		if err := pol.RequireLog(logVKey); err != nil {
			return nil, err
		}
	}
	if err := checkOutDir(dir); err != nil {
		return nil, err
	}

	// The matches. The first page fixes the tree size to the published
	// checkpoint and carries the proofs; further pages keep that size
	// through the cursor, and their proofs are fetched for it.
	type match struct {
		index uint64
		leaf  []byte
		proof [][]byte
	}
	var matches []match
	params := cloneValues(q)
	params.Set("proof", "true")
	params.Set("limit", strconv.Itoa(queryPageLimit))
	sum, err := queryPage(ctx, c, params, func(i uint64, leaf []byte, p [][]byte) error {
		matches = append(matches, match{i, leaf, p})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sum.Checkpoint == "" {
		return nil, errors.New("the server's query answer carries no checkpoint")
	}
	rawCP := []byte(sum.Checkpoint)
	var cp *checkpoint.Signed
	if lv != nil {
		cp, err = checkpoint.Open(rawCP, lv, tv)
	} else {
		cp, err = openUnverified(rawCP)
	}
	if err != nil {
		return nil, fmt.Errorf("the server's checkpoint: %w", err)
	}
	if cp.Size != sum.TreeSize {
		return nil, fmt.Errorf("the server answered for tree size %d with a checkpoint of size %d", sum.TreeSize, cp.Size)
	}
	if pol != nil {
		if _, err := pol.Verify(rawCP); err != nil {
			return nil, fmt.Errorf("the server's checkpoint does not satisfy the policy: %w", err)
		}
	}
	start, end, total := sum.Start, sum.End, sum.Matches
	for cursor := sum.Cursor; cursor != ""; {
		p := cloneValues(q)
		p.Set("cursor", cursor)
		p.Set("limit", strconv.Itoa(queryPageLimit))
		s, err := queryPage(ctx, c, p, func(i uint64, leaf []byte, _ [][]byte) error {
			matches = append(matches, match{i, leaf, nil})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if s.TreeSize != cp.Size || s.Start != start || s.End != end {
			return nil, fmt.Errorf("the server changed the tree size or the index range between pages")
		}
		total += s.Matches
		cursor = s.Cursor
	}
	if total != len(matches) {
		return nil, fmt.Errorf("the server announced %d matches but sent %d", total, len(matches))
	}
	if start > end || end > cp.Size {
		return nil, fmt.Errorf("the server's index range [%d, %d) is not within the tree of size %d", start, end, cp.Size)
	}
	for k := range matches {
		mt := &matches[k]
		if k > 0 && mt.index <= matches[k-1].index {
			return nil, fmt.Errorf("the server sent entry %d after entry %d", mt.index, matches[k-1].index)
		}
		if mt.proof == nil {
			if mt.proof, err = c.InclusionProof(ctx, mt.index, cp.Size); err != nil {
				return nil, err
			}
		}
		if err := checkServedLeaf(mt.index, mt.leaf, mt.proof, cp); err != nil {
			return nil, err
		}
	}

	// The range, for a time-bounded query.
	complete := !f.From.IsZero() || !f.To.IsZero()
	var rng [][]byte
	var lo, hi uint64
	var rangeProofs [2][][]byte
	if complete {
		lo, hi = start, end
		if lo > 0 {
			lo--
		}
		if hi < cp.Size {
			hi++
		}
		if rng, err = fetchRange(ctx, c, q, start, end, lo, hi); err != nil {
			return nil, err
		}
		for k, i := range []uint64{lo, hi - 1} {
			if hi == lo {
				break
			}
			if rangeProofs[k], err = c.InclusionProof(ctx, i, cp.Size); err != nil {
				return nil, err
			}
			if err := checkServedLeaf(i, rng[i-lo], rangeProofs[k], cp); err != nil {
				return nil, err
			}
		}
	}

	// Write everything to a temporary directory next to dir.
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(filepath.Clean(dir))+".tmp-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	digests := map[string]string{}
	write := func(name string, b []byte) error {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
		d := sha256.Sum256(b)
		digests[name] = hex.EncodeToString(d[:])
		return nil
	}
	if err := write(evCheckpoint, rawCP); err != nil {
		return nil, err
	}
	var eb []byte
	entries := make([]evEntry, len(matches))
	for k, mt := range matches {
		eb = appendEntryLine(eb, mt.index, mt.leaf)
		entries[k] = evEntry{Index: mt.index, Leaf: mt.leaf, Line: k + 1}
		pb, err := marshalTLogProof(mt.index, mt.proof, rawCP)
		if err != nil {
			return nil, err
		}
		if err := write(proofPath(evProofDir, mt.index), pb); err != nil {
			return nil, err
		}
	}
	if err := write(evEntries, eb); err != nil {
		return nil, err
	}
	if complete {
		var rb []byte
		for k, leaf := range rng {
			rb = appendEntryLine(rb, lo+uint64(k), leaf)
		}
		if err := write(evRange, rb); err != nil {
			return nil, err
		}
		for k, i := range []uint64{lo, hi - 1} {
			if hi == lo || (k == 1 && hi-1 == lo) {
				break
			}
			pb, err := marshalTLogProof(i, rangeProofs[k], rawCP)
			if err != nil {
				return nil, err
			}
			if err := write(proofPath(evRangeDir, i), pb); err != nil {
				return nil, err
			}
		}
	}
	if logVKey != "" {
		if err := write(evLogPub, []byte(logVKey+"\n")); err != nil {
			return nil, err
		}
	}
	if tv != nil {
		if err := write(evTimePub, []byte(strings.TrimSpace(opts.TimeVKey)+"\n")); err != nil {
			return nil, err
		}
	}
	if opts.Policy != nil {
		if err := write(evPolicy, opts.Policy); err != nil {
			return nil, err
		}
	}
	m := &Manifest{
		Format: Format, Origin: cp.Origin, TreeSize: cp.Size, Root: cp.Root,
		Query: canon, Start: start, End: end, Complete: complete,
		Matches: len(matches), RangeEntries: len(rng),
	}
	if !cp.Time.IsZero() {
		m.CheckpointTime = cp.Time.UTC().Format(time.RFC3339)
	}
	if err := write(evSummary, renderSummary(m, rawCP, f, entries)); err != nil {
		return nil, err
	}
	m.Files = digests
	if err := os.WriteFile(filepath.Join(tmp, evManifest), marshalManifest(m), 0o600); err != nil {
		return nil, err
	}

	ev, err := verifyEvidence(os.DirFS(tmp), lv, logVKey, pol)
	if err != nil {
		return nil, fmt.Errorf("the export does not verify (this is a bug): %w", err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	done = true
	return ev, nil
}

// checkOutDir accepts a directory that does not exist or is empty.
func checkOutDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%s exists and is not empty; choose a new directory", dir)
	}
	return nil
}

// checkServedLeaf checks a leaf and proof the server sent against the
// checkpoint, so a bad answer fails the export rather than its verification.
func checkServedLeaf(i uint64, leaf []byte, p [][]byte, cp *checkpoint.Signed) error {
	if err := checkLeafBytes(leaf); err != nil {
		return fmt.Errorf("entry %d from the server: %w", i, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, client.LeafHash(leaf), p, cp.Root); err != nil {
		return fmt.Errorf("entry %d from the server does not verify against the checkpoint of size %d (were its bytes re-encoded, for example with <, > or & escaped?): %w", i, cp.Size, err)
	}
	return nil
}

// fetchRange fetches the entries [lo, hi): those of [start, end) through a
// query with the time bounds of q alone (at the tree size of that query,
// which may have grown, so only indexes below end are kept), and the
// neighbours lo and hi-1 outside it one by one.
func fetchRange(ctx context.Context, c *client.Client, q url.Values, start, end, lo, hi uint64) ([][]byte, error) {
	out := make([][]byte, 0, hi-lo)
	if lo < start {
		leaf, err := c.Entry(ctx, lo)
		if err != nil {
			return nil, err
		}
		out = append(out, leaf)
	}
	next := start
	p := url.Values{}
	for _, k := range []string{"from", "to"} {
		if v := q.Get(k); v != "" {
			p.Set(k, v)
		}
	}
	p.Set("limit", strconv.Itoa(queryPageLimit))
	for next < end {
		s, err := queryPage(ctx, c, p, func(i uint64, leaf []byte, _ [][]byte) error {
			if i >= end {
				return nil
			}
			if i != next {
				return fmt.Errorf("the server sent entry %d of the time range where entry %d belongs", i, next)
			}
			out = append(out, leaf)
			next++
			return nil
		})
		if err != nil {
			return nil, err
		}
		if s.Cursor == "" || s.Next >= end {
			break
		}
		p.Set("cursor", s.Cursor)
	}
	if next != end {
		return nil, fmt.Errorf("the server sent the time range only up to entry %d, not %d", next, end)
	}
	if hi > end {
		leaf, err := c.Entry(ctx, end)
		if err != nil {
			return nil, err
		}
		out = append(out, leaf)
	}
	return out, nil
}

// queryPage runs one page of GET /v1/query through [client.Client.Query],
// calling emit for each match with the leaf bytes as sent.
func queryPage(ctx context.Context, c *client.Client, params url.Values, emit func(i uint64, leaf []byte, proof [][]byte) error) (*client.QuerySummary, error) {
	return c.Query(ctx, params, func(m client.QueryMatch) error {
		if m.Entry == nil {
			return errors.New("GET /v1/query: a line has no entry")
		}
		return emit(m.Index, m.Entry, m.InclusionProof)
	})
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
