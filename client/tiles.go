package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentlog/agentlog"
)

// Tile geometry of c2sp.org/tlog-tiles (package agentlog).
const (
	tileHeight = agentlog.TileHeight
	tileWidth  = agentlog.TileWidth // hashes in a full tile, entries in a full bundle
	hashSize   = agentlog.HashSize
)

// tilePath formats the part of a tile URL after "/tile/"; a width of 0 or
// tileWidth is a full tile.
func tilePath(level, index uint64, width int, entries bool) string {
	return agentlog.TilePath{Level: level, Index: index, Width: width, Entries: entries}.String()
}

// fetchTile fetches a hash tile or entry bundle of the given width. A
// partial tile that is no longer served (the tile has since filled up) is
// read from the full tile, as c2sp.org/tlog-tiles allows.
func (c *Client) fetchTile(ctx context.Context, level, index uint64, width int, entries bool) ([]byte, error) {
	b, err := c.get(ctx, "/tile/"+tilePath(level, index, width, entries))
	var he *HTTPError
	if err != nil && width < tileWidth && errors.As(err, &he) && he.Status == http.StatusNotFound {
		b, err = c.get(ctx, "/tile/"+tilePath(level, index, tileWidth, entries))
		if err == nil && entries {
			return b, nil // the caller splits and keeps the first width entries
		}
		if err == nil && len(b) == tileWidth*hashSize {
			b = b[:width*hashSize]
		}
	}
	return b, err
}

// HashTile fetches hash tile (level, index) of width hashes (1..256, 256
// is a full tile), unverified.
func (c *Client) HashTile(ctx context.Context, level, index uint64, width int) ([]byte, error) {
	b, err := c.fetchTile(ctx, level, index, width, false)
	if err != nil {
		return nil, err
	}
	if len(b) != width*hashSize {
		return nil, fmt.Errorf("hash tile %s is %d bytes, want %d", tilePath(level, index, width, false), len(b), width*hashSize)
	}
	return b, nil
}

// EntryBundle fetches entry bundle index holding width entries (1..256),
// unverified, and splits it (auditor or admin credential).
func (c *Client) EntryBundle(ctx context.Context, index uint64, width int) ([][]byte, error) {
	b, err := c.fetchTile(ctx, 0, index, width, true)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) > 0 && len(out) < width {
		if len(b) < 2 {
			return nil, fmt.Errorf("entry bundle %d: truncated length prefix", index)
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			return nil, fmt.Errorf("entry bundle %d: entry %d is truncated", index, len(out))
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	if len(out) != width {
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", index, len(out), width)
	}
	return out, nil
}
