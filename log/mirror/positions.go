package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// sinkPositionPrefix is where the active log publishes its sinks'
// delivered positions: one object "sink-position/<name>" a sink, beside
// the static layout (private: the public bucket policy of
// docs/replication.md does not grant it). The objects move, so they are
// written without Object Lock retention, like the lock.
const sinkPositionPrefix = "sink-position/"

// maxSinkPosition caps a position object.
const maxSinkPosition = 1024

// SinkPosition is the content of a sink's position object: entries below
// Next were delivered by the sink Sink on the node Holder, as stored in
// that node's database at Written.
type SinkPosition struct {
	Sink    string    `json:"sink"`
	Next    uint64    `json:"next_index"`
	Holder  string    `json:"holder"`
	Written time.Time `json:"written"`
}

// sinkPositionKey returns the object of sink name; the name must be a
// sink name (1 to 64 of a-z 0-9 - _, as package sink checks).
func sinkPositionKey(name string) (string, error) {
	if name == "" || len(name) > 64 {
		return "", fmt.Errorf("sink name %q: want 1 to 64 of a-z 0-9 - _", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", fmt.Errorf("sink name %q: want 1 to 64 of a-z 0-9 - _", name)
		}
	}
	return sinkPositionPrefix + name, nil
}

// ParseSinkPosition parses the position object of sink name: one JSON
// object with exactly the fields of [SinkPosition], all of them present,
// naming that sink, at most 1 KiB. Anything else is an error saying what
// is wrong.
func ParseSinkPosition(data []byte, name string) (SinkPosition, error) {
	if len(data) > maxSinkPosition {
		return SinkPosition{}, fmt.Errorf("sink position: %d bytes, more than %d", len(data), maxSinkPosition)
	}
	var raw struct {
		Sink    *string    `json:"sink"`
		Next    *uint64    `json:"next_index"`
		Holder  *string    `json:"holder"`
		Written *time.Time `json:"written"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return SinkPosition{}, fmt.Errorf("sink position: not a position object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return SinkPosition{}, errors.New("sink position: data after the object")
	}
	switch {
	case raw.Sink == nil || raw.Next == nil || raw.Holder == nil || raw.Written == nil:
		return SinkPosition{}, errors.New("sink position: want sink, next_index, holder and written")
	case *raw.Sink != name:
		return SinkPosition{}, fmt.Errorf("sink position: the object names sink %q, not %q", *raw.Sink, name)
	case *raw.Holder == "":
		return SinkPosition{}, errors.New("sink position: empty holder")
	}
	return SinkPosition{Sink: *raw.Sink, Next: *raw.Next, Holder: *raw.Holder, Written: *raw.Written}, nil
}

// SaveSinkPosition publishes that sink name delivered the entries below
// next, overwriting its object. It writes only while this node holds the
// lease and it is certainly valid (as uploads), so a node that lost the
// log's lock does not move a position the new active follows. The caller
// stores the position locally first.
func (m *Mirror) SaveSinkPosition(ctx context.Context, name string, next uint64) error {
	key, err := sinkPositionKey(name)
	if err != nil {
		return err
	}
	if err := m.Superseded(); err != nil {
		return err
	}
	if err := m.leaseValid(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(SinkPosition{Sink: name, Next: next, Holder: m.cfg.Holder, Written: time.Now().UTC()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	_, err = m.cfg.Bucket.put(ctx, key, data, positionObject, "", false)
	m.count("sink_position", err)
	return err
}

// LoadSinkPosition reads the position last published for sink name;
// found is false if the bucket has none. Bad contents are an error.
func (m *Mirror) LoadSinkPosition(ctx context.Context, name string) (pos SinkPosition, found bool, err error) {
	key, err := sinkPositionKey(name)
	if err != nil {
		return SinkPosition{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	data, _, err := m.cfg.Bucket.Get(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return SinkPosition{}, false, nil
	}
	if err != nil {
		return SinkPosition{}, false, err
	}
	pos, err = ParseSinkPosition(data, name)
	if err != nil {
		return SinkPosition{}, false, fmt.Errorf("%s: %w", m.cfg.Bucket.key(key), err)
	}
	return pos, true, nil
}
