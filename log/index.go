package log

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
)

// Secondary indexes, written in the same Badger transaction as the entries
// they index, so an acknowledged entry is always indexed.
//
// Postings are grouped per batch: for each term (a field and its value)
// present in a batch, one key "x/" + field byte + value + 0x00 + 8-byte
// big-endian index of the term's first entry in the batch, whose value is
// the uvarint gaps from that index to each further entry of the batch with
// the term. Values never contain 0x00 (record fields refuse control
// characters; identities are validated where they enter), so a term's
// postings are one contiguous key range, sorted by index. Grouping keeps
// the number of index keys near the number of distinct terms per batch
// instead of several per entry.
//
// Time keys: "m/" + 8-byte big-endian Unix nanoseconds + 8-byte big-endian
// first index, one per batch, value empty. Entry times are non-decreasing
// with the index and every entry of a batch has the batch's time, so the
// entries at or after time T start at the first index of the first batch
// whose time is at or after T.

// Index field bytes. They are part of the key format: never renumber.
const (
	fieldAgent    = 'a'
	fieldAction   = 'c'
	fieldTool     = 't'
	fieldResource = 'r'
	fieldOutcome  = 'o'
	fieldKind     = 'k'
	fieldSession  = 's'
	fieldTask     = 'j'
	fieldConfig   = 'g'
)

// FieldByte maps a query field name to its index byte.
var FieldByte = map[string]byte{
	"agent": fieldAgent, "action": fieldAction, "tool": fieldTool, "resource": fieldResource,
	"outcome": fieldOutcome, "kind": fieldKind, "session": fieldSession, "task": fieldTask,
	"config": fieldConfig,
}

// termPrefix is the key prefix of a term's postings: "x/" + field + value + 0x00.
func termPrefix(field byte, value string) []byte {
	k := make([]byte, 0, 4+len(value))
	k = append(k, 'x', '/', field)
	k = append(k, value...)
	return append(k, 0)
}

// appendTerms appends the index terms of one leaf to dst as
// (2-byte length, term prefix) pairs. Kind "action" is not indexed: nearly
// every entry has it, so a scan answers it as well as an index would.
func appendTerms(dst []byte, kind string, p Principal, r *Record) []byte {
	add := func(field byte, v string) {
		if v == "" {
			return
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(4+len(v)))
		dst = append(dst, 'x', '/', field)
		dst = append(dst, v...)
		dst = append(dst, 0)
	}
	if kind != KindAction {
		add(fieldKind, kind)
	}
	add(fieldAgent, p.Agent)
	add(fieldSession, p.Session)
	add(fieldTask, p.Task)
	add(fieldConfig, p.Config)
	add(fieldAction, r.Action)
	add(fieldTool, r.Tool)
	add(fieldResource, r.Resource)
	add(fieldOutcome, r.Outcome)
	return dst
}

// postings collects a batch's index terms: term prefix -> indexes.
type postings map[string][]uint64

// add records the terms of the leaf at index i.
func (ps postings) add(terms []byte, i uint64) {
	for len(terms) > 0 {
		n := int(binary.BigEndian.Uint16(terms))
		t := terms[2 : 2+n]
		ps[string(t)] = append(ps[string(t)], i)
		terms = terms[2+n:]
	}
}

// postingKey is the key of a term's postings starting at index first.
func postingKey(term string, first uint64) []byte {
	k := make([]byte, len(term)+8)
	copy(k, term)
	binary.BigEndian.PutUint64(k[len(term):], first)
	return k
}

// postingValue encodes the gaps after the first index.
func postingValue(idx []uint64) []byte {
	if len(idx) < 2 {
		return nil
	}
	v := make([]byte, 0, 2*len(idx))
	for j := 1; j < len(idx); j++ {
		v = binary.AppendUvarint(v, idx[j]-idx[j-1])
	}
	return v
}

// decodePostings appends the indexes of one posting key (first index) and
// value to dst.
func decodePostings(dst []uint64, first uint64, v []byte) ([]uint64, error) {
	dst = append(dst, first)
	cur := first
	for len(v) > 0 {
		d, n := binary.Uvarint(v)
		if n <= 0 || d == 0 {
			return dst, fmt.Errorf("corrupt posting list at index %d", first)
		}
		cur += d
		dst = append(dst, cur)
		v = v[n:]
	}
	return dst, nil
}

// timeKey is the time index key of a batch at time t starting at index i.
func timeKey(t time.Time, i uint64) []byte {
	k := make([]byte, 18)
	k[0], k[1] = 'm', '/'
	binary.BigEndian.PutUint64(k[2:], uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[10:], i)
	return k
}

