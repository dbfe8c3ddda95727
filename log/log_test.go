package log

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

func openTest(t testing.TB, dir string, clock func() time.Time) *Log {
	t.Helper()
	l, err := Open(Config{Dir: dir, Clock: clock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func recs(n int, action string) []Record {
	r := make([]Record, n)
	for i := range r {
		r[i] = Record{Action: action, Resource: fmt.Sprintf("r/%d", i)}
	}
	return r
}

var admin = Principal{ID: "admin", Role: "admin"}

// TestConcurrentAppends appends from many goroutines and checks indexes are
// unique and consecutive, leaves are stored as acknowledged, times are
// non-decreasing with the index, and the tree matches an independent
// implementation (x/mod's tlog) over the stored leaves.
func TestConcurrentAppends(t *testing.T) {
	l := openTest(t, t.TempDir(), nil)
	defer l.Close()
	const workers, per = 32, 20
	var mu sync.Mutex
	got := map[uint64][32]byte{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				res, err := l.Append(context.Background(), admin, KindAction, recs(1+i%3, fmt.Sprintf("w%d", w)))
				if err != nil {
					t.Error(err)
					return
				}
				for j := 1; j < len(res); j++ {
					if res[j].Index != res[j-1].Index+1 {
						t.Errorf("indexes of one request not consecutive: %d then %d", res[j-1].Index, res[j].Index)
					}
				}
				mu.Lock()
				for _, a := range res {
					if _, dup := got[a.Index]; dup {
						t.Errorf("index %d given twice", a.Index)
					}
					got[a.Index] = a.LeafHash
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	size := l.Size()
	if uint64(len(got)) != size {
		t.Fatalf("acknowledged %d entries, tree size %d", len(got), size)
	}
	leaves, err := l.Entries(0, size)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []tlog.Hash
	var prev time.Time
	for i, leaf := range leaves {
		h := leafHash(leaf)
		if h != got[uint64(i)] {
			t.Fatalf("entry %d: stored leaf hash differs from the acknowledged one", i)
		}
		lt, err := leafTime(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if lt.Before(prev) {
			t.Fatalf("entry %d time %v before entry %d time %v", i, lt, i-1, prev)
		}
		prev = lt
		hashes = append(hashes, tlog.RecordHash(leaf))
	}
	want, err := tlog.TreeHash(int64(size), hashReader(hashes))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.Tree().Root(), want[:]) {
		t.Fatalf("root %x, tlog says %x", l.Tree().Root(), want)
	}
}

// hashReader builds x/mod tlog's stored hashes for the given leaf hashes
// and serves them, so tlog.TreeHash can compute the root independently.
func hashReader(leaves []tlog.Hash) tlog.HashReaderFunc {
	var stored []tlog.Hash
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = stored[x]
		}
		return out, nil
	})
	for i, h := range leaves {
		s, err := tlog.StoredHashesForRecordHash(int64(i), h, read)
		if err != nil {
			panic(err)
		}
		stored = append(stored, s...)
	}
	return read
}

// TestReopen checks that a reopened log resumes where the durable state
// ends: same size and root, later appends continue the indexes, proofs
// between old and new sizes verify, and times never go backwards even if
// the clock does.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	future := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := openTest(t, dir, func() time.Time { return future })
	if _, err := l.Append(context.Background(), admin, KindAction, recs(300, "a")); err != nil {
		t.Fatal(err)
	}
	size1, root1 := l.Size(), l.Tree().Root()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The clock is now behind the last leaf: times must not go backwards.
	past := future.Add(-time.Hour)
	l = openTest(t, dir, func() time.Time { return past })
	defer l.Close()
	if l.Size() != size1 || !bytes.Equal(l.Tree().Root(), root1) {
		t.Fatalf("after reopen: size %d root %x, want %d %x", l.Size(), l.Tree().Root(), size1, root1)
	}
	res, err := l.Append(context.Background(), admin, KindAction, recs(5, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Index != size1 {
		t.Fatalf("first index after reopen %d, want %d", res[0].Index, size1)
	}
	if res[0].Time.Before(future) {
		t.Fatalf("time went backwards across restart: %v < %v", res[0].Time, future)
	}
	p, err := l.Tree().ConsistencyProof(size1, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, l.Size(), p, root1, l.Tree().Root()); err != nil {
		t.Fatalf("consistency after reopen: %v", err)
	}
}

// TestPushback fills the queue of a log whose sequencer is blocked and
// checks further appends fail fast with ErrPushback, not unbounded memory.
func TestPushback(t *testing.T) {
	block := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	clock := func() time.Time {
		once.Do(func() { close(entered); <-block })
		return time.Now()
	}
	l, err := Open(Config{Dir: t.TempDir(), Clock: clock, MaxPending: MaxEntriesPerRequest})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), admin, KindAction, recs(1, "first"))
		first <- err
	}()
	<-entered // the sequencer holds the first batch
	fill := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), admin, KindAction, recs(MaxEntriesPerRequest-1, "fill"))
		fill <- err
	}()
	// Wait until the filler is queued: the queue then holds the limit.
	for l.QueueDepth() < MaxEntriesPerRequest {
		select {
		case err := <-fill:
			t.Fatalf("filler finished early: %v", err)
		default:
		}
		time.Sleep(time.Millisecond) // polling a counter, not synchronizing on time
	}
	if _, err := l.Append(context.Background(), admin, KindAction, recs(1, "over")); !errors.Is(err, ErrPushback) {
		t.Fatalf("append over the limit: %v, want ErrPushback", err)
	}
	close(block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-fill; err != nil {
		t.Fatal(err)
	}
	if l.Size() != MaxEntriesPerRequest {
		t.Fatalf("size %d, want %d", l.Size(), MaxEntriesPerRequest)
	}
}

