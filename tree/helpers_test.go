package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/agentlog/agentlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// smallOptions keeps test databases light.
func smallOptions(o badger.Options) badger.Options {
	return o.WithLogger(nil).WithMemTableSize(16 << 20).WithBlockCacheSize(4 << 20).
		WithValueLogFileSize(4 << 20).WithNumCompactors(2)
}

// openDB opens a Badger database in dir, closed at the end of the test
// unless the test closes it first.
func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(smallOptions(badger.DefaultOptions(dir)))
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	t.Cleanup(func() {
		if !db.IsClosed() {
			db.Close()
		}
	})
	return db
}

// openMemDB opens an in-memory Badger database.
func openMemDB(t testing.TB) *badger.DB {
	t.Helper()
	db, err := badger.Open(smallOptions(badger.DefaultOptions("").WithInMemory(true)))
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openTree(t testing.TB, db *badger.DB, opts Options) *Tree {
	t.Helper()
	tr, err := OpenWithOptions(db, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return tr
}

// appendLeaves appends through the full Prepare, Write, commit, Apply path.
func appendLeaves(t testing.TB, tr *Tree, db *badger.DB, leaves [][]byte) {
	t.Helper()
	u, err := tr.Prepare(leaves)
	if err != nil {
		t.Fatalf("Prepare(%d leaves): %v", len(leaves), err)
	}
	txn := db.NewTransaction(true)
	defer txn.Discard()
	if err := u.Write(txn); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	tr.Apply(u)
}

// leafHash is the RFC 6962 hash of the i-th test entry.
func leafHash(i uint64) []byte {
	h := tlog.RecordHash(fmt.Appendf(nil, "entry %d", i))
	return h[:]
}

func leafHashes(from, to uint64) [][]byte {
	hs := make([][]byte, 0, to-from)
	for i := from; i < to; i++ {
		hs = append(hs, leafHash(i))
	}
	return hs
}

// refTree is the x/mod/sumdb/tlog reference: its stored hashes in memory.
type refTree struct {
	n      int64
	hashes []tlog.Hash
}

func (r *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(r.hashes)) {
			return nil, fmt.Errorf("refTree: no stored hash %d", x)
		}
		out[i] = r.hashes[x]
	}
	return out, nil
}

func (r *refTree) add(t testing.TB, leaf []byte) {
	t.Helper()
	hs, err := tlog.StoredHashesForRecordHash(r.n, tlog.Hash(leaf), r)
	if err != nil {
		t.Fatal(err)
	}
	r.hashes = append(r.hashes, hs...)
	r.n++
}

func hashesEqual(a [][]byte, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i][:]) {
			return false
		}
	}
	return true
}

// checkRoot checks RootAt(size) against tlog.TreeHash.
func checkRoot(t testing.TB, tr *Tree, ref *refTree, size uint64) []byte {
	t.Helper()
	got, err := tr.RootAt(size)
	if err != nil {
		t.Fatalf("RootAt(%d): %v", size, err)
	}
	var want []byte
	if size == 0 {
		want = rfc6962.DefaultHasher.EmptyRoot()
	} else {
		h, err := tlog.TreeHash(int64(size), ref)
		if err != nil {
			t.Fatal(err)
		}
		want = h[:]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("RootAt(%d) = %x, tlog says %x", size, got, want)
	}
	return got
}

// checkInclusion checks InclusionProof(index, size) against tlog.ProveRecord
// and verifies it with transparency-dev/merkle.
func checkInclusion(t testing.TB, tr *Tree, ref *refTree, index, size uint64) {
	t.Helper()
	got, err := tr.InclusionProof(index, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
	}
	want, err := tlog.ProveRecord(int64(size), int64(index), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !hashesEqual(got, want) {
		t.Fatalf("InclusionProof(%d, %d) = %x, tlog says %x", index, size, got, want)
	}
	root := checkRoot(t, tr, ref, size)
	leaf, err := tr.LeafHash(index)
	if err != nil {
		t.Fatalf("LeafHash(%d): %v", index, err)
	}
	if !bytes.Equal(leaf, leafHash(index)) {
		t.Fatalf("LeafHash(%d) = %x, want %x", index, leaf, leafHash(index))
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leaf, got, root); err != nil {
		t.Fatalf("InclusionProof(%d, %d) does not verify: %v", index, size, err)
	}
}

// checkConsistency checks ConsistencyProof(old, size) against tlog.ProveTree
// and verifies it with transparency-dev/merkle.
func checkConsistency(t testing.TB, tr *Tree, ref *refTree, old, size uint64) {
	t.Helper()
	got, err := tr.ConsistencyProof(old, size)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d): %v", old, size, err)
	}
	if old == 0 || old == size {
		if len(got) != 0 {
			t.Fatalf("ConsistencyProof(%d, %d) = %x, want empty", old, size, got)
		}
		return
	}
	want, err := tlog.ProveTree(int64(size), int64(old), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !hashesEqual(got, want) {
		t.Fatalf("ConsistencyProof(%d, %d) = %x, tlog says %x", old, size, got, want)
	}
	r1 := checkRoot(t, tr, ref, old)
	r2 := checkRoot(t, tr, ref, size)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, size, got, r1, r2); err != nil {
		t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", old, size, err)
	}
}

