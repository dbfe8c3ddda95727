package log

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog/tree"
)

// ErrPushback is returned when the sequencer queue is full. Callers should
// retry later; the HTTP layer answers 503 with Retry-After.
var ErrPushback = errors.New("append queue is full, retry later")

// ErrClosed is returned for appends after Close has begun.
var ErrClosed = errors.New("log is shutting down")

// ErrStalled is wrapped by the error of an append that was still queued,
// its commit not yet started, when its commit-wait budget
// (Config.CommitWait) ran out: the storage is stalled (a commit that does
// not return, as when the database cannot flush its memtables or an fsync
// hangs). The append was withdrawn from the queue and nothing of it was
// written, so it is safe to retry. The HTTP layer answers 503 with
// Retry-After.
var ErrStalled = errors.New("storage is stalled")

// ErrWithdrawn is wrapped by the error of an append withdrawn from the
// queue before its commit started, because its commit-wait budget ran out
// (with ErrStalled) or its context ended (with the context's error):
// nothing of it was written, and it never will be.
var ErrWithdrawn = errors.New("the append was withdrawn before its commit started: nothing of it was written")

// DefaultCommitWait is the default of Config.CommitWait, and MaxCommitWait
// the longest it may be.
const (
	DefaultCommitWait = 10 * time.Second
	MaxCommitWait     = 10 * time.Minute
)

// Appended describes one durably sequenced entry.
type Appended struct {
	Index    uint64
	LeafHash [32]byte
	Time     time.Time
}

// pending is one append request waiting for the sequencer.
//
// Its state decides, by compare-and-swap, who owns it once queued: the
// sequencer, which takes it into a batch (pendingQueued to pendingTaken)
// and answers it through done, or its waiter, which withdraws it
// (pendingQueued to pendingWithdrawn) when its budget or its context ends
// and answers its caller itself. Exactly one of them wins, so an append
// is either committed and answered with its result, or withdrawn with
// nothing of it written: never both, never neither. The sequencer reads
// no other field of a pending before it has taken it.
type pending struct {
	state atomic.Uint32
	tails []leafTail
	terms [][]byte // index terms of each leaf (appendTerms)
	extra Extra    // may be nil
	// An import (Log.Import) carries whole leaves to store verbatim at
	// index at; it is committed alone.
	imported [][]byte
	at       uint64
	done     chan struct{}
	res      []Appended
	err      error
}

// The states of a pending.
const (
	pendingQueued uint32 = iota
	pendingTaken
	pendingWithdrawn
)

// Why a waiter withdrew its append (the label of
// agentlog_append_withdrawn_total).
const (
	withdrawnBudget     = "budget"
	withdrawnClientGone = "client_gone"
)

// take claims p for the sequencer; false means its waiter withdrew it and
// it must be skipped.
func take(p *pending) bool {
	return p.state.CompareAndSwap(pendingQueued, pendingTaken)
}

// withdraw claims p for its waiter, before the sequencer has taken it:
// p will never be written. It leaves the queue's accounting and frees
// what p holds (the sequencer drops p itself unread when it reaches it).
// False means the sequencer has taken p, which will be answered through
// done.
func (s *sequencer) withdraw(p *pending, n int, reason string) bool {
	if !p.state.CompareAndSwap(pendingQueued, pendingWithdrawn) {
		return false
	}
	p.tails, p.terms, p.extra, p.imported = nil, nil, nil, nil
	s.queued.Add(-int64(n))
	s.m.queueDepth.Set(float64(s.queued.Load()))
	s.m.withdrawn.WithLabelValues(reason).Inc()
	if reason == withdrawnBudget {
		s.storage.stalled(s.log, s.commitWait)
	}
	return true
}

