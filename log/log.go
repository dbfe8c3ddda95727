// Package log is agentlog's log core: it validates agent records, turns them
// into leaves, sequences them in batches (group commit) and stores entries,
// tiles and tree state in one fsynced Badger transaction per batch.
//
// A leaf is one compact JSON object (at most [MaxLeafSize] bytes) whose first
// key is "time", the log's NTP-anchored time of sequencing in RFC 3339 UTC
// with nanoseconds, non-decreasing with the index; then, in a fixed order,
// kind, principal, role, agent, session, task, seq, action, tool, resource,
// outcome, attributes and sig (docs/api.md).
// Leaf hashes and the tree follow RFC 6962; the tree's tiles follow
// c2sp.org/tlog-tiles (package tree).
//
// Badger key layout: "b/" keys hold the entries, as fragments of
// tlog-tiles entry bundles (bundle.go), and "f/entries" records that
// layout; "x/" and "m/" hold the query indexes (index.go, docs/query.md);
// keys starting with "t/" belong to package tree, "i/" to package
// identity, "a/" to package anomaly.
//
// Durability contract: [Log.Append] returns only once its entries, their
// index keys, the tiles that cover them and the tree state are committed
// and fsynced in one transaction. An append whose commit has not started
// within Config.CommitWait, or whose context ends before, fails with
// nothing of it written ([ErrStalled], or the context's error).
package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/tree"
)

// ErrNotFound is returned for an entry index beyond the tree.
var ErrNotFound = agentlog.NotFound("not found")

// Config configures a Log. Zero values take the documented defaults.
type Config struct {
	// Dir is the Badger directory (created if missing).
	Dir string
	// Clock gives the time stamped on leaves; default time.Now. The server
	// passes the NTP-disciplined clock.
	Clock func() time.Time
	// MaxBatch caps the entries of one commit (default 8192).
	MaxBatch int
	// MaxBatchBytes caps the leaf bytes of one commit (default 4 MiB; a
	// Badger transaction must stay well below its memtable's 15%).
	MaxBatchBytes int
	// MaxPending caps the entries waiting for the sequencer; beyond it
	// appends fail with ErrPushback (default 262144).
	MaxPending int
	// CommitWait is how long an append may wait in the queue for its
	// commit to start (default DefaultCommitWait, at most MaxCommitWait).
	// Beyond it the storage is stalled: the append is withdrawn, nothing
	// of it is written, and it fails with ErrStalled. An append whose
	// commit has started waits for that commit's outcome.
	CommitWait time.Duration
	// Logger receives Badger's warnings and the log's own messages.
	Logger *slog.Logger
	// Registerer receives the log's Prometheus metrics (may be nil).
	Registerer prometheus.Registerer
	// GCInterval is how often the value log is garbage-collected (default
	// 10m). Entries are never deleted, but right-edge partial tiles are
	// rewritten by every batch and leave garbage behind.
	GCInterval time.Duration

	// TileCache is how many full hash tiles readers keep in memory (16 KiB
	// each with their interior nodes); 0 takes tree.DefaultCacheTiles.
	TileCache int

	// DiskReserve is the free space, beyond what Badger's open files may
	// still grow by, below which appends fail with ErrDiskFull (default
	// DefaultDiskReserve): room for memtable flushes and compactions.
	DiskReserve int64
	// ValueLogFileSize is the size of Badger's value log files (default
	// Badger's, 1 GiB). The newest one grows into sparse space, so the
	// free space appends need includes what it may still take.
	ValueLogFileSize int64

	// BulkLoad turns off the fsync of every batch. It is for building
	// synthetic logs only: an acknowledged entry is then not durable until
	// Close.
	BulkLoad bool

	valueLogFileSize int64 // tests shrink it to exercise GC
	valueThreshold   int64 // tests write as older versions did
	noIndex          bool  // benchmarks measure the cost of the indexes
}

