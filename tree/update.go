package tree

import (
	"fmt"

	"github.com/agentlog/agentlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// Update is the result of appending leaves to the committed tree. Nothing of
// it is written or visible until Write and Apply.
type Update struct {
	Size uint64 // tree size after the append
	Root []byte // root hash after the append

	base    *state  // the committed state it extends
	next    *state  // nil when no leaves were appended
	full    []*tile // tiles that became full
	partial []*tile // right-edge partial tiles that changed
}

// builder collects the nodes reported while appending to a compact range.
type builder struct {
	base  *state
	work  [tileLevels]*tile // tile of each level receiving nodes
	full  []*tile
	arena []byte // space for new interior hashes
}

// hash is the compact range's hash function: RFC 6962 interior node hashing
// into the builder's arena, to avoid an allocation per node.
func (b *builder) hash(l, r []byte) []byte {
	if len(b.arena) < HashSize {
		b.arena = make([]byte, 1024*HashSize)
	}
	out := b.arena[:HashSize:HashSize]
	b.arena = b.arena[HashSize:]
	hashChildrenInto(out, l, r)
	return out
}

// visit stores a new node into the tile that holds it: node (level, index)
// lies at height level%8 above tile level level/8.
func (b *builder) visit(id compact.NodeID, h []byte) {
	l := uint64(id.Level / TileHeight)
	r := id.Level % TileHeight
	shift := TileHeight - r
	n := id.Index >> shift
	w := b.work[l]
	if w == nil || w.index != n {
		// Tiles of a level fill in order: a previous working tile is full.
		if w != nil {
			w.width = TileWidth
			b.full = append(b.full, w)
		}
		w = &tile{level: l, index: n, nodes: make([]byte, tileNodes*HashSize)}
		if e := b.base.edge[l]; e != nil && e.index == n {
			copy(w.nodes, e.nodes)
			w.width = e.width // until Prepare sets the new width
			w.parts = e.parts
		}
		b.work[l] = w
	}
	copy(w.nodes[nodeOffset(r, id.Index&(1<<shift-1)):], h)
}

// Prepare computes the tiles and state of the tree after appending
// leafHashes (RFC 6962 leaf hashes, 32 bytes each) to the committed tree.
// It neither reads Badger nor changes t, and keeps no reference to
// leafHashes. An empty batch gives an Update that writes and changes nothing.
func (t *Tree) Prepare(leafHashes [][]byte) (*Update, error) {
	base := t.st.Load()
	n := uint64(len(leafHashes))
	for i, h := range leafHashes {
		if len(h) != HashSize {
			return nil, fmt.Errorf("%w: leaf hash %d is %d bytes, want %d", ErrInvalid, i, len(h), HashSize)
		}
	}
	if base.size+n < base.size {
		return nil, fmt.Errorf("%w: appending %d leaves to a tree of size %d overflows", ErrInvalid, n, base.size)
	}
	u := &Update{Size: base.size, Root: base.root, base: base}
	if n == 0 {
		return u, nil
	}

	// Appending n leaves creates at most n+63 interior nodes.
	b := &builder{base: base, arena: make([]byte, (n+64)*HashSize)}
	f := &compact.RangeFactory{Hash: b.hash}
	rng, err := f.NewRange(0, base.size, append(make([][]byte, 0, 64), base.rng...))
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	for _, h := range leafHashes {
		if err := rng.Append(h, b.visit); err != nil {
			return nil, fmt.Errorf("tree: %w", err)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}

	// Copy the range and root out of the arena and the caller's slices.
	hs := rng.Hashes()
	buf := make([]byte, (len(hs)+1)*HashSize)
	next := &state{size: base.size + n, rng: make([][]byte, len(hs)), edge: base.edge}
	for i, h := range hs {
		next.rng[i] = buf[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
		copy(next.rng[i], h)
	}
	next.root = buf[len(hs)*HashSize:]
	copy(next.root, root)

	full := b.full
	var partial []*tile
	for l, w := range b.work {
		if w == nil {
			continue // no new node at this level: its partial tile is unchanged
		}
		from := w.width // hashes already stored
		w.width = agentlog.TileWidthAt(uint64(l), w.index, next.size)
		if w.width < TileWidth {
			// Only the new hashes are written, as one more piece.
			w.parts = append(w.parts[:len(w.parts):len(w.parts)], uint16(from))
		}
		if w.width == TileWidth {
			full = append(full, w)
			next.edge[l] = nil
		} else {
			partial = append(partial, w)
			next.edge[l] = w
		}
	}
	u.Size, u.Root = next.size, next.root
	u.next, u.full, u.partial = next, full, partial
	return u, nil
}

// Write puts the update's new and grown tiles and the new tree state into
// txn. The caller commits txn, then calls Apply.
func (u *Update) Write(txn *badger.Txn) error {
	if u.next == nil {
		return nil
	}
	for _, tl := range u.full {
		if err := txn.Set(tileKey(tl.level, tl.index), tl.nodes); err != nil {
			return fmt.Errorf("tree: writing tile %d/%d: %w", tl.level, tl.index, err)
		}
		// The full tile replaces the pieces it grew from.
		for _, from := range tl.parts {
			if err := txn.Delete(partKey(tl.level, tl.index, from)); err != nil {
				return fmt.Errorf("tree: deleting a piece of tile %d/%d: %w", tl.level, tl.index, err)
			}
		}
	}
	for _, tl := range u.partial {
		from := int(tl.parts[len(tl.parts)-1])
		if err := txn.Set(partKey(tl.level, tl.index, uint16(from)), tl.nodes[from*HashSize:tl.width*HashSize]); err != nil {
			return fmt.Errorf("tree: writing tile %s: %w", agentlog.TilePath{Level: tl.level, Index: tl.index, Width: tl.width}, err)
		}
	}
	if err := txn.Set(stateKey, u.next.encode()); err != nil {
		return fmt.Errorf("tree: writing state: %w", err)
	}
	return nil
}

// Apply makes an update visible to readers once the transaction it was
// written to has committed. It panics if u was not prepared against the
// current committed tree (another update was applied in between).
func (t *Tree) Apply(u *Update) {
	if u.next == nil {
		return
	}
	if t.st.Load() != u.base {
		panic("tree: Apply of an Update prepared against another tree state")
	}
	for _, tl := range u.full {
		t.cache.add(cacheKey{level: uint8(tl.level), index: tl.index}, tl.nodes)
	}
	t.st.Store(u.next)
}

// Undo puts into txn the inverse of u's Write: it removes the tiles and
// pieces Write added, puts back the pieces a tile completed by u had
// replaced, and restores the committed state u extends. After a commit of
// u's Write that failed with an unknown outcome (a storage write or fsync
// error: the store may hold all of it, part of it or none), committing
// Undo brings the stored tree back to the committed one, which u was never
// applied over. Write and Undo may both be retried.
func (u *Update) Undo(txn *badger.Txn) error {
	if u.next == nil {
		return nil
	}
	for _, tl := range u.full {
		if err := txn.Delete(tileKey(tl.level, tl.index)); err != nil {
			return fmt.Errorf("tree: undoing tile %d/%d: %w", tl.level, tl.index, err)
		}
		if e := u.base.edge[tl.level]; e != nil && e.index == tl.index {
			if err := e.putPieces(txn); err != nil {
				return err
			}
		}
	}
	for _, tl := range u.partial {
		// The piece Write added starts at the committed width, where no
		// committed piece starts.
		from := tl.parts[len(tl.parts)-1]
		if err := txn.Delete(partKey(tl.level, tl.index, from)); err != nil {
			return fmt.Errorf("tree: undoing a piece of tile %d/%d: %w", tl.level, tl.index, err)
		}
	}
	if u.base.size == 0 {
		if err := txn.Delete(stateKey); err != nil {
			return fmt.Errorf("tree: undoing the state: %w", err)
		}
		return nil
	}
	if err := txn.Set(stateKey, u.base.encode()); err != nil {
		return fmt.Errorf("tree: undoing the state: %w", err)
	}
	return nil
}

// putPieces writes the pieces of a committed partial tile, as the updates
// that grew it wrote them.
func (t *tile) putPieces(txn *badger.Txn) error {
	for k, from := range t.parts {
		end := t.width
		if k+1 < len(t.parts) {
			end = int(t.parts[k+1])
		}
		if err := txn.Set(partKey(t.level, t.index, from), t.nodes[int(from)*HashSize:end*HashSize]); err != nil {
			return fmt.Errorf("tree: restoring a piece of tile %d/%d: %w", t.level, t.index, err)
		}
	}
	return nil
}
