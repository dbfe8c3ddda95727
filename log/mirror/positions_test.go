package mirror_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentlog/agentlog/log/mirror"
)

// TestParseSinkPosition: the object's one format, and what is refused.
func TestParseSinkPosition(t *testing.T) {
	good := `{"sink":"siem","next_index":1234,"holder":"node-a","written":"2026-12-02T04:00:00Z"}`
	p, err := mirror.ParseSinkPosition([]byte(good), "siem")
	if err != nil || p.Next != 1234 || p.Holder != "node-a" || p.Name != "siem" || !p.Written.Equal(time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("ParseSinkPosition(good) = %+v, %v", p, err)
	}
	for name, bad := range map[string]string{
		"empty":          ``,
		"not json":       `next_index=5`,
		"array":          `[1]`,
		"other sink":     strings.Replace(good, `"siem"`, `"other"`, 1),
		"no index":       `{"sink":"siem","holder":"node-a","written":"2026-12-02T04:00:00Z"}`,
		"no holder":      `{"sink":"siem","next_index":1,"written":"2026-12-02T04:00:00Z"}`,
		"empty holder":   strings.Replace(good, `"node-a"`, `""`, 1),
		"no time":        `{"sink":"siem","next_index":1,"holder":"node-a"}`,
		"bad time":       strings.Replace(good, `2026-12-02T04:00:00Z`, `yesterday`, 1),
		"negative index": strings.Replace(good, `1234`, `-1`, 1),
		"float index":    strings.Replace(good, `1234`, `1.5`, 1),
		"huge index":     strings.Replace(good, `1234`, `18446744073709551616`, 1),
		"unknown field":  strings.Replace(good, `}`, `,"extra":1}`, 1),
		"trailing":       good + `{}`,
		"null index":     strings.Replace(good, `1234`, `null`, 1),
		"null time":      strings.Replace(good, `"2026-12-02T04:00:00Z"`, `null`, 1),
		"duplicate key":  strings.Replace(good, `"holder":"node-a"`, `"holder":"node-a","holder":"node-b","next_index":1`, 1),
		"webhook object": `{"webhook_sha256":"siem","next_index":1,"holder":"node-a","written":"2026-12-02T04:00:00Z"}`,
		"too large":      strings.Replace(good, `"node-a"`, `"`+strings.Repeat("a", 1100)+`"`, 1),
	} {
		if _, err := mirror.ParseSinkPosition([]byte(bad), "siem"); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
}

// TestParseWebhookPosition: an alert webhook's object names the SHA-256
// of its URL, never the URL (which may carry a secret).
func TestParseWebhookPosition(t *testing.T) {
	url := "https://hooks.example/alerts?token=secret"
	sum := sha256.Sum256([]byte(url))
	good := `{"webhook_sha256":"` + hex.EncodeToString(sum[:]) + `","next_index":77,"holder":"node-a","written":"2026-12-02T04:00:00Z"}`
	if p, err := mirror.ParseWebhookPosition([]byte(good), url); err != nil || p.Next != 77 {
		t.Fatalf("ParseWebhookPosition(good) = %+v, %v", p, err)
	}
	for name, bad := range map[string]string{
		"other url":   strings.Replace(good, hex.EncodeToString(sum[:4]), "00000000", 1),
		"sink object": `{"sink":"` + hex.EncodeToString(sum[:]) + `","next_index":1,"holder":"node-a","written":"2026-12-02T04:00:00Z"}`,
		"the url":     strings.Replace(good, hex.EncodeToString(sum[:]), url, 1),
	} {
		if _, err := mirror.ParseWebhookPosition([]byte(bad), url); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
}

// FuzzParseSinkPosition: whatever the bytes, the parsers return an error
// or a position naming the sink asked for, with a holder.
func FuzzParseSinkPosition(f *testing.F) {
	f.Add([]byte(`{"sink":"siem","next_index":1234,"holder":"node-a","written":"2026-12-02T04:00:00Z"}`))
	f.Add([]byte(`{"sink":"siem","next_index":0,"holder":"x","written":"2026-12-02T04:00:00.123456789+01:00"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := mirror.ParseSinkPosition(data, "siem"); err == nil && (p.Name != "siem" || p.Holder == "") {
			t.Fatalf("accepted %q as %+v", data, p)
		}
		if p, err := mirror.ParseWebhookPosition(data, "https://h.example/"); err == nil && p.Holder == "" {
			t.Fatalf("accepted %q as %+v", data, p)
		}
	})
}

// TestSinkPositions publishes and reads positions (of sinks and of an
// alert webhook) on the test store: a
// missing object is reported as none, the last write wins, every version
// is written without retention (the objects move), a name that is not a
// sink name is refused before any request, bad contents are an error, and
// a node that does not hold the lock publishes nothing (nor reports the
// lease held).
func TestSinkPositions(t *testing.T) {
	t.Parallel()
	e := newS3(t)
	b := e.open(t, "governance")
	lock, err := mirror.OpenLock(context.Background(), "s3", testOrigin, b)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, t.TempDir())
	standby := newMirror(t, n, b, lock, "standby", nil)
	if err := standby.SaveSinkPosition(context.Background(), "siem", 5); err == nil {
		t.Fatal("a node without the lease published a position")
	}
	m := newMirror(t, n, b, lock, "active", nil)
	run(t, m)
	if !m.LeaseHeld() || standby.LeaseHeld() {
		t.Fatalf("LeaseHeld: active %v, standby %v", m.LeaseHeld(), standby.LeaseHeld())
	}
	ctx := context.Background()
	if _, found, err := m.LoadSinkPosition(ctx, "siem"); err != nil || found {
		t.Fatalf("before any write: found %v, %v", found, err)
	}
	for _, next := range []uint64{0, 17, 4096} {
		if err := m.SaveSinkPosition(ctx, "siem", next); err != nil {
			t.Fatal(err)
		}
	}
	p, found, err := standby.LoadSinkPosition(ctx, "siem")
	if err != nil || !found || p.Next != 4096 || p.Holder != "active" || time.Since(p.Written) > time.Minute {
		t.Fatalf("LoadSinkPosition = %+v, %v, %v", p, found, err)
	}
	hookURL := "https://hooks.example/a?token=secret"
	if err := m.SaveWebhookPosition(ctx, hookURL, 41); err != nil {
		t.Fatal(err)
	}
	if p, found, err := standby.LoadWebhookPosition(ctx, hookURL); err != nil || !found || p.Next != 41 {
		t.Fatalf("LoadWebhookPosition = %+v, %v, %v", p, found, err)
	}
	if _, found, err := standby.LoadWebhookPosition(ctx, hookURL+"x"); err != nil || found {
		t.Fatalf("another URL's position: found %v, %v", found, err)
	}
	key := testPrefix + "sink-position/siem"
	vs, err := e.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != 3 {
		t.Fatalf("%d versions of %s, want 3", len(vs.Versions), key)
	}
	for _, v := range vs.Versions {
		r, err := e.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(e.bucket), Key: v.Key, VersionId: v.VersionId})
		if err == nil && r.Retention != nil && r.Retention.RetainUntilDate != nil {
			t.Fatalf("version %s of %s is retained until %v", *v.VersionId, key, r.Retention.RetainUntilDate)
		}
	}
	for _, bad := range []string{"", "../checkpoint", "Siem", strings.Repeat("a", 65)} {
		if err := m.SaveSinkPosition(ctx, bad, 1); err == nil {
			t.Errorf("sink name %q published", bad)
		}
		if _, _, err := m.LoadSinkPosition(ctx, bad); err == nil {
			t.Errorf("sink name %q read", bad)
		}
	}
	if _, err := e.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(testPrefix + "sink-position/broken"), Body: strings.NewReader(`{"sink":"broken","next_index":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.LoadSinkPosition(ctx, "broken"); err == nil || !strings.Contains(err.Error(), "sink-position/broken") {
		t.Errorf("bad contents: %v, want an error naming the object", err)
	}
}
