package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrLockChanged is wrapped by the error of a [Lock.Swap] whose previous
// state is no longer the lock's: another node swapped in between.
var ErrLockChanged = errors.New("the lock's state changed")

// LockState is what a [Lock] holds for one log.
type LockState struct {
	// Checkpoint is the latest checkpoint published (its signed note), nil
	// before the first.
	Checkpoint []byte
	// Holder names the node holding the lease: the only one that may
	// upload to the bucket and swap checkpoints. Empty if none ever did.
	Holder string
	// Seq counts successful swaps (checkpoints and lease renewals); 0 for
	// a lock never written.
	Seq uint64

	etag string // the s3 lock's object version; backend-private
}

// A Lock is a compare-and-swap register holding a log's latest published
// checkpoint and the lease of the node that writes it. Implementations
// must be linearizable: a Swap that returns nil happened exactly once,
// after every Swap that returned before it began, and is durable; Load
// after a successful Swap returns that state or a later one. The lease is
// kept by renewal, never by clocks: a node whose lease is older than the
// lease time (by its own clock, counted from before the renewal was
// sent) stops writing, and a standby takes over only after watching the
// state stay unchanged for the lease time (by its clock).
type Lock interface {
	// Load returns the current state; the zero LockState if none.
	Load(ctx context.Context) (LockState, error)
	// Swap replaces the state with next if it still is prev (as returned
	// by Load or a previous Swap, compared by Seq and Holder), and returns
	// next as now stored. next.Seq must be prev.Seq+1. A changed state
	// gives an error wrapping ErrLockChanged.
	Swap(ctx context.Context, prev, next LockState) (LockState, error)
	// Close releases the backend's connections.
	Close() error
}

// OpenLock opens the lock named by spec: "postgres://..." (or
// "postgresql://...") for a row in a PostgreSQL table, or "s3" for a
// conditionally written object beside the mirror's checkpoint in bucket.
// name identifies the log (its origin) within the backend.
func OpenLock(ctx context.Context, spec, name string, bucket *Bucket) (Lock, error) {
	switch {
	case spec == "s3":
		if bucket == nil {
			return nil, errors.New("--lock s3 needs --mirror")
		}
		return &s3Lock{b: bucket}, nil
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		if _, err := url.Parse(spec); err != nil {
			return nil, fmt.Errorf("lock URL: %w", err)
		}
		return openPGLock(ctx, spec, name)
	default:
		return nil, fmt.Errorf("lock %q: want postgres://... or s3", redactURL(spec))
	}
}

// redactURL drops a password from a connection URL, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