// lastIndexTime is the latest time a time index key holds: the keys are
// Unix nanoseconds, an int64, which ends in 2262.
var lastIndexTime = time.Unix(0, math.MaxInt64)

// IndexAt returns the first index whose entry time is at or after t, or
// size if there is none, reading only the time index. size bounds the
// answer to a consistent snapshot. t may be any time: one before 1970
// gives 0, one after 2262 size.
func (l *Log) IndexAt(t time.Time, size uint64) (uint64, error) {
	switch {
	case !t.After(time.Unix(0, 0)):
		return 0, nil
	case t.After(lastIndexTime):
		return size, nil
	}
	var out uint64
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m/")})
		defer it.Close()
		out = indexAt(it, t, size)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading the time index: %w", err)
	}
	return out, nil
}

// indexAt is IndexAt with an iterator over the time index.
func indexAt(it *badger.Iterator, t time.Time, size uint64) uint64 {
	// Compared as times: UnixNano wraps around beyond 1678 to 2262.
	switch {
	case !t.After(time.Unix(0, 0)):
		return 0
	case t.After(lastIndexTime):
		return size
	}
	seek := make([]byte, 10)
	copy(seek, "m/")
	binary.BigEndian.PutUint64(seek[2:], uint64(t.UnixNano()))
	it.Seek(seek)
	if it.Valid() {
		if k := it.Item().Key(); len(k) == 18 {
			return min(binary.BigEndian.Uint64(k[10:]), size)
		}
	}
	return size
}

// batchPostings is the sequencer's allocation-free form of postings: it
// is reused from batch to batch, keys its map by the terms' bytes in the
// batch's own requests (alive until the batch commits), and encodes gaps
// as it goes. It writes the same keys and values as postings.write.
type batchPostings struct {
	idx  map[string]int
	list []batchPosting
	keys []byte // the batch's posting keys, back to back
}

type batchPosting struct {
	term        string
	first, last uint64
	gaps        []byte // uvarint gaps after first
}

func newBatchPostings() *batchPostings { return &batchPostings{idx: map[string]int{}} }

// add records the terms of the leaf at index i. terms must stay unchanged
// until write returns.
func (ps *batchPostings) add(terms []byte, i uint64) {
	for len(terms) > 0 {
		n := int(binary.BigEndian.Uint16(terms))
		t := terms[2 : 2+n]
		key := unsafe.String(unsafe.SliceData(t), len(t))
		if j, ok := ps.idx[key]; ok {
			p := &ps.list[j]
			p.gaps = binary.AppendUvarint(p.gaps, i-p.last)
			p.last = i
		} else {
			ps.idx[key] = len(ps.list)
			if len(ps.list) < cap(ps.list) {
				ps.list = ps.list[:len(ps.list)+1]
				p := &ps.list[len(ps.list)-1]
				p.term, p.first, p.last, p.gaps = key, i, i, p.gaps[:0]
			} else {
				ps.list = append(ps.list, batchPosting{term: key, first: i, last: i})
			}
		}
		terms = terms[2+n:]
	}
}

// write sets one posting key per term and resets ps for the next batch.
// Keys and values stay referenced by txn until it commits; ps must not be
// reused before that.
// keyList returns copies of the keys write writes.
func (ps *batchPostings) keyList() [][]byte {
	keys := make([][]byte, len(ps.list))
	for i := range ps.list {
		p := &ps.list[i]
		keys[i] = binary.BigEndian.AppendUint64(append(make([]byte, 0, len(p.term)+8), p.term...), p.first)
	}
	return keys
}

func (ps *batchPostings) write(txn *badger.Txn) error {
	n := 0
	for i := range ps.list {
		n += len(ps.list[i].term) + 8
	}
	if cap(ps.keys) < n {
		ps.keys = make([]byte, 0, n+n/4)
	}
	ps.keys = ps.keys[:0]
	for i := range ps.list {
		p := &ps.list[i]
		start := len(ps.keys)
		ps.keys = append(ps.keys, p.term...)
		ps.keys = binary.BigEndian.AppendUint64(ps.keys, p.first)
		var v []byte
		if len(p.gaps) > 0 {
			v = p.gaps
		}
		if err := txn.Set(ps.keys[start:len(ps.keys):len(ps.keys)], v); err != nil {
			return fmt.Errorf("writing index key: %w", err)
		}
	}
	return nil
}

// reset empties ps once the batch has committed (or failed).
func (ps *batchPostings) reset() {
	clear(ps.idx)
	for i := range ps.list {
		ps.list[i].term = ""
	}
	ps.list = ps.list[:0]
}