// valueThreshold is the size from which Badger stores a value in its value
// log rather than in its LSM tree. Badger fsyncs the value log on every
// commit, with or without new data in it, and a sync with nothing to write
// takes less than half the time of one with a page to write, and a
// quarter of the CPU (docs/benchmarks.md: "Small batches in the LSM
// tree"). At 4 KiB, a small batch (one to a few entries: a lightly loaded
// log, or a gateway's group commit) leaves the value log untouched, so its
// commit writes and syncs only the memtable's log; the fragments of larger
// batches, which carry the bulk of the bytes under load, still go to the
// value log. The stored layout does not depend on it: a directory written
// with another threshold (256 bytes before) opens and reads the same
// (TestValueThresholdChange).
const valueThreshold = 4 << 10

// Log is an open agentlog log.
type Log struct {
	noIndex bool
	db      *badger.DB
	tree    *tree.Tree
	seq     *sequencer
	m       *metrics
	log     *slog.Logger

	ackGate atomic.Pointer[AckGate]

	disk     *diskGuard
	stopGC   chan struct{} // stops the GC and disk loops
	gcDone   chan struct{}
	diskDone chan struct{}
	// scrubDone: the scrub loop (storagefault.go) ended.
	scrubDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the log in cfg.Dir and resumes from its durable
// state: the tree is loaded from its stored state, never rebuilt.
func Open(cfg Config) (*Log, error) {
	if cfg.Dir == "" {
		return nil, errors.New("log: no data directory given")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 8192
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 4 << 20
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1 << 18
	}
	if cfg.MaxPending < MaxEntriesPerRequest {
		cfg.MaxPending = MaxEntriesPerRequest
	}
	switch {
	case cfg.CommitWait == 0:
		cfg.CommitWait = DefaultCommitWait
	case cfg.CommitWait < 0 || cfg.CommitWait > MaxCommitWait:
		return nil, fmt.Errorf("log: the commit-wait budget %s is not between 0 and %s", cfg.CommitWait, MaxCommitWait)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
	}
	if cfg.GCInterval <= 0 {
		cfg.GCInterval = 10 * time.Minute
	}
	// Values of valueThreshold bytes or more (the entry fragments of all
	// but small batches, and full tiles) go to Badger's value log, written
	// once and never compacted; the LSM tree holds only keys and pointers.
	// This more than doubles append throughput over keeping leaves in the
	// LSM tree (docs/benchmarks.md). Compression is off: it costs CPU on
	// the append path and on every compaction.
	// Badger only logs a failed fsync of its value log and reports the
	// commit as done; its logger counts them so the sequencer can refuse
	// such a commit (commitTxn).
	vlogSyncErrors := new(atomic.Uint64)
	bg := new(backgroundErrors) // its flushes' and compactions' errors, for /healthz
	opts := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(!cfg.BulkLoad).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{cfg.Logger, vlogSyncErrors, bg}).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithValueThreshold(valueThreshold)
	if cfg.valueThreshold > 0 {
		opts = opts.WithValueThreshold(cfg.valueThreshold)
	}
	if cfg.ValueLogFileSize > 0 {
		opts = opts.WithValueLogFileSize(cfg.ValueLogFileSize)
	}
	if cfg.valueLogFileSize > 0 {
		// Small files and memtables, so tests see flushes, compactions
		// and several value log files.
		opts = opts.WithValueLogFileSize(cfg.valueLogFileSize).WithMemTableSize(256 << 10).WithBaseTableSize(64 << 10).WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2)
	}
	if smallTables { // the fault suite's binary (faultinject.go)
		opts = opts.WithMemTableSize(256 << 10).WithBaseTableSize(64 << 10).WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening the database in %s: %w", cfg.Dir, err)
	}
	t, err := tree.OpenWithOptions(db, tree.Options{CacheTiles: cfg.TileCache})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("loading the tree: %w", err)
	}
	if err := migrateEntries(db, t.Size(), cfg.Logger); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.DiskReserve <= 0 {
		cfg.DiskReserve = DefaultDiskReserve
	}
	disk := newDiskGuard(cfg.Dir, cfg.DiskReserve, db.Opts().ValueLogFileSize, db.Opts().MemTableSize)
	m := newMetrics(cfg.Registerer)
	m.treeSize.Set(float64(t.Size()))
	m.registerDisk(cfg.Registerer, disk)
	seq, err := newSequencer(db, t, cfg.Clock, m, disk, cfg)
	if seq != nil {
		seq.vlogSyncErrors = vlogSyncErrors
		seq.storage.bg = bg
		seq.storage.commitWait = cfg.CommitWait
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	l := &Log{noIndex: cfg.noIndex, db: db, tree: t, seq: seq, m: m, log: cfg.Logger, disk: disk, stopGC: make(chan struct{}), gcDone: make(chan struct{}), diskDone: make(chan struct{}), scrubDone: make(chan struct{})}
	go l.gcLoop(cfg.GCInterval)
	go func() { defer close(l.diskDone); disk.run(time.Second, l.stopGC) }()
	go func() { defer close(l.scrubDone); l.scrubLoop(time.Second, l.stopGC) }()
	return l, nil
}

