package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrNotExist is returned by [Bucket.Get] for a missing object.
var ErrNotExist = errors.New("no such object")

// ErrPrecondition is wrapped by the error of a conditional write
// (If-Match, If-None-Match) that the store refused.
var ErrPrecondition = errors.New("precondition failed")

// maxObject caps what Get reads: a full entry bundle is at most 256
// entries of 64 KiB.
const maxObject = 256*(2+65535) + 1

// ParseURL splits s3://BUCKET[/PREFIX] into the bucket and the key prefix
// (empty, or ending in "/"). The bucket name must be one S3 can hold
// (checkBucketName), and the prefix's segments must be printable UTF-8 and not "." or ".." (an
// S3-compatible server on a file system maps keys to paths), so that a
// mistyped URL is refused with a sentence at start, not by the server at
// the first write.
func ParseURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("mirror URL %q: want s3://BUCKET[/PREFIX]", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("mirror URL %q: no bucket name", u)
	}
	if err := checkBucketName(bucket); err != nil {
		return "", "", fmt.Errorf("mirror URL %q: %w", u, err)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			switch {
			case seg == "":
				return "", "", fmt.Errorf("mirror URL %q: the prefix has an empty segment (\"//\")", u)
			case seg == "." || seg == "..":
				return "", "", fmt.Errorf("mirror URL %q: the prefix has a %q segment", u, seg)
			case !utf8.ValidString(seg) || strings.ContainsFunc(seg, func(r rune) bool { return !unicode.IsPrint(r) }):
				return "", "", fmt.Errorf("mirror URL %q: the prefix has a character that is not printable UTF-8", u)
			}
		}
		if len(prefix) > 512 {
			return "", "", fmt.Errorf("mirror URL %q: the prefix is longer than 512 bytes", u)
		}
		prefix += "/"
	}
	return bucket, prefix, nil
}

// checkBucketName refuses what no S3 bucket can be named. It allows the
// legacy names us-east-1 accepted before 2018 (capitals, underscores, up
// to 255 characters), so that an existing bucket still opens; S3 itself
// refuses a new bucket outside today's rules when it is created.
func checkBucketName(b string) error {
	if len(b) < 3 || len(b) > 255 {
		return fmt.Errorf("bucket name %q: want 3 to 255 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("bucket name %q: only letters, digits, dots, hyphens and underscores", b)
		}
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("bucket name %q: an IP address is not a bucket name", b)
	}
	return nil
}

// BucketConfig configures [OpenBucket].
type BucketConfig struct {
	Client *s3.Client
	URL    string // s3://BUCKET[/PREFIX]
	// Retention is how long every object written stays locked (> 0).
	Retention time.Duration
	// Mode is the Object Lock mode: "compliance" (nobody, not even the
	// account's root, can delete a version or shorten its retention) or
	// "governance" (only principals with s3:BypassGovernanceRetention can).
	Mode string
	// Now is the clock retention dates are computed from; default time.Now.
	Now func() time.Time
}

// A Bucket is an S3 bucket, under a key prefix, holding a log in the
// c2sp.org/tlog-tiles layout: "checkpoint", "tile/<L>/<N>[.p/<W>]" and
// "tile/entries/<N>[.p/<W>]". Every object it writes carries Object Lock
// retention, except the s3 lock backend's "lock" object and the sinks' positions
// ("sink-position/<name>"), which move.
type Bucket struct {
	c      *s3.Client
	name   string
	prefix string
	mode   types.ObjectLockMode
	retain time.Duration
	now    func() time.Time
}

