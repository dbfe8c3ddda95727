package log

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/query"
)

// LeafMatches reports whether a stored leaf satisfies f.
func LeafMatches(f *query.Filter, leaf []byte) (bool, error) { return f.MatchLeaf(leaf) }

// SearchStats says what a search examined.
type SearchStats struct {
	Start, End uint64 // the index range the filter's time bounds select
	Next       uint64 // where a continuation starts; End when done
	Candidates int    // entries read and checked
	Matches    int
}

// Search calls emit, in index order, for each entry in [start, size)
// that satisfies f, where size is the tree size the caller fixed for a
// consistent answer. It stops after limit matches (0: no limit), when emit
// returns an error, or when ctx ends. The leaf passed to emit is valid
// only until emit returns.
//
// The time bounds of f become an index range through the time index. If f
// has exact field matches, their posting lists are intersected and only
// the entries they share are read; otherwise the range is scanned. Every
// candidate is checked against the whole filter, so prefix matches and
// business hours are exact, unless the filter is only indexed exact
// matches: then the intersection is the answer.
func (l *Log) Search(ctx context.Context, f *query.Filter, start, size uint64, limit int, emit func(index uint64, leaf []byte) error) (SearchStats, error) {
	var st SearchStats
	if size > l.Size() {
		return st, fmt.Errorf("size %d is beyond the tree size %d: %w", size, l.Size(), ErrNotFound)
	}
	lo, hi := uint64(0), size
	var err error
	if !f.From.IsZero() {
		if lo, err = l.IndexAt(f.From, size); err != nil {
			return st, err
		}
	}
	if !f.To.IsZero() {
		if hi, err = l.IndexAt(f.To, size); err != nil {
			return st, err
		}
	}
	st.Start, st.End = lo, hi
	lo = max(lo, start)
	st.Next = hi
	if lo >= hi {
		return st, nil
	}
	var exact []query.Match
	for _, m := range f.Matches {
		// Kind "action" is not indexed (see appendTerms).
		if !m.Prefix && !(m.Field == "kind" && m.Value == KindAction) {
			exact = append(exact, m)
		}
	}
	err = l.db.View(func(txn *badger.Txn) error {
		// Business hours become index spans through the time index, so
		// that entries inside the hours are skipped unread.
		spans, err := hourSpans(txn, f.Outside, lo, hi, size)
		if err != nil {
			return err
		}
		// When every condition is an indexed exact match, the
		// intersection of the posting lists is the answer and the leaves
		// need no check: the time bounds are exact through the time
		// index, and so are business hours outside spans of unknown kind.
		indexed := len(exact) == len(f.Matches) && (f.Outside == nil || spans != nil)
		check := func(i uint64, leaf []byte, verify bool) (bool, error) {
			st.Candidates++
			if verify {
				ok, err := matchLeaf(f, leaf)
				if err != nil || !ok {
					return false, err
				}
			}
			st.Matches++
			if err := emit(i, leaf); err != nil {
				return false, err
			}
			if limit > 0 && st.Matches >= limit {
				st.Next = i + 1
				return true, nil
			}
			return false, nil
		}
		if spans == nil {
			spans = []indexSpan{{end: hi, kind: query.SpanUnknown}}
			if f.Outside == nil {
				spans[0].kind = query.SpanOutside
			}
		}
		if len(exact) == 0 {
			from := lo
			for _, sp := range spans {
				if sp.kind != query.SpanInside {
					verify := !indexed || sp.kind == query.SpanUnknown
					done, err := l.scan(ctx, txn, from, sp.end, &st, func(i uint64, leaf []byte) (bool, error) { return check(i, leaf, verify) })
					if err != nil || done {
						return err
					}
				}
				from = sp.end
			}
			return nil
		}
		rd := newEntryReader(txn)
		defer rd.close()
		cursors := make([]*postingCursor, len(exact))
		for j, m := range exact {
			c, err := newPostingCursor(txn, FieldByte[m.Field], m.Value, lo)
			if err != nil {
				return err
			}
			defer c.close()
			cursors[j] = c
		}
		n, p := 0, 0
		for {
			i, ok, err := intersect(cursors)
			if err != nil || !ok || i >= hi {
				return err
			}
			if n++; n%1024 == 0 && ctx.Err() != nil {
				st.Next = i
				return ctx.Err()
			}
			for spans[p].end <= i {
				p++
			}
			next := i + 1
			if spans[p].kind == query.SpanInside {
				next = spans[p].end // skip the span's postings unread
			} else {
				verify := !indexed || spans[p].kind == query.SpanUnknown
				var done bool
				if err := rd.read(i, func(v []byte) error {
					var err error
					done, err = check(i, v, verify)
					return err
				}); err != nil || done {
					return err
				}
			}
			for _, c := range cursors {
				if err := c.advance(next); err != nil {
					return err
				}
			}
		}
	})
	return st, err
}