// gcLoop reclaims value log space left by rewritten partial tiles.
func (l *Log) gcLoop(every time.Duration) {
	defer close(l.gcDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stopGC:
			return
		case <-t.C:
			if l.disk.full.Load() {
				// GC writes a new value log file before it deletes
				// the old one.
				continue
			}
			if n, err := l.collectGarbage(); err != nil {
				l.log.Warn("value log garbage collection", "err", err)
			} else if n > 0 {
				l.log.Info("value log garbage collected", "files", n)
			}
		}
	}
}

// gcDiscardRatio is the share of garbage that makes a value log file
// worth rewriting.
const gcDiscardRatio = 0.5

// collectGarbage rewrites value log files that are at least half garbage,
// until none is left; it returns how many files it rewrote.
func (l *Log) collectGarbage() (int, error) {
	n := 0
	for {
		err := l.db.RunValueLogGC(gcDiscardRatio)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("value log GC: %w", err)
		}
		n++
	}
}

// Append validates nothing further: recs must come from ParseAppendRequest
// (or be otherwise validated). It encodes the leaves, queues them and waits
// until they are durable. All records of one call are sequenced together,
// consecutively, or none is. If their commit has not started within
// Config.CommitWait, or ctx ends first, they are withdrawn and Append fails
// with ErrStalled (or ctx's error): nothing of them is written. Once their
// commit has started, Append returns its outcome, however long it takes
// and whatever ctx does: an error from the sequencing means nothing was
// acknowledged. (An AckGate's wait, after the commit, still ends with
// ctx.)
func (l *Log) Append(ctx context.Context, p Principal, kind string, recs []Record) ([]Appended, error) {
	return l.AppendWith(ctx, p, kind, recs, nil)
}

// Extra builds one more key for the transaction that commits an Append's
// entries, from their results; the key is then durable exactly when the
// entries are (package identity stores idempotency results this way).
// ttl <= 0 means the key never expires. It runs on the sequencer's
// goroutine: keep it quick.
type Extra func(res []Appended) (key, value []byte, ttl time.Duration)

// AppendWith is Append with an extra key written in the same transaction.
func (l *Log) AppendWith(ctx context.Context, p Principal, kind string, recs []Record, extra Extra) ([]Appended, error) {
	start := time.Now()
	tails := make([]leafTail, len(recs))
	terms := make([][]byte, len(recs))
	for i := range recs {
		t, err := encodeTail(kind, p, &recs[i])
		if err != nil {
			return nil, fmt.Errorf("entries[%d]: %w", i, err)
		}
		tails[i] = t
		if !l.noIndex {
			terms[i] = appendTerms(nil, kind, p, &recs[i])
		}
	}
	res, err := l.seq.add(ctx, tails, terms, extra)
	if err == nil {
		if err := l.Acknowledge(ctx, res); err != nil {
			return nil, err
		}
	}
	if err == nil {
		l.m.appendSeconds.Observe(time.Since(start).Seconds())
	}
	return res, err
}

