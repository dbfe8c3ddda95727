// Package tree is the append-only Merkle tree of an agentlog log, stored in
// Badger as hash tiles.
//
// # Hashing
//
// Hashing is that of RFC 6962, section 2.1 (https://www.rfc-editor.org/rfc/rfc6962#section-2.1):
// a leaf hash is SHA-256(0x00 || entry), an interior node is
// SHA-256(0x01 || left || right), and the empty tree hashes to SHA-256("").
// The tree is handed leaf hashes, never entries.
//
// # Tiles
//
// The tree is kept as the hash tiles of C2SP tlog-tiles (https://c2sp.org/tlog-tiles).
// Tile N at level L holds up to 256 hashes: hash i is the root of the subtree
// of the 256^L leaves starting at leaf (N*256+i)*256^L. A tile with fewer than
// 256 hashes is partial; only the rightmost tile of each level can be. Tree.Tile
// returns exactly the bytes of the resource tile/<L>/<N>[.p/<W>], and TilePath
// parses and formats those paths (and those of entry bundles).
//
// # Storage
//
// Every key the package owns starts with "t/"; integers are big-endian, so
// tiles sort by level, then index:
//
//	t/state                  0x02 || size (8 bytes) || root hash; the compact
//	                         range [0, size) is read from the right-edge
//	                         tiles at open and checked against the root
//	                         (version 1, 0x01 || size || the range's hashes,
//	                         is still read)
//	t/h/<L:1 byte><N:8 bytes> a full tile
//	t/p/<L:1 byte><N:8 bytes><F:2 bytes>
//	                         a piece of the right-edge partial tile (L, N):
//	                         the hashes at positions F and up that one
//	                         batch added
//
// A partial tile is stored in pieces, one per batch that grew it, so a
// batch writes only the hashes it adds rather than the whole right-edge
// tile again: a stream of one-entry batches used to rewrite up to 8 KiB
// per entry, all of it garbage for the value log. The batch that fills the
// tile writes it whole under t/h/ and deletes its pieces. A tree written
// before pieces existed may hold a partial tile whole under t/h/; its
// hashes come before the pieces. A full tile is its 256 hashes
// followed by the 254 interior nodes of the subtree it spans (levels 1 to 7
// above the tile's level, lower levels first, each left to right): the tile
// resource is its first 8,192 bytes, and proofs need no hashing on the read path.
//
// # Writing
//
// A single writer (the log's sequencer) appends in three steps. Prepare
// computes the new tiles and state without reading Badger or changing the Tree;
// Update.Write adds them to the caller's transaction, so they commit atomically
// with whatever else the caller writes; Tree.Apply makes them visible once the
// transaction has committed. An Update whose transaction is discarded leaves no
// trace. The three calls must not overlap one another, and at most one Update
// may be outstanding. Each 256 leaves add about 16 KiB of tiles to the
// transaction, which counts against Badger's transaction size limit.
//
// # Reading
//
// Size, Root, RootAt, InclusionProof, ConsistencyProof, LeafHash and Tile are
// safe for any number of goroutines, concurrently with the writer. Each call
// works on one committed state: it sees all of an applied Update or none of it.
// Roots and proofs for every size up to the committed one come from the
// stored tiles, never from rebuilding the tree; Open reads only the state key
// and the right-edge partial tiles (at most one per level).
package tree

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/agentlog/agentlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Tile geometry, as c2sp.org/tlog-tiles fixes it (package agentlog).
const (
	TileHeight = agentlog.TileHeight
	TileWidth  = agentlog.TileWidth
	HashSize   = agentlog.HashSize
	MaxLevel   = agentlog.MaxTileLevel
)

const (
	// tileLevels is how many tile levels can hold hashes in a tree of fewer
	// than 2^64 leaves.
	tileLevels = 64 / TileHeight
	// tileNodes is the number of hashes kept for a tile: its own 256 and the
	// 254 interior nodes below the tile's root.
	tileNodes = 2*TileWidth - 2
	// fullTileBytes is the size of a full tile resource.
	fullTileBytes = TileWidth * HashSize
	// DefaultCacheTiles is the number of full tiles kept in memory when
	// Options.CacheTiles is zero, about 64 MiB. Every proof reads one tile
	// per level; the upper levels are few and stay hot, so misses are
	// mostly level 0 tiles.
	DefaultCacheTiles = 4096
)

