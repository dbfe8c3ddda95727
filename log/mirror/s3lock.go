package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// lockPath is the s3 lock's object, beside the checkpoint.
const lockPath = "lock"

// s3Lock is a [Lock] in the mirror's bucket: the object "lock", replaced
// only by a PUT with If-Match on the ETag last read (If-None-Match: * for
// the first), so the store arbitrates concurrent swaps. It needs a store
// with conditional writes (AWS S3 since 2024, versitygw, MinIO). The
// object is written without Object Lock retention: it changes at every
// lease renewal. Its old versions can expire by a lifecycle rule
// (docs/replication.md).
type s3Lock struct {
	b *Bucket
}

type s3LockObject struct {
	Checkpoint []byte `json:"checkpoint"`
	Holder     string `json:"holder"`
	Seq        uint64 `json:"seq"`
}

func (l *s3Lock) Load(ctx context.Context) (LockState, error) {
	data, etag, err := l.b.Get(ctx, lockPath)
	if errors.Is(err, ErrNotExist) {
		return LockState{}, nil
	}
	if err != nil {
		return LockState{}, fmt.Errorf("reading the lock: %w", err)
	}
	var o s3LockObject
	if err := json.Unmarshal(data, &o); err != nil {
		return LockState{}, fmt.Errorf("the lock object %s is not valid: %w", l.b.key(lockPath), err)
	}
	if o.Seq == 0 {
		return LockState{}, fmt.Errorf("the lock object %s has seq 0", l.b.key(lockPath))
	}
	return LockState{Checkpoint: o.Checkpoint, Holder: o.Holder, Seq: o.Seq, etag: etag}, nil
}

func (l *s3Lock) Swap(ctx context.Context, prev, next LockState) (LockState, error) {
	if next.Seq != prev.Seq+1 {
		return LockState{}, fmt.Errorf("lock swap from seq %d to %d: must increase by one", prev.Seq, next.Seq)
	}
	if prev.Seq != 0 && prev.etag == "" {
		return LockState{}, errors.New("lock swap: the previous state was not read from this lock")
	}
	data, err := json.Marshal(s3LockObject{Checkpoint: next.Checkpoint, Holder: next.Holder, Seq: next.Seq})
	if err != nil {
		return LockState{}, err
	}
	etag, err := l.b.put(ctx, lockPath, data, lockObject, prev.etag, prev.Seq == 0)
	if errors.Is(err, ErrPrecondition) {
		return LockState{}, fmt.Errorf("%w (it no longer holds seq %d of %q)", ErrLockChanged, prev.Seq, prev.Holder)
	}
	if err != nil {
		return LockState{}, fmt.Errorf("swapping the lock: %w", err)
	}
	next.etag = etag
	return next, nil
}

func (l *s3Lock) Close() error { return nil }