// checkTiles compares the tiles tlog would publish going from size old to
// size with ours.
func checkTiles(t testing.TB, tr *Tree, ref *refTree, old, size uint64) {
	t.Helper()
	for _, tl := range tlog.NewTiles(TileHeight, int64(old), int64(size)) {
		want, err := tlog.ReadTileData(tl, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tr.Tile(uint64(tl.L), uint64(tl.N), tl.W)
		if err != nil {
			t.Fatalf("Tile(%d, %d, %d): %v", tl.L, tl.N, tl.W, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Tile(%d, %d, %d) differs from tlog's", tl.L, tl.N, tl.W)
		}
		if w := agentlog.TileWidthAt(uint64(tl.L), uint64(tl.N), size); w != tl.W {
			t.Fatalf("agentlog.TileWidthAt(%d, %d, %d) = %d, tlog says %d", tl.L, tl.N, size, w, tl.W)
		}
		if tl.W < TileWidth {
			if w := PartialWidth(uint64(tl.L), size); w != tl.W {
				t.Fatalf("PartialWidth(%d, %d) = %d, tlog says %d", tl.L, size, w, tl.W)
			}
		}
		// One hash more than the tile has is not found.
		if tl.W < TileWidth {
			if _, err := tr.Tile(uint64(tl.L), uint64(tl.N), tl.W+1); tr.Size() == size && !errors.Is(err, ErrNotFound) {
				t.Fatalf("Tile(%d, %d, %d) at size %d: err = %v, want ErrNotFound", tl.L, tl.N, tl.W+1, size, err)
			}
		}
	}
}

// checkStoredTiles reads every tile key in db and checks it against tlog's
// tiles for a tree of the given size: each tile of the tree is stored once,
// a full tile as its hashes and correct interior nodes, a partial tile as
// pieces that together are its hashes; no piece of a full tile is left.
func checkStoredTiles(t testing.TB, db *badger.DB, ref *refTree, size uint64) {
	t.Helper()
	want := make(map[string]tlog.Tile)
	for _, tl := range tlog.NewTiles(TileHeight, 0, int64(size)) {
		want[string(tileKey(uint64(tl.L), uint64(tl.N)))] = tl
	}
	err := db.View(func(txn *badger.Txn) error {
		pieces := map[string][]byte{} // tile key -> hashes from its pieces
		pit := txn.NewIterator(badger.IteratorOptions{Prefix: partPrefix})
		for pit.Rewind(); pit.Valid(); pit.Next() {
			k := pit.Item().Key()
			if len(k) != len(partPrefix)+11 {
				pit.Close()
				return fmt.Errorf("malformed piece key %x", k)
			}
			tk := string(tileKey(uint64(k[len(partPrefix)]), binary.BigEndian.Uint64(k[len(partPrefix)+1:])))
			from := int(binary.BigEndian.Uint16(k[len(partPrefix)+9:]))
			if len(pieces[tk]) != from*HashSize {
				pit.Close()
				return fmt.Errorf("piece of tile key %x starts at %d after %d hashes", tk, from, len(pieces[tk])/HashSize)
			}
			v, err := pit.Item().ValueCopy(nil)
			if err != nil {
				pit.Close()
				return err
			}
			pieces[tk] = append(pieces[tk], v...)
		}
		pit.Close()
		for k, v := range pieces {
			tl, ok := want[k]
			if !ok || tl.W == TileWidth {
				return fmt.Errorf("pieces stored for tile key %x, which is not a partial tile of a tree of size %d", k, size)
			}
			delete(want, k)
			data, err := tlog.ReadTileData(tl, ref)
			if err != nil {
				return err
			}
			if !bytes.Equal(v, data) {
				return fmt.Errorf("stored partial tile %d/%d.p/%d differs from tlog's", tl.L, tl.N, tl.W)
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: tilePrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			tl, ok := want[k]
			if !ok {
				return fmt.Errorf("stored tile key %x is not a tile of a tree of size %d", k, size)
			}
			delete(want, k)
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			data, err := tlog.ReadTileData(tl, ref)
			if err != nil {
				return err
			}
			if tl.W < TileWidth {
				return fmt.Errorf("partial tile %d/%d.p/%d stored whole", tl.L, tl.N, tl.W)
			}
			if len(v) != tileNodes*HashSize || !bytes.Equal(v[:fullTileBytes], data) {
				return fmt.Errorf("stored full tile %d/%d differs from tlog's", tl.L, tl.N)
			}
			full := &tile{width: TileWidth, nodes: make([]byte, tileNodes*HashSize)}
			copy(full.nodes, data)
			full.fill()
			if !bytes.Equal(v, full.nodes) {
				return fmt.Errorf("stored full tile %d/%d has wrong interior nodes", tl.L, tl.N)
			}
			// The tile's root is the matching hash one tile level up.
			root, err := tlog.ReadTileData(tlog.Tile{H: TileHeight, L: tl.L + 1, N: tl.N / TileWidth, W: int(tl.N%TileWidth) + 1}, ref)
			if err != nil {
				return err
			}
			l := nodeOffset(TileHeight-1, 0)
			if got := hashChildren(v[l:l+HashSize], v[l+HashSize:l+2*HashSize]); !bytes.Equal(got, root[len(root)-HashSize:]) {
				return fmt.Errorf("stored full tile %d/%d does not hash to its parent", tl.L, tl.N)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range want {
		t.Fatalf("tile %d/%d (width %d) not stored", tl.L, tl.N, tl.W)
	}
}
