package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// webhookPositionPrefix is the same for the anomaly rules' alert
// webhooks: "alert-webhook-position/<hex SHA-256 of the URL>" (a URL may
// carry a secret in its query: only its hash is written).
const webhookPositionPrefix = "alert-webhook-position/"

// maxSinkPosition caps a position object.
const maxSinkPosition = 1024

// Position is the content of a position object: entries below Next were
// delivered by the sink (or alert webhook) Name on the node Holder, as
// stored in that node's database at Written. In JSON Name is "sink" (the
// sink's name) or "webhook_sha256" (the hex SHA-256 of the webhook's URL).
type Position struct {
	Name    string
	Next    uint64
	Holder  string
	Written time.Time
}

// SinkPosition is a sink's Position.
type SinkPosition = Position

// webhookName is the name of an alert webhook's position: the hex
// SHA-256 of its URL.
func webhookName(url string) string {
	h := sha256.Sum256([]byte(url))
	return hex.EncodeToString(h[:])
}

// marshalPosition is the object of a position; field names it ("sink" or
// "webhook_sha256").
func marshalPosition(field string, p Position) ([]byte, error) {
	return json.Marshal(map[string]any{field: p.Name, "next_index": p.Next, "holder": p.Holder, "written": p.Written})
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
// object with exactly the fields sink, next_index, holder and written,
// all of them present, naming that sink, at most 1 KiB. Anything else is
// an error saying what is wrong.
func ParseSinkPosition(data []byte, name string) (Position, error) {
	return parsePosition(data, "sink", name)
}

// ParseWebhookPosition parses the position object of the alert webhook
// of url: as ParseSinkPosition, with webhook_sha256 (the hex SHA-256 of
// url) in place of sink.
func ParseWebhookPosition(data []byte, url string) (Position, error) {
	return parsePosition(data, "webhook_sha256", webhookName(url))
}

func parsePosition(data []byte, field, name string) (Position, error) {
	if len(data) > maxSinkPosition {
		return Position{}, fmt.Errorf("position: %d bytes, more than %d", len(data), maxSinkPosition)
	}
	var p Position
	fields := map[string]any{field: &p.Name, "next_index": &p.Next, "holder": &p.Holder, "written": &p.Written}
	want := fmt.Sprintf("want one JSON object of exactly %s, next_index, holder and written", field)
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Position{}, fmt.Errorf("position: %s", want)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Position{}, fmt.Errorf("position: %w", err)
		}
		k, _ := t.(string)
		dst, ok := fields[k]
		if !ok || seen[k] {
			return Position{}, fmt.Errorf("position: field %q unknown or given twice (%s)", k, want)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return Position{}, fmt.Errorf("position: %s: %w", k, err)
		}
		if string(v) == "null" {
			return Position{}, fmt.Errorf("position: %s is null", k)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return Position{}, fmt.Errorf("position: %s: %w", k, err)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return Position{}, fmt.Errorf("position: %s", want)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Position{}, errors.New("position: data after the object")
	}
	if len(seen) != len(fields) {
		return Position{}, fmt.Errorf("position: %s", want)
	}
	switch {
	case p.Name != name:
		return Position{}, fmt.Errorf("position: the object names %s %q, not %q", field, p.Name, name)
	case p.Holder == "":
		return Position{}, errors.New("position: empty holder")
	}
	return p, nil
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
	return m.savePosition(ctx, key, "sink", Position{Name: name, Next: next})
}

// SaveWebhookPosition is SaveSinkPosition for the alert webhook of url
// (package anomaly): next is the next log index from which alerts are
// delivered to it.
func (m *Mirror) SaveWebhookPosition(ctx context.Context, url string, next uint64) error {
	name := webhookName(url)
	return m.savePosition(ctx, webhookPositionPrefix+name, "webhook_sha256", Position{Name: name, Next: next})
}

func (m *Mirror) savePosition(ctx context.Context, key, field string, p Position) error {
	if err := m.Superseded(); err != nil {
		return err
	}
	if err := m.leaseValid(ctx); err != nil {
		return err
	}
	p.Holder, p.Written = m.cfg.Holder, time.Now().UTC()
	data, err := marshalPosition(field, p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	_, err = m.cfg.Bucket.put(ctx, key, data, positionObject, "", false)
	m.count("position", err)
	return err
}

// LoadSinkPosition reads the position last published for sink name;
// found is false if the bucket has none. Bad contents are an error.
func (m *Mirror) LoadSinkPosition(ctx context.Context, name string) (pos Position, found bool, err error) {
	key, err := sinkPositionKey(name)
	if err != nil {
		return Position{}, false, err
	}
	return m.loadPosition(ctx, key, func(b []byte) (Position, error) { return ParseSinkPosition(b, name) })
}

// LoadWebhookPosition is LoadSinkPosition for the alert webhook of url.
func (m *Mirror) LoadWebhookPosition(ctx context.Context, url string) (pos Position, found bool, err error) {
	return m.loadPosition(ctx, webhookPositionPrefix+webhookName(url), func(b []byte) (Position, error) { return ParseWebhookPosition(b, url) })
}

func (m *Mirror) loadPosition(ctx context.Context, key string, parse func([]byte) (Position, error)) (Position, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	data, _, err := m.cfg.Bucket.Get(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, err
	}
	pos, err := parse(data)
	if err != nil {
		return Position{}, false, fmt.Errorf("%s: %w", m.cfg.Bucket.key(key), err)
	}
	return pos, true, nil
}
