package log_test

import (
	"context"
	"sync"
	"testing"
	"time"

	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/identity"
)

// openWithIdentity opens a log with cfg and an identity store on it, both
// closed when the test ends.
func openWithIdentity(t *testing.T, cfg alog.Config) (*alog.Log, *identity.Store) {
	t.Helper()
	l, err := alog.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ids, err := identity.Open(l.DB(), l, identity.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	return l, ids
}

// TestIdempotentRetryDuringStall: an idempotent append whose client gives
// up while its commit is held, and a retry with the same key sent before
// the commit returns, are one append: both are answered with the entries
// of the one commit, which the log holds once. (Had the first attempt
// answered its caller with the context's error while its commit went on,
// package identity would have freed the key, and the retry would have
// written the entries a second time.)
func TestIdempotentRetryDuringStall(t *testing.T) {
	l, ids := openWithIdentity(t, alog.Config{Dir: t.TempDir(), CommitWait: time.Minute})
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.SetCommitHook(func(commit func() error) error {
		once.Do(func() {
			close(entered)
			<-release
		})
		return commit()
	})
	p := alog.Principal{ID: "bot-1", Role: "agent", Agent: "bot-1", Session: "0123456789abcdef"}
	recs := []alog.Record{{Action: "retried"}}
	body := []byte(`{"entries":[{"action":"retried"}]}`)
	type result struct {
		res []alog.Appended
		err error
	}
	send := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			res, err := ids.AppendIdempotent(ctx, p, "key-1", body, alog.KindAction, recs)
			ch <- result{res, err}
		}()
		return ch
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := send(ctx)
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the first attempt's commit did not start")
	}
	cancel() // the client gives up
	retry := send(context.Background())
	close(release)
	var got []result
	for _, ch := range []<-chan result{first, retry} {
		select {
		case r := <-ch:
			got = append(got, r)
		case <-time.After(time.Minute):
			t.Fatal("no answer within a minute")
		}
	}
	if l.Size() != 1 {
		t.Fatalf("the log holds %d entries, want the one append (answers %+v)", l.Size(), got)
	}
	for i, r := range got {
		if r.err != nil || len(r.res) != 1 || r.res[0].Index != 0 {
			t.Fatalf("attempt %d: %+v %v, want the one commit's entry at index 0", i, r.res, r.err)
		}
	}
}
