package tree

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/agentlog/agentlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestHashChildrenMatchesRFC6962(t *testing.T) {
	l, r := leafHash(1), leafHash(2)
	if got, want := hashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
		t.Fatalf("hashChildren = %x, want %x", got, want)
	}
}

func TestEmpty(t *testing.T) {
	tr := openTree(t, openMemDB(t), Options{})
	empty := sha256.Sum256(nil)
	if tr.Size() != 0 || !bytes.Equal(tr.Root(), empty[:]) {
		t.Fatalf("empty tree: size %d root %x", tr.Size(), tr.Root())
	}
	if r, err := tr.RootAt(0); err != nil || !bytes.Equal(r, empty[:]) {
		t.Fatalf("RootAt(0) = %x, %v", r, err)
	}
	if p, err := tr.ConsistencyProof(0, 0); err != nil || len(p) != 0 {
		t.Fatalf("ConsistencyProof(0, 0) = %x, %v", p, err)
	}
	if _, err := tr.Tile(0, 0, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tile(0, 0, 1) on the empty tree: %v", err)
	}
	u, err := tr.Prepare(nil)
	if err != nil || u.Size != 0 || !bytes.Equal(u.Root, empty[:]) {
		t.Fatalf("Prepare(nil) = %+v, %v", u, err)
	}
}

// TestAgainstTlog grows a tree past the tile boundaries at 256 and 65536 in
// uneven batches and checks roots, proofs and tiles against x/mod/sumdb/tlog.
func TestAgainstTlog(t *testing.T) {
	db := openMemDB(t)
	// A small cache makes reads go to Badger as well.
	tr := openTree(t, db, Options{CacheTiles: 4})
	ref := &refTree{}
	rnd := rand.New(rand.NewPCG(1, 2))

	// Batch sizes: single leaves, batches ending on and crossing 256,
	// one batch crossing several level-0 tiles, and batches around 65536.
	batches := []uint64{1, 1, 1, 5, 248, 1, 255, 1, 3, 600, 1000, 200}
	for size := sum(batches); size < 65536-300; {
		b := 1 + rnd.Uint64N(8000)
		b = min(b, 65536-300-size)
		batches = append(batches, b)
		size += b
	}
	batches = append(batches, 299, 1, 1, 254, 1, 1, 10000, 1)

	var sizes []uint64
	size := uint64(0)
	for _, b := range batches {
		leaves := leafHashes(size, size+b)
		for _, l := range leaves {
			ref.add(t, l)
		}
		appendLeaves(t, tr, db, leaves)
		old := size
		size += b
		sizes = append(sizes, size)
		if tr.Size() != size {
			t.Fatalf("Size() = %d, want %d", tr.Size(), size)
		}
		root := checkRoot(t, tr, ref, size)
		if !bytes.Equal(tr.Root(), root) {
			t.Fatalf("Root() = %x, RootAt(Size()) = %x", tr.Root(), root)
		}
		checkTiles(t, tr, ref, old, size)
		checkInclusion(t, tr, ref, size-1, size)
		checkInclusion(t, tr, ref, rnd.Uint64N(size), size)
		checkConsistency(t, tr, ref, old, size)
	}

	// Every small size, every batch boundary, and random sizes.
	for s := uint64(0); s <= 1100; s++ {
		checkRoot(t, tr, ref, s)
	}
	for _, s := range sizes {
		checkRoot(t, tr, ref, s)
		checkTiles(t, tr, ref, 0, s)
	}
	for range 2000 {
		s := 1 + rnd.Uint64N(size)
		checkInclusion(t, tr, ref, rnd.Uint64N(s), s)
		checkConsistency(t, tr, ref, rnd.Uint64N(s+1), s)
	}
	for _, s := range []uint64{256, 257, 65535, 65536, 65537, size} {
		for _, i := range []uint64{0, 255, 256, s - 1} {
			if i < s {
				checkInclusion(t, tr, ref, i, s)
			}
		}
		for _, o := range []uint64{1, 255, 256, 257, 65535, 65536, s - 1} {
			if o <= s {
				checkConsistency(t, tr, ref, o, s)
			}
		}
	}
	checkTiles(t, tr, ref, 0, size)
	checkStoredTiles(t, db, ref, size)
	if n := tr.cache.len(); n > 4 {
		t.Fatalf("cache holds %d tiles, bound is 4", n)
	}
}