// sequencer assigns indexes and times to queued leaves, and commits each
// batch (entries, tiles and tree state) in one fsynced Badger transaction
// before answering its waiters.
type sequencer struct {
	db    *badger.DB
	tree  *tree.Tree
	clock func() time.Time
	m     *metrics
	log   *slog.Logger
	disk  *diskGuard
	// failCommit, if set, is called with the transaction's commit in its
	// place (tests inject storage errors with it: export_test.go).
	failCommit atomic.Pointer[func(commit func() error) error]
	storage    storageState
	// vlogSyncErrors counts the value-log fsync failures Badger logged
	// (badgerLogger); a commit during which it moved is a failed one.
	vlogSyncErrors *atomic.Uint64
	// undo, if set, undoes a batch whose commit failed (undoOf); it is
	// committed before anything else. Sequencer goroutine only.
	undo func(*badger.Txn) error

	maxBatch   int // entries per batch
	maxBytes   int // leaf bytes per batch
	maxPending int64
	commitWait time.Duration // how long an append may wait to be taken into a batch
	// budgetTick is closed and replaced every budgetTickOf(commitWait)
	// (tickBudgets): waiting appends look at their budget then, so that
	// no append needs a timer of its own (a timer per append cost the
	// library path 5% to 8% of its throughput).
	budgetTick atomic.Pointer[chan struct{}]

	mu      sync.Mutex // guards closed, fenced and sends on queue
	closed  bool
	fenced  error // set by fence: appends fail with it
	queue   chan *pending
	queued  atomic.Int64 // entries queued, not yet committed
	stopped chan struct{}

	lastTime time.Time // time of the last sequenced leaf; sequencer goroutine only
	buf      []byte
	postings *batchPostings // reused per batch; sequencer goroutine only
}

func newSequencer(db *badger.DB, t *tree.Tree, clock func() time.Time, m *metrics, disk *diskGuard, cfg Config) (*sequencer, error) {
	s := &sequencer{
		db:         db,
		tree:       t,
		clock:      clock,
		m:          m,
		log:        cfg.Logger,
		disk:       disk,
		maxBatch:   cfg.MaxBatch,
		maxBytes:   cfg.MaxBatchBytes,
		maxPending: int64(cfg.MaxPending),
		commitWait: cfg.CommitWait,
		queue:      make(chan *pending, cfg.MaxPending),
		stopped:    make(chan struct{}),
		postings:   newBatchPostings(),
	}
	if n := t.Size(); n > 0 {
		// Resume the time from the last durable leaf so times never go
		// backwards across a restart, whatever the clock says now.
		err := db.View(func(txn *badger.Txn) error {
			r := newEntryReader(txn)
			defer r.close()
			return r.read(n-1, func(v []byte) error {
				lt, err := leafTime(v)
				s.lastTime = lt
				return err
			})
		})
		if err != nil {
			return nil, fmt.Errorf("reading the last entry (index %d): %w", n-1, err)
		}
	}
	tick := make(chan struct{})
	s.budgetTick.Store(&tick)
	go s.run()
	go s.tickBudgets()
	return s, nil
}

// budgetTickOf is how often waiting appends look at their commit-wait
// budget: a tenth of it, from 1 ms to 1 s, so an append is withdrawn at
// most about 10% past its budget.
func budgetTickOf(budget time.Duration) time.Duration {
	return min(max(budget/10, time.Millisecond), time.Second)
}

// tickBudgets wakes the waiting appends every budgetTickOf(commitWait)
// until the sequencer stops.
func (s *sequencer) tickBudgets() {
	t := time.NewTicker(budgetTickOf(s.commitWait))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			next := make(chan struct{})
			close(*s.budgetTick.Swap(&next))
		case <-s.stopped:
			return
		}
	}
}

