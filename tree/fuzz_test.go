package tree

import (
	"testing"
)

// FuzzTreeAgainstTlog appends a random number of leaves in random batches and
// checks every root, every tile, and proofs against x/mod/sumdb/tlog.
func FuzzTreeAgainstTlog(f *testing.F) {
	f.Add(uint16(0), []byte{})
	f.Add(uint16(1), []byte{1})
	f.Add(uint16(7), []byte{3, 1})
	f.Add(uint16(256), []byte{255, 1})
	f.Add(uint16(257), []byte{0, 0, 0})
	f.Add(uint16(600), []byte{100, 200, 255, 7})
	f.Add(uint16(1500), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add(uint16(2049), []byte{255, 255, 255, 255, 255, 255, 255, 255, 1})
	f.Fuzz(func(t *testing.T, n uint16, splits []byte) {
		total := uint64(n % 2500)
		db := openMemDB(t)
		tr := openTree(t, db, Options{CacheTiles: 2})
		ref := &refTree{}
		var sizes []uint64
		for size, i := uint64(0), 0; size < total; i++ {
			b := total - size
			if i < len(splits) && splits[i] != 0 {
				b = min(b, uint64(splits[i]))
			} else if i < len(splits) {
				b = min(b, 300) // a zero split appends a batch crossing a tile
			}
			leaves := leafHashes(size, size+b)
			for _, l := range leaves {
				ref.add(t, l)
			}
			appendLeaves(t, tr, db, leaves)
			checkTiles(t, tr, ref, size, size+b)
			size += b
			sizes = append(sizes, size)
		}
		if tr.Size() != total {
			t.Fatalf("Size() = %d, want %d", tr.Size(), total)
		}
		for s := uint64(0); s <= total; s++ {
			checkRoot(t, tr, ref, s)
		}
		checkTiles(t, tr, ref, 0, total)
		checkStoredTiles(t, db, ref, total)
		// Proofs between every pair of batch boundaries, and for leaves
		// spread over the tree.
		for _, s := range sizes {
			for _, o := range sizes {
				if o <= s {
					checkConsistency(t, tr, ref, o, s)
				}
			}
			for i := uint64(0); i < s; i += 1 + s/17 {
				checkInclusion(t, tr, ref, i, s)
			}
			checkInclusion(t, tr, ref, s-1, s)
		}
	})
}