func sum(xs []uint64) uint64 {
	var s uint64
	for _, x := range xs {
		s += x
	}
	return s
}

// TestRandomSizes builds trees of random sizes in random batches and checks
// every root and a sample of proofs.
func TestRandomSizes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		db := openMemDB(t)
		tr := openTree(t, db, Options{CacheTiles: -1})
		ref := &refTree{}
		n := rnd.Uint64N(1500)
		for size := uint64(0); size < n; {
			b := min(1+rnd.Uint64N(300), n-size)
			leaves := leafHashes(size, size+b)
			for _, l := range leaves {
				ref.add(t, l)
			}
			appendLeaves(t, tr, db, leaves)
			size += b
		}
		for s := uint64(0); s <= n; s++ {
			checkRoot(t, tr, ref, s)
		}
		checkTiles(t, tr, ref, 0, n)
		for range 100 {
			if n == 0 {
				break
			}
			s := 1 + rnd.Uint64N(n)
			checkInclusion(t, tr, ref, rnd.Uint64N(s), s)
			checkConsistency(t, tr, ref, rnd.Uint64N(s+1), s)
		}
	}
}

func TestErrors(t *testing.T) {
	db := openMemDB(t)
	tr := openTree(t, db, Options{})
	appendLeaves(t, tr, db, leafHashes(0, 300))
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"RootAt beyond size", second(tr.RootAt(301)), ErrNotFound},
		{"InclusionProof index == size", second(tr.InclusionProof(5, 5)), ErrInvalid},
		{"InclusionProof size beyond", second(tr.InclusionProof(5, 301)), ErrNotFound},
		{"ConsistencyProof old > new", second(tr.ConsistencyProof(6, 5)), ErrInvalid},
		{"ConsistencyProof size beyond", second(tr.ConsistencyProof(5, 301)), ErrNotFound},
		{"LeafHash beyond", second(tr.LeafHash(300)), ErrNotFound},
		{"Tile width 0", second(tr.Tile(0, 0, 0)), ErrInvalid},
		{"Tile width 257", second(tr.Tile(0, 0, 257)), ErrInvalid},
		{"Tile level 64", second(tr.Tile(64, 0, 1)), ErrInvalid},
		{"Tile level 8", second(tr.Tile(8, 0, 1)), ErrNotFound},
		{"Tile partial too wide", second(tr.Tile(0, 1, 45)), ErrNotFound},
		{"Tile beyond", second(tr.Tile(0, 2, 1)), ErrNotFound},
		{"Tile level 1 too wide", second(tr.Tile(1, 0, 2)), ErrNotFound},
		{"Prepare short hash", second(tr.Prepare([][]byte{make([]byte, 31)})), ErrInvalid},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// Narrower versions of a tile are prefixes of it.
	full, err := tr.Tile(0, 0, TileWidth)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{1, 17, 255} {
		got, err := tr.Tile(0, 0, w)
		if err != nil || !bytes.Equal(got, full[:w*HashSize]) {
			t.Fatalf("Tile(0, 0, %d) = %x, %v: not a prefix of the full tile", w, got, err)
		}
	}
	// Returned slices are the caller's.
	full[0] ^= 1
	again, _ := tr.Tile(0, 0, TileWidth)
	if bytes.Equal(again, full) {
		t.Fatal("modifying a returned tile changed the tree")
	}
}

func second[T any](_ T, err error) error { return err }

func TestApplyStaleUpdatePanics(t *testing.T) {
	db := openMemDB(t)
	tr := openTree(t, db, Options{})
	u1, err := tr.Prepare(leafHashes(0, 3))
	if err != nil {
		t.Fatal(err)
	}
	u2, err := tr.Prepare(leafHashes(0, 4))
	if err != nil {
		t.Fatal(err)
	}
	tr.Apply(u1)
	defer func() {
		if recover() == nil {
			t.Fatal("Apply of a stale update did not panic")
		}
	}()
	tr.Apply(u2)
}

