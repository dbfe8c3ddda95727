package log

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/agentlog/agentlog/tree"
)

// ErrStorage wraps an append's error when the database failed to write or
// fsync its batch. Nothing of the batch was acknowledged; the log undoes
// whatever of it reached the database before it writes anything else, and
// appends succeed again once a write does. The HTTP layer answers 503 with
// Retry-After (507 when the error is ENOSPC).
var ErrStorage = errors.New("the database failed to write")

// slowCommit is how long a commit may wait on write and fsync before the
// log calls its storage slow.
const slowCommit = time.Second

// slowFor is how long a slow commit keeps the storage called slow after
// it ended.
const slowFor = 30 * time.Second

// undoRetry is how often an idle log retries undoing a failed batch.
const undoRetry = 500 * time.Millisecond

// storageFault, if set, runs every commit of the sequencer's write
// transactions (batches and their undo) in place of commit: it may fail,
// delay or run commit. Only binaries built with the faultinject tag set it
// (faultinject.go), for the fault suite.
var storageFault func(commit func() error) error

// smallTables, if set, gives the database small memtables and tables, so
// that the fault suite sees flushes and compactions within seconds. Only
// binaries built with the faultinject tag set it (faultinject.go).
var smallTables bool

// StorageStatus is what the log knows of its storage's health.
type StorageStatus struct {
	// Failing is set from a failed commit until a write succeeds.
	Failing      bool       `json:"failing"`
	LastError    string     `json:"last_error,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	Failures     uint64     `json:"failed_commits"`
	// CommitSeconds is how long the running commit has waited, or the
	// last one took; Slow is set while that is over a second (for the
	// last commit, for slowFor after it ended).
	CommitSeconds float64 `json:"commit_seconds"`
	Slow          bool    `json:"slow"`
	// CommitWaitSeconds is the commit-wait budget (Config.CommitWait):
	// an append whose commit has not started within it is withdrawn and
	// refused (ErrStalled). StalledAppends counts those since the start,
	// the last at LastStalledAt.
	CommitWaitSeconds float64    `json:"commit_wait_seconds"`
	StalledAppends    uint64     `json:"stalled_appends"`
	LastStalledAt     *time.Time `json:"last_stalled_at,omitempty"`
	// Stalled is set for slowFor after an append was refused so.
	Stalled bool `json:"stalled"`
	// BackgroundError is the last error Badger reported in its own
	// writes (a memtable flush, a compaction) if that was less than
	// backgroundFor ago, and BackgroundErrorAt when; BackgroundErrors
	// counts them since the start. Badger retries those writes by
	// itself; while a flush fails, commits wait once its memtables are
	// full (and the appends behind them fail with ErrStalled after
	// Config.CommitWait).
	BackgroundError   string     `json:"background_error,omitempty"`
	BackgroundErrorAt *time.Time `json:"background_error_at,omitempty"`
	BackgroundErrors  uint64     `json:"background_errors"`
	// After an episode of background errors the log reads every entry
	// once (scrubLoop): ScrubbedAt is when the last such read ended,
	// Unreadable how many entries it could not read, the first at
	// FirstUnreadable. An unreadable entry is data the database lost.
	ScrubbedAt      *time.Time `json:"scrubbed_at,omitempty"`
	Unreadable      uint64     `json:"unreadable_entries,omitempty"`
	FirstUnreadable *uint64    `json:"first_unreadable,omitempty"`
}

// backgroundFor is how long after Badger last reported an error in its
// background writes the storage is called degraded: it retries a failed
// flush every second and a compaction at its next run, so an error is
// reported again while the fault lasts.
const backgroundFor = 10 * time.Second

// backgroundErrors records the errors Badger reports (only in its log)
// from its background writes.
type backgroundErrors struct {
	mu    sync.Mutex
	last  string
	at    time.Time
	count uint64
}

// badgerBackgroundErrors start (or are) the messages Badger v4 logs when
// a memtable flush or a compaction fails (db.go, levels.go);
// TestBadgerBackgroundMessages pins them.
var badgerBackgroundErrors = []string{
	"error flushing memtable to disk",
	"LOG Compact FAILED",
	"While running doCompact",
	"While compacting level 0",
	"While running compact def",
}

// note records msg if it is one of Badger's background write errors.
func (b *backgroundErrors) note(msg string) {
	if b == nil {
		return
	}
	for _, p := range badgerBackgroundErrors {
		if strings.Contains(msg, p) {
			b.mu.Lock()
			b.last, b.at = msg, time.Now().UTC()
			b.count++
			b.mu.Unlock()
			return
		}
	}
}

// storageState is the sequencer's record of its commits, read by Status.
type storageState struct {
	started atomic.Int64 // UnixNano of the running commit's start, 0 if none
	last    atomic.Int64 // duration of the last commit, in ns
	ended   atomic.Int64 // UnixNano of the last commit's end

	bg *backgroundErrors // set by Open

	commitWait     time.Duration // set by Open
	stalledCount   atomic.Uint64 // appends withdrawn for the budget
	stalledAt      atomic.Int64  // UnixNano of the last
	stalledLogged  atomic.Int64  // UnixNano of the last log line about them
	stalledSkipped atomic.Uint64 // withdrawn since that line

	scrubMu sync.Mutex
	scrub   *scrubResult // the last scrub's, nil before one

	mu       sync.Mutex
	failing  bool
	since    time.Time
	lastErr  string
	failures uint64
}

// stallLogEvery is how often at most the log says that appends are
// withdrawn because the storage is stalled: during a stall every append
// is, and one line each would flood the log.
const stallLogEvery = 10 * time.Second

// stalled records an append withdrawn because its commit did not start
// within the budget, and logs it at most every stallLogEvery.
func (st *storageState) stalled(l *slog.Logger, budget time.Duration) {
	st.stalledCount.Add(1)
	now := time.Now()
	st.stalledAt.Store(now.UnixNano())
	n := st.stalledSkipped.Add(1)
	last := st.stalledLogged.Load()
	if now.Sub(time.Unix(0, last)) < stallLogEvery || !st.stalledLogged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	st.stalledSkipped.Add(-n)
	l.Warn("storage is stalled: appends whose commit did not start within the commit-wait budget are refused (503), with nothing written", "withdrawn", n, "budget", budget, "commit_seconds", st.running().Seconds())
}

// running returns how long the running commit has waited, 0 if none.
func (st *storageState) running() time.Duration {
	if t := st.started.Load(); t != 0 {
		return time.Since(time.Unix(0, t))
	}
	return 0
}

func (st *storageState) failed(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.failing {
		st.failing, st.since = true, time.Now().UTC()
	}
	st.lastErr = err.Error()
	st.failures++
}

func (st *storageState) succeeded() {
	st.mu.Lock()
	st.failing = false
	st.mu.Unlock()
}

func (st *storageState) status() StorageStatus {
	st.mu.Lock()
	s := StorageStatus{Failing: st.failing, LastError: st.lastErr, Failures: st.failures}
	if st.failing {
		since := st.since
		s.FailingSince = &since
	}
	st.mu.Unlock()
	d := time.Duration(st.last.Load())
	s.Slow = d > slowCommit && time.Since(time.Unix(0, st.ended.Load())) < slowFor
	if t := st.started.Load(); t != 0 {
		if r := time.Since(time.Unix(0, t)); r > d {
			d, s.Slow = r, r > slowCommit
		}
	}
	s.CommitSeconds = d.Seconds()
	s.CommitWaitSeconds = st.commitWait.Seconds()
	s.StalledAppends = st.stalledCount.Load()
	if t := st.stalledAt.Load(); t != 0 {
		at := time.Unix(0, t).UTC()
		s.LastStalledAt = &at
		s.Stalled = time.Since(at) < slowFor
	}
	st.scrubMu.Lock()
	if r := st.scrub; r != nil {
		at := r.at
		s.ScrubbedAt, s.Unreadable = &at, r.unreadable
		if r.unreadable > 0 {
			first := r.first
			s.FirstUnreadable = &first
		}
	}
	st.scrubMu.Unlock()
	if st.bg != nil {
		st.bg.mu.Lock()
		s.BackgroundErrors = st.bg.count
		if st.bg.count > 0 && time.Since(st.bg.at) < backgroundFor {
			at := st.bg.at
			s.BackgroundError, s.BackgroundErrorAt = st.bg.last, &at
		}
		st.bg.mu.Unlock()
	}
	return s
}

// errValueLogSync fails a commit during which Badger logged that it could
// not fsync its value log: it reports such a commit as done.
var errValueLogSync = errors.New("the database could not fsync its value log")

// commitTxn commits txn (fsynced: the DB is opened with SyncWrites),
// through the test hooks if set, and records its duration and outcome.
func (s *sequencer) commitTxn(txn *badger.Txn) error {
	commit := txn.Commit
	if f := s.failCommit.Load(); f != nil {
		commit = func() error { return (*f)(txn.Commit) }
	}
	if storageFault != nil {
		c := commit
		commit = func() error { return storageFault(c) }
	}
	start := time.Now()
	s.storage.started.Store(start.UnixNano())
	var vlogErrs uint64
	if s.vlogSyncErrors != nil {
		vlogErrs = s.vlogSyncErrors.Load()
	}
	err := commit()
	if err == nil && s.vlogSyncErrors != nil && s.vlogSyncErrors.Load() != vlogErrs {
		// Badger wrote the batch but could not fsync its value log, and
		// said so only in its log: the batch is not durable.
		err = errValueLogSync
	}
	end := time.Now()
	s.storage.last.Store(int64(end.Sub(start)))
	s.storage.ended.Store(end.UnixNano())
	s.storage.started.Store(0)
	if err != nil {
		s.storage.failed(err)
	} else {
		s.storage.succeeded()
	}
	return err
}

// undoOf returns what undoes a batch whose commit failed: Badger applies
// a transaction to its memtable before it syncs the write-ahead log, so
// after a write or fsync error the database may show all of the batch,
// part of it or none, while the tree and the identity state were never
// advanced over it. The undo deletes the batch's entry fragments, index
// and time keys, puts back the values its extra keys had (old, read before
// the commit), and undoes its tiles and tree state.
func (s *sequencer) undoOf(buf []byte, base uint64, timeKeys [][]byte, upd *tree.Update, old []oldValue) func(*badger.Txn) error {
	var keys [][]byte
	fragments(buf, base, func(k, _ []byte) error {
		keys = append(keys, k)
		return nil
	})
	keys = append(keys, s.postings.keyList()...)
	keys = append(keys, timeKeys...)
	return func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		for _, o := range old {
			var err error
			switch {
			case !o.found:
				err = txn.Delete(o.key)
			case o.expires != 0:
				ttl := time.Until(time.Unix(int64(o.expires), 0))
				if ttl <= 0 {
					err = txn.Delete(o.key)
					break
				}
				err = txn.SetEntry(badger.NewEntry(o.key, o.value).WithTTL(ttl))
			default:
				err = txn.Set(o.key, o.value)
			}
			if err != nil {
				return err
			}
		}
		return upd.Undo(txn)
	}
}

// oldValue is an extra key's value before a batch wrote it.
type oldValue struct {
	key, value []byte
	found      bool
	expires    uint64
}

// readOld reads the current values of keys, for undoOf.
func (s *sequencer) readOld(keys [][]byte) ([]oldValue, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	old := make([]oldValue, len(keys))
	err := s.db.View(func(txn *badger.Txn) error {
		for i, k := range keys {
			old[i].key = k
			it, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if old[i].value, err = it.ValueCopy(nil); err != nil {
				return err
			}
			old[i].found, old[i].expires = true, it.ExpiresAt()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the keys a batch replaces: %w", err)
	}
	return old, nil
}

// runUndo commits the pending undo, if any. Until it has, nothing else is
// written.
func (s *sequencer) runUndo() error {
	if s.undo == nil {
		return nil
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := s.undo(txn); err != nil {
		return fmt.Errorf("undoing the failed batch: %w", err)
	}
	if err := s.commitTxn(txn); err != nil {
		return fmt.Errorf("%w: undoing the failed batch: %w", ErrStorage, err)
	}
	s.undo = nil
	return nil
}

// Storage returns the health of the log's storage.
func (l *Log) Storage() StorageStatus { return l.seq.storage.status() }

// scrubResult is what a scrub found.
type scrubResult struct {
	at         time.Time
	unreadable uint64
	first      uint64
}

// scrubLoop reads every entry once after each episode of errors in
// Badger's background writes (none for backgroundFor after the last): a
// compaction that fails to write one of its tables drops that table's
// keys and reports nothing (Badger v4.9.6,
// TestBadgerCompactionDropsBuildErrors), so reading the entries back is
// how such a loss is seen. It checks every tick whether one is due.
func (l *Log) scrubLoop(tick time.Duration, stop <-chan struct{}) {
	bg := l.seq.storage.bg
	if bg == nil {
		return
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var scrubbed uint64 // the error count the last scrub followed
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		bg.mu.Lock()
		count, at := bg.count, bg.at
		bg.mu.Unlock()
		if count == scrubbed || time.Since(at) < backgroundFor {
			continue
		}
		scrubbed = count
		r := l.scrubEntries(stop)
		if r == nil {
			return
		}
		l.seq.storage.scrubMu.Lock()
		l.seq.storage.scrub = r
		l.seq.storage.scrubMu.Unlock()
		if r.unreadable > 0 {
			l.log.Error("entries cannot be read after the database's background writes failed: the database lost data", "unreadable", r.unreadable, "first", r.first)
		} else {
			l.log.Info("every entry read back after the database's background write errors")
		}
	}
}

// scrubEntries reads the entries [0, size) in bundles, and one by one
// where a bundle cannot be read; it returns nil if stop closed.
func (l *Log) scrubEntries(stop <-chan struct{}) *scrubResult {
	r := &scrubResult{}
	size := l.Size()
	const step = 4096
	for start := uint64(0); start < size; start += step {
		select {
		case <-stop:
			return nil
		default:
		}
		n := min(step, size-start)
		if _, err := l.Entries(start, n); err == nil {
			continue
		}
		for i := start; i < start+n; i++ {
			if _, err := l.Entries(i, 1); err != nil {
				if r.unreadable == 0 {
					r.first = i
				}
				r.unreadable++
			}
		}
	}
	r.at = time.Now().UTC()
	return r
}
