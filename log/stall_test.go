package log

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agentlog/agentlog/log/query"
)

// commitHold holds the sequencer's next commit (the first after
// holdNextCommit) until release: entered is closed once that commit is
// being held, so its batch has been taken and the sequencer is busy.
type commitHold struct {
	entered, release chan struct{}
}

func holdNextCommit(l *Log) *commitHold {
	h := &commitHold{entered: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	l.SetCommitHook(func(commit func() error) error {
		held := false
		once.Do(func() { held = true })
		if held {
			close(h.entered)
			<-h.release
		}
		return commit()
	})
	return h
}

// within waits for ch, failing the test after a deadline far beyond any
// budget the tests set.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("no %s within a minute", what)
		panic("unreachable")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

type appendResult struct {
	res []Appended
	err error
}

// extraKey is an Extra writing key (an idempotency record, say) with the
// append's first index as its value.
func extraKey(key string) Extra {
	return func(res []Appended) ([]byte, []byte, time.Duration) {
		return []byte(key), fmt.Appendf(nil, "%d", res[0].Index), 0
	}
}

func readKey(t *testing.T, l *Log, key string) (string, bool) {
	t.Helper()
	var v []byte
	err := l.DB().View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v), true
}

// searchAction returns the indexes the query indexes find for action.
func searchAction(t *testing.T, l *Log, action string) []uint64 {
	t.Helper()
	f, err := query.Parse(url.Values{"action": {action}})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	if _, err := l.Search(context.Background(), f, 0, l.Size(), 0, func(i uint64, _ []byte) error {
		got = append(got, i)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestStalledAppendsWithdrawn: while a commit does not return, the
// appends queued behind it fail with ErrStalled once the commit-wait
// budget has elapsed, and leave nothing: the queue is empty again, the
// withdrawals are counted, and after the commit is released its own
// append is acknowledged, later appends take the next indexes, and the
// tree, the query indexes and the extra keys hold exactly the committed
// appends (a withdrawn append's extra key, an idempotency record, is free
// to be written by a later append), before and after a reopen.
func TestStalledAppendsWithdrawn(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, CommitWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Append(ctx, admin, KindAction, recs(2, "before")); err != nil {
		t.Fatal(err)
	}
	hold := holdNextCommit(l)
	held := make(chan appendResult, 1)
	go func() {
		res, err := l.AppendWith(ctx, admin, KindAction, recs(3, "held"), extraKey("i/test/held"))
		held <- appendResult{res, err}
	}()
	within(t, hold.entered, "held commit")

	const stalled = 6
	results := make(chan appendResult, stalled)
	for j := range stalled {
		go func() {
			res, err := l.AppendWith(ctx, admin, KindAction, recs(2, "withdrawn"), extraKey(fmt.Sprintf("i/test/w%d", j)))
			results <- appendResult{res, err}
		}()
	}
	for range stalled {
		r := within(t, results, "answer to a stalled append")
		if !errors.Is(r.err, ErrStalled) || !errors.Is(r.err, ErrWithdrawn) || r.res != nil {
			t.Fatalf("append behind a held commit: %+v %v, want ErrStalled", r.res, r.err)
		}
	}
	select {
	case r := <-held:
		t.Fatalf("the held batch's append was answered before its commit returned: %+v %v", r.res, r.err)
	default:
	}
	// The held batch's three entries are still queued; the withdrawn
	// ones are not.
	if q := l.QueueDepth(); q != 3 {
		t.Fatalf("queue depth %d while the held batch commits, want its 3 entries", q)
	}
	if n := counterValue(t, l.seq.m.withdrawn.WithLabelValues(withdrawnBudget)); n != stalled {
		t.Fatalf("withdrawn (budget) counter %v, want %d", n, stalled)
	}

	close(hold.release)
	r := within(t, held, "answer to the held append")
	if r.err != nil || len(r.res) != 3 || r.res[0].Index != 2 {
		t.Fatalf("held append after release: %+v %v", r.res, r.err)
	}
	l.SetCommitHook(nil)
	// A withdrawn append's extra key is free: a later append writes it.
	after, err := l.AppendWith(ctx, admin, KindAction, recs(2, "after"), extraKey("i/test/w0"))
	if err != nil || after[0].Index != 5 {
		t.Fatalf("append after the release: %+v %v", after, err)
	}
	if q := l.QueueDepth(); q != 0 {
		t.Fatalf("queue depth %d after the stall, want 0", q)
	}

	check := func(l *Log) {
		t.Helper()
		if l.Size() != 7 {
			t.Fatalf("size %d, want 7 (2 before, 3 held, 2 after)", l.Size())
		}
		all, err := l.Entries(0, 7)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range all {
			var leaf struct{ Action string }
			if err := json.Unmarshal(e, &leaf); err != nil {
				t.Fatal(err)
			}
			want := map[bool]string{true: "before", false: "held"}[i < 2]
			if i >= 5 {
				want = "after"
			}
			if leaf.Action != want {
				t.Fatalf("entry %d: %s, want action %q", i, e, want)
			}
		}
		if got := searchAction(t, l, "withdrawn"); len(got) != 0 {
			t.Fatalf("the indexes find withdrawn appends at %v", got)
		}
		if got := searchAction(t, l, "held"); fmt.Sprint(got) != "[2 3 4]" {
			t.Fatalf("the indexes find the held append at %v", got)
		}
		if got := searchAction(t, l, "after"); fmt.Sprint(got) != "[5 6]" {
			t.Fatalf("the indexes find the later append at %v", got)
		}
		if v, ok := readKey(t, l, "i/test/held"); !ok || v != "2" {
			t.Fatalf("the held append's extra key: %q %v", v, ok)
		}
		if v, ok := readKey(t, l, "i/test/w0"); !ok || v != "5" {
			t.Fatalf("extra key reused by the later append: %q %v, want 5", v, ok)
		}
		for j := 1; j < stalled; j++ {
			if v, ok := readKey(t, l, fmt.Sprintf("i/test/w%d", j)); ok {
				t.Fatalf("withdrawn append %d's extra key was written: %q", j, v)
			}
		}
	}
	check(l)
	root := l.Tree().Root()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, nil)
	defer l.Close()
	check(l)
	if !bytes.Equal(l.Tree().Root(), root) {
		t.Fatal("root changed across the reopen")
	}
}

// TestCanceledAppendWithdrawn: an append whose context ends while it is
// queued behind a commit that does not return is withdrawn (an error
// wrapping ErrWithdrawn and context.Canceled, counted as client_gone) and
// never written, even once the commit returns; the held batch's append,
// whose context ends while its commit runs, is answered only by that
// commit: its receipt once the commit returns, not a context error for
// entries that are then written.
func TestCanceledAppendWithdrawn(t *testing.T) {
	l, err := Open(Config{Dir: t.TempDir(), CommitWait: MaxCommitWait})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hold := holdNextCommit(l)
	heldCtx, cancelHeld := context.WithCancel(context.Background())
	held := make(chan appendResult, 1)
	go func() {
		res, err := l.Append(heldCtx, admin, KindAction, recs(1, "held"))
		held <- appendResult{res, err}
	}()
	within(t, hold.entered, "held commit")

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan appendResult, 1)
	go func() {
		res, err := l.AppendWith(ctx, admin, KindAction, recs(2, "gone"), extraKey("i/test/gone"))
		gone <- appendResult{res, err}
	}()
	// Cancel once it is queued behind the held batch (1 entry).
	waitQueue(t, l, 3)
	cancel()
	r := within(t, gone, "answer to the canceled append")
	if !errors.Is(r.err, ErrWithdrawn) || !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrStalled) {
		t.Fatalf("canceled queued append: %+v %v, want ErrWithdrawn and context.Canceled", r.res, r.err)
	}
	if n := counterValue(t, l.seq.m.withdrawn.WithLabelValues(withdrawnClientGone)); n != 1 {
		t.Fatalf("withdrawn (client_gone) counter %v, want 1", n)
	}
	if q := l.QueueDepth(); q != 1 {
		t.Fatalf("queue depth %d, want the held batch's 1 entry", q)
	}

	cancelHeld()
	// Its outcome is the held commit's: the withdrawn append behind it
	// was answered, so was the cancel, and it waits yet.
	select {
	case r := <-held:
		t.Fatalf("the held append was answered while its commit was held: %+v %v", r.res, r.err)
	default:
	}
	close(hold.release)
	r = within(t, held, "answer to the held append")
	if r.err != nil || len(r.res) != 1 || r.res[0].Index != 0 {
		t.Fatalf("held append whose context ended, once its commit returned: %+v %v, want its receipt", r.res, r.err)
	}
	l.SetCommitHook(nil)
	res, err := l.Append(context.Background(), admin, KindAction, recs(1, "after"))
	if err != nil || res[0].Index != 1 {
		t.Fatalf("append after the release: %+v %v, want index 1", res, err)
	}
	all, err := l.Entries(0, l.Size())
	if err != nil || len(all) != 2 || !bytes.Contains(all[0], []byte(`"held"`)) || !bytes.Contains(all[1], []byte(`"after"`)) {
		t.Fatalf("entries after the release: %q %v, want the held and the later append", all, err)
	}
	if got := searchAction(t, l, "gone"); len(got) != 0 {
		t.Fatalf("the indexes find the withdrawn append at %v", got)
	}
	if _, ok := readKey(t, l, "i/test/gone"); ok {
		t.Fatal("the withdrawn append's extra key was written")
	}
	if q := l.QueueDepth(); q != 0 {
		t.Fatalf("queue depth %d, want 0", q)
	}
}