// add queues tails and waits until they are durable. An append the
// sequencer has not yet taken into a batch when its commit-wait budget
// runs out, or when ctx ends, is withdrawn: it fails with ErrStalled (or
// ctx's error) and nothing of it is ever written. Once taken, it waits
// for its commit's outcome whatever the budget and ctx do, so that an
// error always means that nothing was acknowledged, and a success is
// never lost: a caller recording the outcome (package identity's
// idempotency results) never records an append as failed that its commit
// then writes. The wait is bounded by the one commit under way.
func (s *sequencer) add(ctx context.Context, tails []leafTail, terms [][]byte, extra Extra) ([]Appended, error) {
	p := &pending{tails: tails, terms: terms, extra: extra, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.fenced != nil {
		s.mu.Unlock()
		return nil, s.fenced
	}
	n := int64(len(tails))
	if s.queued.Add(n) > s.maxPending {
		s.queued.Add(-n)
		s.mu.Unlock()
		s.m.pushbacks.Inc()
		return nil, ErrPushback
	}
	select {
	case s.queue <- p:
	default:
		s.queued.Add(-n)
		s.mu.Unlock()
		s.m.pushbacks.Inc()
		return nil, ErrPushback
	}
	s.mu.Unlock()
	s.m.queueDepth.Set(float64(s.queued.Load()))
	queuedAt := time.Now()
wait:
	for {
		select {
		case <-p.done:
			return p.res, p.err
		case <-*s.budgetTick.Load():
			if time.Since(queuedAt) < s.commitWait {
				continue
			}
			if s.withdraw(p, len(tails), withdrawnBudget) {
				return nil, fmt.Errorf("%w: the append waited %s in the queue and its commit did not start (the commit before it has not returned): %w", ErrStalled, s.commitWait, ErrWithdrawn)
			}
			break wait
		case <-ctx.Done():
			if s.withdraw(p, len(tails), withdrawnClientGone) {
				return nil, fmt.Errorf("%w: %w", ErrWithdrawn, ctx.Err())
			}
			break wait
		}
	}
	// The budget ran out, or ctx ended, after the sequencer took the
	// append into a batch: its outcome is that commit's.
	<-p.done
	return p.res, p.err
}

// addImport queues leaves to store verbatim at index at and waits until
// they are durable. An import has no commit-wait budget: its caller (a
// standby's follower, package mirror) is one loop with no client to
// answer, it has at most one import queued, and it would only queue the
// same leaves again. It is withdrawn, though, if ctx ends before the
// sequencer takes it, so that a follower that stopped leaves nothing
// behind it; once taken, it waits for its commit's outcome, as appends do.
func (s *sequencer) addImport(ctx context.Context, at uint64, leaves [][]byte) error {
	p := &pending{imported: leaves, at: at, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queued.Add(int64(len(leaves)))
	select {
	case s.queue <- p:
	default:
		s.queued.Add(-int64(len(leaves)))
		s.mu.Unlock()
		return ErrPushback
	}
	s.mu.Unlock()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		if s.withdraw(p, len(leaves), withdrawnClientGone) {
			return fmt.Errorf("%w: %w", ErrWithdrawn, ctx.Err())
		}
		<-p.done
		return p.err
	}
}

// fence makes every later add fail with err and returns once everything
// queued before it is committed (or failed).
func (s *sequencer) fence(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.stopped
		return
	}
	if s.fenced == nil {
		s.fenced = err
	}
	// The queue is FIFO: once this empty marker is answered, everything
	// queued before it has been committed (or withdrawn). A blocking send
	// is safe under mu: the sequencer goroutine never takes it. The marker
	// is never withdrawn and has no budget: a fence must not return while
	// an append queued before it may still be committed.
	p := &pending{done: make(chan struct{})}
	s.queue <- p
	s.mu.Unlock()
	<-p.done
}

// unfence lets appends in again.
func (s *sequencer) unfence() {
	s.mu.Lock()
	s.fenced = nil
	s.mu.Unlock()
}

// close stops accepting appends, commits everything already queued and
// returns when the sequencer goroutine has exited.
func (s *sequencer) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.queue)
	}
	s.mu.Unlock()
	<-s.stopped
}

