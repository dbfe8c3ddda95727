package log

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/log/query"
)

// searchFixture builds a log of varied entries whose batches are spread
// over about a year of (fake) log time, several hours apart, so that time
// ranges and business hours select real subsets.
func searchFixture(t *testing.T) *Log {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	now := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, err := Open(Config{Dir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	actions := []string{"db.query", "db.write", "http.get", "payment.refund", "shell.exec"}
	tools := []string{"", "sql", "curl", "stripe"}
	outcomes := []string{"", "success", "error", "denied"}
	for b := 0; b < 400; b++ {
		now = now.Add(time.Duration(r.IntN(40*60)) * time.Minute) // up to 40 h between batches
		p := Principal{ID: "x", Role: "agent", Agent: fmt.Sprintf("agent-%d", r.IntN(6)), Session: fmt.Sprintf("s%d", r.IntN(30)), Task: fmt.Sprintf("t%d", r.IntN(10))}
		n := 1 + r.IntN(8)
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = Record{
				Action:   actions[r.IntN(len(actions))],
				Tool:     tools[r.IntN(len(tools))],
				Resource: fmt.Sprintf("%s/%d", []string{"customers", "orders", "custom"}[r.IntN(3)], r.IntN(50)),
				Outcome:  outcomes[r.IntN(len(outcomes))],
			}
		}
		kind := KindAction
		if r.IntN(10) == 0 {
			kind = KindSession
		}
		if _, err := l.Append(context.Background(), p, kind, recs); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func randomFilter(r *rand.Rand) url.Values {
	q := url.Values{}
	pick := func(k string, vs ...string) {
		if r.IntN(3) == 0 {
			q.Set(k, vs[r.IntN(len(vs))])
		}
	}
	pick("agent", "agent-0", "agent-1", "agent-5", "agent-9", "agent-*")
	pick("action", "db.query", "db.write", "db.*", "payment.refund", "nope")
	pick("tool", "sql", "curl", "stripe")
	pick("resource", "customers/7", "customers/*", "custom*", "orders/1*")
	pick("outcome", "success", "error", "denied")
	pick("kind", "action", "session", "agent")
	pick("session", "s1", "s2", "s29")
	pick("task", "t0", "t3")
	if r.IntN(2) == 0 {
		from := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(300*24)) * time.Hour)
		q.Set("from", from.Format(time.RFC3339))
		if r.IntN(2) == 0 {
			q.Set("to", from.Add(time.Duration(1+r.IntN(90*24))*time.Hour).Format(time.RFC3339))
		}
	}
	if r.IntN(2) == 0 {
		q.Set("outside_hours", []string{"09:00-17:00", "22:00-06:00", "08:30-18:15"}[r.IntN(3)])
		q.Set("tz", []string{"UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"}[r.IntN(4)])
		q.Set("weekdays", []string{"mon-fri", "sat-sun", "mon,wed,fri"}[r.IntN(3)])
	}
	return q
}

// TestSearchAgainstBruteForce compares Search with a filter applied to
// every entry, for random filters, with and without limits.
func TestSearchAgainstBruteForce(t *testing.T) {
	l := searchFixture(t)
	size := l.Size()
	all, err := l.Entries(0, size)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 9))
	nonEmpty := 0
	for n := 0; n < 100; n++ {
		q := randomFilter(r)
		f, err := query.Parse(q)
		if err != nil {
			t.Fatalf("%v: %v", q, err)
		}
		var want []uint64
		for i, leaf := range all {
			ok, err := LeafMatches(f, leaf)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				want = append(want, uint64(i))
			}
		}
		if len(want) > 0 {
			nonEmpty++
		}
		var got []uint64
		st, err := l.Search(context.Background(), f, 0, size, 0, func(i uint64, leaf []byte) error {
			got = append(got, i)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("filter %v: got %d matches %v, brute force %d %v", q.Encode(), len(got), head(got), len(want), head(want))
		}
		if st.Next != st.End {
			t.Fatalf("unlimited search ended at %d, range end %d", st.Next, st.End)
		}
		// The same through pages of 3.
		var paged []uint64
		next := uint64(0)
		for pages := 0; ; pages++ {
			if pages > len(want)+2 {
				t.Fatal("paging does not terminate")
			}
			st, err := l.Search(context.Background(), f, next, size, 3, func(i uint64, _ []byte) error {
				paged = append(paged, i)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if st.Next >= st.End {
				break
			}
			next = st.Next
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("filter %v: paged %v, want %v", q.Encode(), head(paged), head(want))
		}
	}
	if nonEmpty < 25 {
		t.Fatalf("only %d of 100 random filters matched anything: the test is too weak", nonEmpty)
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 10)] }