var (
	// ErrNotFound reports a tile, tree size or leaf index beyond the
	// committed tree.
	ErrNotFound = agentlog.NotFound("tree: not found")
	// ErrInvalid reports arguments that are wrong whatever the tree size,
	// such as an index not below the size, an old size larger than the new
	// one, or a malformed tile path or leaf hash.
	ErrInvalid = agentlog.Invalid("tree: invalid argument")
)

// emptyRoot is the root of the empty tree, SHA-256 of the empty string.
var emptyRoot = sha256.Sum256(nil)

var (
	stateKey   = []byte("t/state")
	tilePrefix = []byte("t/h/")
	partPrefix = []byte("t/p/")
)

// State versions. Version 1 held the compact range's hashes; version 2
// holds the root and derives the range from the right-edge tiles, so that
// the state stays small enough for Badger's LSM tree instead of leaving
// several hundred bytes of value log garbage per batch.
const (
	stateV1      = 1
	stateVersion = 2
)

// hashChildren is RFC 6962's interior node hash, SHA-256(0x01 || l || r).
// It equals rfc6962.DefaultHasher.HashChildren with a single allocation.
func hashChildren(l, r []byte) []byte {
	out := make([]byte, HashSize)
	hashChildrenInto(out, l, r)
	return out
}

func hashChildrenInto(out, l, r []byte) {
	var b [1 + 2*HashSize]byte
	b[0] = 1
	copy(b[1:], l)
	copy(b[1+HashSize:], r)
	s := sha256.Sum256(b[:])
	copy(out, s[:])
}

var factory = &compact.RangeFactory{Hash: hashChildren}

// tile is a tile with the interior nodes of its subtree, laid out as stored:
// nodes at height r above the tile's level start at hash
// 2*TileWidth - 2*TileWidth>>r. Only the nodes complete at width are set.
// A tile is immutable once published in a state.
type tile struct {
	level uint64
	index uint64
	width int    // hashes at the tile's level, 1..TileWidth
	nodes []byte // tileNodes*HashSize bytes
	// parts are the first positions of the stored pieces of a partial
	// tile (see partKey), in the order written.
	parts []uint16
}

// nodeOffset returns the byte offset, within a tile's nodes, of the node at
// height r (0..7) above the tile's level, pos-th from the left.
func nodeOffset(r uint, pos uint64) int {
	return (2*TileWidth - (2*TileWidth)>>r + int(pos)) * HashSize
}

// fill computes the interior nodes of t that are complete at t.width from the
// tile's hashes.
func (t *tile) fill() {
	for r := uint(1); r < TileHeight; r++ {
		for pos := uint64(0); pos < uint64(t.width>>r); pos++ {
			l := nodeOffset(r-1, 2*pos)
			hashChildrenInto(t.nodes[nodeOffset(r, pos):][:HashSize], t.nodes[l:l+HashSize], t.nodes[l+HashSize:l+2*HashSize])
		}
	}
}

// state is one committed version of the tree. It is immutable once published.
type state struct {
	size uint64
	root []byte
	rng  [][]byte // hashes of the compact range [0, size)
	// edge holds the right-edge partial tile of each level, nil when the
	// level has none (its hash count is a multiple of 256).
	edge [tileLevels]*tile
}

// Options tunes a Tree.
type Options struct {
	// CacheTiles is the number of full tiles kept in memory for reads, each
	// about 16 KiB. Zero means DefaultCacheTiles; a negative value disables
	// the cache.
	CacheTiles int
}

// Tree is an RFC 6962 Merkle tree stored in Badger as tlog-tiles.
type Tree struct {
	db    *badger.DB
	st    atomic.Pointer[state]
	cache *tileCache
}

// Open loads the committed tree from db, with default Options. An empty db
// holds the empty tree.
func Open(db *badger.DB) (*Tree, error) {
	return OpenWithOptions(db, Options{})
}

