package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/tree"
)

// Defaults of [Config].
const (
	DefaultLeaseTime = 6 * time.Second
	DefaultUploads   = 16
	DefaultTimeout   = 2 * time.Minute
)

// Source is the local log the mirror copies.
type Source interface {
	checkpoint.Prover
	// Size returns the committed tree size.
	Size() uint64
	// Tile returns hash tile (level, index) of width hashes (tree.Tree.Tile).
	Tile(level, index uint64, width int) ([]byte, error)
	// EntryBundle returns the entries [start, start+n) in the entry bundle
	// encoding (log.Log.EntryBundle).
	EntryBundle(start, n uint64) ([]byte, error)
	// Entry returns the leaf at index i.
	Entry(i uint64) ([]byte, error)
}

// Config configures a [Mirror].
type Config struct {
	Bucket *Bucket
	Lock   Lock
	Source Source
	// Keys verify the checkpoints found in the lock and the bucket (only
	// the verifiers are used).
	Keys *checkpoint.Keys
	// Holder names this node in the lock; it must differ between nodes.
	Holder string
	// LeaseTime is how long a lease lasts without renewal (default 6s); a
	// standby takes over after watching the lock unchanged that long.
	LeaseTime time.Duration
	// Uploads bounds concurrent object uploads (default 16).
	Uploads int
	// Timeout bounds one Commit (default 2m).
	Timeout time.Duration
	// OnSuperseded, if set, is called once, on its own goroutine, when the
	// mirror finds another node holding the lock.
	OnSuperseded func(error)
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// A Mirror replicates a log to its bucket: as the local tree grows it
// uploads every new full tile and entry bundle once and the partial ones at
// each size, then swaps the checkpoint into the lock, then writes it as
// the bucket's "checkpoint". The bucket therefore never holds a checkpoint
// whose tiles and bundles are not all there, and a checkpoint the mirror
// committed is exactly one the lock accepted. Methods are safe for
// concurrent use.
type Mirror struct {
	cfg Config
	log *slog.Logger

	lmu     sync.Mutex // serializes lock swaps
	state   LockState  // last state read or swapped
	leaseAt time.Time  // when the last successful swap was sent
	holding bool
	lapsed  bool // Follow saw the lease lapse at state

	umu      sync.Mutex // serializes Commit and Cosigned
	uploaded uint64     // every object of the tree at this size is in the bucket
	cpETag   string     // ETag of the bucket's "checkpoint" as this node last wrote it

	mirrored  atomic.Uint64 // size of the checkpoint last written to the bucket
	published atomic.Pointer[checkpoint.Signed]
	locked    *checkpoint.Signed // the lock's checkpoint when last loaded

	wmu      sync.Mutex
	advanced chan struct{} // closed and replaced at every advance or on supersession

	superseded     atomic.Pointer[error]
	supersededOnce sync.Once

	smu      sync.Mutex // guards the fields below
	lastErr  string
	failures int
	retryAt  time.Time

	objects   *prometheus.CounterVec
	commitDur prometheus.Histogram
}

// New reads the lock's state and returns a mirror that holds no lease yet:
// call Acquire (an active log) or Follow (a standby).
func New(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.Bucket == nil || cfg.Lock == nil || cfg.Source == nil || cfg.Keys == nil || cfg.Holder == "" {
		return nil, errors.New("mirror: New needs Bucket, Lock, Source, Keys and Holder")
	}
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = DefaultLeaseTime
	}
	if cfg.Uploads <= 0 {
		cfg.Uploads = DefaultUploads
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	m := &Mirror{cfg: cfg, log: cfg.Logger, advanced: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.objects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentlog_mirror_objects_total",
		Help: "Objects written to the mirror bucket, by kind (tile, bundle, checkpoint) and result (ok, error).",
	}, []string{"kind", "result"})
	m.commitDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "agentlog_mirror_commit_seconds",
		Help:    "Time to upload what a checkpoint covers, swap it into the lock and write it to the bucket.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.objects, m.commitDur,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentlog_mirror_size", Help: "Tree size of the checkpoint last written to the mirror bucket."},
				func() float64 { return float64(m.mirrored.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentlog_mirror_lag_entries", Help: "Committed entries not yet in the mirror bucket under a checkpoint."},
				func() float64 { return float64(m.Status().LagEntries) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentlog_mirror_lag_seconds", Help: "Age of the oldest committed entry not yet in the mirror bucket; 0 when none."},
				func() float64 { return m.Status().LagSeconds }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentlog_mirror_superseded", Help: "1 once another node holds the log's lock: this one never signs again."},
				func() float64 {
					if m.Superseded() != nil {
						return 1
					}
					return 0
				}),
		)
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// load reads and verifies the lock's state.
func (m *Mirror) load(ctx context.Context) error {
	st, err := m.cfg.Lock.Load(ctx)
	if err != nil {
		return err
	}
	var cp *checkpoint.Signed
	if st.Checkpoint != nil {
		if cp, err = checkpoint.Open(st.Checkpoint, m.cfg.Keys.LogVerifier, m.cfg.Keys.TimeVerifier); err != nil {
			return fmt.Errorf("the lock holds a checkpoint that does not verify with this log's keys (is it another log's lock?): %w", err)
		}
	}
	m.lmu.Lock()
	m.state, m.locked = st, cp
	m.lmu.Unlock()
	return nil
}

// Locked returns the checkpoint the lock held when last read, nil if none.
func (m *Mirror) Locked() *checkpoint.Signed {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	return m.locked
}

// A HeldError reports that another node renewed the lease while Acquire
// watched it.
type HeldError struct {
	Holder string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("another node (%s) holds the log's lock and is renewing it: start this one with --standby, or stop the other", e.Holder)
}

// A BehindError reports a local tree that the lock's checkpoint does not
// extend: it is smaller, or it forked (another node took over and this
// node's later entries are not in the log).
type BehindError struct {
	LocalSize uint64
	Locked    *checkpoint.Signed
	Fork      error // non-nil if the local tree contradicts the lock's checkpoint
}

func (e *BehindError) Error() string {
	if e.Fork != nil {
		return fmt.Sprintf("the local tree (size %d) is not consistent with the checkpoint in the lock (size %d): another node has taken over this log: %v", e.LocalSize, e.Locked.Size, e.Fork)
	}
	return fmt.Sprintf("the local tree (size %d) is behind the checkpoint in the lock (size %d): another node has published more; start this one with --standby", e.LocalSize, e.Locked.Size)
}

// Acquire takes the lease for this node. If another node held it, Acquire
// first watches the lock for the lease time and fails with a *HeldError if
// it changes. The local tree must extend the lock's checkpoint (else a
// *BehindError). On success uploads resume from the lock's checkpoint,
// which is written to the bucket if a crash left it only in the lock.
func (m *Mirror) Acquire(ctx context.Context) error { return m.acquire(ctx, true) }

func (m *Mirror) acquire(ctx context.Context, watch bool) error {
	m.lmu.Lock()
	st := m.state
	m.lmu.Unlock()
	if watch && st.Holder != "" && st.Holder != m.cfg.Holder {
		m.log.Info("waiting to see whether the lock's holder renews its lease", "holder", st.Holder, "lease", m.cfg.LeaseTime)
		var err error
		if st, err = m.watch(ctx, st, false); err != nil {
			return err
		}
	}
	if err := m.load(ctx); err != nil {
		return err
	}
	m.lmu.Lock()
	defer m.lmu.Unlock()
	if m.state.Seq != st.Seq || m.state.Holder != st.Holder {
		return &HeldError{Holder: m.state.Holder}
	}
	if err := m.checkLocalLocked(); err != nil {
		return err
	}
	if err := m.swapLocked(ctx, m.state.Checkpoint); err != nil {
		return fmt.Errorf("taking the log's lock: %w", err)
	}
	m.holding = true
	var size uint64
	if m.locked != nil {
		size = m.locked.Size
	}
	m.uploaded = size
	m.mirrored.Store(size)
	if m.locked != nil {
		m.published.Store(m.locked)
		have, _, err := m.cfg.Bucket.Get(ctx, "checkpoint")
		if err != nil && !errors.Is(err, ErrNotExist) {
			return err
		}
		if string(have) != string(m.locked.Raw) {
			if _, err := m.cfg.Bucket.put(ctx, "checkpoint", m.locked.Raw, checkpointObject, "", false); err != nil {
				return fmt.Errorf("writing the lock's checkpoint to the bucket: %w", err)
			}
		}
	}
	m.log.Info("holding the log's lock", "holder", m.cfg.Holder, "size", size, "bucket", m.cfg.Bucket.Name())
	return nil
}

// watch polls the lock until it stays at st for the lease time. With
// follow, a change restarts the watch; without, it fails with a *HeldError.
func (m *Mirror) watch(ctx context.Context, st LockState, follow bool) (LockState, error) {
	poll := m.cfg.LeaseTime / 6
	since := time.Now()
	for time.Since(since) < m.cfg.LeaseTime {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(poll):
		}
		cur, err := m.cfg.Lock.Load(ctx)
		if err != nil {
			m.log.Warn("reading the lock", "err", err)
			continue
		}
		if cur.Seq != st.Seq || cur.Holder != st.Holder {
			if !follow {
				return cur, &HeldError{Holder: cur.Holder}
			}
			st, since = cur, time.Now()
		}
	}
	return st, nil
}