// Import stores leaves verbatim as the entries from index at, which must
// be the tree size when they are committed: a standby copies its active
// log's entries this way (package mirror). Each leaf must be a leaf this
// log's Append could have made, with times not before the previous leaf's;
// the indexes are built from them as for appended entries. It returns once
// they are durable, or with an error wrapping ErrInvalid and nothing
// stored.
func (l *Log) Import(ctx context.Context, at uint64, leaves [][]byte) error {
	if len(leaves) == 0 {
		return nil
	}
	return l.seq.addImport(ctx, at, leaves)
}

// ErrNotAcknowledged is matched by the error of an append whose entries
// were committed here but not acknowledged, because its AckGate failed
// (package mirror's replicated durability: the bucket was not reached in
// time, or the node was superseded). The entries are in this log; a retry
// with the same idempotency key answers with them once they are
// acknowledged, and a retry without one appends them again.
var ErrNotAcknowledged = errors.New("committed locally but not acknowledged")

// NotAcknowledgedError is the error of such an append, with its
// committed entries.
type NotAcknowledgedError struct {
	Entries []Appended
	Err     error // the gate's
}

func (e *NotAcknowledgedError) Error() string {
	return fmt.Sprintf("entries %d to %d are committed locally but not acknowledged: %v", e.Entries[0].Index, e.Entries[len(e.Entries)-1].Index, e.Err)
}

// Acknowledge waits for the AckGate, if one is set, to cover res: entries
// committed earlier, answered again (an idempotent retry). It fails as an
// append whose gate failed does.
func (l *Log) Acknowledge(ctx context.Context, res []Appended) error {
	g := l.ackGate.Load()
	if g == nil || len(res) == 0 {
		return nil
	}
	if err := (*g)(ctx, res[len(res)-1].Index+1); err != nil {
		return &NotAcknowledgedError{Entries: res, Err: err}
	}
	return nil
}

func (e *NotAcknowledgedError) Unwrap() []error { return []error{ErrNotAcknowledged, e.Err} }

// An AckGate holds back the answer to an append until the tree size covers
// its entries somewhere beyond the local disk (package mirror's replicated
// durability waits until they are in the bucket under a published
// checkpoint). It returns nil once size is covered, or an error if ctx ends
// or it never will be.
type AckGate func(ctx context.Context, size uint64) error

// SetAckGate makes every later Append wait for g after the local commit;
// nil removes the gate.
func (l *Log) SetAckGate(g AckGate) {
	if g == nil {
		l.ackGate.Store(nil)
		return
	}
	l.ackGate.Store(&g)
}

// Unfence lets appends in again after Fence (a standby that took over).
func (l *Log) Unfence() { l.seq.unfence() }

// ErrFenced is wrapped by the error of every append after Fence.
var ErrFenced = errors.New("log refuses appends")

// Fence makes every later append fail with an error wrapping ErrFenced and
// cause (package mirror fences a log superseded by another node). It
// returns once every append queued before it is committed, with the final
// size: nothing is sequenced beyond it.
func (l *Log) Fence(cause error) uint64 {
	l.seq.fence(fmt.Errorf("%w: %w", ErrFenced, cause))
	return l.tree.Size()
}

// DB returns the log's Badger database, for packages that keep their own
// state beside the log under their own key prefix (package identity uses
// "i/", package anomaly "a/"). They must never write keys under "b/",
// "e/", "f/", "m/", "t/" or "x/".
func (l *Log) DB() *badger.DB { return l.db }

// Tree returns the log's tree (read-only use).
func (l *Log) Tree() *tree.Tree { return l.tree }