// OpenBucket checks that the bucket exists with versioning and Object Lock
// enabled, and returns it. The errors say what to change.
func OpenBucket(ctx context.Context, cfg BucketConfig) (*Bucket, error) {
	name, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	b := &Bucket{c: cfg.Client, name: name, prefix: prefix, retain: cfg.Retention, now: cfg.Now}
	if b.now == nil {
		b.now = time.Now
	}
	switch strings.ToLower(cfg.Mode) {
	case "compliance":
		b.mode = types.ObjectLockModeCompliance
	case "governance":
		b.mode = types.ObjectLockModeGovernance
	default:
		return nil, fmt.Errorf("object lock mode %q: want compliance or governance", cfg.Mode)
	}
	if cfg.Retention <= 0 {
		return nil, fmt.Errorf("object lock retention %v: must be positive", cfg.Retention)
	}
	v, err := b.c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: cannot read its versioning state: %w", name, err)
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return nil, fmt.Errorf("bucket %s: versioning is not enabled (status %q); the mirror needs a bucket created with Object Lock, which enables versioning (docs/replication.md)", name, v.Status)
	}
	lc, err := b.c.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: Object Lock is not enabled (%w); create the bucket with Object Lock enabled (docs/replication.md)", name, err)
	}
	if lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return nil, fmt.Errorf("bucket %s: Object Lock is not enabled; create the bucket with Object Lock enabled (docs/replication.md)", name)
	}
	return b, nil
}

// Name returns the bucket's URL.
func (b *Bucket) Name() string { return "s3://" + b.name + "/" + b.prefix }

// Client returns the S3 client and the bucket name, for readers.
func (b *Bucket) Client() (*s3.Client, string) { return b.c, b.name }

func (b *Bucket) key(p string) string { return b.prefix + p }

// Get returns the latest version of the object at p (relative to the
// prefix) and its ETag; ErrNotExist if there is none.
func (b *Bucket) Get(ctx context.Context, p string) ([]byte, string, error) {
	return getObject(ctx, b.c, b.name, b.key(p))
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, "", fmt.Errorf("s3://%s/%s: %w", bucket, key, ErrNotExist)
		}
		return nil, "", fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxObject))
	if err != nil {
		return nil, "", fmt.Errorf("reading s3://%s/%s: %w", bucket, key, err)
	}
	if len(data) >= maxObject {
		return nil, "", fmt.Errorf("s3://%s/%s: larger than %d bytes", bucket, key, maxObject-1)
	}
	return data, aws.ToString(out.ETag), nil
}

// put kinds: how an object is cached and whether it is locked.
type putKind int

const (
	tileObject       putKind = iota // immutable, locked
	checkpointObject                // short cache, locked
	lockObject                      // no cache, not locked (rewritten every lease renewal)
	positionObject                  // no cache, not locked (a sink's position, which moves)
)

// put writes data at p. ifMatch "" and ifNoneMatch false make an
// unconditional write; a refused condition returns an error wrapping
// ErrPrecondition. It returns the new version's ETag.
func (b *Bucket) put(ctx context.Context, p string, data []byte, kind putKind, ifMatch string, ifNoneMatch bool) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.name),
		Key:           aws.String(b.key(p)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	switch kind {
	case tileObject:
		in.ContentType = aws.String("application/octet-stream")
		in.CacheControl = aws.String("public, max-age=31536000, immutable")
	case checkpointObject:
		in.ContentType = aws.String("text/plain; charset=utf-8")
		in.CacheControl = aws.String("no-cache")
	case lockObject, positionObject:
		in.ContentType = aws.String("application/json")
		in.CacheControl = aws.String("no-store")
	}
	if kind != lockObject && kind != positionObject {
		in.ObjectLockMode = b.mode
		in.ObjectLockRetainUntilDate = aws.Time(b.now().Add(b.retain).UTC())
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := b.c.PutObject(ctx, in)
	if err != nil {
		if isPrecondition(err) {
			return "", fmt.Errorf("writing %s: %w", b.key(p), ErrPrecondition)
		}
		return "", fmt.Errorf("writing %s: %w", b.key(p), err)
	}
	return aws.ToString(out.ETag), nil
}

// A ConflictError reports an object that already exists with other
// content than the log's.
type ConflictError struct {
	Path string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s already exists in the bucket with different content", e.Path)
}

// putOnce writes an immutable object: if one exists already it must hold
// the same bytes (an upload retried after a crash), else a *ConflictError.
func (b *Bucket) putOnce(ctx context.Context, p string, data []byte) error {
	_, err := b.put(ctx, p, data, tileObject, "", true)
	if !errors.Is(err, ErrPrecondition) {
		return err
	}
	have, _, err := b.Get(ctx, p)
	if err != nil {
		return err
	}
	if !bytes.Equal(have, data) {
		return &ConflictError{Path: b.key(p)}
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func isPrecondition(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}
