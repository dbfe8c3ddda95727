// Package client is the Go client of an agentlog server: appending records,
// reading checkpoints, entries and proofs, and verifying them. Every proof is
// checked with github.com/transparency-dev/merkle against a checkpoint whose
// signature was verified first (c2sp.org/tlog-checkpoint, RFC 6962); nothing
// the server says is trusted on its own.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
)

// ErrPushback is returned when the server asks the client to retry later
// (503 with Retry-After). RetryAfter on the *HTTPError says how long.
var ErrPushback = errors.New("server is busy, retry later")

// HTTPError is a non-2xx answer from the server.
type HTTPError struct {
	Status     int
	Message    string        // the server's JSON "error", or the body
	RetryAfter time.Duration // from Retry-After, if any
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
}

// Is makes errors.Is(err, ErrPushback) true for 503 answers.
func (e *HTTPError) Is(target error) bool {
	return target == ErrPushback && e.Status == http.StatusServiceUnavailable
}

// Client talks to one agentlog server.
type Client struct {
	base  string
	token string
	hc    *http.Client

	mirror   string       // WithMirror's base URL, "" for none
	mirrorHC *http.Client // sends the mirror's requests
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the bearer credential sent with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = strings.TrimSpace(token) } }

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the server at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q is not an http(s) URL", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	if err := c.checkMirror(); err != nil {
		return nil, err
	}
	return c, nil
}

// maxResponse caps how much of an answer the client reads.
const maxResponse = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	return c.doHeaders(ctx, method, path, body, nil)
}

// doHeaders sends a request with extra headers (Idempotency-Key) and
// returns the answer's body, or an error wrapping *HTTPError for a non-2xx
// answer.
func (c *Client) doHeaders(ctx context.Context, method, path string, body []byte, hdr map[string]string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %w", method, path, httpError(resp, b))
	}
	return b, nil
}

// httpError describes a non-2xx answer: the server's JSON "error" (or the
// body) and Retry-After.
func httpError(resp *http.Response, body []byte) *HTTPError {
	he := &HTTPError{Status: resp.StatusCode, Message: strings.TrimSpace(string(body))}
	var j struct{ Error string }
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		he.Message = j.Error
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		he.RetryAfter = time.Duration(s) * time.Second
	}
	return he
}

// Record is one agent action to append: the wire type. Attributes is a
// JSON object; [Attributes] makes one from strings.
type Record = agentlog.Record

// Attributes returns kv as a record's attributes: a JSON object with the
// keys sorted, nil when kv is empty.
func Attributes(kv map[string]string) json.RawMessage {
	if len(kv) == 0 {
		return nil
	}
	b, _ := json.Marshal(kv) // a map of strings always encodes
	return b
}

// Appended is the server's receipt for one durable entry (the wire type).
type Appended = agentlog.Appended

// Append appends records in one request; all are sequenced or none.
func (c *Client) Append(ctx context.Context, recs ...Record) ([]Appended, error) {
	body, err := json.Marshal(agentlog.AppendRequest{Entries: recs})
	if err != nil {
		return nil, fmt.Errorf("encoding records: %w", err)
	}
	return c.AppendRaw(ctx, body)
}

// AppendRaw posts an already encoded {"entries": [...]} body.
func (c *Client) AppendRaw(ctx context.Context, body []byte) ([]Appended, error) {
	b, err := c.do(ctx, http.MethodPost, "/v1/entries", body)
	if err != nil {
		return nil, err
	}
	return decodeAppended(b)
}

func decodeAppended(b []byte) ([]Appended, error) {
	var out agentlog.AppendResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding append answer: %w", err)
	}
	return out.Entries, nil
}

// Checkpoint fetches the raw signed checkpoint.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/checkpoint")
}