// checkLocalLocked checks that the local tree extends the lock's checkpoint.
func (m *Mirror) checkLocalLocked() error {
	if m.locked == nil {
		return nil
	}
	size := m.cfg.Source.Size()
	if size < m.locked.Size {
		return &BehindError{LocalSize: size, Locked: m.locked}
	}
	root, err := m.cfg.Source.RootAt(size)
	if err != nil {
		return err
	}
	var ie *checkpoint.InconsistentError
	if err := checkpoint.CheckConsistent(m.locked, size, root, m.cfg.Source); errors.As(err, &ie) {
		return &BehindError{LocalSize: size, Locked: m.locked, Fork: err}
	} else if err != nil {
		return err
	}
	return nil
}

// swapLocked swaps raw (the current checkpoint for a lease renewal) into
// the lock as this node. A changed lock supersedes the mirror.
func (m *Mirror) swapLocked(ctx context.Context, raw []byte) error {
	if err := m.Superseded(); err != nil {
		return err
	}
	sent := time.Now()
	next := LockState{Checkpoint: raw, Holder: m.cfg.Holder, Seq: m.state.Seq + 1}
	st, err := m.cfg.Lock.Swap(ctx, m.state, next)
	for retried := false; errors.Is(err, ErrLockChanged) && !retried; retried = true {
		// A write whose answer was lost (a dropped connection, a
		// retried request) may have been applied: a lock that holds
		// this node's own later state was changed by this node.
		cur, lerr := m.cfg.Lock.Load(ctx)
		if lerr != nil || cur.Holder != m.cfg.Holder || cur.Seq <= m.state.Seq {
			break
		}
		m.log.Info("the lock holds this node's own write whose answer was lost", "seq", cur.Seq)
		if cur.Seq == next.Seq && bytes.Equal(cur.Checkpoint, next.Checkpoint) {
			st, err = cur, nil
			break
		}
		m.state = cur
		next.Seq = cur.Seq + 1
		st, err = m.cfg.Lock.Swap(ctx, m.state, next)
	}
	if errors.Is(err, ErrLockChanged) {
		cur, lerr := m.cfg.Lock.Load(ctx)
		holder := "unknown"
		if lerr == nil {
			holder = cur.Holder
		}
		err = fmt.Errorf("%w: node %s swapped the lock (%v)", checkpoint.ErrSuperseded, holder, err)
		if m.holding {
			m.supersede(err)
		}
		return err
	}
	if err != nil {
		return err
	}
	m.state, m.leaseAt = st, sent
	return nil
}

