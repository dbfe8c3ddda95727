package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/internal/atomicfile"
	"github.com/agentlog/agentlog/internal/cmdline"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/mirror"
	"github.com/agentlog/agentlog/witness/policy"
)

// replicationFlags are serve's flags for the object-storage mirror, the
// lock, durability and failover (docs/replication.md).
type replicationFlags struct {
	mirror     string
	retention  string
	lockMode   string
	lock       string
	durability string
	standby    bool
	lease      time.Duration
	lagAlert   time.Duration
	node       string
	// replicatedWait bounds an append's wait for the bucket after its
	// local commit (--durability replicated).
	replicatedWait time.Duration
}

// errReplicatedWait is why an append's wait for the bucket ended.
var errReplicatedWait = errors.New("the entries did not reach the mirror bucket within --replicated-wait")

func (f *replicationFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.mirror, "mirror", "", "replicate tiles, entry bundles and checkpoints to s3://BUCKET[/PREFIX] (a bucket with Object Lock; endpoint, region and credentials from the AWS environment)")
	fs.StringVar(&f.retention, "mirror-retention", "400d", "Object Lock retention of every object written to the mirror (Go duration, or days as 400d)")
	fs.StringVar(&f.lockMode, "mirror-lock", "compliance", "Object Lock mode of the mirror's objects: compliance or governance")
	fs.StringVar(&f.lock, "lock", "s3", "where checkpoints are compare-and-swapped before they are published: s3 (conditional writes in the mirror bucket) or postgres://... (password from PGPASSFILE or PGPASSWORD, never the URL)")
	fs.StringVar(&f.durability, "durability", "local", "when an append is acknowledged: local (fsynced here) or replicated (in the mirror bucket under a published checkpoint)")
	fs.BoolVar(&f.standby, "standby", false, "follow the mirror bucket, serve reads, and take over when the active log's lease lapses")
	fs.DurationVar(&f.lease, "lease", mirror.DefaultLeaseTime, "how long the active log's lease lasts without renewal; a standby takes over after it lapses")
	fs.DurationVar(&f.replicatedWait, "replicated-wait", 30*time.Second, "with --durability replicated, longest an append waits for the bucket after its local commit (1s to 10m); beyond it the append gets 503 saying its entries are committed here but not acknowledged")
	fs.DurationVar(&f.lagAlert, "mirror-lag-alert", time.Minute, "record an alert in the log when the oldest entry not yet in the bucket is older than this")
	fs.StringVar(&f.node, "node", "", "this node's name in the lock (default: the host name and a random suffix kept in DATA/node-id)")
}

// check validates the flags before anything is written.
func (f *replicationFlags) check() error {
	if f.mirror == "" {
		switch {
		case f.durability == "replicated":
			return cmdline.Usagef("--durability replicated needs --mirror")
		case f.standby:
			return cmdline.Usagef("--standby needs --mirror")
		}
		return nil
	}
	if _, _, err := mirror.ParseURL(f.mirror); err != nil {
		return cmdline.Usagef("--mirror: %v", err)
	}
	if _, err := parseRetention(f.retention); err != nil {
		return cmdline.Usagef("--mirror-retention: %v", err)
	}
	if f.lockMode != "compliance" && f.lockMode != "governance" {
		return cmdline.Usagef("--mirror-lock %q: want compliance or governance", f.lockMode)
	}
	if f.durability != "local" && f.durability != "replicated" {
		return cmdline.Usagef("--durability %q: want local or replicated", f.durability)
	}
	if f.lease < 500*time.Millisecond {
		return cmdline.Usagef("--lease %v: at least 500ms", f.lease)
	}
	if f.replicatedWait < time.Second || f.replicatedWait > 10*time.Minute {
		return cmdline.Usagef("--replicated-wait %v: want 1s to 10m0s", f.replicatedWait)
	}
	if f.lagAlert <= 0 {
		return cmdline.Usagef("--mirror-lag-alert must be positive")
	}
	if f.lock != "s3" {
		u, err := url.Parse(f.lock)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return cmdline.Usagef("--lock %q: want s3 or postgres://...", u.Redacted())
		}
		if _, ok := u.User.Password(); ok {
			return cmdline.Usagef("--lock: the URL carries a password; put it in a PGPASSFILE (mode 0600) or PGPASSWORD instead, so it is not on the command line")
		}
	}
	return nil
}