// TestPrepareLeavesTreeUnchanged checks that Prepare alone has no effect and
// that it does not keep the caller's leaf slices.
func TestPrepareLeavesTreeUnchanged(t *testing.T) {
	db := openMemDB(t)
	tr := openTree(t, db, Options{})
	appendLeaves(t, tr, db, leafHashes(0, 100))
	root := tr.Root()
	leaves := leafHashes(100, 301)
	u, err := tr.Prepare(leaves)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Size() != 100 || !bytes.Equal(tr.Root(), root) {
		t.Fatal("Prepare changed the tree")
	}
	if _, err := tr.Tile(0, 0, 101); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tile visible before Apply: %v", err)
	}
	want := bytes.Clone(u.Root)
	for _, l := range leaves {
		clear(l)
	}
	txn := db.NewTransaction(true)
	defer txn.Discard()
	if err := u.Write(txn); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	tr.Apply(u)
	ref := &refTree{}
	for _, l := range leafHashes(0, 301) {
		ref.add(t, l)
	}
	if got := checkRoot(t, tr, ref, 301); !bytes.Equal(got, want) {
		t.Fatalf("root after Apply %x, Prepare said %x", got, want)
	}
	appendLeaves(t, tr, db, leafHashes(301, 302))
	ref.add(t, leafHash(301))
	checkRoot(t, tr, ref, 302)
	checkTiles(t, tr, ref, 0, 302)
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	ref := &refTree{}
	add := func(tr *Tree, db *badger.DB, from, to uint64) {
		t.Helper()
		for ; from < to; from = min(from+8192, to) {
			leaves := leafHashes(from, min(from+8192, to))
			for _, l := range leaves {
				ref.add(t, l)
			}
			appendLeaves(t, tr, db, leaves)
		}
	}
	add(tr, db, 0, 70000)
	add(tr, db, 70000, 70001)
	size, root := tr.Size(), tr.Root()
	p1, err := tr.InclusionProof(12345, 60000)
	if err != nil {
		t.Fatal(err)
	}

	// An update written to a discarded transaction leaves no trace.
	u, err := tr.Prepare(leafHashes(70001, 70500))
	if err != nil {
		t.Fatal(err)
	}
	txn := db.NewTransaction(true)
	if err := u.Write(txn); err != nil {
		t.Fatal(err)
	}
	txn.Discard()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	if tr.Size() != size || !bytes.Equal(tr.Root(), root) {
		t.Fatalf("reopened: size %d root %x, want %d %x", tr.Size(), tr.Root(), size, root)
	}
	p2, err := tr.InclusionProof(12345, 60000)
	if err != nil {
		t.Fatal(err)
	}
	if len(p1) != len(p2) {
		t.Fatal("proof changed across reopen")
	}
	for i := range p1 {
		if !bytes.Equal(p1[i], p2[i]) {
			t.Fatal("proof changed across reopen")
		}
	}
	checkTiles(t, tr, ref, 0, size)
	checkStoredTiles(t, db, ref, size)
	add(tr, db, 70001, 70500)
	add(tr, db, 70500, 131072)
	size = tr.Size()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	if tr.Size() != size {
		t.Fatalf("reopened: size %d, want %d", tr.Size(), size)
	}
	checkRoot(t, tr, ref, size)
	checkTiles(t, tr, ref, 0, size)
	for _, s := range []uint64{1, 255, 256, 65536, 70001, 70500, size} {
		checkRoot(t, tr, ref, s)
		checkInclusion(t, tr, ref, s/2, s)
		checkConsistency(t, tr, ref, s/3, s)
	}
	add(tr, db, size, size+1)
	checkRoot(t, tr, ref, size+1)
	checkTiles(t, tr, ref, 0, size+1)
	checkStoredTiles(t, db, ref, size+1)
}