// Entry fetches the leaf at index (auditor or admin credential).
func (c *Client) Entry(ctx context.Context, index uint64) ([]byte, error) {
	b, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/entries/%d", index), nil)
	if err != nil {
		return nil, err
	}
	var out agentlog.EntryResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding entry answer: %w", err)
	}
	return out.Entry, nil
}

// InclusionProof fetches the inclusion proof of index in the tree of size.
func (c *Client) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if c.mirror != "" {
		return c.inclusionFromTiles(ctx, index, size)
	}
	return c.proof(ctx, fmt.Sprintf("/v1/proof/inclusion?index=%d&size=%d", index, size))
}

// ConsistencyProof fetches the consistency proof between two tree sizes.
func (c *Client) ConsistencyProof(ctx context.Context, old, size uint64) ([][]byte, error) {
	if c.mirror != "" {
		return c.consistencyFromTiles(ctx, old, size)
	}
	return c.proof(ctx, fmt.Sprintf("/v1/proof/consistency?old=%d&size=%d", old, size))
}

func (c *Client) proof(ctx context.Context, path string) ([][]byte, error) {
	b, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var out agentlog.ProofResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding proof: %w", err)
	}
	return out.Hashes, nil
}

// Verifier checks what a server says against the log's public keys.
type Verifier struct {
	Log  note.Verifier // the log's checkpoint key (required)
	Time note.Verifier // the log's timestamp key (optional)
}

// NewVerifier parses the log's verifier key (log.pub) and optionally its
// timestamp key (time.pub, may be empty).
func NewVerifier(logVKey, timeVKey string) (*Verifier, error) {
	lv, err := note.NewVerifier(strings.TrimSpace(logVKey))
	if err != nil {
		return nil, fmt.Errorf("log key is not a note verifier key: %w", err)
	}
	v := &Verifier{Log: lv}
	if strings.TrimSpace(timeVKey) != "" {
		tv, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(timeVKey))
		if err != nil {
			return nil, fmt.Errorf("time key: %w", err)
		}
		v.Time = tv
	}
	return v, nil
}

// VerifiedCheckpoint fetches the checkpoint and verifies its signatures.
func (c *Client) VerifiedCheckpoint(ctx context.Context, v *Verifier) (*checkpoint.Signed, error) {
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, err := checkpoint.Open(raw, v.Log, v.Time)
	if err != nil {
		return nil, fmt.Errorf("checkpoint from %s: %w", c.base, err)
	}
	return cp, nil
}

// LeafHash is the RFC 6962 hash of a leaf.
func LeafHash(leaf []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(leaf) }

// VerifyInclusion fetches the inclusion proof of leaf at index under cp and
// verifies it.
func (c *Client) VerifyInclusion(ctx context.Context, cp *checkpoint.Signed, index uint64, leaf []byte) error {
	if index >= cp.Size {
		return fmt.Errorf("entry %d is not covered by the checkpoint of size %d yet", index, cp.Size)
	}
	p, err := c.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, LeafHash(leaf), p, cp.Root); err != nil {
		return fmt.Errorf("inclusion proof of entry %d in the tree of size %d does not verify: %w", index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency fetches and verifies a consistency proof between two
// verified checkpoints of the same log (older first).
func (c *Client) VerifyConsistency(ctx context.Context, older, newer *checkpoint.Signed) error {
	if older.Size > newer.Size {
		return fmt.Errorf("checkpoint of size %d is older than the one of size %d", newer.Size, older.Size)
	}
	if older.Size == 0 || older.Size == newer.Size {
		if older.Size == newer.Size && !bytes.Equal(older.Root, newer.Root) {
			return fmt.Errorf("two checkpoints of size %d with different roots:\n%s\n%s", older.Size, older.Raw, newer.Raw)
		}
		return nil
	}
	p, err := c.ConsistencyProof(ctx, older.Size, newer.Size)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Root, newer.Root); err != nil {
		return fmt.Errorf("checkpoints are not consistent (%w):\n%s\n%s", err, older.Raw, newer.Raw)
	}
	return nil
}
