package sink_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentlog/agentlog/log/ocsf"
	"github.com/agentlog/agentlog/log/sink"
)

// TestLimitPublishResume: a sink delivers nothing at or beyond Limit;
// Publish gets positions that only move forward, each already stored
// locally, the last one once Run ends; a failing Publish shows in Status
// and Problems; a sink starts at the higher of Resume's position and the
// stored one (lowered to the log's size), and a sink Resume knows nothing
// of starts per From.
func TestLimitPublishResume(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "db"))
	defer l.Close()
	appendActions(t, l, 100, 0)
	path := filepath.Join(dir, "a.jsonl")
	cfg := sink.Config{Sinks: []sink.Sink{{Name: "a", Type: sink.TypeFile, Path: path, BatchEvents: 9}}}
	var limit atomic.Uint64
	limit.Store(40)
	var mu sync.Mutex
	var published []uint64
	fail := atomic.Bool{}
	pub := func(_ context.Context, name string, next uint64) error {
		if fail.Load() {
			return errors.New("bucket down")
		}
		stored, err := l.Position([]byte("s/pos/"+name), 12345)
		if err != nil || stored < next {
			t.Errorf("published %d before storing it (stored %d, %v)", next, stored, err)
		}
		mu.Lock()
		published = append(published, next)
		mu.Unlock()
		return nil
	}
	r := start(t, sink.Options{Log: l, Config: cfg, Limit: limit.Load, Publish: pub, PublishEvery: 20 * time.Millisecond})
	r.caughtUp(t, 40)
	// Nothing beyond the limit, however long it waits: the next poll
	// after the limit moves delivers the rest.
	if st := r.set.Status()[0]; st.Next != 40 {
		t.Fatalf("next %d beyond the limit 40", st.Next)
	}
	fail.Store(true)
	limit.Store(70)
	r.caughtUp(t, 70)
	deadline := time.Now().Add(30 * time.Second)
	for r.set.Status()[0].PublishError == "" {
		if time.Now().After(deadline) {
			t.Fatal("a failing Publish is not in Status")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p := sink.Problems(r.set.Status()); len(p) != 1 {
		t.Errorf("problems %q, want the publish failure", p)
	}
	fail.Store(false)
	limit.Store(l.Size())
	r.caughtUp(t, l.Size())
	r.stop()
	mu.Lock()
	last := published[len(published)-1]
	for i := 1; i < len(published); i++ {
		if published[i] <= published[i-1] {
			t.Errorf("published %v: not increasing", published)
		}
	}
	mu.Unlock()
	if last != l.Size() {
		t.Errorf("last published %d, want %d (the final publish)", last, l.Size())
	}
	if st := r.set.Status()[0]; st.PublishError != "" || st.Published == nil || *st.Published != l.Size() {
		t.Errorf("status %+v", st)
	}
	src := ocsf.Source{Origin: origin}
	equalLines(t, lines(t, path), want(t, l, src, 0, l.Size()))

	// A takeover: sink a keeps its stored 100 (higher than the published
	// 90), d resumes at the published 105, b at the log's size (the
	// published 10^6 is beyond it), and c, unknown to Resume, from its
	// From ("now").
	appendActions(t, l, 10, 0)
	size := l.Size()
	resume := func(_ context.Context, name string) (uint64, bool, error) {
		switch name {
		case "a":
			return 90, true, nil
		case "b":
			return 1_000_000, true, nil
		case "d":
			return 105, true, nil
		}
		return 0, false, nil
	}
	cfg2 := sink.Config{Sinks: []sink.Sink{
		{Name: "a", Type: sink.TypeFile, Path: filepath.Join(dir, "a2.jsonl")},
		{Name: "b", Type: sink.TypeFile, Path: filepath.Join(dir, "b.jsonl")},
		{Name: "c", Type: sink.TypeFile, Path: filepath.Join(dir, "c.jsonl"), From: "now"},
		{Name: "d", Type: sink.TypeFile, Path: filepath.Join(dir, "d.jsonl")},
	}}
	set, err := sink.New(sink.Options{Log: l, Origin: origin, Config: cfg2, Resume: resume})
	if err != nil {
		t.Fatal(err)
	}
	st := set.Status()
	set.Close()
	if st[0].Next != 100 || st[1].Next != size || st[2].Next != size || st[3].Next != 105 {
		t.Errorf("resumed at %d, %d, %d, %d; want 100, %d, %d, 105", st[0].Next, st[1].Next, st[2].Next, st[3].Next, size, size)
	}
	if p, err := l.Position([]byte("s/pos/d"), 0); err != nil || p != 105 {
		t.Errorf("stored position of d %d, %v; want 105", p, err)
	}
	// A Resume error stops New with it.
	_, err = sink.New(sink.Options{Log: l, Origin: origin, Config: cfg2, Resume: func(context.Context, string) (uint64, bool, error) {
		return 0, false, errors.New("bad object")
	}})
	if err == nil {
		t.Error("New ignored a Resume error")
	}
}
