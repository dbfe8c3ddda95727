package signer

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/agentlog/agentlog/checkpoint"
)

const (
	testOrigin      = "example.com/agentlog"
	exampleLogSKey  = "PRIVATE+KEY+example.com/agentlog+caec1adf+AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"
	exampleTimeSKey = "PRIVATE+KEY+example.com/agentlog/time+0ee49295+BAICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC"
)

func testKeys(t testing.TB, now func() time.Time) *checkpoint.Keys {
	t.Helper()
	k, err := checkpoint.NewKeys(testOrigin, exampleLogSKey, exampleTimeSKey, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeTime is a system time that stands still until advanced.
type fakeTime struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeTime) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// memTree is an in-memory Source over transparency-dev/merkle's reference
// tree. (The real tree lives in package tree.)
type memTree struct {
	t *testonly.Tree
}

func newMemTree(prefix string, n int) *memTree {
	m := &memTree{t: testonly.New(rfc6962.DefaultHasher)}
	m.add(prefix, n)
	return m
}

func (m *memTree) add(prefix string, n int) {
	for i := range n {
		m.t.AppendData(fmt.Appendf(nil, "%s-%d", prefix, m.t.Size()+uint64(i)))
	}
}

func (m *memTree) Size() uint64 { return m.t.Size() }

func (m *memTree) RootAt(size uint64) ([]byte, error) {
	if size > m.t.Size() {
		return nil, fmt.Errorf("tree has %d leaves, not %d", m.t.Size(), size)
	}
	return m.t.HashAt(size), nil
}

func (m *memTree) ConsistencyProof(old, size uint64) ([][]byte, error) {
	if old == 0 || old > size || size > m.t.Size() {
		return nil, fmt.Errorf("no consistency proof from %d to %d in a tree of %d", old, size, m.t.Size())
	}
	return m.t.ConsistencyProof(old, size)
}
