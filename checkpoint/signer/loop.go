// Package signer runs the log's checkpoint signing schedule: it signs a
// c2sp.org/tlog-checkpoint (package checkpoint) of the growing tree every
// interval and refreshes an unchanged one, dated by the NTP-anchored clock,
// and refuses, at start and at every signing, to sign a checkpoint that is
// not consistent with the last one it signed. The last signed checkpoint
// is kept durable in a [Store] ([FileStore] on disk) before it is
// published.
package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Config].
const (
	DefaultInterval = time.Second
	DefaultRefresh  = 5 * time.Minute
)

// ErrClockNotSynced is returned by [Loop.SignNow] when RequireNTP is set and
// the clock is not synced.
var ErrClockNotSynced = errors.New("refusing to sign: the NTP clock is not synced and NTP is required")

// ErrSuperseded is checkpoint.ErrSuperseded: a [Config.Commit] error
// wrapping it stops the loop for good.
var ErrSuperseded = checkpoint.ErrSuperseded

// Source is the log's tree as the signing loop sees it.
type Source interface {
	checkpoint.Prover
	// Size returns the number of durable leaves. RootAt(Size()) must succeed.
	Size() uint64
}

// Store persists the latest signed checkpoint.
type Store interface {
	// Load returns the checkpoint last passed to Save, or nil and no error
	// if there is none yet.
	Load() ([]byte, error)
	// Save replaces the stored checkpoint. When it returns nil the
	// checkpoint is durable: a Load after a crash returns it (or a later one).
	Save(raw []byte) error
}

// Config configures a [Loop].
type Config struct {
	Keys   *checkpoint.Keys
	Source Source
	Store  Store
	// Clock times the checkpoints; nil means the system clock (time.Now).
	Clock      *clock.Clock
	Interval   time.Duration // how often to check for growth; default 1s
	Refresh    time.Duration // re-sign an unchanged tree after this long; default 5m
	RequireNTP bool          // refuse to sign while Clock is not synced
	// Commit, if set, is called with each new checkpoint before it is
	// saved or published (package mirror uploads what it covers and
	// swaps it into the lock). An error drops the checkpoint: it is
	// neither saved nor published, and the next SignNow signs afresh. An
	// error wrapping ErrSuperseded stops the loop for good.
	Commit func(*checkpoint.Signed) error
	// Publish is called with each new checkpoint after it is durably saved,
	// in signing order, while the loop holds its lock: it must not block for
	// long nor call SignNow. May be nil.
	Publish func(*checkpoint.Signed)
	Logger  *slog.Logger // nil discards
}

// A Loop signs checkpoints of a growing tree on a schedule, never signing one
// that is inconsistent with the last it signed. Its methods are safe for
// concurrent use.
type Loop struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex // serializes SignNow
	latest atomic.Pointer[checkpoint.Signed]

	smu    sync.Mutex // guards status
	status Status

	stopped error // set once Commit reports ErrSuperseded; guarded by mu
}

// New loads the last signed checkpoint from the Store, verifies it with
// the keys, and checks that the current tree is consistent with it. A tree
// that is smaller than the checkpoint (an old data directory restored) or
// that forked from it fails with an *InconsistentError. With no stored
// checkpoint, nothing is signed until the first SignNow.
func New(cfg Config) (*Loop, error) {
	if cfg.Keys == nil || cfg.Source == nil || cfg.Store == nil {
		return nil, errors.New("signer: New needs Keys, Source and Store")
	}
	if cfg.Keys.LogSigner == nil || cfg.Keys.LogVerifier == nil || cfg.Keys.TimeSigner == nil || cfg.Keys.TimeVerifier == nil {
		return nil, errors.New("signer: New needs Keys with both the log key and the timestamp key (see checkpoint.NewKeys)")
	}
	if cfg.RequireNTP && cfg.Clock == nil {
		return nil, errors.New("signer: RequireNTP needs a Clock")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	l := &Loop{cfg: cfg, log: cfg.Logger, now: time.Now}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock != nil {
		l.now = cfg.Clock.Now
	}
	raw, err := cfg.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("cannot load the last signed checkpoint: %w", err)
	}
	if raw == nil {
		l.status.Checked = time.Now()
		return l, nil
	}
	last, err := cfg.Keys.OpenOwn(raw)
	if err != nil {
		return nil, fmt.Errorf("the stored checkpoint does not verify with this log's key: %w", err)
	}
	size := cfg.Source.Size()
	root, err := cfg.Source.RootAt(size)
	if err != nil {
		return nil, fmt.Errorf("cannot compute the tree root at size %d: %w", size, err)
	}
	if err := checkpoint.CheckConsistent(last, size, root, cfg.Source); err != nil {
		return nil, err
	}
	l.latest.Store(last)
	l.status.LastSigned, l.status.Size = last.Time, last.Size
	l.status.Checked = time.Now()
	return l, nil
}

