// Package servicetest connects tests to the real services that .ci/run
// starts (.ci/services/*.sh): an S3-compatible server with versioning and
// Object Lock (versitygw) and PostgreSQL.
//
// Tests find them through environment variables with defaults that match
// the CI scripts:
//
//	AGENTLOG_TEST_S3        http://127.0.0.1:7070 (versitygw, root keys agentlog-test / agentlog-test-secret)
//	AGENTLOG_TEST_POSTGRES  postgres://agentlog:agentlog@127.0.0.1:5432/agentlog_test?sslmode=disable
//
// A service that cannot be reached fails the test when
// AGENTLOG_REQUIRE_SERVICES=1 (set by .ci/run, so CI never passes by
// skipping); elsewhere the test is skipped with a message naming the script
// that starts the service.
package servicetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
)

// Defaults of the environment variables.
const (
	DefaultS3       = "http://127.0.0.1:7070"
	DefaultPostgres = "postgres://agentlog:agentlog@127.0.0.1:5432/agentlog_test?sslmode=disable"
	S3AccessKey     = "agentlog-test"
	S3SecretKey     = "agentlog-test-secret"
	S3Region        = "us-east-1"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func unavailable(t testing.TB, what, script string, err error) {
	t.Helper()
	if os.Getenv("AGENTLOG_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is not reachable (%v); .ci/run starts it with %s", what, err, script)
	}
	t.Skipf("%s is not reachable (%v); start it with `bash %s` (CI fails instead of skipping)", what, err, script)
}

// S3Endpoint returns the S3 server's URL, skipping or failing the test if
// nothing listens there.
func S3Endpoint(t testing.TB) string {
	t.Helper()
	ep := env("AGENTLOG_TEST_S3", DefaultS3)
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatalf("AGENTLOG_TEST_S3=%q: %v", ep, err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		unavailable(t, "the S3 server "+ep, ".ci/services/versitygw.sh", err)
	}
	c.Close()
	return ep
}

// S3Env sets the AWS environment variables (endpoint, region, keys) that
// the server reads, for tests that start the real binary or call its
// client constructor.
func S3Env(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL", S3Endpoint(t))
	t.Setenv("AWS_REGION", S3Region)
	t.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// S3Client returns a client of the test S3 server with path-style
// addressing, talking to endpoint (the server itself, or a proxy in front
// of it).
func S3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       S3Region,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
		UsePathStyle: true,
	})
}

// Bucket creates a fresh bucket with Object Lock (and so versioning)
// enabled and returns its name. Buckets are never deleted: their objects
// are locked.
func Bucket(t testing.TB, c *s3.Client) string {
	return newBucket(t, c, true)
}

// PlainBucket creates a fresh bucket without versioning or Object Lock.
func PlainBucket(t testing.TB, c *s3.Client) string {
	return newBucket(t, c, false)
}

func newBucket(t testing.TB, c *s3.Client, lock bool) string {
	t.Helper()
	name := "t-" + strings.ToLower(RandomName(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	if lock {
		// Object Lock implies versioning on AWS; say it explicitly for
		// servers that keep the two apart.
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		}); err != nil {
			t.Fatalf("enabling versioning on %s: %v", name, err)
		}
	}
	return name
}

// RandomName returns 16 random hex digits.
func RandomName(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Postgres returns the test database's connection URL, skipping or failing
// the test if it cannot be reached.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := env("AGENTLOG_TEST_POSTGRES", DefaultPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		unavailable(t, "PostgreSQL", ".ci/services/postgres.sh", err)
	}
	c.Close(ctx)
	return dsn
}
