package mirror

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentlog/agentlog/log/config"
)

// documentKey is where the configuration document of digest is kept in the
// bucket: "config/sha256/<hex>", beside the static layout (readers of the
// static log never see it; the public bucket policy of docs/replication.md
// does not grant it).
func documentKey(digest string) (string, error) {
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !config.ValidDigest(digest) {
		return "", fmt.Errorf("configuration digest %q: want sha256:<64 hex digits>", digest)
	}
	return "config/sha256/" + hex, nil
}

// SaveDocument writes an agent configuration document (package change) to
// the bucket, write-once and retained like the tiles, so that a standby
// replaying the change entries that name its digest can read it. The log
// calls it before appending the entry, so a checkpoint covering the entry
// never reaches the bucket before the document.
func (m *Mirror) SaveDocument(digest string, canonical []byte) error {
	key, err := documentKey(digest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	err = m.cfg.Bucket.putOnce(ctx, key, canonical)
	m.count("config", err)
	return err
}

// FetchDocument reads the configuration document of digest from the
// bucket; the caller checks its digest (change.Store.Replay does).
func (m *Mirror) FetchDocument(digest string) ([]byte, error) {
	key, err := documentKey(digest)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	b, _, err := m.cfg.Bucket.Get(ctx, key)
	return b, err
}
