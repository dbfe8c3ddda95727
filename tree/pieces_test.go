package tree

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// countKeys counts the keys under prefix.
func countKeys(t *testing.T, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	if err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPiecesAcrossReopens grows a tree in small batches, each storing its
// new right-edge hashes as one more piece of the partial tiles, and
// reopens it at random points: the tree read back from the pieces has the
// right root, proofs and tiles, and filled tiles leave no pieces behind.
func TestPiecesAcrossReopens(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	ref := &refTree{}
	var size uint64
	for size < 70000 {
		n := uint64(1 + r.IntN(40))
		if r.IntN(20) == 0 {
			n = uint64(1 + r.IntN(3000))
		}
		leaves := leafHashes(size, size+n)
		for _, l := range leaves {
			ref.add(t, l)
		}
		appendLeaves(t, tr, db, leaves)
		size += n
		// At most one partial tile per level, each in at most 256 pieces.
		if p := countKeys(t, db, partPrefix); p > 3*TileWidth {
			t.Fatalf("%d pieces stored at size %d", p, size)
		}
		if r.IntN(50) == 0 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir)
			tr = openTree(t, db, Options{})
			checkRoot(t, tr, ref, size)
		}
	}
	checkRoot(t, tr, ref, size)
	checkTiles(t, tr, ref, 0, size)
	checkStoredTiles(t, db, ref, size)
	for range 20 {
		i := uint64(r.IntN(int(size)))
		checkInclusion(t, tr, ref, i, size)
	}
}

// TestLegacyPartialTiles opens a tree whose partial tiles were stored
// whole under the tile's key, with a version 1 state, as before pieces
// existed, and grows it.
func TestLegacyPartialTiles(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	ref := &refTree{}
	add := func(from, to uint64) {
		t.Helper()
		for ; from < to; from = min(from+4096, to) {
			leaves := leafHashes(from, min(from+4096, to))
			for _, l := range leaves {
				ref.add(t, l)
			}
			appendLeaves(t, tr, db, leaves)
		}
	}
	add(0, 300)
	add(300, 65536+700) // level 0 and level 1 both end in a partial tile
	size := tr.Size()
	// Rewrite the edge in the old layout: each partial tile whole under
	// its tile key, no pieces, and a version 1 state holding the compact
	// range.
	st := tr.st.Load()
	if err := db.Update(func(txn *badger.Txn) error {
		v1 := binary.BigEndian.AppendUint64([]byte{stateV1}, st.size)
		for _, h := range st.rng {
			v1 = append(v1, h...)
		}
		if err := txn.Set(stateKey, v1); err != nil {
			return err
		}
		for l, e := range st.edge {
			if e == nil {
				continue
			}
			if err := txn.Set(tileKey(uint64(l), e.index), bytes.Clone(e.nodes[:e.width*HashSize])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.DropPrefix(partPrefix); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, db, partPrefix); n != 0 {
		t.Fatalf("%d pieces left", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	checkRoot(t, tr, ref, size)
	// Grow on top of the old partial tiles, reopen, and fill the level-0
	// one: the full tile replaces the old key.
	add(size, size+10)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	checkRoot(t, tr, ref, size+10)
	add(size+10, 2*65536+1)
	checkRoot(t, tr, ref, 2*65536+1)
	// Tiles are read back from Badger: the legacy level-0 and level-1
	// keys now hold full tiles. (Level 2 still starts with its legacy
	// hash, so checkStoredTiles, which knows only pieces, does not apply.)
	checkTiles(t, tr, ref, 0, 2*65536+1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	tr = openTree(t, db, Options{CacheTiles: -1})
	checkRoot(t, tr, ref, 2*65536+1)
	checkTiles(t, tr, ref, 0, 2*65536+1)
}

// TestOpenDetectsMissingPiece deletes a piece of the right-edge tile.
func TestOpenDetectsMissingPiece(t *testing.T) {
	db := openDB(t, t.TempDir())
	tr := openTree(t, db, Options{})
	for i := uint64(0); i < 30; i += 10 {
		appendLeaves(t, tr, db, leafHashes(i, i+10))
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(partKey(0, 0, 10)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted a partial tile with a missing piece")
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(partKey(0, 0, 20)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted a partial tile missing its last pieces")
	}
}

// TestUndo: an update written but never applied (its commit failed with an
// unknown outcome), then undone, leaves the stored tree as it was: after a
// reopen it has the committed size and root, and growing it by other
// leaves gives the tree of a log that never saw the failed batch, tiles,
// pieces and proofs included, at tile boundaries of levels 0 and 1 too.
func TestUndo(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 2))
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	ref := &refTree{}
	var size uint64
	junk := func(n uint64) [][]byte {
		hs := make([][]byte, n)
		for i := range hs {
			hs[i] = bytes.Repeat([]byte{byte(1 + r.IntN(255))}, HashSize)
		}
		return hs
	}
	for _, step := range []struct{ grow, failed uint64 }{
		{0, 1}, {0, 300}, {1, 1}, {250, 10}, {5, 256}, {65000, 600}, {300, 1}, {1, 3000}, {3, 2},
	} {
		for end := size + step.grow; size < end; {
			leaves := leafHashes(size, min(end, size+8192))
			for _, l := range leaves {
				ref.add(t, l)
			}
			appendLeaves(t, tr, db, leaves)
			size += uint64(len(leaves))
		}
		u, err := tr.Prepare(junk(step.failed))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(u.Write); err != nil {
			t.Fatal(err)
		}
		if err := db.Update(u.Undo); err != nil {
			t.Fatal(err)
		}
		if r.IntN(2) == 0 {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir)
			tr = openTree(t, db, Options{})
		}
		checkRoot(t, tr, ref, size)
		next := leafHashes(size, size+3)
		for _, l := range next {
			ref.add(t, l)
		}
		appendLeaves(t, tr, db, next)
		size += 3
		checkRoot(t, tr, ref, size)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	checkRoot(t, tr, ref, size)
	checkTiles(t, tr, ref, 0, size)
	checkStoredTiles(t, db, ref, size)
	for range 20 {
		checkInclusion(t, tr, ref, uint64(r.IntN(int(size))), size)
	}
}