// supersede records that another node holds the lock, wakes waiters and
// calls OnSuperseded once.
func (m *Mirror) supersede(err error) {
	m.supersededOnce.Do(func() {
		m.superseded.Store(&err)
		m.log.Error("SUPERSEDED: another node holds this log's lock; this node stops signing and refuses appends", "err", err)
		m.wake()
		if m.cfg.OnSuperseded != nil {
			go m.cfg.OnSuperseded(err)
		}
	})
}

// Superseded returns the error that superseded the mirror, nil if none.
func (m *Mirror) Superseded() error {
	if p := m.superseded.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *Mirror) wake() {
	m.wmu.Lock()
	close(m.advanced)
	m.advanced = make(chan struct{})
	m.wmu.Unlock()
}

// leaseValid reports whether this node may still write: its last renewal
// was sent less than five sixths of the lease time ago, so it stops before
// any standby (which waits the whole lease time after it saw the lock
// change) can take over. A lease older than half its time is renewed
// first.
func (m *Mirror) leaseValid(ctx context.Context) error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	if !m.holding {
		return errors.New("this node does not hold the log's lock")
	}
	if time.Since(m.leaseAt) > m.cfg.LeaseTime/2 {
		// The renewal goroutine is late (a busy machine): renew here.
		if err := m.swapLocked(ctx, m.state.Checkpoint); err != nil {
			return err
		}
	}
	if age := time.Since(m.leaseAt); age > m.cfg.LeaseTime*5/6 {
		return fmt.Errorf("the lease was last renewed %v ago: not writing until it is renewed", age.Round(time.Millisecond))
	}
	return nil
}

