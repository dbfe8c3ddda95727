package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentlog/agentlog"
)

// QueryMatch is one entry a query matched (the wire type).
type QueryMatch = agentlog.QueryMatch

// QuerySummary ends every query answer: the tree size the answer is
// complete for, the index range the time filters select, where the answer
// stopped (Next) and the cursor to continue.
type QuerySummary = agentlog.QuerySummary

// Query runs one page of GET /v1/query with the given parameters (the
// filter fields, from, to, outside_hours, tz, weekdays, limit, cursor,
// proof), calling fn for each match as it streams in. It returns the
// page's summary; a nil error means the summary line arrived, so the page
// is complete.
func (c *Client) Query(ctx context.Context, params url.Values, fn func(QueryMatch) error) (*QuerySummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/query?"+params.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A query streams for as long as it needs: no overall client timeout.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, fmt.Errorf("GET /v1/query: %w", httpError(resp, b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"summary":`)) {
			var s agentlog.QuerySummaryLine
			if err := json.Unmarshal(line, &s); err != nil {
				return nil, fmt.Errorf("decoding the query summary: %w", err)
			}
			if s.Summary.Error != "" {
				return &s.Summary, fmt.Errorf("query: %s", s.Summary.Error)
			}
			return &s.Summary, nil
		}
		var m QueryMatch
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("decoding a query match: %w", err)
		}
		if err := fn(m); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the query answer: %w", err)
	}
	return nil, errors.New("the query answer ended without its summary line: it is incomplete")
}

// QueryAll runs a query page after page, following the cursor, until the
// range is exhausted or max matches were delivered (0: no maximum; a
// "limit" in params sets the page size). It returns the last page's
// summary, whose Next and Cursor say where a later call may continue.
func (c *Client) QueryAll(ctx context.Context, params url.Values, max int, fn func(QueryMatch) error) (*QuerySummary, error) {
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	page, _ := strconv.Atoi(p.Get("limit"))
	n := 0
	for {
		if max > 0 {
			left := max - n
			if page > 0 {
				left = min(left, page)
			}
			p.Set("limit", strconv.Itoa(min(left, 100000)))
		}
		s, err := c.Query(ctx, p, func(m QueryMatch) error {
			n++
			return fn(m)
		})
		if err != nil {
			return s, err
		}
		if s.Cursor == "" || (max > 0 && n >= max) {
			return s, nil
		}
		p.Set("cursor", s.Cursor)
	}
}