// TestIndexAt checks the time index against the entries' own times.
func TestIndexAt(t *testing.T) {
	l := searchFixture(t)
	size := l.Size()
	all, _ := l.Entries(0, size)
	times := make([]time.Time, len(all))
	for i, leaf := range all {
		times[i], _ = leafTime(leaf)
	}
	// Times a client may give beyond what Unix nanoseconds hold (before
	// 1678, after 2262) too: they wrapped around, and a query to 9999
	// matched nothing.
	far := []time.Time{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1677, 9, 21, 0, 12, 43, 0, time.UTC),
		time.Unix(0, 0), time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}
	for _, probe := range append([]time.Time{times[0].Add(-time.Hour), times[0], times[5].Add(time.Nanosecond), times[len(times)/2], times[len(times)-1], times[len(times)-1].Add(time.Second)}, far...) {
		got, err := l.IndexAt(probe, size)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(len(times))
		for i, tt := range times {
			if !tt.Before(probe) {
				want = uint64(i)
				break
			}
		}
		if got != want {
			t.Fatalf("IndexAt(%v) = %d, want %d", probe, got, want)
		}
	}
}

// TestReindex checks the indexes written on the append path against the
// entries, then drops and rebuilds them and checks again, and that queries
// answer the same.
func TestReindex(t *testing.T) {
	l := searchFixture(t)
	ctx := context.Background()
	if err := l.CheckIndex(ctx); err != nil {
		t.Fatalf("indexes written while appending: %v", err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var filters []*query.Filter
	var before [][]uint64
	for n := 0; n < 30; n++ {
		f, err := query.Parse(randomFilter(r))
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if _, err := l.Search(ctx, f, 0, l.Size(), 0, func(i uint64, _ []byte) error { got = append(got, i); return nil }); err != nil {
			t.Fatal(err)
		}
		filters, before = append(filters, f), append(before, got)
	}
	// Damage the index: drop one posting key.
	err := l.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("x/")})
		it.Rewind()
		k := it.Item().KeyCopy(nil)
		it.Close()
		return txn.Delete(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CheckIndex(ctx); err == nil {
		t.Fatal("CheckIndex missed a dropped posting")
	}
	if err := l.Reindex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckIndex(ctx); err != nil {
		t.Fatalf("after Reindex: %v", err)
	}
	for n, f := range filters {
		var got []uint64
		if _, err := l.Search(ctx, f, 0, l.Size(), 0, func(i uint64, _ []byte) error { got = append(got, i); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, before[n]) {
			t.Fatalf("filter %d answers %v after reindex, %v before", n, head(got), head(before[n]))
		}
	}
}

// TestMatchLeafAgainstLeafMatches checks the byte-level matcher against the
// decoding one on every entry of the fixture, for random filters.
func TestMatchLeafAgainstLeafMatches(t *testing.T) {
	l := searchFixture(t)
	all, err := l.Entries(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 200; n++ {
		f, err := query.Parse(randomFilter(r))
		if err != nil {
			t.Fatal(err)
		}
		for i, leaf := range all {
			want, err1 := LeafMatches(f, leaf)
			got, err2 := matchLeaf(f, leaf)
			if err1 != nil || err2 != nil || got != want {
				t.Fatalf("entry %d, filter %+v: matchLeaf %v %v, LeafMatches %v %v", i, f, got, err2, want, err1)
			}
		}
	}
}

// FuzzMatchLeaf checks the byte-level matcher against the decoding one on
// leaves with arbitrary field values (quotes, backslashes, U+2028, field
// names inside values and attributes).
func FuzzMatchLeaf(f *testing.F) {
	f.Add("db.query", "customers/1", `{"x":",\"action\":\"a\""}`, "db.q", true)
	f.Add(`a"b\c`, `,"action":"z"`, `{}`, `a"b`, false)
	f.Add("\u2028x", "r", `{"action":"x"}`, "\u2028", true)
	f.Fuzz(func(t *testing.T, action, resource, attrs, want string, prefix bool) {
		body := fmt.Sprintf(`{"entries":[{"action":%q,"resource":%q,"attributes":%s}]}`, action, resource, attrs)
		recs, err := ParseAppendRequest([]byte(body))
		if err != nil {
			return
		}
		tail, err := encodeTail(KindAction, Principal{ID: "p", Role: "agent", Agent: "a"}, &recs[0])
		if err != nil {
			return
		}
		leaf := appendLeaf(nil, time.Unix(1e9, 0), tail)
		for _, field := range []string{"action", "resource", "tool", "agent", "kind"} {
			v := want
			if prefix {
				v += "*"
			}
			flt, err := query.Parse(url.Values{field: {v}})
			if err != nil {
				continue // refused at the API (not UTF-8, a '*' inside, empty)
			}
			a, err1 := LeafMatches(flt, leaf)
			b, err2 := matchLeaf(flt, leaf)
			if err1 != nil || err2 != nil || a != b {
				t.Fatalf("leaf %s, %s %q prefix=%v: LeafMatches %v, matchLeaf %v", leaf, field, want, prefix, a, b)
			}
		}
	})
}

// TestSearchHoursAcrossDST fills the weeks around two DST changes with a
// batch every 20 minutes and compares business-hour searches with brute
// force. Entries inside the hours must be skipped unread when the rest of
// the filter is indexed.
func TestSearchHoursAcrossDST(t *testing.T) {
	var now time.Time
	l, err := Open(Config{Dir: t.TempDir(), Clock: func() time.Time { return now }, BulkLoad: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, start := range []time.Time{
		time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC),   // America/New_York: 8 March
		time.Date(2026, 3, 26, 0, 0, 0, 0, time.UTC),  // Europe/Berlin: 29 March
		time.Date(2026, 10, 29, 0, 0, 0, 0, time.UTC), // New York falls back 1 November
	} {
		for now = start; now.Before(start.AddDate(0, 0, 6)); now = now.Add(20 * time.Minute) {
			p := Principal{ID: "x", Role: "agent", Agent: []string{"a1", "a2"}[now.Minute()/20%2], Session: "s", Task: "t"}
			if _, err := l.Append(context.Background(), p, KindAction, []Record{{Action: "db.query", Tool: "sql", Resource: "customers/1", Outcome: "success"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	size := l.Size()
	all, err := l.Entries(0, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, qs := range []string{
		"agent=a1&outside_hours=09:00-17:00&tz=America/New_York",
		"agent=a2&outside_hours=22:00-02:30&tz=America/New_York&weekdays=mon-sun",
		"agent=a1&outside_hours=01:30-03:30&tz=Europe/Berlin&weekdays=sat-sun",
		"outside_hours=09:00-17:00&tz=Europe/Berlin",
		"tool=sql&outside_hours=00:00-23:00&tz=UTC&weekdays=mon-sun",
		"resource=customers/*&outside_hours=09:00-17:00&tz=America/New_York&from=2026-03-07T00:00:00Z&to=2026-03-10T00:00:00Z",
	} {
		q, _ := url.ParseQuery(qs)
		f, err := query.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for i, leaf := range all {
			if ok, err := LeafMatches(f, leaf); err != nil {
				t.Fatal(err)
			} else if ok {
				want = append(want, uint64(i))
			}
		}
		var got []uint64
		st, err := l.Search(context.Background(), f, 0, size, 0, func(i uint64, _ []byte) error {
			got = append(got, i)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %d matches %v, brute force %d %v", qs, len(got), head(got), len(want), head(want))
		}
		if len(want) == 0 || len(want) == int(size) {
			t.Fatalf("%s: %d of %d entries match; the case tests nothing", qs, len(want), size)
		}
		t.Logf("%s: %d matches, %d candidates, %d entries", qs, len(want), st.Candidates, size)
		// Candidates are the entries read; inside the hours none is.
		if st.Candidates > len(want)+len(want)/4 {
			t.Fatalf("%s: read %d entries for %d matches", qs, st.Candidates, len(want))
		}
	}
}

// FuzzReadRawFields holds ReadRawFields equal to decoding, for leaves
// encoded from arbitrary field values.
func FuzzReadRawFields(f *testing.F) {
	f.Add("agent-1", "s", "t", "db.query", "sql", "customers/1", "success", `{"a":"b"}`, uint64(7))
	f.Add(`a"b`, "", "", `x\y`, "", ",\"attributes\":", "", `{"k":",\"agent\":\"x\""}`, uint64(0))
	f.Fuzz(func(t *testing.T, agent, session, task, action, tool, resource, outcome, attrs string, seq uint64) {
		if !json.Valid([]byte(attrs)) || !utf8.ValidString(attrs) {
			return
		}
		for _, s := range []string{agent, session, task, action, tool, resource, outcome} {
			if !utf8.ValidString(s) {
				return
			}
			for _, c := range s {
				if c < 0x20 {
					return
				}
			}
		}
		var cb bytes.Buffer
		if json.Compact(&cb, []byte(attrs)) != nil || cb.Len() == 0 || cb.Bytes()[0] != '{' {
			return
		}
		p := Principal{ID: "p", Role: "agent", Agent: agent, Session: session, Task: task}
		tail, err := encodeTail(KindAction, p, &Record{Seq: seq, Action: action, Tool: tool, Resource: resource, Outcome: outcome, Attributes: cb.Bytes()})
		if err != nil {
			return
		}
		leaf := appendLeaf(nil, time.Now(), tail)
		want, err := query.DecodeLeaf(leaf)
		if err != nil {
			t.Fatalf("decode %s: %v", leaf, err)
		}
		var r agentlog.RawFields
		if !agentlog.ReadRawFields(leaf, &r) {
			if !bytes.Contains(leaf, []byte(`\`)) {
				t.Fatalf("ReadRawFields refused a leaf without escapes: %s", leaf)
			}
			return
		}
		for _, c := range []struct {
			got  []byte
			want string
		}{{r.Kind, want.Kind}, {r.Agent, want.Agent}, {r.Session, want.Session}, {r.Task, want.Task}, {r.Action, want.Action}, {r.Tool, want.Tool}, {r.Resource, want.Resource}, {r.Outcome, want.Outcome}} {
			if string(c.got) != c.want {
				t.Fatalf("ReadRawFields gave %q, decoding %q, in %s", c.got, c.want, leaf)
			}
		}
	})
}