// LeaseHeld reports whether this node holds the log's lock with a lease
// that is certainly valid (renewed less than five sixths of the lease
// time ago, as leaseValid, but without renewing) and is not superseded:
// what the sinks check before each batch, so that a node cut off from the
// lock stops delivering before a standby can take over.
func (m *Mirror) LeaseHeld() bool {
	if m.Superseded() != nil {
		return false
	}
	m.lmu.Lock()
	defer m.lmu.Unlock()
	return m.holding && time.Since(m.leaseAt) <= m.cfg.LeaseTime*5/6
}

// Commit makes c the bucket's checkpoint: it uploads the tiles and bundles
// c covers that the bucket lacks, swaps c into the lock, then writes it as
// "checkpoint". It is the checkpoint loop's Commit hook: an error leaves
// c unpublished. After failures it waits a growing delay (up to 30s)
// before trying again. An error wrapping checkpoint.ErrSuperseded means
// another node holds the lock.
func (m *Mirror) Commit(c *checkpoint.Signed) error {
	m.umu.Lock()
	defer m.umu.Unlock()
	if err := m.Superseded(); err != nil {
		return err
	}
	m.smu.Lock()
	if wait := time.Until(m.retryAt); wait > 0 {
		last := m.lastErr
		m.smu.Unlock()
		return fmt.Errorf("mirror: waiting to retry after: %s", last)
	}
	m.smu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	err := m.commit(ctx, c)
	m.smu.Lock()
	defer m.smu.Unlock()
	if err != nil {
		if !errors.Is(err, checkpoint.ErrSuperseded) {
			m.failures++
			m.retryAt = time.Now().Add(min(time.Duration(1<<min(m.failures, 10))*250*time.Millisecond, 30*time.Second))
		}
		if m.lastErr != err.Error() {
			m.log.Warn("mirror commit failed", "size", c.Size, "err", err)
		}
		m.lastErr = err.Error()
		return err
	}
	m.commitDur.Observe(time.Since(start).Seconds())
	if m.failures > 0 {
		m.log.Info("mirror recovered", "size", c.Size, "failures", m.failures)
	}
	m.failures, m.lastErr, m.retryAt = 0, "", time.Time{}
	return nil
}

