// Package checkpointtest holds the fakes the tests of the checkpoint
// packages share: an in-memory tree over transparency-dev/merkle's
// reference implementation (the real tree lives in package tree) and a
// settable system time for the clock.
package checkpointtest

import (
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// MemTree is an in-memory tree of leaves "<prefix>-<index>", with the
// methods the consistency check and the signing loop read.
type MemTree struct {
	t *testonly.Tree
}

// NewMemTree returns a tree of n leaves named after prefix.
func NewMemTree(prefix string, n int) *MemTree {
	m := &MemTree{t: testonly.New(rfc6962.DefaultHasher)}
	m.Add(prefix, n)
	return m
}

// Add appends n leaves named after prefix.
func (m *MemTree) Add(prefix string, n int) {
	for i := range n {
		m.t.AppendData(fmt.Appendf(nil, "%s-%d", prefix, m.t.Size()+uint64(i)))
	}
}

// Size returns the number of leaves.
func (m *MemTree) Size() uint64 { return m.t.Size() }

// RootAt returns the root of the first size leaves.
func (m *MemTree) RootAt(size uint64) ([]byte, error) {
	if size > m.t.Size() {
		return nil, fmt.Errorf("tree has %d leaves, not %d", m.t.Size(), size)
	}
	return m.t.HashAt(size), nil
}

// ConsistencyProof proves the tree of size old a prefix of the tree of
// size size (0 < old <= size).
func (m *MemTree) ConsistencyProof(old, size uint64) ([][]byte, error) {
	if old == 0 || old > size || size > m.t.Size() {
		return nil, fmt.Errorf("no consistency proof from %d to %d in a tree of %d", old, size, m.t.Size())
	}
	return m.t.ConsistencyProof(old, size)
}

// FakeTime is a system time that stands still until advanced.
type FakeTime struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeTime returns a FakeTime at t.
func NewFakeTime(t time.Time) *FakeTime { return &FakeTime{t: t} }

// Now returns the current fake time.
func (f *FakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the fake time forward by d.
func (f *FakeTime) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}
