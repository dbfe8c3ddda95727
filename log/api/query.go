package api

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentlog/agentlog/log/query"
)

// Query limits.
const (
	defaultQueryLimit = 1000
	maxQueryLimit     = 100000
)

// queryParams are the parameters GET /v1/query accepts besides the filter
// fields of package query.
var queryParams = map[string]bool{
	"from": true, "to": true, "outside_hours": true, "tz": true, "weekdays": true,
	"limit": true, "cursor": true, "proof": true,
}

// QueryMatch is one NDJSON line of a query answer.
type QueryMatch struct {
	Index uint64          `json:"index"`
	Entry json.RawMessage `json:"entry"`
	// InclusionProof proves the entry under the summary's checkpoint
	// (with proof=true).
	InclusionProof [][]byte `json:"inclusion_proof,omitempty"`
}

// QuerySummary is the last NDJSON line of a query answer.
type QuerySummary struct {
	TreeSize uint64 `json:"tree_size"` // the answer is complete for this tree size
	// Start and End bound the index range the time filters select; every
	// match lies in it, and entries below Next were all examined.
	Start   uint64 `json:"start"`
	End     uint64 `json:"end"`
	Next    uint64 `json:"next"`
	Matches int    `json:"matches"`
	// Cursor continues the query where this page stopped; empty when the
	// range is exhausted.
	Cursor string `json:"cursor,omitempty"`
	// Checkpoint is the signed checkpoint of TreeSize the proofs refer to
	// (with proof=true).
	Checkpoint string `json:"checkpoint,omitempty"`
	Error      string `json:"error,omitempty"` // set if the stream broke off
}

// cursor is the opaque continuation of a query: the tree size the answer
// was fixed to and the next index to examine.
func encodeCursor(size, next uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%d:%d", size, next)))
}

func decodeCursor(c string) (size, next uint64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: malformed cursor", errBadRequest)
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return 0, 0, fmt.Errorf("%w: malformed cursor", errBadRequest)
	}
	if size, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: malformed cursor", errBadRequest)
	}
	if next, err = strconv.ParseUint(parts[2], 10, 64); err != nil || next > size {
		return 0, 0, fmt.Errorf("%w: malformed cursor", errBadRequest)
	}
	return size, next, nil
}

func (s *Server) getQuery(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, "query", RoleAuditor, RoleAdmin); err != nil {
		return err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: malformed query string", errBadRequest)
	}
	for k := range q {
		if !queryParams[k] && !isField(k) {
			return fmt.Errorf("%w: unknown query parameter %q", errBadRequest, k)
		}
	}
	f, err := query.Parse(q)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadRequest, err)
	}
	limit := defaultQueryLimit
	if v := q.Get("limit"); v != "" {
		n, err := parseUint(v, "limit")
		if err != nil {
			return err
		}
		if n == 0 || n > maxQueryLimit {
			return fmt.Errorf("%w: \"limit\" must be 1 to %d", errBadRequest, maxQueryLimit)
		}
		limit = int(n)
	}
	withProof := false
	switch q.Get("proof") {
	case "", "false":
	case "true":
		withProof = true
	default:
		return fmt.Errorf("%w: \"proof\" must be true or false", errBadRequest)
	}
	// Fix the tree size: the cursor's; with proofs, the published
	// checkpoint's, so proofs and completeness refer to a signed tree
	// head; otherwise the current tree's, so the answer is the freshest.
	size := s.cfg.Log.Size()
	var cp string
	if withProof {
		c := s.latest.Load()
		if c == nil {
			return fmt.Errorf("%w: no checkpoint has been signed yet", errUnavailable)
		}
		size, cp = c.Size, string(c.Raw)
	}
	var start uint64
	if c := q.Get("cursor"); c != "" {
		if size, start, err = decodeCursor(c); err != nil {
			return err
		}
		if size > s.cfg.Log.Size() {
			return fmt.Errorf("%w: cursor is from another log", errBadRequest)
		}
		if withProof {
			if c := s.latest.Load(); c == nil || c.Size != size {
				return fmt.Errorf("%w: the checkpoint of this cursor's tree size is no longer the latest; start the query again", errBadRequest)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Agentlog-Tree-Size", strconv.FormatUint(size, 10))
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	// Lines are written by hand: the leaf is already compact JSON, and
	// encoding/json would re-validate and re-compact every one.
	var line []byte
	st, serr := s.cfg.Log.Search(r.Context(), f, start, size, limit, func(i uint64, leaf []byte) error {
		line = append(line[:0], `{"index":`...)
		line = strconv.AppendUint(line, i, 10)
		line = append(line, `,"entry":`...)
		line = append(line, leaf...)
		if withProof {
			p, err := s.cfg.Log.Tree().InclusionProof(i, size)
			if err != nil {
				return err
			}
			line = append(line, `,"inclusion_proof":[`...)
			for j, h := range p {
				if j > 0 {
					line = append(line, ',')
				}
				line = append(line, '"')
				line = base64.StdEncoding.AppendEncode(line, h)
				line = append(line, '"')
			}
			line = append(line, ']')
		}
		line = append(line, '}', '\n')
		_, err := bw.Write(line)
		return err
	})
	sum := QuerySummary{TreeSize: size, Start: st.Start, End: st.End, Next: st.Next, Matches: st.Matches}
	if st.Next < st.End {
		sum.Cursor = encodeCursor(size, st.Next)
	}
	if withProof {
		sum.Checkpoint = cp
	}
	if serr != nil {
		s.log.Error("query stream", "err", serr)
		sum.Error = "the query stopped before it completed; continue with the cursor"
		if st.Next < st.End {
			sum.Cursor = encodeCursor(size, st.Next)
		}
	}
	if err := enc.Encode(map[string]QuerySummary{"summary": sum}); err != nil {
		return nil // the client went away
	}
	bw.Flush()
	return nil
}

func isField(k string) bool {
	for _, f := range query.Fields {
		if f == k {
			return true
		}
	}
	return false
}
