package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/tree"
)

// Importer stores verified entries in the local log (log.Log.Import).
type Importer interface {
	Import(ctx context.Context, at uint64, leaves [][]byte) error
}

// followChunk is how many entries a standby verifies and imports at once
// (at most 256 MiB of leaves).
const followChunk = 16 * tree.TileWidth

// A ForkError reports a bucket whose log does not extend the local tree:
// the standby stops following rather than import a different history.
type ForkError struct {
	LocalSize uint64
	Bucket    *checkpoint.Signed
	Err       error
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("the bucket's log (checkpoint size %d) is not consistent with the local tree (size %d): %v", e.Bucket.Size, e.LocalSize, e.Err)
}

// Follow makes this node a standby: until ctx ends it copies the log from
// the bucket into dst (the local log, whose Source the mirror was made
// with), verifying every bundle against the hash tiles and every tile
// against the checkpoint, which must verify with the log's keys and extend
// the local tree. onCheckpoint, if set, is called with each checkpoint
// once the local log holds everything it covers. Follow returns nil when
// the active node's lease has lapsed (the lock stayed unchanged for the
// lease time) and the local log holds the lock's checkpoint: the caller
// then calls TakeOver. A *ForkError stops it for good.
func (m *Mirror) Follow(ctx context.Context, dst Importer, onCheckpoint func(*checkpoint.Signed)) error {
	poll := max(m.cfg.LeaseTime/6, 50*time.Millisecond)
	m.lmu.Lock()
	seen := m.state
	m.lmu.Unlock()
	seenAt := time.Now()
	var lastErr string
	for {
		err := m.followOnce(ctx, dst, onCheckpoint)
		var fe *ForkError
		if errors.As(err, &fe) {
			m.setErr(err.Error())
			return err
		}
		st, lerr := m.cfg.Lock.Load(ctx)
		if lerr == nil {
			if st.Seq != seen.Seq || st.Holder != seen.Holder {
				seen, seenAt = st, time.Now()
			} else if time.Since(seenAt) >= m.cfg.LeaseTime && err == nil {
				// The lease lapsed. Catch up with the lock's own
				// checkpoint (its tiles went up before the swap).
				if err = m.syncTo(ctx, dst, st.Checkpoint, onCheckpoint); err == nil {
					m.lmu.Lock()
					m.state, m.lapsed = st, true
					m.lmu.Unlock()
					return nil
				}
			}
		} else if err == nil {
			err = lerr
		}
		switch {
		case err != nil && err.Error() != lastErr:
			m.log.Warn("following the bucket", "err", err)
			lastErr = err.Error()
			m.setErr(lastErr)
		case err == nil && lastErr != "":
			m.log.Info("following the bucket again")
			lastErr = ""
			m.setErr("")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (m *Mirror) setErr(s string) {
	m.smu.Lock()
	m.lastErr = s
	m.smu.Unlock()
}

// followOnce imports what the bucket's checkpoint has beyond the local tree.
func (m *Mirror) followOnce(ctx context.Context, dst Importer, onCheckpoint func(*checkpoint.Signed)) error {
	raw, _, err := m.cfg.Bucket.Get(ctx, "checkpoint")
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return m.syncTo(ctx, dst, raw, onCheckpoint)
}

// syncTo verifies raw and imports the entries it covers beyond the local
// tree.
func (m *Mirror) syncTo(ctx context.Context, dst Importer, raw []byte, onCheckpoint func(*checkpoint.Signed)) error {
	if raw == nil {
		return nil
	}
	cp, err := checkpoint.Open(raw, m.cfg.Keys.LogVerifier, m.cfg.Keys.TimeVerifier)
	if err != nil {
		return fmt.Errorf("the bucket's checkpoint does not verify with the log's keys: %w", err)
	}
	if prev := m.published.Load(); prev != nil && bytes.Equal(prev.Raw, cp.Raw) {
		return nil
	}
	local := m.cfg.Source.Size()
	if cp.Size < local {
		// Older than what we hold (a stale read): it must still be a
		// prefix of the local tree.
		root, err := m.cfg.Source.RootAt(cp.Size)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, cp.Root) {
			return &ForkError{LocalSize: local, Bucket: cp, Err: errors.New("its root differs from the local tree's at its size")}
		}
		return nil
	}
	var th tlog.Tree
	th.N = int64(cp.Size)
	copy(th.Hash[:], cp.Root)
	hr := tlog.TileHashReader(th, &bucketTiles{ctx: ctx, b: m.cfg.Bucket})
	if local > 0 {
		lroot, err := m.cfg.Source.RootAt(local)
		if err != nil {
			return err
		}
		var lh tlog.Hash
		copy(lh[:], lroot)
		p, err := tlog.ProveTree(th.N, int64(local), hr)
		if err != nil {
			return fmt.Errorf("proving the bucket's checkpoint consistent with the local tree: %w", err)
		}
		if err := tlog.CheckTree(p, th.N, th.Hash, int64(local), lh); err != nil {
			return &ForkError{LocalSize: local, Bucket: cp, Err: err}
		}
	}
	for start := local; start < cp.Size; {
		end := min(start+followChunk, cp.Size)
		leaves, err := m.readLeaves(ctx, hr, start, end, cp.Size)
		if err != nil {
			return err
		}
		if err := dst.Import(ctx, start, leaves); err != nil {
			return fmt.Errorf("importing entries %d to %d: %w", start, end-1, err)
		}
		start = end
	}
	root, err := m.cfg.Source.RootAt(cp.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, cp.Root) {
		return &ForkError{LocalSize: m.cfg.Source.Size(), Bucket: cp, Err: errors.New("the imported tree's root differs from the checkpoint's")}
	}
	m.published.Store(cp)
	m.mirrored.Store(cp.Size)
	m.wake()
	if onCheckpoint != nil {
		onCheckpoint(cp)
	}
	return nil
}

// readLeaves reads the entries [start, end) of the tree of size size from
// the bucket's bundles and checks each against the level-0 hashes, which
// hr verifies against the checkpoint.
func (m *Mirror) readLeaves(ctx context.Context, hr tlog.HashReader, start, end, size uint64) ([][]byte, error) {
	idx := make([]int64, end-start)
	for i := range idx {
		idx[i] = tlog.StoredHashIndex(0, int64(start)+int64(i))
	}
	hashes, err := hr.ReadHashes(idx)
	if err != nil {
		return nil, fmt.Errorf("reading the bucket's hash tiles: %w", err)
	}
	leaves := make([][]byte, 0, end-start)
	for b := start / tree.TileWidth; b*tree.TileWidth < end; b++ {
		w := min(size-b*tree.TileWidth, tree.TileWidth)
		p := agentlog.TilePath{Index: b, Width: int(w), Entries: true}
		data, _, err := m.cfg.Bucket.Get(ctx, "tile/"+p.String())
		if err != nil {
			return nil, err
		}
		for i := b * tree.TileWidth; len(data) > 0; i++ {
			if len(data) < 2 || len(data) < 2+(int(data[0])<<8|int(data[1])) {
				return nil, fmt.Errorf("bundle %s is truncated", p)
			}
			n := int(data[0])<<8 | int(data[1])
			leaf := data[2 : 2+n : 2+n]
			data = data[2+n:]
			if i < start || i >= end {
				continue
			}
			if tlog.RecordHash(leaf) != hashes[i-start] {
				return nil, fmt.Errorf("entry %d in bundle %s does not match the checkpoint's tree", i, p)
			}
			leaves = append(leaves, leaf)
		}
	}
	if uint64(len(leaves)) != end-start {
		return nil, fmt.Errorf("the bucket's bundles hold %d of the entries %d to %d", len(leaves), start, end-1)
	}
	return leaves, nil
}

// bucketTiles reads hash tiles from the bucket for tlog.TileHashReader,
// which verifies them.
type bucketTiles struct {
	ctx context.Context
	b   *Bucket
}

func (r *bucketTiles) Height() int { return tree.TileHeight }

func (r *bucketTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := agentlog.TilePath{Level: uint64(t.L), Index: uint64(t.N), Width: t.W}
		data, _, err := r.b.Get(r.ctx, "tile/"+p.String())
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r *bucketTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TakeOver takes the lease after Follow returned nil: the lock stayed as
// Follow last saw it for the lease time, and the local log holds its
// checkpoint. It then works as after Acquire.
func (m *Mirror) TakeOver(ctx context.Context) error {
	m.lmu.Lock()
	lapsed := m.lapsed
	m.lmu.Unlock()
	if !lapsed {
		return errors.New("TakeOver before Follow saw the lease lapse")
	}
	return m.acquire(ctx, false)
}

// CommonSize returns the largest tree size at which the local tree and
// the tree of the lock's checkpoint (as last read, its tiles read from the
// bucket and verified against it) have the same root: the local entries
// below it are in the log, those from it on are not. 0 if the lock holds
// no checkpoint.
func (m *Mirror) CommonSize(ctx context.Context) (uint64, error) {
	lk := m.Locked()
	if lk == nil {
		return 0, nil
	}
	var th tlog.Tree
	th.N = int64(lk.Size)
	copy(th.Hash[:], lk.Root)
	hr := tlog.TileHashReader(th, &bucketTiles{ctx: ctx, b: m.cfg.Bucket})
	var rerr error
	agree := func(k uint64) bool {
		if k == 0 {
			return true
		}
		local, err := m.cfg.Source.RootAt(k)
		if err != nil {
			rerr = err
			return false
		}
		h, err := tlog.TreeHash(int64(k), hr)
		if err != nil {
			rerr = err
			return false
		}
		return bytes.Equal(local, h[:])
	}
	// Agreement is prefix-closed: find the largest k that agrees.
	lo, hi := uint64(0), min(m.cfg.Source.Size(), lk.Size)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if agree(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	return lo, nil
}