// SignNow signs the current tree if it grew since the last checkpoint, if
// the last one is older than Refresh, or if there is none yet. It checks
// consistency with the last checkpoint first, saves the new one to the
// Store, then calls Publish. It returns the latest checkpoint, which is the
// previous one if nothing was due. Calls are serialized.
func (l *Loop) SignNow() (*checkpoint.Signed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.signLocked()
	l.smu.Lock()
	defer l.smu.Unlock()
	if err != nil {
		l.status.LastError = err.Error()
		var ie *checkpoint.InconsistentError
		l.status.Refusing = errors.Is(err, ErrClockNotSynced) || errors.Is(err, ErrSuperseded) || errors.As(err, &ie)
		l.status.Superseded = errors.Is(err, ErrSuperseded)
		l.status.Inconsistent = errors.As(err, &ie)
		return nil, err
	}
	l.status.LastError, l.status.Refusing, l.status.Inconsistent = "", false, false
	l.status.Checked = time.Now()
	return s, nil
}

func (l *Loop) signLocked() (*checkpoint.Signed, error) {
	if l.stopped != nil {
		return nil, l.stopped
	}
	last := l.latest.Load()
	size := l.cfg.Source.Size()
	now := l.now()
	if last != nil && size == last.Size && now.Sub(last.Time) < l.cfg.Refresh {
		return last, nil
	}
	if l.cfg.RequireNTP && !l.cfg.Clock.Status().Synced {
		return nil, ErrClockNotSynced
	}
	root, err := l.cfg.Source.RootAt(size)
	if err != nil {
		return nil, fmt.Errorf("cannot compute the tree root at size %d: %w", size, err)
	}
	if err := checkpoint.CheckConsistent(last, size, root, l.cfg.Source); err != nil {
		return nil, err
	}
	if last != nil && now.Before(last.Time) {
		now = last.Time // never date a checkpoint before the previous one
	}
	raw, err := checkpoint.SignAt(l.cfg.Keys, size, root, now)
	if err != nil {
		return nil, fmt.Errorf("cannot sign the checkpoint: %w", err)
	}
	s, err := checkpoint.Open(raw, l.cfg.Keys.LogVerifier, l.cfg.Keys.TimeVerifier)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint just signed does not verify: %w", err)
	}
	if l.cfg.Commit != nil {
		if err := l.cfg.Commit(s); err != nil {
			if errors.Is(err, ErrSuperseded) {
				l.stopped = err
			}
			return nil, fmt.Errorf("checkpoint at size %d not committed: %w", size, err)
		}
	}
	if err := l.cfg.Store.Save(raw); err != nil {
		return nil, fmt.Errorf("cannot save the signed checkpoint: %w", err)
	}
	l.latest.Store(s)
	l.smu.Lock()
	l.status.LastSigned, l.status.Size, l.status.Signed = s.Time, s.Size, l.status.Signed+1
	l.smu.Unlock()
	if l.cfg.Publish != nil {
		l.cfg.Publish(s)
	}
	return s, nil
}

