package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/tree"
)

// fragmentKeys lists the stored fragments' entry ranges in key order.
func fragmentKeys(t *testing.T, l *Log) [][2]uint64 {
	t.Helper()
	var out [][2]uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: bundlePrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			first, last, ok := parseBundleKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("malformed fragment key %x", it.Item().Key())
			}
			out = append(out, [2]uint64{first, last})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appendBatches appends batches of random sizes one after the other (so
// each is one commit) and returns the leaves as stored.
func appendBatches(t *testing.T, l *Log, r *rand.Rand, batches int) [][]byte {
	t.Helper()
	for b := 0; b < batches; b++ {
		n := 1 + r.IntN(700)
		rs := make([]Record, n)
		for i := range rs {
			// Leaves of varied lengths, some longer than the value
			// threshold and some shorter.
			rs[i] = Record{Action: fmt.Sprintf("b%d.%d", b, i), Resource: string(bytes.Repeat([]byte{'r'}, r.IntN(600)))}
		}
		if _, err := l.Append(context.Background(), admin, KindAction, rs); err != nil {
			t.Fatal(err)
		}
	}
	leaves, err := l.Entries(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	return leaves
}

// TestFragments checks the entry layout: fragments tile [0, size) without
// gap or overlap, none crosses an entry bundle boundary, a batch writes
// one per bundle it touches, and every way of reading entries (one, a
// range, a C2SP entry bundle) gives the leaves the tree was built from.
func TestFragments(t *testing.T) {
	l := openTest(t, t.TempDir(), nil)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	leaves := appendBatches(t, l, r, 40)
	size := l.Size()
	if uint64(len(leaves)) != size {
		t.Fatalf("Entries gave %d leaves, size %d", len(leaves), size)
	}

	frags := fragmentKeys(t, l)
	next := uint64(0)
	for _, f := range frags {
		if f[0] != next {
			t.Fatalf("fragment [%d, %d] follows entry %d", f[0], f[1], next-1)
		}
		if f[0]/tree.TileWidth != f[1]/tree.TileWidth {
			t.Fatalf("fragment [%d, %d] crosses an entry bundle boundary", f[0], f[1])
		}
		next = f[1] + 1
	}
	if next != size {
		t.Fatalf("fragments end at %d, size %d", next, size)
	}
	// 40 batches over size/256 bundles: at most one fragment per bundle
	// plus one per batch boundary.
	if max := int(size/tree.TileWidth) + 1 + 40; len(frags) > max {
		t.Fatalf("%d fragments for %d entries in 40 batches, want at most %d", len(frags), size, max)
	}

	// The tree was built from exactly these leaves.
	hashes := make([]tlog.Hash, size)
	for i, leaf := range leaves {
		hashes[i] = tlog.RecordHash(leaf)
		if p, err := agentlog.ParseLeaf(leaf); err != nil || p.Action == "" {
			t.Fatalf("entry %d does not parse: %v", i, err)
		}
	}
	root, err := tlog.TreeHash(int64(size), hashReader(hashes))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root[:], l.Tree().Root()) {
		t.Fatal("the stored leaves do not hash to the tree's root")
	}

	// Single entries, in order, backwards and at random.
	for _, i := range append([]uint64{0, size - 1, 255, 256}, uint64(r.IntN(int(size))), uint64(r.IntN(int(size)))) {
		got, err := l.Entry(i)
		if err != nil || !bytes.Equal(got, leaves[i]) {
			t.Fatalf("Entry(%d) = %.40q, %v; want %.40q", i, got, err, leaves[i])
		}
	}
	// A reader used in increasing, then decreasing, then jumping order.
	err = l.db.View(func(txn *badger.Txn) error {
		rd := newEntryReader(txn)
		defer rd.close()
		order := make([]uint64, 0, 3*size)
		for i := uint64(0); i < size; i++ {
			order = append(order, i)
		}
		for i := size; i > 0; i-- {
			order = append(order, i-1)
		}
		for range size {
			order = append(order, uint64(r.IntN(int(size))))
		}
		for _, i := range order {
			if err := rd.read(i, func(v []byte) error {
				if !bytes.Equal(v, leaves[i]) {
					return fmt.Errorf("reader gave entry %d as %.40q", i, v)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return rd.read(size, func([]byte) error { return nil })
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatalf("reading past the end: %v, want ErrKeyNotFound", err)
	}

	// Ranges, and entry bundles in the C2SP encoding.
	for range 50 {
		start := uint64(r.IntN(int(size)))
		n := 1 + uint64(r.IntN(int(size-start)))
		got, err := l.Entries(start, n)
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if !bytes.Equal(got[j], leaves[start+uint64(j)]) {
				t.Fatalf("Entries(%d, %d)[%d] differs", start, n, j)
			}
		}
	}
	for k := uint64(0); k*tree.TileWidth < size; k++ {
		w := min(tree.TileWidth, size-k*tree.TileWidth)
		for _, width := range []uint64{w, 1 + uint64(r.IntN(int(w)))} {
			var want []byte
			for _, leaf := range leaves[k*tree.TileWidth : k*tree.TileWidth+width] {
				want = binary.BigEndian.AppendUint16(want, uint16(len(leaf)))
				want = append(want, leaf...)
			}
			got, err := l.EntryBundle(k*tree.TileWidth, width)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("entry bundle %d width %d differs (err %v)", k, width, err)
			}
		}
	}
	if _, err := l.Entries(size-1, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entries past the end: %v", err)
	}
	if _, err := l.EntryBundle(size, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("EntryBundle past the end: %v", err)
	}
}

// toOldLayout rewrites a log's entries in the layout before fragments,
// one "e/" key per entry, as an older agentlog wrote them.
func toOldLayout(t *testing.T, l *Log, keepFragments bool) {
	t.Helper()
	leaves, err := l.Entries(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	wb := l.db.NewWriteBatch()
	for i, leaf := range leaves {
		k := binary.BigEndian.AppendUint64([]byte("e/"), uint64(i))
		if err := wb.Set(k, leaf); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := l.db.DropPrefix([]byte("f/")); err != nil {
		t.Fatal(err)
	}
	if keepFragments {
		return
	}
	if err := l.db.DropPrefix(bundlePrefix); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateEntries opens directories in the old one-key-per-entry
// layout, including one whose conversion was interrupted, and checks that
// they are converted with every entry, proof and query intact.
func TestMigrateEntries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(t *testing.T, l *Log)
	}{
		{"old layout", func(t *testing.T, l *Log) { toOldLayout(t, l, false) }},
		{"interrupted before the format key", func(t *testing.T, l *Log) {
			toOldLayout(t, l, true)
			// A stray fragment a half-done conversion could have left.
			if err := l.db.Update(func(txn *badger.Txn) error {
				return txn.Set(bundleKey(3, 7), []byte("junk"))
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"interrupted after the format key", func(t *testing.T, l *Log) {
			toOldLayout(t, l, true)
			if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(entriesFormatKey, []byte("bundles")) }); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, nil)
			leaves := appendBatches(t, l, rand.New(rand.NewPCG(5, 6)), 12)
			root := l.Tree().Root()
			tc.mangle(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTest(t, dir, nil)
			defer l.Close()
			got, err := l.Entries(0, l.Size())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(leaves) {
				t.Fatalf("%d entries after conversion, want %d", len(got), len(leaves))
			}
			for i := range got {
				if !bytes.Equal(got[i], leaves[i]) {
					t.Fatalf("entry %d differs after conversion", i)
				}
			}
			if !bytes.Equal(l.Tree().Root(), root) {
				t.Fatal("root changed")
			}
			if err := l.db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("e/")})
				defer it.Close()
				if it.Rewind(); it.Valid() {
					return fmt.Errorf("old key %x left after conversion", it.Item().Key())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := l.CheckIndex(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Appends go on from where the old layout ended.
			res, err := l.Append(context.Background(), admin, KindAction, recs(3, "after"))
			if err != nil || res[0].Index != uint64(len(leaves)) {
				t.Fatalf("append after conversion: %v %+v", err, res)
			}
			if e, err := l.Entry(uint64(len(leaves)) + 2); err != nil || !bytes.Contains(e, []byte(`"action":"after"`)) {
				t.Fatalf("entry after conversion: %q %v", e, err)
			}
		})
	}
}

// TestCorruptFragment checks that a damaged fragment is reported as an
// error by every reader, never as a panic or wrong data.
func TestCorruptFragment(t *testing.T) {
	l := openTest(t, t.TempDir(), nil)
	defer l.Close()
	if _, err := l.Append(context.Background(), admin, KindAction, recs(10, "x")); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{nil, {0}, {0, 200, 'a'}, append(binary.BigEndian.AppendUint16(nil, 3), "abc\x00"...)} {
		if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set(bundleKey(0, 9), v) }); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Entry(5); !errors.Is(err, errCorrupt) {
			t.Errorf("value %x: Entry: %v, want errCorrupt", v, err)
		}
		if _, err := l.Entries(0, 10); !errors.Is(err, errCorrupt) {
			t.Errorf("value %x: Entries: %v, want errCorrupt", v, err)
		}
	}
}

// FuzzFragment feeds arbitrary fragment values to the readers: they either
// return entries that re-encode to the value or fail with errCorrupt.
func FuzzFragment(f *testing.F) {
	f.Add([]byte{0, 1, 'a', 0, 2, 'b', 'c'}, uint8(1))
	f.Add([]byte{0, 5, 'a'}, uint8(0))
	f.Add([]byte{}, uint8(3))
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	f.Fuzz(func(t *testing.T, v []byte, last uint8) {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(bundleKey(0, uint64(last)), v) }); err != nil {
			t.Fatal(err)
		}
		defer db.Update(func(txn *badger.Txn) error { return txn.Delete(bundleKey(0, uint64(last))) })
		var all []byte
		err := db.View(func(txn *badger.Txn) error {
			return forEachEntry(txn, 0, uint64(last)+1, func(_ uint64, leaf []byte) (bool, error) {
				all = binary.BigEndian.AppendUint16(all, uint16(len(leaf)))
				all = append(all, leaf...)
				return false, nil
			})
		})
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("forEachEntry: %v, want errCorrupt", err)
			}
		} else if !bytes.Equal(all, v) {
			t.Fatalf("entries re-encode to %x, stored %x", all, v)
		}
		rerr := db.View(func(txn *badger.Txn) error {
			rd := newEntryReader(txn)
			defer rd.close()
			var got []byte
			for i := uint64(0); i <= uint64(last); i++ {
				if err := rd.read(i, func(leaf []byte) error {
					got = binary.BigEndian.AppendUint16(got, uint16(len(leaf)))
					got = append(got, leaf...)
					return nil
				}); err != nil {
					return err
				}
			}
			if err == nil && !bytes.Equal(got, all) {
				return fmt.Errorf("reader gave %x, forEachEntry %x", got, all)
			}
			return nil
		})
		if rerr != nil && (err == nil || !errors.Is(rerr, errCorrupt)) {
			t.Fatalf("reader: %v (forEachEntry: %v)", rerr, err)
		}
	})
}