// scan checks every entry in [lo, hi); done reports that check stopped
// the search.
func (l *Log) scan(ctx context.Context, txn *badger.Txn, lo, hi uint64, st *SearchStats, check func(uint64, []byte) (bool, error)) (done bool, err error) {
	err = forEachEntry(txn, lo, hi, func(i uint64, leaf []byte) (bool, error) {
		if (i-lo)%4096 == 0 && ctx.Err() != nil {
			st.Next = i
			return true, ctx.Err()
		}
		stop, err := check(i, leaf)
		done = stop
		return stop, err
	})
	return done, err
}

// indexSpan is a run of entries, up to end, all inside, all outside or of
// unknown kind for business hours. Spans follow each other from the
// search's first index.
type indexSpan struct {
	end  uint64
	kind query.SpanKind
}

// maxSpanDays bounds the days a search turns into spans (two seeks each);
// beyond it every candidate's time is checked instead.
const maxSpanDays = 20 * 366

// hourSpans maps business hours onto the entries [lo, hi) as index spans,
// from the times of the first and last entry and the time index. It
// returns nil when h is nil or the range spans too many days.
func hourSpans(txn *badger.Txn, h *query.Hours, lo, hi, size uint64) ([]indexSpan, error) {
	if h == nil || lo >= hi {
		return nil, nil
	}
	var first, last time.Time
	rd := newEntryReader(txn)
	defer rd.close()
	for _, e := range []struct {
		i uint64
		t *time.Time
	}{{lo, &first}, {hi - 1, &last}} {
		if err := rd.read(e.i, func(v []byte) error {
			var err error
			*e.t, err = leafTime(v)
			return err
		}); err != nil {
			return nil, err
		}
	}
	ts := h.Spans(first, last.Add(time.Nanosecond), maxSpanDays)
	if ts == nil {
		return nil, nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m/")})
	defer it.Close()
	out := make([]indexSpan, 0, len(ts))
	prev := lo
	for j, s := range ts {
		end := hi
		if j < len(ts)-1 {
			end = min(max(indexAt(it, s.End, size), lo), hi)
		}
		if end <= prev {
			continue // no entry has a time in this span
		}
		if n := len(out); n > 0 && out[n-1].kind == s.Kind {
			out[n-1].end = end
		} else {
			out = append(out, indexSpan{end, s.Kind})
		}
		prev = end
	}
	if len(out) == 0 || out[len(out)-1].end != hi {
		return nil, fmt.Errorf("time index: business-hour spans end at %d, not %d", prev, hi)
	}
	return out, nil
}

// postingCursor walks one term's postings in index order.
type postingCursor struct {
	it     *badger.Iterator
	rit    *badger.Iterator // reverse, for jumps
	prefix []byte
	buf    []uint64 // decoded indexes of the current block, from pos
	pos    int
	done   bool
}

func newPostingCursor(txn *badger.Txn, field byte, value string, from uint64) (*postingCursor, error) {
	prefix := termPrefix(field, value)
	c := &postingCursor{prefix: prefix}
	c.rit = txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
	c.it = txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
	if err := c.seek(from); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// seek positions the cursor at the first posting >= i. The block holding
// i may start before it, so it starts from the last block starting at or
// before i, found with the reverse iterator.
func (c *postingCursor) seek(i uint64) error {
	key := binary.BigEndian.AppendUint64(append([]byte{}, c.prefix...), i)
	c.rit.Seek(key)
	if c.rit.Valid() {
		key = c.rit.Item().KeyCopy(key[:0])
	}
	c.it.Seek(key)
	c.done = false
	if err := c.load(); err != nil {
		return err
	}
	return c.skipTo(i, -1)
}

// load decodes the block under the iterator, or marks the cursor done.
func (c *postingCursor) load() error {
	c.buf, c.pos = c.buf[:0], 0
	for len(c.buf) == 0 {
		if !c.it.Valid() {
			c.done = true
			return nil
		}
		item := c.it.Item()
		k := item.Key()
		if len(k) != len(c.prefix)+8 {
			c.it.Next()
			continue
		}
		first := binary.BigEndian.Uint64(k[len(c.prefix):])
		err := item.Value(func(v []byte) error {
			var err error
			c.buf, err = decodePostings(c.buf, first, v)
			return err
		})
		if err != nil {
			return err
		}
		c.it.Next()
	}
	return nil
}

// peek returns the current index.
func (c *postingCursor) peek() (uint64, bool) {
	if c.done {
		return 0, false
	}
	return c.buf[c.pos], true
}

// advance moves to the first index >= i: within the current block by
// binary search, through the next few blocks one by one, and by a seek
// when the target lies further away.
func (c *postingCursor) advance(i uint64) error { return c.skipTo(i, 4) }

// skipTo moves to the first index >= i, loading at most maxBlocks blocks
// before it seeks instead (-1: never seek).
func (c *postingCursor) skipTo(i uint64, maxBlocks int) error {
	for n := 0; !c.done; n++ {
		rest := c.buf[c.pos:]
		c.pos += sort.Search(len(rest), func(j int) bool { return rest[j] >= i })
		if c.pos < len(c.buf) {
			return nil
		}
		if maxBlocks >= 0 && n >= maxBlocks {
			return c.seek(i)
		}
		if err := c.load(); err != nil {
			return err
		}
	}
	return nil
}

func (c *postingCursor) close() {
	c.it.Close()
	c.rit.Close()
}

// intersect advances the cursors to the next index they all hold.
func intersect(cs []*postingCursor) (uint64, bool, error) {
	for {
		var hi uint64
		for _, c := range cs {
			i, ok := c.peek()
			if !ok {
				return 0, false, nil
			}
			hi = max(hi, i)
		}
		same := true
		for _, c := range cs {
			if err := c.advance(hi); err != nil {
				return 0, false, err
			}
			i, ok := c.peek()
			if !ok {
				return 0, false, nil
			}
			if i != hi {
				same = false
			}
		}
		if same {
			return hi, true, nil
		}
	}
}

// matchLeaf is LeafMatches for leaves this log wrote, without decoding
// them. A leaf's top-level fields come in a fixed order before
// "attributes", each string escaped by agentlog.AppendString; inside a string a
// quote is always escaped, so `,"<field>":"` can only be the field's own
// key, and comparing escaped bytes equals comparing the strings (escaping
// is done character by character, so it preserves prefixes too).
func matchLeaf(f *query.Filter, leaf []byte) (bool, error) {
	top := leaf
	if i := bytes.Index(top, []byte(`,"attributes":`)); i >= 0 {
		top = top[:i]
	}
	var buf [64]byte
	for _, m := range f.Matches {
		key := append(append(append(buf[:0], `,"`...), m.Field...), `":"`...)
		v := fieldValue(top, key)
		want := agentlog.AppendString(nil, m.Value)
		want = want[1 : len(want)-1] // without the quotes
		// An absent field compares as the empty string, as in LeafMatches.
		if m.Prefix && !bytes.HasPrefix(v, want) || !m.Prefix && !bytes.Equal(v, want) {
			return false, nil
		}
	}
	if !f.From.IsZero() || !f.To.IsZero() || f.Outside != nil {
		t, err := leafTime(leaf)
		if err != nil {
			return false, err
		}
		times := query.Filter{From: f.From, To: f.To, Outside: f.Outside}
		if !times.MatchEntry(t, nil) {
			return false, nil
		}
	}
	return true, nil
}

// fieldValue returns the escaped bytes of the string after key, or nil if
// the key is absent.
func fieldValue(top, key []byte) []byte {
	i := bytes.Index(top, key)
	if i < 0 {
		return nil
	}
	v := top[i+len(key):]
	for j := 0; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return v[:j:j]
		}
	}
	return nil
}
