package log

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RawFields are a leaf's top-level string fields as slices of the leaf,
// nil when absent.
type RawFields struct {
	Kind, Agent, Session, Task, Action, Tool, Resource, Outcome []byte
}

// ReadRawFields fills r from a leaf this log wrote, in one pass over its
// top-level keys, without decoding it. It returns false when a value
// before "attributes" is escaped (holds a backslash), or the leaf is not
// in the log's canonical form: the caller then decodes the leaf instead.
func ReadRawFields(leaf []byte, r *RawFields) bool {
	*r = RawFields{}
	if len(leaf) < leafPrefixLen || leaf[0] != '{' {
		return false
	}
	b := leaf[1:]
	for len(b) > 0 && b[0] == '"' {
		end := bytes.IndexByte(b[1:], '"')
		if end < 0 || len(b) < end+3 || b[end+2] != ':' {
			return false
		}
		key := b[1 : end+1]
		b = b[end+3:]
		if string(key) == "attributes" {
			return true
		}
		var v []byte
		if len(b) > 0 && b[0] == '"' {
			e := bytes.IndexByte(b[1:], '"')
			if e < 0 {
				return false
			}
			v = b[1 : e+1 : e+1]
			if bytes.IndexByte(v, '\\') >= 0 {
				return false
			}
			b = b[e+2:]
		} else {
			// A number (seq): up to the next comma or the end.
			e := bytes.IndexAny(b, ",}")
			if e < 0 {
				return false
			}
			b = b[e:]
		}
		switch string(key) {
		case "kind":
			r.Kind = v
		case "agent":
			r.Agent = v
		case "session":
			r.Session = v
		case "task":
			r.Task = v
		case "action":
			r.Action = v
		case "tool":
			r.Tool = v
		case "resource":
			r.Resource = v
		case "outcome":
			r.Outcome = v
		}
		if len(b) == 0 || b[0] != ',' {
			return len(b) > 0 && b[0] == '}'
		}
		b = b[1:]
	}
	return false
}

// LeafStamp returns the bytes of a leaf's time as written (nil if it does
// not start with one); leaves with equal stamps have equal times.
func LeafStamp(leaf []byte) []byte {
	const p = `{"time":"`
	if len(leaf) < len(p)+leafTimeLen || string(leaf[:len(p)]) != p {
		return nil
	}
	return leaf[len(p) : len(p)+leafTimeLen]
}

// LeafTime returns the time a leaf was sequenced at.
func LeafTime(leaf []byte) (time.Time, error) { return leafTime(leaf) }

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