// parseRetention accepts a Go duration or a whole number of days ("400d").
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q: want a number of days such as 400d, or a Go duration", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want a number of days such as 400d, or a Go duration", s)
		}
	}
	if d < time.Hour {
		return 0, fmt.Errorf("%q: at least one hour", s)
	}
	return d, nil
}

// s3Client builds an S3 client from the standard AWS environment and
// files. With an explicit endpoint (AWS_ENDPOINT_URL or
// AWS_ENDPOINT_URL_S3: an S3-compatible store) it uses path-style
// addressing, and region us-east-1 if none is configured.
func s3Client(ctx context.Context) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the AWS configuration: %w", err)
	}
	custom := os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	if cfg.Region == "" && custom {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = custom }), nil
}

// nodeName returns --node, or the name kept in DATA/node-id, made on first
// start from the host name and a random suffix.
func nodeName(flagValue, data string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	path := filepath.Join(data, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	r := make([]byte, 4)
	rand.Read(r)
	name := host + "-" + hex.EncodeToString(r)
	if err := atomicfile.Write(path, []byte(name+"\n"), 0o644); err != nil {
		return "", err
	}
	return name, nil
}

// openMirror opens the bucket and the lock and returns the mirror, which
// holds no lease yet.
func (f *replicationFlags) openMirror(ctx context.Context, data string, keys *checkpoint.Keys, l *alog.Log, reg prometheus.Registerer, logger *slog.Logger, onSuperseded func(error)) (*mirror.Mirror, mirror.Lock, error) {
	retention, _ := parseRetention(f.retention)
	client, err := s3Client(ctx)
	if err != nil {
		return nil, nil, err
	}
	b, err := mirror.OpenBucket(ctx, mirror.BucketConfig{Client: client, URL: f.mirror, Retention: retention, Mode: f.lockMode})
	if err != nil {
		return nil, nil, err
	}
	lock, err := mirror.OpenLock(ctx, f.lock, keys.Origin, b)
	if err != nil {
		return nil, nil, err
	}
	node, err := nodeName(f.node, data)
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	m, err := mirror.New(ctx, mirror.Config{
		Bucket: b, Lock: lock, Source: mirror.FromLog(l), Keys: keys, Holder: node,
		LeaseTime: f.lease, OnSuperseded: onSuperseded, Logger: logger, Registerer: reg,
	})
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	return m, lock, nil
}

// quarantine writes the entries [from, to) of l to a new file under
// DATA/quarantine (mode 0600: entries are confidential), one JSON object
// a line with the index the entry had here, its leaf hash and the entry,
// for an operator to resubmit. It returns the file's path.
func quarantine(data string, l *alog.Log, from, to uint64) (string, error) {
	if to <= from {
		return "", nil
	}
	dir := filepath.Join(data, "quarantine")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	err := l.ForEachEntry(context.Background(), from, to, func(i uint64, leaf []byte) error {
		h := rfc6962.DefaultHasher.HashLeaf(leaf)
		line, err := json.Marshal(struct {
			Index    uint64          `json:"index"`
			LeafHash string          `json:"leaf_hash"`
			Entry    json.RawMessage `json:"entry"`
		}{i, base64.StdEncoding.EncodeToString(h), leaf})
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the entries to quarantine: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.ndjson", time.Now().UTC().Format("20060102T150405Z"), from, to))
	if err := atomicfile.Write(path, buf.Bytes(), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// watchLag records an alert in the log (kind alert, action mirror.lagging)
// when the oldest entry not yet in the bucket gets older than limit, and
// one (mirror.caught_up) when the mirror catches up again. An alert whose
// append fails (the storage failing or stalled) is tried again at the next
// tick, until one is recorded or the state it reports has passed.
func watchLag(ctx context.Context, m *mirror.Mirror, l *alog.Log, limit time.Duration, logger *slog.Logger) {
	t := time.NewTicker(min(limit/4, 5*time.Second))
	defer t.Stop()
	recorded := false // whether the log's last mirror alert says lagging
	said := ""        // the alert last announced in the process log
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.Superseded() != nil {
			return
		}
		st := m.Status()
		action := ""
		switch over := st.LagSeconds > limit.Seconds(); {
		case over && !recorded:
			action = "mirror.lagging"
		case !over && recorded && st.LagEntries == 0:
			action = "mirror.caught_up"
		}
		if action == "" {
			said = ""
			continue
		}
		if action != said {
			said = action
			if action == "mirror.lagging" {
				logger.Error("the mirror is lagging", "lag_seconds", st.LagSeconds, "lag_entries", st.LagEntries, "last_error", st.LastError)
			} else {
				logger.Info("the mirror caught up")
			}
		}
		attrs, _ := json.Marshal(map[string]any{"lag_seconds": st.LagSeconds, "lag_entries": st.LagEntries, "bucket": st.Bucket, "last_error": st.LastError})
		if _, err := l.Append(ctx, anomaly.Principal, alog.KindAlert, []alog.Record{{Action: action, Resource: st.Bucket, Attributes: attrs}}); err != nil {
			logger.Warn("recording the mirror alert; trying again", "alert", action, "err", err)
			continue
		}
		recorded = action == "mirror.lagging"
		said = ""
	}
}

// errStandby is why a standby refuses appends.
var errStandby = errors.New("this node is a standby: append to the active log (it takes over only when the active log's lease lapses)")

// standbyImporter stores the entries a standby copies from the bucket and
// rebuilds the identities and the configuration changes from them,
// recording in DATA/replayed the tree size up to which they were replayed.
type standbyImporter struct {
	l       *alog.Log
	ids     *identity.Store
	changes *change.Store
	mark    string
	logger  *slog.Logger
}

func (s standbyImporter) Import(ctx context.Context, at uint64, leaves [][]byte) error {
	if err := s.l.Import(ctx, at, leaves); err != nil {
		return err
	}
	return s.replay(at, leaves)
}

func (s standbyImporter) replay(at uint64, leaves [][]byte) error {
	for i, leaf := range leaves {
		if err := s.ids.Replay(leaf); err != nil {
			s.logger.Warn("rebuilding identities from the log", "index", at+uint64(i), "err", err)
		}
		if err := s.changes.Replay(at+uint64(i), leaf); err != nil {
			s.logger.Warn("rebuilding configuration changes from the log", "index", at+uint64(i), "err", err)
		}
	}
	return atomicfile.Write(s.mark, []byte(strconv.FormatUint(at+uint64(len(leaves)), 10)+"\n"), 0o644)
}

// catchUp replays the entries imported before a crash but not replayed.
func (s standbyImporter) catchUp(ctx context.Context) error {
	var from uint64
	if b, err := os.ReadFile(s.mark); err == nil {
		from, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	size := s.l.Size()
	for from < size {
		n := min(size-from, 4096)
		leaves, err := s.l.Entries(from, n)
		if err != nil {
			return err
		}
		if err := s.replay(from, leaves); err != nil {
			return err
		}
		from += n
	}
	return nil
}

// followUntilTakeover runs a standby: it copies the bucket into the local
// log, adopting and serving each checkpoint, until the active log's lease
// lapses; then it takes the lock. It returns true once this node is the
// active one, false if ctx ended or following failed for good.
func followUntilTakeover(ctx context.Context, m *mirror.Mirror, l *alog.Log, ids *identity.Store, changes *change.Store, loop *signer.Loop, publish func(*checkpoint.Signed), data string, logger *slog.Logger) bool {
	imp := standbyImporter{l: l, ids: ids, changes: changes, mark: filepath.Join(data, "replayed"), logger: logger}
	if err := imp.catchUp(ctx); err != nil {
		logger.Error("standby: rebuilding identities", "err", err)
		return false
	}
	logger.Info("standby: following the bucket", "tree_size", l.Size())
	for {
		err := m.Follow(ctx, imp, func(c *checkpoint.Signed) {
			if _, err := loop.Adopt(c.Raw); err != nil {
				logger.Error("standby: adopting the bucket's checkpoint", "size", c.Size, "err", err)
				return
			}
			publish(c)
		})
		if err != nil {
			if ctx.Err() == nil {
				logger.Error("standby: stopped following the bucket", "err", err)
			}
			return false
		}
		start := time.Now()
		err = m.TakeOver(ctx)
		if err == nil {
			logger.Warn("standby: the active log's lease lapsed; this node took over and signs from now on", "tree_size", l.Size(), "takeover", time.Since(start))
			return true
		}
		logger.Warn("standby: taking over failed; following again", "err", err)
	}
}

// standbyPublisher returns how a standby serves the bucket's checkpoints
// at /checkpoint: as they are (with the cosignatures the active added,
// mirror.Mirror.Cosigned) without a witness policy; with one, only those
// whose cosignatures meet it, verified here, unless --unwitnessed
// publish, as the active log does.
func standbyPublisher(srv *api.Server, p *policy.Policy, unwitnessed string, logger *slog.Logger) func(*checkpoint.Signed) {
	return func(c *checkpoint.Signed) {
		if p != nil && unwitnessed != unwitnessedPublish {
			if _, err := p.Verify(c.Raw); err != nil {
				logger.Debug("standby: the bucket's checkpoint lacks the witness quorum; serving the last one that has it", "size", c.Size, "err", err)
				return
			}
		}
		srv.Publish(c)
	}
}

// takeOverRules starts, on a standby that took over, what a node does
// only while it is the active one: the anomaly rules, their state rebuilt
// from the log (anomaly.PrepareTakeover: the old active's position, windows
// and episodes, and nothing raised twice), sent on rules; the alerting and
// change-management settings, recorded if this node's differ from the
// log's last; and (recordSettings) the initial changes the old active left
// unrecorded.
func takeOverRules(ctx context.Context, l *alog.Log, srv *api.Server, newRules func() (*anomaly.Watcher, error), record func(*anomaly.Watcher) error,
	recordSettings func(context.Context) error, rules chan<- *anomaly.Watcher, logger *slog.Logger) {
	if err := recordSettings(ctx); err != nil {
		logger.Error("recording the change-management settings (and changes the old active left unrecorded) after the takeover", "err", err)
	}
	if err := anomaly.PrepareTakeover(ctx, l); err != nil {
		logger.Error("rebuilding the anomaly rules' state from the log; the rules do not run", "err", err)
		rules <- nil
		return
	}
	w, err := newRules()
	if err != nil {
		logger.Error("starting the anomaly rules after the takeover; they do not run", "err", err)
		rules <- nil
		return
	}
	if err := record(w); err != nil {
		logger.Error("recording the alerting configuration after the takeover", "err", err)
	}
	if w != nil {
		srv.SetAnomaly(w)
		logger.Info("anomaly rules running after the takeover", "examined_from", w.Status().Examined)
	}
	rules <- w
}

// withMirror appends to opts the option that reads from --mirror, if set.
func withMirror(opts []client.Option, mirrorURL string) ([]client.Option, error) {
	if mirrorURL == "" {
		return opts, nil
	}
	o, err := mirrorOption(context.Background(), mirrorURL)
	if err != nil {
		return nil, err
	}
	return append(opts, o), nil
}

// mirrorOption returns the client option that reads tiles, bundles and
// checkpoints from --mirror: an http(s) URL (a public bucket, a CDN) or
// s3://BUCKET[/PREFIX], read with the AWS SDK and the AWS environment's
// credentials.
func mirrorOption(ctx context.Context, u string) (client.Option, error) {
	if !strings.HasPrefix(u, "s3://") {
		return client.WithMirror(u, nil), nil
	}
	bucket, prefix, err := mirror.ParseURL(u)
	if err != nil {
		return nil, cmdline.Usagef("--mirror: %v", err)
	}
	c, err := s3Client(ctx)
	if err != nil {
		return nil, err
	}
	return client.WithMirror("http://s3.mirror.invalid", &http.Client{Transport: s3Transport{c: c, bucket: bucket, prefix: prefix}, Timeout: 5 * time.Minute}), nil
}

// s3Transport answers GET requests for static-layout paths by reading the
// objects under prefix in bucket (signed requests through the SDK); a
// missing object is a 404.
type s3Transport struct {
	c      *s3.Client
	bucket string
	prefix string
}

func (t s3Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	if req.Method != http.MethodGet {
		return nil, fmt.Errorf("the s3 mirror is read-only: %s %s", req.Method, req.URL.Path)
	}
	key := t.prefix + strings.TrimPrefix(req.URL.Path, "/")
	out, err := t.c.GetObject(req.Context(), &s3.GetObjectInput{Bucket: &t.bucket, Key: &key})
	resp := &http.Response{Request: req, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	var nsk *s3types.NoSuchKey
	switch {
	case errors.As(err, &nsk):
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
		resp.Body = io.NopCloser(strings.NewReader("s3://" + t.bucket + "/" + key + ": no such object"))
		return resp, nil
	case err != nil:
		return nil, fmt.Errorf("reading s3://%s/%s: %w", t.bucket, key, err)
	}
	resp.StatusCode, resp.Status, resp.Body = http.StatusOK, "200 OK", out.Body
	return resp, nil
}