// Cosigned writes c, the checkpoint this node last committed with the
// witnesses' cosignatures added (the same size and root, more signatures),
// as a new version of the bucket's "checkpoint", so that standbys serve it
// witnessed and clients with a witness policy can read from them or from
// the bucket. It writes nothing if a later checkpoint was committed since,
// if the bucket's "checkpoint" is no longer the version this node wrote
// (If-Match: another node took over), or while the lease is not certainly
// this node's. The version is retained like every other.
func (m *Mirror) Cosigned(c *checkpoint.Signed) error {
	m.umu.Lock()
	defer m.umu.Unlock()
	if err := m.Superseded(); err != nil {
		return err
	}
	pub := m.published.Load()
	if pub == nil || pub.Size != c.Size || !bytes.Equal(pub.Root, c.Root) || bytes.Equal(pub.Raw, c.Raw) || m.cpETag == "" {
		return nil
	}
	if _, err := checkpoint.Open(c.Raw, m.cfg.Keys.LogVerifier, m.cfg.Keys.TimeVerifier); err != nil {
		return fmt.Errorf("the cosigned checkpoint: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	if err := m.leaseValid(ctx); err != nil {
		return err
	}
	etag, err := m.cfg.Bucket.put(ctx, "checkpoint", c.Raw, checkpointObject, m.cpETag, false)
	m.count("checkpoint", err)
	if errors.Is(err, ErrPrecondition) {
		return nil // no longer ours to add to
	}
	if err != nil {
		return err
	}
	m.cpETag = etag
	m.published.Store(c)
	return nil
}

func (m *Mirror) commit(ctx context.Context, c *checkpoint.Signed) error {
	if c.Size < m.uploaded {
		return fmt.Errorf("checkpoint size %d is below the mirrored size %d", c.Size, m.uploaded)
	}
	// Renew a lease that is getting old (the renewal goroutine may be
	// late): this is also where a node that was away finds out it has
	// been superseded.
	m.lmu.Lock()
	var err error
	if !m.holding {
		err = errors.New("this node does not hold the log's lock")
	} else if time.Since(m.leaseAt) > m.cfg.LeaseTime/3 {
		err = m.swapLocked(ctx, m.state.Checkpoint)
	}
	m.lmu.Unlock()
	if err != nil {
		return err
	}
	if err := m.upload(ctx, m.uploaded, c.Size); err != nil {
		return err
	}
	m.uploaded = c.Size
	m.lmu.Lock()
	err = m.swapLocked(ctx, c.Raw)
	if err == nil {
		m.locked = c
	}
	m.lmu.Unlock()
	if err != nil {
		return err
	}
	etag, err := m.cfg.Bucket.put(ctx, "checkpoint", c.Raw, checkpointObject, "", false)
	m.count("checkpoint", err)
	if err != nil {
		return err
	}
	m.cpETag = etag
	m.published.Store(c)
	m.mirrored.Store(c.Size)
	m.wake()
	return nil
}

// upload writes the objects of the tree at size new that the tree at size
// old lacks, cfg.Uploads at a time.
func (m *Mirror) upload(ctx context.Context, old, new uint64) error {
	paths := growth(old, new)
	if len(paths) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan agentlog.TilePath)
	errs := make(chan error, m.cfg.Uploads)
	var wg sync.WaitGroup
	for range min(m.cfg.Uploads, len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := m.uploadOne(ctx, p); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, p := range paths {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

func (m *Mirror) uploadOne(ctx context.Context, p agentlog.TilePath) error {
	if err := m.leaseValid(ctx); err != nil {
		return err
	}
	var data []byte
	var err error
	kind := "tile"
	if p.Entries {
		kind = "bundle"
		data, err = m.cfg.Source.EntryBundle(p.Index*tree.TileWidth, uint64(p.Width))
	} else {
		data, err = m.cfg.Source.Tile(p.Level, p.Index, p.Width)
	}
	if err != nil {
		return fmt.Errorf("reading %s from the local log: %w", p, err)
	}
	path := "tile/" + p.String()
	err = m.cfg.Bucket.putOnce(ctx, path, data)
	var ce *ConflictError
	if errors.As(err, &ce) {
		// Only the lease holder writes, and only objects beyond the
		// lock's checkpoint, so a different object there was left by a
		// node that lost the lock before it could publish it: no
		// published checkpoint covers it. Write ours as the newest
		// version; the old one stays in the bucket's history.
		m.log.Warn("replacing an unpublished object left by a superseded node", "path", ce.Path)
		_, err = m.cfg.Bucket.put(ctx, path, data, tileObject, "", false)
	}
	m.count(kind, err)
	return err
}

func (m *Mirror) count(kind string, err error) {
	r := "ok"
	if err != nil {
		r = "error"
	}
	m.objects.WithLabelValues(kind, r).Inc()
}

// Run renews the lease every third of the lease time until ctx is done.
func (m *Mirror) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.LeaseTime / 3)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.Superseded() != nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, m.cfg.LeaseTime/3)
		m.lmu.Lock()
		err := m.swapLocked(rctx, m.state.Checkpoint)
		m.lmu.Unlock()
		cancel()
		switch {
		case errors.Is(err, checkpoint.ErrSuperseded):
			return
		case err != nil && !failing:
			m.log.Warn("renewing the lease failed", "err", err)
			failing = true
		case err == nil && failing:
			m.log.Info("lease renewed again")
			failing = false
		}
	}
}

