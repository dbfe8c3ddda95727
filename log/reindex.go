package log

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog/log/query"
)

// termsOfLeaf derives a stored leaf's index terms, as appendTerms did when
// it was appended.
func termsOfLeaf(leaf []byte) ([]byte, time.Time, error) {
	f, err := query.DecodeLeaf(leaf)
	if err != nil {
		return nil, time.Time{}, err
	}
	p := Principal{Agent: f.Agent, Session: f.Session, Task: f.Task, Config: f.Config}
	r := Record{Action: f.Action, Tool: f.Tool, Resource: f.Resource, Outcome: f.Outcome}
	return appendTerms(nil, f.Kind, p, &r), f.Time, nil
}

// Reindex drops the secondary and time indexes and rebuilds them from the
// entries. It must run with no appends in flight (the CLI runs it on a
// data directory no server is using). It is not atomic: if it stops
// half-way, run it again. progress, if not nil, is called now and then.
func (l *Log) Reindex(ctx context.Context, progress func(done, total uint64)) error {
	size := l.Size()
	if err := l.db.DropPrefix([]byte("x/"), []byte("m/")); err != nil {
		return fmt.Errorf("dropping the old indexes: %w", err)
	}
	const chunk = 4096
	ps := postings{}
	var groupTime time.Time
	flush := func(wb *badger.WriteBatch) error {
		for t, idx := range ps {
			if err := wb.Set(postingKey(t, idx[0]), postingValue(idx)); err != nil {
				return err
			}
		}
		clear(ps)
		return nil
	}
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for start := uint64(0); start < size; start += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		leaves, err := l.Entries(start, min(chunk, size-start))
		if err != nil {
			return err
		}
		for j, leaf := range leaves {
			i := start + uint64(j)
			terms, t, err := termsOfLeaf(leaf)
			if err != nil {
				return fmt.Errorf("entry %d: %w", i, err)
			}
			// Entries with one time form one group, like a batch.
			if i == 0 || !t.Equal(groupTime) {
				if err := flush(wb); err != nil {
					return err
				}
				if err := wb.Set(timeKey(t, i), nil); err != nil {
					return err
				}
				groupTime = t
			}
			ps.add(terms, i)
		}
		if progress != nil {
			progress(start+uint64(len(leaves)), size)
		}
	}
	if err := flush(wb); err != nil {
		return err
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("writing the indexes: %w", err)
	}
	return l.db.Sync()
}

// CheckIndex compares the stored indexes with the entries: every entry's
// terms must be posted at its index and nothing else, and the time index
// must map every entry time to the right index range. It returns the first
// difference found.
func (l *Log) CheckIndex(ctx context.Context) error {
	size := l.Size()
	want := map[string][]uint64{}
	var times []time.Time
	for start := uint64(0); start < size; start += 4096 {
		if err := ctx.Err(); err != nil {
			return err
		}
		leaves, err := l.Entries(start, min(4096, size-start))
		if err != nil {
			return err
		}
		for j, leaf := range leaves {
			terms, t, err := termsOfLeaf(leaf)
			if err != nil {
				return err
			}
			postings(want).add(terms, start+uint64(j))
			times = append(times, t)
		}
	}
	got := map[string][]uint64{}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("x/"), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 12 {
				return fmt.Errorf("malformed index key %q", k)
			}
			term := string(k[:len(k)-8])
			first := binary.BigEndian.Uint64(k[len(k)-8:])
			if err := it.Item().Value(func(v []byte) error {
				var err error
				got[term], err = decodePostings(got[term], first, v)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range slices.Sorted(maps.Keys(want)) {
		if !slices.Equal(got[t], want[t]) {
			return fmt.Errorf("index term %q: stored %d postings, the entries give %d", t, len(got[t]), len(want[t]))
		}
	}
	for t := range got {
		if _, ok := want[t]; !ok {
			return fmt.Errorf("index term %q is stored but no entry has it", t)
		}
	}
	for i, t := range times {
		at, err := l.IndexAt(t, size)
		if err != nil {
			return err
		}
		if at > uint64(i) || (at < uint64(i) && !times[at].Equal(t)) {
			return fmt.Errorf("time index: entries at %v start at index %d, the index says %d", t, i, at)
		}
	}
	return nil
}

// IndexSize reports the number of index keys and their bytes (keys plus
// values, before Badger's own overhead), for the figures in
// docs/benchmarks.md.
func (l *Log) IndexSize() (keys int, bytes int64, err error) {
	err = l.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{"x/", "m/"} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
			for it.Rewind(); it.Valid(); it.Next() {
				keys++
				bytes += int64(len(it.Item().Key())) + it.Item().ValueSize()
			}
			it.Close()
		}
		return nil
	})
	return keys, bytes, err
}