// Size returns the committed tree size.
func (l *Log) Size() uint64 { return l.tree.Size() }

// Entry returns the leaf at index i.
func (l *Log) Entry(i uint64) ([]byte, error) {
	if i >= l.tree.Size() {
		return nil, fmt.Errorf("entry %d: %w (tree size %d)", i, ErrNotFound, l.tree.Size())
	}
	var out []byte
	err := l.db.View(func(txn *badger.Txn) error {
		r := newEntryReader(txn)
		defer r.close()
		return r.read(i, func(v []byte) error {
			out = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading entry %d: %w", i, err)
	}
	return out, nil
}

// Entries returns the leaves at indexes [start, start+n), all of which must
// be below the committed size. The leaves share one allocation.
func (l *Log) Entries(start, n uint64) ([][]byte, error) {
	b, err := l.EntryBundle(start, n)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, n)
	for len(b) > 0 {
		leaf, rest, err := nextEntry(b)
		if err != nil {
			return nil, fmt.Errorf("reading entries [%d, %d): %w", start, start+n, err)
		}
		out = append(out, leaf)
		b = rest
	}
	return out, nil
}

// EntryBundle returns the entries [start, start+n) in the
// c2sp.org/tlog-tiles entry bundle encoding: each entry as a 2-byte
// big-endian length and its bytes.
func (l *Log) EntryBundle(start, n uint64) ([]byte, error) {
	if n == 0 || start+n > l.tree.Size() || start+n < start {
		return nil, fmt.Errorf("entries [%d, %d): %w (tree size %d)", start, start+n, ErrNotFound, l.tree.Size())
	}
	var out []byte
	err := l.db.View(func(txn *badger.Txn) error {
		return forEachEntry(txn, start, start+n, func(_ uint64, leaf []byte) (bool, error) {
			out = append(out, byte(len(leaf)>>8), byte(len(leaf)))
			out = append(out, leaf...)
			return false, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading entries [%d, %d): %w", start, start+n, err)
	}
	return out, nil
}

// Disk returns the free space of the database's file system as of the
// last check (every second and before every batch) and the space appends
// need.
func (l *Log) Disk() DiskStatus { return l.disk.status() }

// QueueDepth returns the number of entries waiting to be committed.
func (l *Log) QueueDepth() int64 { return l.seq.queued.Load() }

// Close stops accepting appends, commits what is queued and closes the
// database.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.seq.close()
		close(l.stopGC)
		<-l.gcDone
		<-l.diskDone
		<-l.scrubDone
		if err := l.db.Close(); err != nil {
			l.closeErr = fmt.Errorf("closing the database: %w", err)
		}
	})
	return l.closeErr
}

// badgerLogger routes Badger's messages to slog, dropping its chatty
// informational lines.
type badgerLogger struct {
	l *slog.Logger
	// vlogSyncErrors counts Badger's "Error while curlf sync" messages:
	// Badger v4 logs a failed fsync of its value log from the write path
	// (value.go, valueLog.write) and goes on to report the commit as
	// done, so the log is how the failure can be seen.
	vlogSyncErrors *atomic.Uint64
	// bg records the errors of Badger's background writes (memtable
	// flushes, compactions), which it retries by itself.
	bg *backgroundErrors
}

func (b badgerLogger) Errorf(f string, a ...any) {
	if strings.HasPrefix(f, badgerValueLogSyncError) && b.vlogSyncErrors != nil {
		b.vlogSyncErrors.Add(1)
	}
	msg := fmt.Sprintf(f, a...)
	b.bg.note(msg)
	b.l.Error("badger: " + msg)
}

// badgerValueLogSyncError starts the message Badger logs when it cannot
// fsync its value log.
const badgerValueLogSyncError = "Error while curlf sync"

func (b badgerLogger) Warningf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	b.bg.note(msg)
	b.l.Warn("badger: " + msg)
}

func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