// OpenWithOptions loads the committed tree from db. It reads the state key
// and the right-edge partial tiles, and checks that they agree.
func OpenWithOptions(db *badger.DB, opts Options) (*Tree, error) {
	n := opts.CacheTiles
	if n == 0 {
		n = DefaultCacheTiles
	}
	t := &Tree{db: db, cache: newTileCache(n)}
	st := &state{}
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stateKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := st.decode(v); err != nil {
			return err
		}
		for l := range uint64(tileLevels) {
			w := PartialWidth(l, st.size)
			if w == 0 {
				continue
			}
			tl := &tile{level: l, index: st.size >> (TileHeight * (l + 1)), width: w, nodes: make([]byte, tileNodes*HashSize)}
			if err := readPartial(txn, tl); err != nil {
				return err
			}
			tl.fill()
			st.edge[l] = tl
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tree: opening: %w", err)
	}
	// The compact range is made of right-edge nodes: read it from the
	// tiles and check it against the state (a version 1 state holds the
	// range, a version 2 state its root).
	ids := compact.RangeNodes(0, st.size, nil)
	hs, err := t.nodes(st, ids)
	if err != nil {
		return nil, fmt.Errorf("tree: opening: %w", err)
	}
	if st.rng != nil {
		for i := range hs {
			if !bytes.Equal(hs[i], st.rng[i]) {
				return nil, fmt.Errorf("tree: opening: state does not match the partial tiles at node %d/%d", ids[i].Level, ids[i].Index)
			}
		}
	}
	st.rng = cloneHashes(hs)
	root := rootOf(st.rng)
	if st.root != nil && !bytes.Equal(root, st.root) {
		return nil, fmt.Errorf("tree: opening: the tiles give root %x at size %d, the state says %x", root, st.size, st.root)
	}
	st.root = root
	t.st.Store(st)
	return t, nil
}

// rootOf returns the root hash of the tree whose compact range [0, size) is rng.
func rootOf(rng [][]byte) []byte {
	if len(rng) == 0 {
		return emptyRoot[:]
	}
	h := rng[len(rng)-1]
	for i := len(rng) - 2; i >= 0; i-- {
		h = hashChildren(rng[i], h)
	}
	return h
}

// encode gives the state key's value: version 2, size, root.
func (st *state) encode() []byte {
	b := make([]byte, 0, 9+HashSize)
	b = append(b, stateVersion)
	b = binary.BigEndian.AppendUint64(b, st.size)
	return append(b, st.root...)
}

// decode reads a state key's value: of version 2 it sets size and root, of
// version 1 size and range.
func (st *state) decode(b []byte) error {
	if len(b) < 9 || (b[0] != stateV1 && b[0] != stateVersion) {
		return fmt.Errorf("tree: malformed state (%d bytes)", len(b))
	}
	st.size = binary.BigEndian.Uint64(b[1:])
	if b[0] == stateVersion {
		if len(b) != 9+HashSize {
			return fmt.Errorf("tree: malformed state: %d bytes", len(b))
		}
		st.root = b[9:]
		return nil
	}
	n := bits.OnesCount64(st.size)
	if len(b) != 9+n*HashSize {
		return fmt.Errorf("tree: malformed state: %d bytes for size %d", len(b), st.size)
	}
	st.rng = make([][]byte, n)
	for i := range st.rng {
		st.rng[i] = b[9+i*HashSize : 9+(i+1)*HashSize : 9+(i+1)*HashSize]
	}
	return nil
}

