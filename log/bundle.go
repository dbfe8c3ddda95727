package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog/tree"
)

// Entry storage.
//
// Entries are stored as fragments of c2sp.org/tlog-tiles entry bundles: the
// key is "b/" + 8-byte big-endian index of the fragment's last entry + 8-byte
// big-endian index of its first entry; the value is each entry as a 2-byte
// big-endian length and its bytes, the entry bundle encoding. A batch
// writes one fragment per entry bundle (256 entries) it touches, so under
// load a bundle is one or two keys instead of 256, and an entry bundle is
// served by concatenating its fragments. Fragments never change, never
// overlap and leave no gap, so the fragment holding entry i is the first
// key at or after "b/" + BE(i).
//
// Before this layout, each entry had its own key "e/" + BE(index);
// [migrateEntries] converts such a directory when it is opened.

const bundleKeyLen = 18

// bundleKey is the key of the fragment holding entries [first, last].
func bundleKey(first, last uint64) []byte {
	k := make([]byte, bundleKeyLen)
	k[0], k[1] = 'b', '/'
	binary.BigEndian.PutUint64(k[2:], last)
	binary.BigEndian.PutUint64(k[10:], first)
	return k
}

// parseBundleKey returns the entry range of a fragment key.
func parseBundleKey(k []byte) (first, last uint64, ok bool) {
	if len(k) != bundleKeyLen || k[0] != 'b' || k[1] != '/' {
		return 0, 0, false
	}
	last, first = binary.BigEndian.Uint64(k[2:]), binary.BigEndian.Uint64(k[10:])
	return first, last, first <= last
}

// bundleSeek is the key to seek to for the fragment holding entry i.
func bundleSeek(i uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = 'b', '/'
	binary.BigEndian.PutUint64(k[2:], i)
	return k
}

var bundlePrefix = []byte("b/")

// errCorrupt reports stored entries that do not decode.
var errCorrupt = errors.New("corrupt entry storage")

// nextEntry splits the first entry off a fragment value.
func nextEntry(v []byte) (leaf, rest []byte, err error) {
	if len(v) < 2 {
		return nil, nil, errCorrupt
	}
	n := 2 + int(binary.BigEndian.Uint16(v))
	if n > len(v) {
		return nil, nil, errCorrupt
	}
	return v[2:n:n], v[n:], nil
}

// entryReader reads single entries through one iterator over the
// fragments. Reads in increasing index order step within a fragment and on
// to the next; a read further away seeks.
type entryReader struct {
	it          *badger.Iterator
	loaded      bool
	first, last uint64 // entries of the fragment under the iterator
	pos         uint64 // the entry at off in that fragment's value
	off         int
}

func newEntryReader(txn *badger.Txn) *entryReader {
	return &entryReader{it: txn.NewIterator(badger.IteratorOptions{Prefix: bundlePrefix})}
}

func (r *entryReader) close() { r.it.Close() }

// read calls fn with the entry at index i. The slice is valid only during
// fn.
func (r *entryReader) read(i uint64, fn func([]byte) error) error {
	if !r.loaded || i < r.first || i > r.last {
		if err := r.locate(i); err != nil {
			return err
		}
	}
	return r.it.Item().Value(func(v []byte) error {
		if i < r.pos {
			r.pos, r.off = r.first, 0
		}
		for ; r.pos < i; r.pos++ {
			if len(v)-r.off < 2 {
				return fmt.Errorf("entry %d: %w: fragment [%d, %d] is short", r.pos, errCorrupt, r.first, r.last)
			}
			r.off += 2 + int(binary.BigEndian.Uint16(v[r.off:]))
		}
		if r.off > len(v) {
			return fmt.Errorf("entry %d: %w: fragment [%d, %d] is short", i, errCorrupt, r.first, r.last)
		}
		leaf, _, err := nextEntry(v[r.off:])
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		return fn(leaf)
	})
}

// locate moves the iterator to the fragment holding entry i.
func (r *entryReader) locate(i uint64) error {
	if r.loaded && i > r.last {
		// Usually the next fragment: step rather than seek.
		r.it.Next()
		if r.it.Valid() {
			if first, last, ok := parseBundleKey(r.it.Item().Key()); ok && first <= i && i <= last {
				r.set(first, last)
				return nil
			}
		}
	}
	r.loaded = false
	r.it.Seek(bundleSeek(i))
	if !r.it.Valid() {
		return fmt.Errorf("entry %d: %w", i, badger.ErrKeyNotFound)
	}
	first, last, ok := parseBundleKey(r.it.Item().Key())
	if !ok || first > i {
		return fmt.Errorf("entry %d: %w: the fragment after it is [%d, %d]", i, errCorrupt, first, last)
	}
	r.set(first, last)
	return nil
}

func (r *entryReader) set(first, last uint64) {
	r.loaded, r.first, r.last, r.pos, r.off = true, first, last, first, 0
}

