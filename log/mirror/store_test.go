package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/agentlog/agentlog/internal/servicetest"
)

// TestStoreEnforcesObjectLock checks what the test S3 server (versitygw)
// really enforces, since the mirror's WORM promise rests on it: a locked
// version cannot be deleted, replaced or have its retention shortened, in
// either mode, and conditional writes refuse what they should.
func TestStoreEnforcesObjectLock(t *testing.T) {
	t.Parallel()
	c := servicetest.S3Client(servicetest.S3Endpoint(t))
	ctx := context.Background()
	for _, mode := range []types.ObjectLockRetentionMode{types.ObjectLockRetentionModeCompliance, types.ObjectLockRetentionModeGovernance} {
		t.Run(string(mode), func(t *testing.T) {
			bucket := servicetest.Bucket(t, c)
			until := time.Now().Add(24 * time.Hour).Truncate(time.Second)
			put, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), Body: bytes.NewReader([]byte("first")),
				ObjectLockMode: types.ObjectLockMode(mode), ObjectLockRetainUntilDate: aws.Time(until),
			})
			if err != nil {
				t.Fatalf("PutObject with retention: %v", err)
			}
			if put.VersionId == nil || *put.VersionId == "" {
				t.Fatal("PutObject in a versioned bucket returned no version id")
			}
			v1 := *put.VersionId

			// The retention is recorded as asked.
			ret, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), VersionId: aws.String(v1)})
			if err != nil {
				t.Fatalf("GetObjectRetention: %v", err)
			}
			if ret.Retention.Mode != mode || !ret.Retention.RetainUntilDate.Equal(until) {
				t.Fatalf("retention = %s until %v, want %s until %v", ret.Retention.Mode, ret.Retention.RetainUntilDate, mode, until)
			}

			// Deleting the locked version is refused.
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), VersionId: aws.String(v1)}); err == nil {
				t.Fatal("deleting a locked object version succeeded")
			}
			// Shortening the retention is refused.
			if _, err := c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
				Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), VersionId: aws.String(v1),
				Retention: &types.ObjectLockRetention{Mode: mode, RetainUntilDate: aws.Time(until.Add(-time.Hour))},
			}); err == nil {
				t.Fatal("shortening the retention of a locked version succeeded")
			}
			// A write-once PUT of an existing key is refused.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), Body: bytes.NewReader([]byte("second")),
				IfNoneMatch: aws.String("*"), ObjectLockMode: types.ObjectLockMode(mode), ObjectLockRetainUntilDate: aws.Time(until),
			})
			if !isStatus(err, "PreconditionFailed") {
				t.Fatalf("PutObject If-None-Match: * over an existing key: %v, want PreconditionFailed", err)
			}
			// An If-Match with a stale ETag is refused.
			_, err = c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), Body: bytes.NewReader([]byte("second")),
				IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`), ObjectLockMode: types.ObjectLockMode(mode), ObjectLockRetainUntilDate: aws.Time(until),
			})
			if !isStatus(err, "PreconditionFailed") {
				t.Fatalf("PutObject If-Match with a stale ETag: %v, want PreconditionFailed", err)
			}
			// An If-Match with the current ETag succeeds.
			put2, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), Body: bytes.NewReader([]byte("second")),
				IfMatch: put.ETag, ObjectLockMode: types.ObjectLockMode(mode), ObjectLockRetainUntilDate: aws.Time(until),
			})
			if err != nil {
				t.Fatalf("PutObject If-Match with the current ETag: %v", err)
			}
			// Overwriting made a new version: the locked one is intact.
			if got := getVersion(t, c, bucket, "tile/0/000", v1); got != "first" {
				t.Fatalf("locked version now reads %q after an overwrite", got)
			}
			if got := getVersion(t, c, bucket, "tile/0/000", ""); got != "second" {
				t.Fatalf("latest version reads %q", got)
			}
			// Deleting without a version id only adds a delete marker; the
			// locked versions stay.
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("tile/0/000")}); err != nil {
				t.Logf("delete without version id: %v", err)
			}
			if got := getVersion(t, c, bucket, "tile/0/000", *put2.VersionId); got != "second" {
				t.Fatalf("locked version reads %q after a delete", got)
			}
			if got := getVersion(t, c, bucket, "tile/0/000", v1); got != "first" {
				t.Fatalf("locked version reads %q after a delete", got)
			}
			if mode == types.ObjectLockRetentionModeGovernance {
				// Governance: a delete without the bypass header is refused
				// even to the root user.
				if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("tile/0/000"), VersionId: aws.String(v1)}); err == nil {
					t.Fatal("deleting a governance-locked version without bypass succeeded")
				}
			}
		})
	}
}

func getVersion(t *testing.T, c *s3.Client, bucket, key, version string) string {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := c.GetObject(context.Background(), in)
	if err != nil {
		t.Fatalf("GetObject %s version %q: %v", key, version, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isStatus(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