// Run calls SignNow at once and then every Interval until ctx is done. It
// logs when signing starts failing, when the error changes and when it
// recovers, not at every tick.
func (l *Loop) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	var lastErr string
	for {
		_, err := l.SignNow()
		switch {
		case err != nil && err.Error() != lastErr:
			l.log.Error("checkpoint signing failed", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			l.log.Info("checkpoint signing recovered")
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Adopt makes raw, a checkpoint of this log signed by another node (a
// standby following the active log), the latest, as if this loop had
// signed it: it must verify with the log's keys, the tree must hold its
// size with its root, and it must be consistent with the latest. It is
// saved to the Store; Publish is not called.
func (l *Loop) Adopt(raw []byte) (*checkpoint.Signed, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.cfg.Keys.OpenOwn(raw)
	if err != nil {
		return nil, err
	}
	last := l.latest.Load()
	if last != nil && c.Size < last.Size {
		return nil, fmt.Errorf("adopting a checkpoint of size %d older than the latest (%d)", c.Size, last.Size)
	}
	root, err := l.cfg.Source.RootAt(c.Size)
	if err != nil {
		return nil, fmt.Errorf("adopting a checkpoint of size %d: %w", c.Size, err)
	}
	if !bytes.Equal(root, c.Root) {
		return nil, fmt.Errorf("adopting a checkpoint of size %d: the tree's root there differs", c.Size)
	}
	if err := checkpoint.CheckConsistent(last, c.Size, c.Root, l.cfg.Source); err != nil {
		return nil, err
	}
	if err := l.cfg.Store.Save(c.Raw); err != nil {
		return nil, fmt.Errorf("cannot save the adopted checkpoint: %w", err)
	}
	l.latest.Store(c)
	l.smu.Lock()
	l.status.LastSigned, l.status.Size, l.status.Checked = c.Time, c.Size, time.Now()
	l.smu.Unlock()
	return c, nil
}

// Latest returns the latest signed checkpoint, or nil before the first.
func (l *Loop) Latest() *checkpoint.Signed { return l.latest.Load() }

// Status describes a Loop for health checks and metrics.
type Status struct {
	LastSigned time.Time // timestamp of the latest checkpoint; zero if none
	Size       uint64    // tree size of the latest checkpoint
	LastError  string    // error of the last SignNow; empty after a success
	Refusing   bool      // the last SignNow refused to sign (inconsistent tree, NTP required but not synced, or superseded)
	Superseded bool      // another node holds the lock: the loop never signs again
	// Inconsistent: the last SignNow found the tree inconsistent with the
	// last signed checkpoint (and refused).
	Inconsistent bool
	Signed       uint64 // checkpoints signed since New
	// Checked is the system time of the last SignNow that succeeded, whether
	// it signed or found nothing due (New's check at first). A tree that
	// grew after Checked is covered at the next tick, so a health check
	// compares the time since Checked, not the checkpoint's age, with its
	// tolerance: an idle log that just grew is not stale.
	Checked time.Time
}

// Status returns the loop's current state.
func (l *Loop) Status() Status {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.status
}

// FileStore is a [Store] keeping the checkpoint in one file, replaced
// atomically and fsynced on every Save.
type FileStore struct {
	Path string
}

// Load returns the file's content, or nil if it does not exist.
func (f FileStore) Load() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save atomically replaces the file with raw.
func (f FileStore) Save(raw []byte) error { return atomicfile.Write(f.Path, raw, 0o644) }

// Register registers the loop's gauges with reg:
// agentlog_checkpoint_age_seconds (since the last checkpoint was signed,
// -1 before the first) and agentlog_checkpoint_size (its tree size).
func (l *Loop) Register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_checkpoint_age_seconds",
		Help: "Seconds since the last checkpoint was signed.",
	}, func() float64 {
		t := l.Status().LastSigned
		if t.IsZero() {
			return -1
		}
		return time.Since(t).Seconds()
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentlog_checkpoint_size",
		Help: "Tree size of the last signed checkpoint.",
	}, func() float64 { return float64(l.Status().Size) }))
}
