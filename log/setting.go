package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Position reads the index stored under key (a follower's next entry to
// process, under the follower's own key prefix), or, when there is none,
// stores and returns init. Positions are written synchronously: once
// stored, they survive a crash.
func (l *Log) Position(key []byte, init uint64) (uint64, error) {
	var pos uint64
	err := l.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			pos = init
			return txn.Set(key, binary.BigEndian.AppendUint64(nil, pos))
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("malformed position %q", key)
			}
			pos = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return pos, err
}

// SetPosition stores pos under key, fsynced when it returns.
func (l *Log) SetPosition(key []byte, pos uint64) error {
	return l.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key, binary.BigEndian.AppendUint64(nil, pos))
	})
}

// RecordSetting appends a "system" entry by p with action and the
// attributes rec, and stores rec under key in the same transaction,
// unless rec equals what key holds (or, when key holds nothing, def):
// the log records each change of a setting once, crash or not. It
// reports whether it appended.
func (l *Log) RecordSetting(ctx context.Context, p Principal, key []byte, action string, rec, def []byte) (bool, error) {
	last := def
	err := l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		last, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("reading the recorded %s: %w", action, err)
	}
	if bytes.Equal(last, rec) {
		return false, nil
	}
	extra := func([]Appended) ([]byte, []byte, time.Duration) { return key, rec, 0 }
	if _, err := l.AppendWith(ctx, p, KindSystem, []Record{{Action: action, Attributes: rec}}, extra); err != nil {
		return false, fmt.Errorf("recording %s: %w", action, err)
	}
	return true, nil
}