// TestOpenReadsOnlyRightEdge deletes every full tile and checks that Open
// still recovers the size and root: it reads the state and partial tiles only.
func TestOpenReadsOnlyRightEdge(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	for i := uint64(0); i < 70000; i += 10000 {
		appendLeaves(t, tr, db, leafHashes(i, i+10000))
	}
	size, root := tr.Size(), tr.Root()
	err := db.Update(func(txn *badger.Txn) error {
		for l := uint64(0); l < 3; l++ {
			for n := uint64(0); agentlog.TileWidthAt(l, n, size) == TileWidth; n++ {
				if err := txn.Delete(tileKey(l, n)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	tr = openTree(t, db, Options{})
	if tr.Size() != size || !bytes.Equal(tr.Root(), root) {
		t.Fatalf("reopened: size %d root %x, want %d %x", tr.Size(), tr.Root(), size, root)
	}
	if _, err := tr.Tile(0, 0, TileWidth); err == nil {
		t.Fatal("deleted tile still readable")
	}
}

func TestOpenDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	tr := openTree(t, db, Options{})
	appendLeaves(t, tr, db, leafHashes(0, 1000))
	err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(stateKey)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)-1] ^= 1
		return txn.Set(stateKey, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted a state that contradicts the tiles")
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey, []byte{1, 2, 3}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(db); err == nil {
		t.Fatal("Open accepted a malformed state")
	}
}

// TestFullTileWithoutInteriorNodes checks that a full tile stored as its 256
// hashes alone is still served and proven from.
func TestFullTileWithoutInteriorNodes(t *testing.T) {
	db := openMemDB(t)
	tr := openTree(t, db, Options{CacheTiles: -1})
	ref := &refTree{}
	for _, l := range leafHashes(0, 600) {
		ref.add(t, l)
	}
	appendLeaves(t, tr, db, leafHashes(0, 600))
	err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(tileKey(0, 1))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		return txn.Set(tileKey(0, 1), v[:fullTileBytes])
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTiles(t, tr, ref, 0, 600)
	for i := uint64(256); i < 512; i += 7 {
		checkInclusion(t, tr, ref, i, 600)
	}
}

// TestConcurrentReads runs readers against a growing tree; with -race it
// checks that reads and the writer do not race, and that every read is
// consistent with one committed state.
func TestConcurrentReads(t *testing.T) {
	db := openMemDB(t)
	tr := openTree(t, db, Options{CacheTiles: 8})
	appendLeaves(t, tr, db, leafHashes(0, 1))
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-done:
					return
				default:
				}
				size := tr.Size()
				index := rnd.Uint64N(size)
				root, err := tr.RootAt(size)
				if err != nil {
					errs <- err
					return
				}
				p, err := tr.InclusionProof(index, size)
				if err != nil {
					errs <- err
					return
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash(index), p, root); err != nil {
					errs <- err
					return
				}
				old := 1 + rnd.Uint64N(size)
				oldRoot, err := tr.RootAt(old)
				if err != nil {
					errs <- err
					return
				}
				c, err := tr.ConsistencyProof(old, size)
				if err != nil {
					errs <- err
					return
				}
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, size, c, oldRoot, root); err != nil {
					errs <- err
					return
				}
				if _, err := tr.Tile(0, (size-1)/TileWidth, int((size-1)%TileWidth)+1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for size := uint64(1); size < 20000; {
		b := 1 + rnd.Uint64N(700)
		appendLeaves(t, tr, db, leafHashes(size, size+b))
		size += b
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNodeOffsetLayout(t *testing.T) {
	// Heights 0..7 take 256, 128, ..., 2 hashes, 510 in all, without overlap.
	seen := make([]bool, tileNodes)
	for r := uint(0); r < TileHeight; r++ {
		for pos := uint64(0); pos < TileWidth>>r; pos++ {
			i := nodeOffset(r, pos) / HashSize
			if i >= tileNodes || seen[i] {
				t.Fatalf("node %d/%d at hash %d: out of range or shared", r, pos, i)
			}
			seen[i] = true
		}
	}
}

func TestWidths(t *testing.T) {
	// The example of c2sp.org/tlog-tiles: a tree of 70,000 leaves has 273 full
	// level 0 tiles and a partial one of width 112, one full level 1 tile and
	// a partial one of width 17, and a partial level 2 tile of width 1.
	const s = 70000
	for _, tc := range []struct {
		level, index uint64
		want         int
	}{
		{0, 272, 256}, {0, 273, 112}, {0, 274, 0},
		{1, 0, 256}, {1, 1, 17}, {1, 2, 0},
		{2, 0, 1}, {2, 1, 0}, {3, 0, 0}, {8, 0, 0}, {63, 0, 0},
	} {
		if got := agentlog.TileWidthAt(tc.level, tc.index, s); got != tc.want {
			t.Errorf("agentlog.TileWidthAt(%d, %d, %d) = %d, want %d", tc.level, tc.index, s, got, tc.want)
		}
	}
	for l, want := range []int{112, 17, 1, 0} {
		if got := PartialWidth(uint64(l), s); got != want {
			t.Errorf("PartialWidth(%d, %d) = %d, want %d", l, s, got, want)
		}
	}
	if got := PartialWidth(1, 256); got != 1 {
		t.Errorf("PartialWidth(1, 256) = %d, want 1", got)
	}
}