// TestWithdrawRace hammers the withdraw (budget and context) against the
// sequencer's take with a budget so short that both happen constantly:
// every caller gets exactly one answer, and it is true: an acknowledged
// append's entries read back once, at its indexes, with its leaf hashes,
// and its extra key holds its index; a withdrawn one (ErrWithdrawn, for
// the budget or its context) left no entry and no extra key; no other
// answer is possible, not even for a caller whose context ended after its
// append was taken. The tree holds nothing else, and the queue is empty
// once every caller is answered. Rounds repeat until both outcomes were
// seen, so the test cannot pass vacuously.
func TestWithdrawRace(t *testing.T) {
	l, err := Open(Config{Dir: t.TempDir(), CommitWait: 200 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const workers, per = 32, 40
	type outcome struct {
		res       []Appended
		withdrawn bool
	}
	var acked, withdrawn int
	outcomes := map[string]outcome{}
	var mu sync.Mutex
	for round := 0; acked == 0 || withdrawn == 0; round++ {
		if round == 40 {
			t.Fatalf("after %d rounds: %d acknowledged, %d withdrawn; want both", round, acked, withdrawn)
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range per {
					id := fmt.Sprintf("%d-%d-%d", round, w, i)
					ctx, cancel := context.WithCancel(context.Background())
					if i%3 == 0 {
						// Some contexts end as the append is queued.
						go cancel()
					}
					res, err := l.AppendWith(ctx, admin, KindAction, []Record{{Action: "race", Resource: id}, {Action: "race", Resource: id + "/b"}}, extraKey("i/race/"+id))
					cancel()
					o := outcome{res: res}
					switch {
					case err == nil:
						if len(res) != 2 || res[1].Index != res[0].Index+1 {
							t.Errorf("%s: receipt %+v", id, res)
						}
					case errors.Is(err, ErrWithdrawn):
						o.withdrawn = true
						if !errors.Is(err, ErrStalled) && !errors.Is(err, context.Canceled) {
							t.Errorf("%s: withdrawn without a reason: %v", id, err)
						}
					default:
						t.Errorf("%s: %v", id, err)
						continue
					}
					mu.Lock()
					outcomes[id] = o
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		acked, withdrawn = 0, 0
		for _, o := range outcomes {
			if o.withdrawn {
				withdrawn++
			} else {
				acked++
			}
		}
	}
	if q := l.QueueDepth(); q != 0 {
		t.Fatalf("queue depth %d after every caller was answered", q)
	}
	all, err := l.Entries(0, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	for i, e := range all {
		var leaf struct{ Resource string }
		if err := json.Unmarshal(e, &leaf); err != nil {
			t.Fatal(err)
		}
		if _, dup := seen[leaf.Resource]; dup {
			t.Fatalf("entry %d: %s written twice", i, leaf.Resource)
		}
		seen[leaf.Resource] = uint64(i)
	}
	landed := 0
	for id, o := range outcomes {
		i, in := seen[id]
		v, hasKey := readKey(t, l, "i/race/"+id)
		switch {
		case o.withdrawn:
			if in || hasKey {
				t.Fatalf("%s was withdrawn, but entry %d (%v) or its extra key (%v) was written", id, i, in, hasKey)
			}
		default:
			if !in || i != o.res[0].Index || v != fmt.Sprint(i) || seen[id+"/b"] != i+1 {
				t.Fatalf("%s acknowledged at %d: entry at %d (%v), extra key %q", id, o.res[0].Index, i, in, v)
			}
			for j, a := range o.res {
				if leafHash(all[a.Index]) != a.LeafHash {
					t.Fatalf("%s entry %d: leaf hash differs from its receipt", id, j)
				}
			}
			landed++
		}
	}
	if len(all) != 2*landed {
		t.Fatalf("the tree has %d entries, the callers account for %d", len(all), 2*landed)
	}
	t.Logf("%d appends: %d acknowledged, %d withdrawn", len(outcomes), acked, withdrawn)
}

// waitQueue waits until the log's queue holds n entries.
func waitQueue(t *testing.T, l *Log, n int64) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		for l.QueueDepth() != n {
			time.Sleep(time.Millisecond)
		}
		close(done)
	}()
	within(t, done, fmt.Sprintf("queue of %d entries", n))
}

// TestImportStalled: a standby's imports have no commit-wait budget. An
// import queued behind a commit that does not return is still waiting
// when an append queued after it has been refused with ErrStalled, and is
// committed once the commit returns; an import whose context ends while
// it is queued is withdrawn and never stored, and the same leaves import
// afterwards; the standby's tree then equals its source's.
func TestImportStalled(t *testing.T) {
	ctx := context.Background()
	src := openTest(t, t.TempDir(), nil)
	defer src.Close()
	for _, n := range []int{3, 2, 2} {
		if _, err := src.Append(ctx, admin, KindAction, recs(n, "read")); err != nil {
			t.Fatal(err)
		}
	}
	leaves, err := src.Entries(0, src.Size())
	if err != nil {
		t.Fatal(err)
	}
	dst, err := Open(Config{Dir: t.TempDir(), CommitWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	hold := holdNextCommit(dst)
	first := make(chan error, 1)
	go func() { first <- dst.Import(ctx, 0, leaves[:3]) }()
	within(t, hold.entered, "held commit")
	second := make(chan error, 1)
	go func() { second <- dst.Import(ctx, 3, leaves[3:5]) }()
	waitQueue(t, dst, 5)
	if _, err := dst.Append(ctx, admin, KindAction, recs(1, "late")); !errors.Is(err, ErrStalled) {
		t.Fatalf("append behind the held commit: %v, want ErrStalled", err)
	}
	select {
	case err := <-second:
		t.Fatalf("the import queued before the refused append was answered while the commit was held: %v", err)
	default:
	}
	cctx, cancel := context.WithCancel(ctx)
	third := make(chan error, 1)
	go func() { third <- dst.Import(cctx, 5, leaves[5:7]) }()
	waitQueue(t, dst, 7)
	cancel()
	if err := within(t, third, "answer to the canceled import"); !errors.Is(err, ErrWithdrawn) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled queued import: %v, want ErrWithdrawn", err)
	}
	close(hold.release)
	if err := within(t, first, "answer to the held import"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, second, "answer to the waiting import"); err != nil {
		t.Fatalf("the import that waited out the budget: %v", err)
	}
	dst.SetCommitHook(nil)
	if dst.Size() != 5 {
		t.Fatalf("size %d after the stall, want 5 (the withdrawn import not stored)", dst.Size())
	}
	if err := dst.Import(ctx, 5, leaves[5:7]); err != nil {
		t.Fatalf("importing the withdrawn leaves again: %v", err)
	}
	if !bytes.Equal(src.Tree().Root(), dst.Tree().Root()) || dst.Size() != src.Size() {
		t.Fatal("the standby's tree differs from its source's")
	}
	if err := dst.CheckIndex(ctx); err != nil {
		t.Fatalf("the standby's indexes: %v", err)
	}
}