// forEachEntry calls fn for each entry in [lo, hi) in index order, until
// fn returns stop or an error. The leaf is valid only during fn.
func forEachEntry(txn *badger.Txn, lo, hi uint64, fn func(i uint64, leaf []byte) (stop bool, err error)) error {
	if lo >= hi {
		return nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: bundlePrefix})
	defer it.Close()
	next := lo
	for it.Seek(bundleSeek(lo)); it.Valid() && next < hi; it.Next() {
		first, last, ok := parseBundleKey(it.Item().Key())
		if !ok || first > next {
			return fmt.Errorf("entry %d: %w: the fragment after it is [%d, %d]", next, errCorrupt, first, last)
		}
		stop := false
		err := it.Item().Value(func(v []byte) error {
			for i := first; i <= last && i < hi; i++ {
				leaf, rest, err := nextEntry(v)
				if err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				v = rest
				if i < next {
					continue
				}
				next = i + 1
				if stop, err = fn(i, leaf); err != nil || stop {
					return err
				}
			}
			if next > last && len(v) != 0 {
				return fmt.Errorf("fragment [%d, %d]: %w: %d bytes after its last entry", first, last, errCorrupt, len(v))
			}
			return nil
		})
		if err != nil || stop {
			return err
		}
	}
	if next < hi {
		return fmt.Errorf("entry %d: %w", next, badger.ErrKeyNotFound)
	}
	return nil
}

// fragments calls set for each fragment of the entries whose bundle
// encodings lie back to back in buf, the first at index base: one per
// entry bundle they touch.
func fragments(buf []byte, base uint64, set func(key, value []byte) error) error {
	i, start, off := base, 0, 0
	for off < len(buf) {
		n := 2 + int(binary.BigEndian.Uint16(buf[off:]))
		off += n
		i++
		if i%tree.TileWidth == 0 || off == len(buf) {
			first := base
			if err := set(bundleKey(first, i-1), buf[start:off:off]); err != nil {
				return err
			}
			base, start = i, off
		}
	}
	return nil
}

// entriesFormatKey records that the entries are stored as fragments. It is
// written once the fragments of a migrated directory are durable.
var entriesFormatKey = []byte("f/entries")

// migrateEntries converts a directory written with one key per entry
// ("e/" + BE(index)) to fragments, and removes the old keys. It is safe to
// interrupt: until the format key is durable the fragments are rebuilt from
// the old keys, and old keys left behind after it are only deleted.
func migrateEntries(db *badger.DB, size uint64, logger *slog.Logger) error {
	old := []byte("e/")
	hasOld, migrated := false, false
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: old})
		it.Rewind()
		hasOld = it.Valid()
		it.Close()
		_, err := txn.Get(entriesFormatKey)
		if err == nil {
			migrated = true
			return nil
		}
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("checking the entry format: %w", err)
	}
	if !hasOld {
		if !migrated {
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set(entriesFormatKey, []byte("bundles")) }); err != nil {
				return fmt.Errorf("recording the entry format: %w", err)
			}
		}
		return nil
	}
	if !migrated {
		logger.Info("converting the entries to bundle fragments", "entries", size)
		if err := db.DropPrefix(bundlePrefix); err != nil {
			return fmt.Errorf("converting the entries: %w", err)
		}
		wb := db.NewWriteBatch()
		defer wb.Cancel()
		var buf []byte
		next, base := uint64(0), uint64(0)
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			err := fragments(buf, base, func(k, v []byte) error { return wb.Set(k, bytes.Clone(v)) })
			buf = buf[:0]
			return err
		}
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: old, PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid() && next < size; it.Next() {
				k := it.Item().Key()
				if len(k) != 10 || binary.BigEndian.Uint64(k[2:]) != next {
					return fmt.Errorf("%w: expected old entry key %d, found %x", errCorrupt, next, k)
				}
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				if len(buf) == 0 {
					base = next
				}
				buf = append(buf, byte(len(v)>>8), byte(len(v)))
				buf = append(buf, v...)
				next++
				if next%tree.TileWidth == 0 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			return flush()
		})
		if err != nil {
			return fmt.Errorf("converting the entries: %w", err)
		}
		if next != size {
			return fmt.Errorf("converting the entries: %w: found %d old entries, the tree has %d", errCorrupt, next, size)
		}
		if err := wb.Set(bytes.Clone(entriesFormatKey), []byte("bundles")); err != nil {
			return fmt.Errorf("converting the entries: %w", err)
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("converting the entries: %w", err)
		}
		if err := db.Sync(); err != nil {
			return fmt.Errorf("converting the entries: %w", err)
		}
	}
	if err := db.DropPrefix(old); err != nil {
		return fmt.Errorf("removing the old entry keys: %w", err)
	}
	logger.Info("entries are stored as bundle fragments", "entries", size)
	return nil
}
