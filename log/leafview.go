package log

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// ForEachEntry calls fn for each entry in [start, end), in index order,
// until fn returns an error. The leaf is valid only during fn. end must
// not be beyond the committed size.
func (l *Log) ForEachEntry(ctx context.Context, start, end uint64, fn func(index uint64, leaf []byte) error) error {
	if end > l.Size() || start > end {
		return fmt.Errorf("entries [%d, %d): %w (tree size %d)", start, end, ErrNotFound, l.Size())
	}
	return l.db.View(func(txn *badger.Txn) error {
		return forEachEntry(txn, start, end, func(i uint64, leaf []byte) (bool, error) {
			if (i-start)%4096 == 0 && ctx.Err() != nil {
				return true, ctx.Err()
			}
			return false, fn(i, leaf)
		})
	})
}