func (s *sequencer) run() {
	defer close(s.stopped)
	var batch []*pending
	for {
		p, ok := s.next()
		if !ok {
			return
		}
		if !take(p) {
			continue // withdrawn by its waiter
		}
		if p.imported != nil {
			s.commitImport(p)
			continue
		}
		batch = append(batch[:0], p)
		n, size := len(p.tails), tailBytes(p.tails)
		var imp *pending
		// Take whatever else is already waiting, up to the batch limits.
	fill:
		for n < s.maxBatch && size < s.maxBytes {
			select {
			case q, ok := <-s.queue:
				if !ok {
					break fill
				}
				if !take(q) {
					continue // withdrawn by its waiter
				}
				if q.imported != nil {
					imp = q
					break fill
				}
				batch = append(batch, q)
				n += len(q.tails)
				size += tailBytes(q.tails)
			default:
				break fill
			}
		}
		s.commit(batch, n)
		if imp != nil {
			s.commitImport(imp)
		}
	}
}

// next waits for the next queued request. While a failed batch is not yet
// undone it retries the undo every undoRetry, so the log recovers by itself
// when the storage does, with no append to prompt it.
func (s *sequencer) next() (*pending, bool) {
	for s.undo != nil {
		t := time.NewTimer(undoRetry)
		select {
		case p, ok := <-s.queue:
			t.Stop()
			return p, ok
		case <-t.C:
			s.runUndo()
		}
	}
	p, ok := <-s.queue
	return p, ok
}

func tailBytes(ts []leafTail) int {
	n := 0
	for _, t := range ts {
		n += leafPrefixLen + len(t)
	}
	return n
}

// commit sequences one batch and answers its waiters.
func (s *sequencer) commit(batch []*pending, n int) {
	if n == 0 { // only fence markers
		for _, p := range batch {
			close(p.done)
		}
		return
	}
	start := time.Now()
	err := s.commitBatch(batch, n)
	for _, p := range batch {
		if err != nil {
			p.res = nil
			p.err = err
		}
		close(p.done)
	}
	s.queued.Add(-int64(n))
	s.m.queueDepth.Set(float64(s.queued.Load()))
	s.m.batchSize.Observe(float64(n))
	s.m.commitSeconds.Observe(time.Since(start).Seconds())
	if err == nil {
		s.m.treeSize.Set(float64(s.tree.Size()))
	} else {
		s.m.commitErrors.Inc()
	}
}

