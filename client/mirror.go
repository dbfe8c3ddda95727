package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
)

// WithMirror makes the client read the checkpoint, hash tiles and entry
// bundles from a copy of the log in the c2sp.org/tlog-tiles static layout
// at baseURL (an object-storage bucket served over HTTP, or a CDN in front
// of one: docs/replication.md) instead of from the server, and compute
// inclusion and consistency proofs from those tiles. Requests to the mirror
// go through hc (nil: the client's HTTP client) and never carry the
// server's credential. Everything else (appends, queries, entries by
// index) still goes to the server. Proofs are verified as always, so a
// mirror is trusted no more than the server is.
func WithMirror(baseURL string, hc *http.Client) Option {
	return func(c *Client) {
		c.mirror = strings.TrimRight(baseURL, "/")
		c.mirrorHC = hc
	}
}

// checkMirror validates the WithMirror URL.
func (c *Client) checkMirror() error {
	if c.mirror == "" {
		return nil
	}
	u, err := url.Parse(c.mirror)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("mirror URL %q is not an http(s) URL", c.mirror)
	}
	if c.mirrorHC == nil {
		c.mirrorHC = c.hc
	}
	return nil
}

// getMirror fetches path (starting with "/") from the mirror.
func (c *Client) getMirror(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.mirror+path, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	resp, err := c.mirrorHC.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mirror GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("mirror GET %s: reading answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("mirror GET %s: %w", path, httpError(resp, b))
	}
	return b, nil
}

// get fetches a static-layout path from the mirror if there is one, else
// from the server.
func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	if c.mirror != "" {
		return c.getMirror(ctx, path)
	}
	return c.do(ctx, http.MethodGet, path, nil)
}

// tileHashes is a tlog.HashReader of the tree of size size, reading the
// tiles that tree has (their width at size) through the client. It does
// not verify them: the proofs made from them are verified by the caller.
func (c *Client) tileHashes(ctx context.Context, size uint64) tlog.HashReaderFunc {
	var mu sync.Mutex
	tiles := map[tlog.Tile][]byte{}
	return func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			t := tlog.TileForIndex(agentlog.TileHeight, x)
			t.W = agentlog.TileWidthAt(uint64(t.L), uint64(t.N), size)
			if t.W == 0 {
				return nil, fmt.Errorf("hash %d is not in the tree of size %d", x, size)
			}
			mu.Lock()
			data, ok := tiles[t]
			mu.Unlock()
			if !ok {
				var err error
				if data, err = c.HashTile(ctx, uint64(t.L), uint64(t.N), t.W); err != nil {
					return nil, err
				}
				mu.Lock()
				tiles[t] = data
				mu.Unlock()
			}
			h, err := tlog.HashFromTile(t, data, x)
			if err != nil {
				return nil, err
			}
			out[i] = h
		}
		return out, nil
	}
}

// proofFromTiles computes an inclusion proof (index >= 0) or a consistency
// proof (old) in the tree of size from its hash tiles.
func (c *Client) inclusionFromTiles(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("index %d is not below the tree size %d", index, size)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), c.tileHashes(ctx, size))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d from the mirror's tiles: %w", index, size, err)
	}
	return hashSlices(p), nil
}

func (c *Client) consistencyFromTiles(ctx context.Context, old, size uint64) ([][]byte, error) {
	if old > size {
		return nil, fmt.Errorf("old size %d is above %d", old, size)
	}
	if old == 0 || old == size {
		return [][]byte{}, nil
	}
	p, err := tlog.ProveTree(int64(size), int64(old), c.tileHashes(ctx, size))
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d from the mirror's tiles: %w", old, size, err)
	}
	return hashSlices(p), nil
}

func hashSlices(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