// WaitMirrored returns once the bucket holds a checkpoint of at least
// size, or with an error if ctx ends or the mirror is superseded.
func (m *Mirror) WaitMirrored(ctx context.Context, size uint64) error {
	for {
		m.wmu.Lock()
		ch := m.advanced
		m.wmu.Unlock()
		if m.mirrored.Load() >= size {
			return nil
		}
		if err := m.Superseded(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the entries to reach the mirror bucket: %w", ctx.Err())
		}
	}
}

// Mirrored returns the tree size of the checkpoint last written to the
// bucket.
func (m *Mirror) Mirrored() uint64 { return m.mirrored.Load() }

// Published returns the checkpoint last written to the bucket (or found
// in the lock at Acquire), nil if none.
func (m *Mirror) Published() *checkpoint.Signed { return m.published.Load() }

// Status describes the mirror for /healthz.
type Status struct {
	Role         string  `json:"role"` // "active" (holds the lease), "standby" or "superseded"
	Bucket       string  `json:"bucket"`
	Holder       string  `json:"holder"`
	MirroredSize uint64  `json:"mirrored_size"`
	LagEntries   uint64  `json:"lag_entries"`
	LagSeconds   float64 `json:"lag_seconds"` // age of the oldest entry not in the bucket
	LeaseAge     float64 `json:"lease_age_seconds"`
	LastError    string  `json:"last_error,omitempty"`
	Superseded   string  `json:"superseded,omitempty"`
}

// Status returns the mirror's state.
func (m *Mirror) Status() Status {
	st := Status{Bucket: m.cfg.Bucket.Name(), Holder: m.cfg.Holder, MirroredSize: m.mirrored.Load()}
	st.Role = "standby"
	m.lmu.Lock()
	if m.holding {
		st.Role = "active"
		st.LeaseAge = time.Since(m.leaseAt).Seconds()
	}
	m.lmu.Unlock()
	if size := m.cfg.Source.Size(); size > st.MirroredSize {
		st.LagEntries = size - st.MirroredSize
		if leaf, err := m.cfg.Source.Entry(st.MirroredSize); err == nil {
			var t struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(leaf, &t) == nil {
				st.LagSeconds = max(0, time.Since(t.Time).Seconds())
			}
		}
	}
	m.smu.Lock()
	st.LastError = m.lastErr
	m.smu.Unlock()
	if err := m.Superseded(); err != nil {
		st.Role, st.Superseded = "superseded", err.Error()
	}
	return st
}