// readPartial reads the hashes of the right-edge partial tile tl (level,
// index and width set) from its pieces: each batch that grows a partial
// tile stores only the hashes it adds, under partKey. A tree written
// before pieces existed stored the whole partial tile under tileKey; its
// hashes come first.
func readPartial(txn *badger.Txn, tl *tile) error {
	have := 0
	item, err := txn.Get(tileKey(tl.level, tl.index))
	switch {
	case err == nil:
		if err := item.Value(func(v []byte) error {
			have = min(len(v)/HashSize, tl.width)
			copy(tl.nodes, v[:have*HashSize])
			return nil
		}); err != nil {
			return err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	prefix := partKey(tl.level, tl.index, 0)[:len(partPrefix)+9]
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+2 {
			return fmt.Errorf("tree: malformed partial tile key %x", k)
		}
		from := int(binary.BigEndian.Uint16(k[len(prefix):]))
		if from > have {
			return fmt.Errorf("tree: partial tile %d/%d: hashes %d to %d are missing", tl.level, tl.index, have, from)
		}
		if err := it.Item().Value(func(v []byte) error {
			if len(v)%HashSize != 0 || from+len(v)/HashSize > TileWidth {
				return fmt.Errorf("tree: partial tile %d/%d: malformed piece at %d", tl.level, tl.index, from)
			}
			copy(tl.nodes[from*HashSize:], v)
			have = max(have, from+len(v)/HashSize)
			return nil
		}); err != nil {
			return err
		}
		tl.parts = append(tl.parts, uint16(from))
	}
	if have < tl.width {
		return fmt.Errorf("tree: partial tile %d/%d holds %d hashes, want %d", tl.level, tl.index, have, tl.width)
	}
	return nil
}

// partKey is the key of the piece of partial tile (level, index) whose
// hashes start at position from.
func partKey(level, index uint64, from uint16) []byte {
	k := make([]byte, len(partPrefix)+11)
	copy(k, partPrefix)
	k[len(partPrefix)] = byte(level)
	binary.BigEndian.PutUint64(k[len(partPrefix)+1:], index)
	binary.BigEndian.PutUint16(k[len(partPrefix)+9:], from)
	return k
}

// tileKey returns the Badger key of tile (level, index).
func tileKey(level, index uint64) []byte {
	k := make([]byte, len(tilePrefix)+9)
	copy(k, tilePrefix)
	k[len(tilePrefix)] = byte(level)
	binary.BigEndian.PutUint64(k[len(tilePrefix)+1:], index)
	return k
}

// PartialWidth returns the width of the partial tile at level in a tree of
// size hashes, 0 if that level has none.
func PartialWidth(level, size uint64) int {
	if level >= tileLevels {
		return 0
	}
	return int((size >> (TileHeight * level)) & (TileWidth - 1))
}

// Size returns the committed tree size.
func (t *Tree) Size() uint64 {
	return t.st.Load().size
}

// Root returns the root hash at the committed size.
func (t *Tree) Root() []byte {
	return bytes.Clone(t.st.Load().root)
}

// RootAt returns the root hash of the tree of the given size, for any
// size up to Size.
func (t *Tree) RootAt(size uint64) ([]byte, error) {
	st := t.st.Load()
	switch {
	case size > st.size:
		return nil, fmt.Errorf("%w: tree size %d beyond committed size %d", ErrNotFound, size, st.size)
	case size == st.size:
		return bytes.Clone(st.root), nil
	case size == 0:
		return bytes.Clone(emptyRoot[:]), nil
	}
	hs, err := t.nodes(st, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	r, err := factory.NewRange(0, size, hs)
	if err != nil {
		return nil, fmt.Errorf("tree: root at %d: %w", size, err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("tree: root at %d: %w", size, err)
	}
	return bytes.Clone(root), nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size, with index < size <= Size.
func (t *Tree) InclusionProof(index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: leaf index %d not below tree size %d", ErrInvalid, index, size)
	}
	st := t.st.Load()
	if size > st.size {
		return nil, fmt.Errorf("%w: tree size %d beyond committed size %d", ErrNotFound, size, st.size)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return t.prove(st, n)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees of
// sizes old and size, with old <= size <= Size. It is empty when old is 0 or
// equal to size.
func (t *Tree) ConsistencyProof(old, size uint64) ([][]byte, error) {
	if old > size {
		return nil, fmt.Errorf("%w: old tree size %d larger than %d", ErrInvalid, old, size)
	}
	st := t.st.Load()
	if size > st.size {
		return nil, fmt.Errorf("%w: tree size %d beyond committed size %d", ErrNotFound, size, st.size)
	}
	n, err := proof.Consistency(old, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return t.prove(st, n)
}

func (t *Tree) prove(st *state, n proof.Nodes) ([][]byte, error) {
	hs, err := t.nodes(st, n.IDs)
	if err != nil {
		return nil, err
	}
	p, err := n.Rehash(hs, hashChildren)
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return cloneHashes(p), nil
}

// cloneHashes copies hs into one fresh allocation, so that callers never
// hold memory shared with the tree.
func cloneHashes(hs [][]byte) [][]byte {
	buf := make([]byte, len(hs)*HashSize)
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = buf[i*HashSize : (i+1)*HashSize : (i+1)*HashSize]
		copy(out[i], h)
	}
	return out
}

// LeafHash returns the hash of leaf index, which must be below Size.
func (t *Tree) LeafHash(index uint64) ([]byte, error) {
	st := t.st.Load()
	if index >= st.size {
		return nil, fmt.Errorf("%w: leaf index %d beyond committed size %d", ErrNotFound, index, st.size)
	}
	hs, err := t.nodes(st, []compact.NodeID{compact.NewNodeID(0, index)})
	if err != nil {
		return nil, err
	}
	return bytes.Clone(hs[0]), nil
}

// Tile returns the hash tile at level, index of the given width (1 to 256,
// 256 meaning full) in the C2SP tlog-tiles format: width hashes, concatenated.
// It returns ErrNotFound unless the committed tree has at least width hashes
// in that tile.
func (t *Tree) Tile(level, index uint64, width int) ([]byte, error) {
	if width < 1 || width > TileWidth {
		return nil, fmt.Errorf("%w: tile width %d not in 1..%d", ErrInvalid, width, TileWidth)
	}
	if level > MaxLevel {
		return nil, fmt.Errorf("%w: tile level %d above %d", ErrInvalid, level, MaxLevel)
	}
	st := t.st.Load()
	if w := agentlog.TileWidthAt(level, index, st.size); w < width {
		return nil, fmt.Errorf("%w: tile %d/%d has %d hashes at size %d, want %d", ErrNotFound, level, index, w, st.size, width)
	}
	nodes, _, err := t.tileNodes(st, level, index)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(nodes[:width*HashSize]), nil
}

// tileNodes returns the nodes of tile (level, index) and its width at st.
func (t *Tree) tileNodes(st *state, level, index uint64) ([]byte, int, error) {
	w := agentlog.TileWidthAt(level, index, st.size)
	switch {
	case w == 0:
		return nil, 0, fmt.Errorf("%w: tile %d/%d at size %d", ErrNotFound, level, index, st.size)
	case w < TileWidth:
		e := st.edge[level]
		if e == nil || e.index != index || e.width != w {
			return nil, 0, fmt.Errorf("tree: internal error: partial tile %d/%d not in memory", level, index)
		}
		return e.nodes, w, nil
	}
	nodes, err := t.fullTile(level, index)
	return nodes, TileWidth, err
}

// fullTile returns the nodes of a full tile, from the cache or from Badger.
func (t *Tree) fullTile(level, index uint64) ([]byte, error) {
	ck := cacheKey{level: uint8(level), index: index}
	if nodes := t.cache.get(ck); nodes != nil {
		return nodes, nil
	}
	var nodes []byte
	err := t.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(tileKey(level, index))
		if err != nil {
			return err
		}
		nodes, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tree: reading tile %d/%d: %w", level, index, err)
	}
	switch len(nodes) {
	case tileNodes * HashSize:
	case fullTileBytes: // hashes only: derive the interior nodes
		tl := &tile{width: TileWidth, nodes: make([]byte, tileNodes*HashSize)}
		copy(tl.nodes, nodes)
		tl.fill()
		nodes = tl.nodes
	default:
		return nil, fmt.Errorf("tree: full tile %d/%d holds %d bytes", level, index, len(nodes))
	}
	t.cache.add(ck, nodes)
	return nodes, nil
}

// nodes returns the hashes of the given nodes, all complete in the tree of
// size st.size. The hashes alias tile memory: callers must not modify them.
func (t *Tree) nodes(st *state, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var (
		cur        []byte
		curW       int
		curL, curN uint64
	)
	for i, id := range ids {
		l := uint64(id.Level / TileHeight)
		r := id.Level % TileHeight
		shift := TileHeight - r
		n := id.Index >> shift
		pos := id.Index & (1<<shift - 1)
		if cur == nil || l != curL || n != curN {
			var err error
			if cur, curW, err = t.tileNodes(st, l, n); err != nil {
				return nil, err
			}
			curL, curN = l, n
		}
		if (pos+1)<<r > uint64(curW) {
			return nil, fmt.Errorf("tree: internal error: node %d/%d incomplete in tile %d/%d of width %d", id.Level, id.Index, l, n, curW)
		}
		off := nodeOffset(r, pos)
		out[i] = cur[off : off+HashSize : off+HashSize]
	}
	return out, nil
}
