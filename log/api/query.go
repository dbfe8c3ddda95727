package api

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/query"
)

// Query limits.
const (
	defaultQueryLimit = 1000
	maxQueryLimit     = 100000
)

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
		if !slices.Contains(agentlog.QueryParams, k) && !slices.Contains(agentlog.QueryFields, k) {
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
	sum := agentlog.QuerySummary{TreeSize: size, Start: st.Start, End: st.End, Next: st.Next, Matches: st.Matches}
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
	if err := enc.Encode(agentlog.QuerySummaryLine{Summary: sum}); err != nil {
		return nil // the client went away
	}
	bw.Flush()
	return nil
}