func (s *sequencer) commitBatch(batch []*pending, n int) error {
	defer s.postings.reset() // after the transaction is committed or discarded
	if err := s.disk.check(); err != nil {
		return err
	}
	if err := s.runUndo(); err != nil {
		return err
	}
	now := s.clock()
	if now.Before(s.lastTime) {
		now = s.lastTime
	}
	base := s.tree.Size()
	hashes := make([][]byte, 0, n)
	leaves := 0
	// The batch's leaves go back to back into one buffer, each in the
	// entry bundle encoding (2-byte length, then the leaf), so that the
	// stored fragments are slices of it (bundle.go). Every leaf of the
	// batch starts with the same time.
	var pbuf [leafPrefixLen]byte
	prefix := appendLeaf(pbuf[:0], now, nil)
	buf := s.buf[:0]
	for _, p := range batch {
		for _, t := range p.tails {
			n := len(prefix) + len(t)
			buf = append(buf, byte(n>>8), byte(n))
			buf = append(buf, prefix...)
			buf = append(buf, t...)
		}
	}
	// Slice the shared buffer into leaves only after it stopped growing.
	off := 0
	for _, p := range batch {
		p.res = make([]Appended, len(p.tails))
		for j, t := range p.tails {
			l := buf[off+2 : off+2+len(prefix)+len(t)]
			off += 2 + len(l)
			h := leafHash(l)
			hashes = append(hashes, h[:])
			p.res[j] = Appended{Index: base + uint64(leaves), LeafHash: h, Time: now}
			leaves++
		}
	}
	upd, err := s.tree.Prepare(hashes)
	if err != nil {
		return fmt.Errorf("extending the tree: %w", err)
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fragments(buf, base, txn.Set); err != nil {
		return fmt.Errorf("writing the entries from index %d: %w", base, err)
	}
	i := base
	for _, p := range batch {
		for _, t := range p.terms {
			s.postings.add(t, i)
			i++
		}
	}
	if err := s.postings.write(txn); err != nil {
		return err
	}
	if err := txn.Set(timeKey(now, base), nil); err != nil {
		return fmt.Errorf("writing the time index: %w", err)
	}
	var extraKeys [][]byte
	for _, p := range batch {
		if p.extra == nil {
			continue
		}
		k, v, ttl := p.extra(p.res)
		extraKeys = append(extraKeys, k)
		e := badger.NewEntry(k, v)
		if ttl > 0 {
			e = e.WithTTL(ttl)
		}
		if err := txn.SetEntry(e); err != nil {
			return fmt.Errorf("writing an append's extra key: %w", err)
		}
	}
	if err := upd.Write(txn); err != nil {
		return fmt.Errorf("writing tiles: %w", err)
	}
	old, err := s.readOld(extraKeys)
	if err != nil {
		return err
	}
	if err := s.commitTxn(txn); err != nil {
		s.undo = s.undoOf(buf, base, [][]byte{timeKey(now, base)}, upd, old)
		return fmt.Errorf("%w: committing batch at index %d: %w", ErrStorage, base, err)
	}
	s.tree.Apply(upd)
	s.lastTime = now
	if cap(buf) <= 8<<20 {
		s.buf = buf
	} else {
		s.buf = nil
	}
	return nil
}

// commitImport stores an import's leaves verbatim at its index, with
// their index terms, in one transaction, and answers it.
func (s *sequencer) commitImport(p *pending) {
	p.err = s.importLeaves(p.at, p.imported)
	if p.err == nil {
		s.m.treeSize.Set(float64(s.tree.Size()))
	}
	s.queued.Add(-int64(len(p.imported)))
	close(p.done)
}

func (s *sequencer) importLeaves(at uint64, leaves [][]byte) error {
	defer s.postings.reset()
	base := s.tree.Size()
	if at != base {
		return fmt.Errorf("%w: importing at index %d, but the tree has %d leaves", ErrInvalid, at, base)
	}
	if err := s.runUndo(); err != nil {
		return err
	}
	last := s.lastTime
	var buf []byte
	var timeKeys [][]byte
	hashes := make([][]byte, len(leaves))
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for j, l := range leaves {
		if len(l) > MaxLeafSize {
			return fmt.Errorf("%w: imported leaf %d is %d bytes, more than %d", ErrInvalid, base+uint64(j), len(l), MaxLeafSize)
		}
		terms, t, err := termsOfLeaf(l)
		if err != nil {
			return fmt.Errorf("%w: imported leaf %d: %v", ErrInvalid, base+uint64(j), err)
		}
		if t.Before(last) {
			return fmt.Errorf("%w: imported leaf %d is timed %v, before the previous leaf (%v)", ErrInvalid, base+uint64(j), t, last)
		}
		if j == 0 || !t.Equal(last) {
			timeKeys = append(timeKeys, timeKey(t, base+uint64(j)))
			if err := txn.Set(timeKey(t, base+uint64(j)), nil); err != nil {
				return fmt.Errorf("writing the time index: %w", err)
			}
		}
		last = t
		s.postings.add(terms, base+uint64(j))
		buf = append(buf, byte(len(l)>>8), byte(len(l)))
		buf = append(buf, l...)
		h := leafHash(l)
		hashes[j] = h[:]
	}
	upd, err := s.tree.Prepare(hashes)
	if err != nil {
		return fmt.Errorf("extending the tree: %w", err)
	}
	if err := fragments(buf, base, txn.Set); err != nil {
		return fmt.Errorf("writing the entries from index %d: %w", base, err)
	}
	if err := s.postings.write(txn); err != nil {
		return err
	}
	if err := upd.Write(txn); err != nil {
		return fmt.Errorf("writing tiles: %w", err)
	}
	if err := s.commitTxn(txn); err != nil {
		s.undo = s.undoOf(buf, base, timeKeys, upd, nil)
		return fmt.Errorf("%w: committing imported entries at index %d: %w", ErrStorage, base, err)
	}
	s.tree.Apply(upd)
	s.lastTime = last
	return nil
}

// leafHash is the RFC 6962 leaf hash SHA-256(0x00 || leaf).
func leafHash(l []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(l)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