// TestCloseDrains checks that Close commits everything already queued and
// that appends after Close fail with ErrClosed.
func TestCloseDrains(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(context.Background(), admin, KindAction, recs(2, "x")); err == nil {
				mu.Lock()
				acked += 2
				mu.Unlock()
			} else if !errors.Is(err, ErrClosed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), admin, KindAction, recs(1, "late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	l = openTest(t, dir, nil)
	defer l.Close()
	if l.Size() != uint64(acked) {
		t.Fatalf("size %d after reopen, acknowledged %d", l.Size(), acked)
	}
}

// BenchmarkAppend measures the library append path on the workload of
// ../shared/bench/tessera-posix: 512-byte entries added by many concurrent
// writers, each waiting until its entry is durable. Run it with
// -benchtime=1000000x for the 1M-entry figure in docs/benchmarks.md.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		name    string
		noIndex bool
		config  bool // the session declared a configuration (leaf field config)
	}{{"c=4096", false, false}, {"c=4096/indexes=off", true, false}, {"c=4096/config", false, true}} {
		conc := 4096
		b.Run(tc.name, func(b *testing.B) {
			l, err := Open(Config{Dir: b.TempDir(), noIndex: tc.noIndex})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			pad := make([]byte, 512-100)
			rand.Read(pad)
			// A realistic agent action: every indexed field is set, and
			// resources vary, so most entries add a resource posting.
			var variants [1024]Record
			for i := range variants {
				variants[i] = Record{Action: "db.query", Tool: "sql", Resource: fmt.Sprintf("customers/%06d", i*7919%1000000), Outcome: "success", Attributes: []byte(fmt.Sprintf(`{"p":"%x"}`, pad[:(512-236)/2]))}
			}
			who := Principal{ID: "agent-7", Role: "agent", Agent: "agent-7", Session: "s-0123456789abcdef", Task: "ticket-4711"}
			if tc.config {
				who.Config = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
			}
			b.SetBytes(512)
			b.ResetTimer()
			var next sync.WaitGroup
			work := make(chan struct{}, b.N)
			for i := 0; i < b.N; i++ {
				work <- struct{}{}
			}
			close(work)
			for w := 0; w < conc; w++ {
				next.Add(1)
				go func() {
					defer next.Done()
					i := 0
					for range work {
						i++
						if _, err := l.Append(context.Background(), who, KindAction, []Record{variants[i%len(variants)]}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			next.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// TestValueLogGC appends entries between overwrites of a large value
// under a key of its own, so that small value log files are mostly
// garbage with the log's live values (fragments, tiles, states) among it.
// It collects them, which moves those values, and checks that every entry
// and proof is intact afterwards and after a reopen. (The log's own
// garbage, pieces of filled tiles and replaced states, is mostly too small
// to reach the value log.)
func TestValueLogGC(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, valueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Batches large enough that their entry fragments go to the value
	// log (over valueThreshold: the action alone is 305 bytes a leaf).
	const batch, batches = valueThreshold/300 + 1, 300
	junk := make([]byte, 8<<10)
	for i := 0; i < batches; i++ {
		if _, err := l.Append(context.Background(), admin, KindAction, recs(batch, fmt.Sprintf("a%03d-%0300d", i, i))); err != nil {
			t.Fatal(err)
		}
		junk[0] = byte(i)
		if err := l.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("z/junk"), junk) }); err != nil {
			t.Fatal(err)
		}
	}
	// Compactions record which value log bytes the overwritten values
	// left as garbage. Closing flushes the memtables, so that flattening
	// the reopened tree compacts them away.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(Config{Dir: dir, valueLogFileSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := l.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	n, err := l.collectGarbage()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("garbage collection rewrote no value log file")
	}
	t.Logf("rewrote %d value log files", n)
	const size = batch * batches
	check := func(l *Log) {
		leaves, err := l.Entries(0, size)
		if err != nil {
			t.Fatal(err)
		}
		var hashes []tlog.Hash
		for i, leaf := range leaves {
			l, err := agentlog.ParseLeaf(leaf)
			if err != nil || l.Action != fmt.Sprintf("a%03d-%0300d", i/batch, i/batch) {
				t.Fatalf("entry %d after GC: %v %+v", i, err, l)
			}
			hashes = append(hashes, tlog.RecordHash(leaf))
		}
		want, err := tlog.TreeHash(size, hashReader(hashes))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(l.Tree().Root(), want[:]) {
			t.Fatal("root differs after GC")
		}
		p, err := l.Tree().InclusionProof(123, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 123, size, hashes[123][:], p, want[:]); err != nil {
			t.Fatal(err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(Config{Dir: dir, valueLogFileSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check(l)
}

// TestValueThresholdChange: small batches keep their entries in Badger's
// LSM tree (under valueThreshold, so that their commit leaves the value
// log unwritten), larger ones in the value log, and a directory written
// with the threshold of earlier versions (256 bytes: every leaf in the
// value log) opens, reads, proves and appends under the current one, and
// the other way round.
func TestValueThresholdChange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var want [][]byte // every leaf, in order
	// lsmBytes is the bytes of the LSM tree's tables (their data, before
	// padding) once the memtables are flushed (on close).
	lsmBytes := func(threshold int64) int64 {
		t.Helper()
		l, err := Open(Config{Dir: dir, valueThreshold: threshold})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var n int64
		for _, ti := range l.db.Tables() {
			n += int64(ti.UncompressedSize)
		}
		return n
	}
	round := func(threshold int64, tag string) {
		t.Helper()
		l, err := Open(Config{Dir: dir, valueThreshold: threshold})
		if err != nil {
			t.Fatal(err)
		}
		if l.Size() != uint64(len(want)) {
			t.Fatalf("threshold %d: size %d, want %d", threshold, l.Size(), len(want))
		}
		leaves, err := l.Entries(0, l.Size())
		if err != nil && len(want) > 0 {
			t.Fatal(err)
		}
		for i := range want {
			if !bytes.Equal(leaves[i], want[i]) {
				t.Fatalf("threshold %d: entry %d is %s, want %s", threshold, i, leaves[i], want[i])
			}
		}
		// 100 one-entry batches, then one of 300 entries.
		pad := strings.Repeat("p", 600)
		for i := 0; i < 100; i++ {
			if _, err := l.Append(ctx, admin, KindAction, recs(1, tag+pad)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Append(ctx, admin, KindAction, recs(300, tag+pad)); err != nil {
			t.Fatal(err)
		}
		got, err := l.Entries(uint64(len(want)), 400)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got...)
		var hashes []tlog.Hash
		for _, leaf := range want {
			hashes = append(hashes, tlog.RecordHash(leaf))
		}
		root, err := tlog.TreeHash(int64(len(want)), hashReader(hashes))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(l.Tree().Root(), root[:]) {
			t.Fatalf("threshold %d: root differs from the leaves' tree", threshold)
		}
		for _, i := range []uint64{0, uint64(len(want)) - 350, uint64(len(want)) - 1} {
			p, err := l.Tree().InclusionProof(i, uint64(len(want)))
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, uint64(len(want)), hashes[i][:], p, root[:]); err != nil {
				t.Fatalf("threshold %d: inclusion of %d: %v", threshold, i, err)
			}
		}
		if err := l.CheckIndex(ctx); err != nil {
			t.Fatalf("threshold %d: index: %v", threshold, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	round(256, "old")
	old := lsmBytes(256)
	round(0, "new") // the same appends with the current threshold
	extra := lsmBytes(0) - 2*old
	// The LSM tree holds the 100 one-entry batches' leaves (over 600
	// bytes each) now, and not those of the 300-entry batch: its
	// fragments are in the value log with either threshold.
	if extra < 100*600 || extra > 300*600 {
		t.Fatalf("the same appends took %d bytes more of the LSM tree with the current threshold than with 256 bytes, want the 100 small batches' leaves (60 to 180 KB)", extra)
	}
	round(256, "old again")
	round(0, "new again")
}
