package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/agentlog/agentlog/checkpoint"
	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/checkpoint/signer"
	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/internal/listener"
	"github.com/agentlog/agentlog/internal/tlsfile"
	alog "github.com/agentlog/agentlog/log"
	"github.com/agentlog/agentlog/log/anomaly"
	"github.com/agentlog/agentlog/log/api"
	"github.com/agentlog/agentlog/log/change"
	"github.com/agentlog/agentlog/log/console"
	"github.com/agentlog/agentlog/log/identity"
	"github.com/agentlog/agentlog/log/mirror"
	"github.com/agentlog/agentlog/log/otlp"
	"github.com/agentlog/agentlog/log/sink"
	"github.com/agentlog/agentlog/witness"
	"github.com/agentlog/agentlog/witness/policy"
)

const defaultOrigin = "agentlog.local/log"

// connReserve is how many connections beyond --max-connections are
// accepted for health checks and metrics only.
const connReserve = listener.DefaultReserve

// minCommitWait is the shortest --commit-wait: below it a busy but healthy
// disk (a commit of a large batch, a slow fsync now and then) would have
// appends refused, and /healthz, which calls the storage slow from a
// commit of a second, would say nothing of why.
const minCommitWait = time.Second

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	data := fs.String("data", "agentlog-data", "data directory (keys, tokens, database)")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	origin := fs.String("origin", "", "log origin, a schemeless URL; default: the origin of the existing keys, or "+defaultOrigin)
	var ntpServers cmdline.MultiFlag
	fs.Var(&ntpServers, "ntp", "NTP server `HOST[:PORT]` (repeatable; default "+strings.Join(clock.DefaultServers, ", ")+")")
	interval := fs.Duration("checkpoint-interval", time.Second, "how often to sign a checkpoint when the tree has grown")
	refresh := fs.Duration("checkpoint-refresh", 5*time.Minute, "how often to re-sign an unchanged tree")
	requireNTP := fs.Bool("require-ntp", false, "refuse to sign checkpoints while the clock is not synchronized with NTP")
	ntpInterval := fs.Duration("ntp-interval", 64*time.Second, "how often to re-synchronize with NTP")
	maxBatch := fs.Int("max-batch", 8192, "most entries committed in one batch")
	tileCache := fs.Int("tile-cache", 16384, "full hash tiles kept in memory for proofs and tiles (16 KiB each, so at most 256 MiB by default)")
	maxPending := fs.Int("max-pending", 1<<18, "most entries waiting to be committed before appends get 503")
	commitWait := fs.Duration("commit-wait", alog.DefaultCommitWait, fmt.Sprintf("longest an append waits in the queue for its commit to start (%s to %s); beyond it the storage is stalled and the append gets 503 with Retry-After and nothing of it written", minCommitWait, alog.MaxCommitWait))
	maxConns := fs.Int("max-connections", 4096, fmt.Sprintf("most HTTP connections served at once; %d more are kept for /healthz and /metrics, and beyond those connections are closed on accept", connReserve))
	appendBudget := fs.Int("append-budget-mib", api.DefaultInflightBytes>>20, "MiB of append request bodies in flight (being read, decoded or committed) beyond which appends get 503 with Retry-After")
	agentBudget := fs.Int("append-budget-agent-mib", api.DefaultInflightBytesPerAgent>>20, "the same for each agent's appends (all its sessions together); at least 16")
	memoryLimit := fs.Int("memory-limit-mib", 768, "soft limit of the Go heap (runtime/debug.SetMemoryLimit): the GC works harder near it; 0 for none; GOMEMLIMIT, if set, takes precedence")
	diskReserve := fs.Int("disk-reserve-mib", alog.DefaultDiskReserve>>20, "MiB of free disk kept for the database's flushes and compactions, beyond what its open files may still grow by; below it appends get 507")
	vlogSize := fs.Int("value-log-file-mib", 1024, "size of the database's value log files in MiB (the newest grows into the free space: the space appends need includes it)")
	sessionTTL := fs.Duration("session-ttl", time.Hour, "lifetime of a session when the agent asks for none")
	sessionMaxTTL := fs.Duration("session-max-ttl", 12*time.Hour, "longest session lifetime an agent may ask for")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	shutdownTimeout := fs.Duration("shutdown-timeout", 2*time.Minute, "exit with an error if shutting down takes longer (acknowledged entries are already durable)")
	debugAddr := fs.String("debug-listen", "", "if set, serve Go's pprof profiles on this loopback address")
	anomalyOn := fs.Bool("anomaly", true, "run the anomaly rules (alerts are recorded in the log as kind \"alert\")")
	anomalyConfig := fs.String("anomaly-config", "", "anomaly rules and webhooks, JSON (docs/anomaly.md); default: the scope, hours, rate, config, sequence_gap and denied_burst rules")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate chain (with --tls-key; re-read when it changes)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert (mode 0600)")
	policyFile := fs.String("witness-policy", "", "c2sp.org/tlog-policy file: push each checkpoint to its witnesses and serve it with their cosignatures once the quorum is met")
	healthAfter := fs.Duration("health-alert-after", 2*time.Minute, "with --anomaly, raise ntp_unsynced, witness_quorum_lost and checkpoint_stalled alerts once the condition lasts this long, and clear them once it has been good as long")
	approvalMaxAge := fs.Duration("approval-max-age", api.DefaultApprovalMaxAge, "review period of agent approvals: GET /v1/controls flags an active agent approved longer ago")
	allowSelf := fs.Bool("allow-self-approval", false, "let a change's proposer approve it (breaks the two-person rule of CC8.1; recorded in the log)")
	sinksFile := fs.String("sinks", "", "deliver every entry as an OCSF event to the sinks of this JSON file (files, stdout, syslog, Splunk HEC, webhooks: docs/siem.md); checked at start, recorded in the log when it changes")
	sinkPublish := fs.Duration("sink-position-interval", time.Second, "with --mirror, how often the active log publishes the delivered position of each sink and alert webhook to the bucket, from which a standby that takes over resumes it (docs/siem.md)")
	witnessLag := fs.Duration("witness-lag-tolerance", witness.DefaultLagTolerance, "with --witness-policy, how long the newest checkpoint may lack its quorum before /healthz and the witness_quorum_lost alert count the witnesses as lagging")
	otlpOther := fs.String("otlp-other-spans", "ignore", "what OTLP trace ingest does with spans that are neither GenAI nor MCP: ignore (count them in the answer) or record (entries of action otel.span: docs/otlp.md)")
	unwitnessed := fs.String("unwitnessed", unwitnessedHold, "with --witness-policy, what /checkpoint serves while the newest checkpoint lacks its quorum: hold (the last cosigned one) or publish (the log-signed one)")
	var rf replicationFlags
	rf.register(fs)
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if err := rf.check(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cmdline.Usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if *interval <= 0 || *refresh <= 0 || *ntpInterval <= 0 {
		return cmdline.Usagef("--checkpoint-interval, --checkpoint-refresh and --ntp-interval must be positive")
	}
	if *witnessLag <= 0 || *approvalMaxAge <= 0 || *sinkPublish <= 0 {
		return cmdline.Usagef("--witness-lag-tolerance, --approval-max-age and --sink-position-interval must be positive")
	}
	if *policyFile != "" && *healthAfter <= *witnessLag {
		// Right after a start the witness client counts a dead witness as
		// lagging only after the tolerance: a shorter --health-alert-after
		// would end its episode and raise it again.
		return cmdline.Usagef("--health-alert-after (%s) must be longer than --witness-lag-tolerance (%s)", *healthAfter, *witnessLag)
	}
	if *sessionTTL <= 0 || *sessionMaxTTL <= 0 || *shutdownTimeout <= 0 || *healthAfter <= 0 {
		return cmdline.Usagef("--session-ttl, --session-max-ttl, --shutdown-timeout and --health-alert-after must be positive")
	}
	if *sessionTTL > *sessionMaxTTL {
		return cmdline.Usagef("--session-ttl (%s) must not be longer than --session-max-ttl (%s)", *sessionTTL, *sessionMaxTTL)
	}
	if *maxBatch < 1 || *maxPending < 1 || *tileCache < 0 {
		return cmdline.Usagef("--max-batch and --max-pending must be positive and --tile-cache not negative")
	}
	if _, err := net.ResolveTCPAddr("tcp", *listen); err != nil {
		return cmdline.Usagef("--listen %q: %v", *listen, err)
	}
	if err := checkDebugListen(*debugAddr); err != nil {
		return err
	}
	if *otlpOther != "ignore" && *otlpOther != "record" {
		return cmdline.Usagef("--otlp-other-spans %q: want ignore or record", *otlpOther)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *vlogSize < 1 || *vlogSize > 2047 || *diskReserve < 1 {
		return cmdline.Usagef("--value-log-file-mib must be 1 to 2047 and --disk-reserve-mib at least 1")
	}
	if *commitWait < minCommitWait || *commitWait > alog.MaxCommitWait {
		return cmdline.Usagef("--commit-wait %s: want %s to %s", *commitWait, minCommitWait, alog.MaxCommitWait)
	}
	if *appendBudget < 0 || *agentBudget < 0 || *memoryLimit < 0 {
		return cmdline.Usagef("--append-budget-mib, --append-budget-agent-mib and --memory-limit-mib must not be negative")
	}
	if *memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(*memoryLimit) << 20)
	}
	if len(ntpServers) == 0 {
		ntpServers = clock.DefaultServers
	}
	// Check the files the flags name before anything is written to the
	// data directory: a bad one stops the server with nothing created.
	tlsPair, err := tlsfile.LoadIfSet(*tlsCert, *tlsKey, logger)
	if err != nil {
		return err
	}
	acfg := anomaly.DefaultConfig()
	switch {
	case *anomalyConfig != "" && !*anomalyOn:
		return cmdline.Usagef("--anomaly-config needs --anomaly")
	case *anomalyConfig != "":
		if acfg, err = anomaly.ReadConfigFile(*anomalyConfig); err != nil {
			return err
		}
	}
	if *origin != "" && !checkpoint.ValidKeyName(*origin) {
		return cmdline.Usagef("--origin %q cannot name a key: it must be non-empty UTF-8 without spaces or '+'", *origin)
	}
	if *policyFile != "" {
		if err := checkPolicyFile(*policyFile, *data); err != nil {
			return err
		}
	}
	var scfg *sink.Config
	if *sinksFile != "" {
		c, err := sink.ReadConfigFile(*sinksFile)
		if err != nil {
			return err
		}
		scfg = &c
	}

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if *origin == "" {
		*origin = existingOrigin(*data)
	}
	keys, created, err := checkpoint.LoadOrCreateKeys(*data, *origin)
	if err != nil {
		return err
	}
	if created {
		logger.Info("generated log keys", "origin", *origin, "log.pub", filepath.Join(*data, "log.pub"), "time.pub", filepath.Join(*data, "time.pub"))
	}
	adminToken, err := cmdline.LoadOrCreateToken(filepath.Join(*data, "admin.token"))
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	clk := clock.New(clock.Config{Servers: ntpServers, SyncInterval: *ntpInterval, Logger: logger})

	l, err := alog.Open(alog.Config{
		Dir:        filepath.Join(*data, "db"),
		Clock:      clk.Now,
		MaxBatch:   *maxBatch,
		MaxPending: *maxPending,
		CommitWait: *commitWait,
		TileCache:  *tileCache,

		DiskReserve:      int64(*diskReserve) << 20,
		ValueLogFileSize: int64(*vlogSize) << 20,
		Logger:           logger,
		Registerer:       reg,
	})
	if err != nil {
		return err
	}
	defer l.Close()
	ids, err := identity.Open(l.DB(), l, identity.Config{DefaultTTL: *sessionTTL, MaxTTL: *sessionMaxTTL})
	if err != nil {
		return err
	}
	defer ids.Close()
	ids.AddStatic(adminToken, alog.Principal{ID: "admin", Role: api.RoleAdmin})
	var m *mirror.Mirror // with --mirror, set below
	copts := change.Options{AllowSelfApproval: *allowSelf, Replica: rf.standby}
	if rf.mirror != "" {
		// Configuration documents go to the bucket too, for standbys.
		copts.SaveDocument = func(digest string, b []byte) error { return m.SaveDocument(digest, b) }
		copts.FetchDocument = func(digest string) ([]byte, error) { return m.FetchDocument(digest) }
	}
	changes, err := change.Open(l.DB(), l, ids, copts)
	if err != nil {
		return err
	}
	recordSettings := func(ctx context.Context) error {
		changed, err := change.RecordSettings(ctx, l, *allowSelf)
		if changed {
			logger.Info("change-management settings recorded in the log", "allow_self_approval", *allowSelf)
		}
		if err != nil {
			return err
		}
		changed, err = otlp.RecordConfig(ctx, l, otlp.Options{RecordOther: *otlpOther == "record"})
		if changed {
			logger.Info("OTLP setting recorded in the log", "other_spans", *otlpOther)
		}
		return err
	}
	if !rf.standby { // a standby records them once it takes over
		if err := recordSettings(context.Background()); err != nil {
			return err
		}
	}
	if *allowSelf {
		logger.Warn("--allow-self-approval: proposers may approve their own changes (two-person rule off)")
	}

	if rf.mirror != "" {
		var lock mirror.Lock
		m, lock, err = rf.openMirror(context.Background(), *data, keys, l, reg, logger, func(cause error) {
			// Superseded: nothing more is sequenced, and what this node
			// acknowledged that never reached the bucket is exported.
			size := l.Fence(cause)
			from := m.Mirrored()
			path, err := quarantine(*data, l, from, size)
			switch {
			case err != nil:
				logger.Error("superseded: could not write the quarantine file", "entries_from", from, "entries_to", size, "err", err)
			case path != "":
				logger.Error("superseded: entries acknowledged here but never mirrored are in the quarantine file; resubmit them to the active log", "file", path, "entries", size-from)
			}
		})
		if err != nil {
			return err
		}
		defer lock.Close()
		if rf.standby {
			// A standby writes nothing of its own until it takes over.
			l.Fence(errStandby)
		} else if err := m.Acquire(context.Background()); err != nil {
			// Another node holds the lock (this one was superseded while
			// it was down) or took over and appended: what this node
			// committed beyond its last published checkpoint is not in the
			// log's history.
			var be *mirror.BehindError
			var he *mirror.HeldError
			if errors.As(err, &be) && be.Fork != nil || errors.As(err, &he) {
				// The entries from where this tree and the log's part.
				from, cerr := m.CommonSize(context.Background())
				if cerr != nil {
					// The bucket could not say: from this node's own
					// last published checkpoint (some may be in the log).
					logger.Warn("finding where this node's tree leaves the log's", "err", cerr)
					from = 0
					if raw, _ := (signer.FileStore{Path: filepath.Join(*data, "checkpoint")}).Load(); raw != nil {
						if c, err := checkpoint.Open(raw, keys.LogVerifier, keys.TimeVerifier); err == nil {
							from = c.Size
						}
					}
				}
				if path, qerr := quarantine(*data, l, from, l.Size()); qerr != nil {
					logger.Error("could not write the quarantine file", "err", qerr)
				} else if path != "" {
					return fmt.Errorf("refusing to start: %w; the %d entries from index %d that are not in the log are in %s", err, l.Size()-from, from, path)
				}
			}
			return fmt.Errorf("refusing to start: %w", err)
		}
	}
	var commit func(*checkpoint.Signed) error
	if m != nil {
		commit = m.Commit
	}

	var srv *api.Server
	var wc *witness.Client
	var standbyPolicy *policy.Policy // a standby's --witness-policy, which the bucket's checkpoints must meet to be served
	if *policyFile != "" {
		wc, err = newWitnessClient(*policyFile, *unwitnessed, *witnessLag, keys, l.Tree(), reg, logger, func(c *checkpoint.Signed) {
			srv.Publish(c)
			if m != nil {
				// The bucket's copy gets the cosignatures too, for
				// standbys and readers of the bucket (in the background:
				// the witness client does not wait for the store).
				go func() {
					if err := m.Cosigned(c); err != nil {
						logger.Warn("writing the cosigned checkpoint to the bucket", "size", c.Size, "err", err)
					}
				}()
			}
		})
		if err != nil {
			return err
		}
		if rf.standby {
			if standbyPolicy, err = readPolicy(*policyFile, keys.LogVKey); err != nil {
				return err
			}
		}
	}
	loop, err := signer.New(signer.Config{
		Keys:       keys,
		Source:     l.Tree(),
		Store:      signer.FileStore{Path: filepath.Join(*data, "checkpoint")},
		Clock:      clk,
		Interval:   *interval,
		Refresh:    *refresh,
		RequireNTP: *requireNTP,
		Commit:     commit,
		Publish:    func(c *checkpoint.Signed) { publishCheckpoint(srv, wc, c) },
		Logger:     logger,
	})
	if err != nil {
		return fmt.Errorf("refusing to start: %w", err)
	}
	var watcher *anomaly.Watcher
	var recordLater func(context.Context) // set when the disk was full at start
	newRules := func() (*anomaly.Watcher, error) {
		if !*anomalyOn {
			return nil, nil
		}
		o := anomaly.Options{
			Log: l, Config: acfg, Logger: logger, Registerer: reg,
			Scope: func(agent string) (identity.Scope, bool) {
				a, err := ids.Agent(agent)
				if err != nil {
					return identity.Scope{}, false
				}
				return a.Scope, true
			},
		}
		if m != nil {
			// Alert webhooks continue across a takeover like the sinks.
			o.Limit = mirroredWhileHeld(m)
			o.PublishHook = m.SaveWebhookPosition
			o.PublishEvery = *sinkPublish
			o.ResumeHook = func(ctx context.Context, url string) (uint64, bool, error) {
				// Three tries: the rules must not stay off for a
				// webhook's position (then it starts with the alerts
				// raised from now on, as without a published one).
				for try := 1; ; try++ {
					p, found, err := m.LoadWebhookPosition(ctx, url)
					if err == nil {
						return p.Next, found, nil
					}
					if try == 3 {
						logger.Error("reading the alert webhook's published position; it starts with the alerts raised from now on", "url", url, "err", err)
						return 0, false, nil
					}
					select {
					case <-ctx.Done():
						return 0, false, ctx.Err()
					case <-time.After(time.Second):
					}
				}
			}
		}
		return anomaly.New(o)
	}
	// newSinks opens the sinks of --sinks. With a mirror they deliver
	// only entries in the bucket, publish their positions there, and
	// resume from the higher of the published and the stored position, so
	// a node that becomes the active one continues each sink where the
	// last holder of the lock had delivered.
	newSinks := func() (*sink.Set, error) {
		o := sink.Options{Log: l, Config: *scfg, Origin: keys.Origin, Version: buildVersion(), Stdout: stdout, Logger: logger, Registerer: reg}
		if m != nil {
			o.Limit = mirroredWhileHeld(m)
			o.Publish = m.SaveSinkPosition
			o.PublishEvery = *sinkPublish
			o.Resume = func(ctx context.Context, name string) (uint64, bool, error) {
				p, found, err := m.LoadSinkPosition(ctx, name)
				return p.Next, found, err
			}
		}
		return sink.New(o)
	}
	var sinks *sink.Set
	// sinkSets receives the sinks to run (nil: none) once this node is the
	// active one; a standby's only when it takes over.
	sinkSets := make(chan *sink.Set, 1)
	if scfg != nil && rf.standby {
		logger.Info("sinks start when this standby takes over, each from the position the active published to the bucket")
	}
	if scfg != nil && !rf.standby {
		if sinks, err = newSinks(); err != nil {
			return err
		}
	}
	if !rf.standby {
		sinkSets <- sinks
	}
	// recordSinks records the sinks configuration if it differs from the
	// last one recorded.
	recordSinks := func() error {
		changed, err := sink.RecordConfig(context.Background(), l, scfg)
		if err == nil && changed {
			n := 0
			if scfg != nil {
				n = len(scfg.Sinks)
			}
			logger.Info("sinks configuration recorded in the log", "sinks", n)
		}
		return err
	}
	// recordRules records the configuration w runs (nil: off) if it
	// differs from the last one recorded.
	recordRules := func(w *anomaly.Watcher) error {
		var recorded *anomaly.Config
		if w != nil {
			c := w.Config()
			recorded = &c
		}
		changed, err := anomaly.RecordConfig(context.Background(), l, recorded)
		if err == nil && changed {
			logger.Info("alerting configuration recorded in the log", "enabled", recorded != nil)
		}
		return err
	}
	// rules receives the watcher to run (nil: none) once this node is
	// the active one; a standby's only when it takes over.
	rules := make(chan *anomaly.Watcher, 1)
	if !rf.standby {
		if watcher, err = newRules(); err != nil {
			return err
		}
		rules <- watcher
		record := func() error {
			if err := recordRules(watcher); err != nil {
				return err
			}
			return recordSinks()
		}
		switch err := record(); {
		case errors.Is(err, alog.ErrDiskFull):
			// Serve reads meanwhile; record it once there is room.
			logger.Warn("disk full: the alerting configuration will be recorded once space is freed", "err", err)
			recordLater = func(ctx context.Context) {
				t := time.NewTicker(5 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						if err := record(); !errors.Is(err, alog.ErrDiskFull) {
							if err != nil {
								logger.Error("recording the alerting configuration", "err", err)
							}
							return
						}
					}
				}
			}
		case err != nil:
			return err
		}
	}

	clk.Register(reg, "agentlog")
	loop.Register(reg)
	srv = api.New(api.Config{
		Log:            l,
		Identity:       ids,
		Changes:        changes,
		Origin:         keys.Origin,
		Clock:          clk,
		Loop:           loop,
		Witnesses:      wc,
		Anomaly:        watcher,
		Mirror:         m,
		MirrorLagLimit: rf.lagAlert,
		Sinks:          sinks,
		StaleAfter:     max(10**interval, 30*time.Second),
		LogVerifier:    keys.LogVerifier,
		TimeVerifier:   keys.TimeVerifier,
		ApprovalMaxAge: *approvalMaxAge,

		OTLPRecordOther: *otlpOther == "record",

		InflightBytes:         int64(*appendBudget) << 20,
		InflightBytesPerAgent: int64(*agentBudget) << 20,
		Registry:              reg,
		Logger:                logger,
	})
	if c := loop.Latest(); c != nil && rf.standby {
		// A standby does not submit to the witnesses: it serves what
		// the active had them cosign.
		standbyPublisher(srv, standbyPolicy, *unwitnessed, logger)(c)
	} else if c != nil {
		publishCheckpoint(srv, wc, c)
	}

	ln, scheme, err := tlsfile.ListenWrapped(*listen, tlsPair, func(ln net.Listener) net.Listener {
		return listener.Wrap(ln, listener.Config{Max: *maxConns, Reserve: connReserve, Registerer: reg})
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	go clk.Run(bg)
	if recordLater != nil {
		go recordLater(bg)
	}
	if wc != nil {
		go wc.Run(bg)
	}
	// Denied-attempt summaries, every minute and at shutdown.
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); srv.Run(bg) }()
	var active atomic.Bool // signing: not a standby, or one that took over
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		if rf.standby {
			if !followUntilTakeover(bg, m, l, ids, changes, loop, standbyPublisher(srv, standbyPolicy, *unwitnessed, logger), *data, logger) {
				return
			}
			l.Unfence()
			takeOverRules(bg, l, srv, newRules, recordRules, func(ctx context.Context) error {
				if err := recordSettings(ctx); err != nil {
					return err
				}
				return changes.RecordMissing(ctx)
			}, rules, logger)
			go func() { sinkSets <- takeOverSinks(bg, scfg != nil, newSinks, recordSinks, srv, logger) }()
		}
		// The gate only once the signing loop runs: the server's own
		// start-up entries (the alerting configuration) are not held.
		if rf.durability == "replicated" {
			l.SetAckGate(func(ctx context.Context, size uint64) error {
				ctx, cancel := context.WithTimeoutCause(ctx, rf.replicatedWait, errReplicatedWait)
				defer cancel()
				err := m.WaitMirrored(ctx, size)
				if err != nil && context.Cause(ctx) == errReplicatedWait {
					return fmt.Errorf("%w (%s)", errReplicatedWait, rf.replicatedWait)
				}
				return err
			})
		}
		active.Store(true)
		if m != nil {
			go m.Run(bg)
			go watchLag(bg, m, l, rf.lagAlert, logger)
		}
		loop.Run(bg)
	}()
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		var watcher *anomaly.Watcher
		select {
		case watcher = <-rules:
		case <-bg.Done():
		}
		if watcher != nil {
			var wg sync.WaitGroup
			wg.Go(func() {
				healthWatcher(l, clk, loop, wc, *healthAfter, max(10**interval, 30*time.Second), logger).Run(bg)
			})
			watcher.Run(bg)
			wg.Wait()
		}
	}()

	hs := &http.Server{
		Handler:           console.Handler(srv),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       listener.ConnContext,
	}
	if *debugAddr != "" {
		go serveDebug(*debugAddr, logger)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("agentlog serving", "addr", ln.Addr().String(), "scheme", scheme, "origin", keys.Origin, "tree_size", l.Size(), "data", *data)
	fmt.Fprintf(stdout, "agentlog listening on %s://%s (origin %s, tree size %d)\n", scheme, ln.Addr(), keys.Origin, l.Size())
	// After that line, which a stdout sink's events follow.
	sinksDone := make(chan struct{})
	go func() {
		defer close(sinksDone)
		select {
		case set := <-sinkSets:
			if set != nil {
				set.Run(bg)
			}
		case <-bg.Done():
		}
	}()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests")
	// Every acknowledged entry is already fsynced, so a shutdown that
	// cannot finish (a vanished or failing disk makes Badger retry its
	// flush forever) must not keep the process alive.
	watchdog := time.AfterFunc(*shutdownTimeout, func() {
		logger.Error("shutdown did not finish in time; exiting", "timeout", *shutdownTimeout)
		os.Exit(1)
	})
	defer watchdog.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Warn("HTTP shutdown", "err", err)
	}
	cancelBG()
	<-srvDone
	<-loopDone
	<-watcherDone
	<-sinksDone
	// Every acknowledged append is committed: sign a last checkpoint that
	// covers them all.
	if !active.Load() {
		// A standby that never took over signs nothing.
	} else if _, err := loop.SignNow(); err != nil {
		logger.Warn("signing the final checkpoint", "err", err)
	}
	if err := ids.Close(); err != nil {
		logger.Warn("writing idempotency keys", "err", err)
	}
	if err := l.Close(); err != nil {
		return err
	}
	logger.Info("stopped", "tree_size", l.Size())
	return nil
}

// mirroredWhileHeld is what the sinks and alert webhooks of an active
// with a mirror may deliver: the entries in the bucket, and none while
// this node's lease is not certainly valid (a node cut off from the lock
// or superseded delivers nothing new, so it does not interleave with the
// node taking over beyond the batch in flight).
func mirroredWhileHeld(m *mirror.Mirror) func() uint64 {
	return func() uint64 {
		if !m.LeaseHeld() {
			return 0
		}
		return m.Mirrored()
	}
}

// takeOverSinks starts, on a standby that took over, the sinks of
// --sinks (if any: on records the configuration only), each resuming from
// the position the old active published to the bucket (newSinks), and
// records the configuration if it differs from the log's last. Opening
// them is retried every 5 s until it succeeds (a bucket that cannot be
// read, a destination that cannot be opened, a position object with bad
// contents: each failure is logged) or ctx ends (nil).
func takeOverSinks(ctx context.Context, on bool, newSinks func() (*sink.Set, error), record func() error, srv *api.Server, logger *slog.Logger) *sink.Set {
	if err := record(); err != nil {
		logger.Error("recording the sinks configuration after the takeover", "err", err)
	}
	if !on {
		return nil
	}
	for {
		set, err := newSinks()
		if err == nil {
			srv.SetSinks(set)
			logger.Info("sinks started after the takeover", "sinks", len(set.Status()))
			return set
		}
		logger.Error("starting the sinks after the takeover; retrying in 5s", "err", err)
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// existingOrigin returns the origin of the keys already in dir, or the
// default origin for a new log.
func existingOrigin(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "log.pub"))
	if err != nil {
		return defaultOrigin
	}
	name, _, ok := strings.Cut(strings.TrimSpace(string(b)), "+")
	if !ok || name == "" {
		return defaultOrigin
	}
	return name
}

// healthWatcher raises the log's own health as alerts in the log: the
// clock without NTP, the newest checkpoint without its witness quorum, and
// a grown tree with no checkpoint signed for staleAfter (as /healthz
// judges them), each once it has lasted after.
func healthWatcher(l *alog.Log, clk *clock.Clock, loop *signer.Loop, wc *witness.Client, after, staleAfter time.Duration, logger *slog.Logger) *anomaly.HealthWatcher {
	checks := map[string]anomaly.Check{
		anomaly.RuleNTPUnsynced: func() (bool, string) {
			st := clk.Status()
			return !st.Synced || st.Degraded, fmt.Sprintf("the clock is not synchronized with NTP (%d of %d servers answered; last error %q)", st.Answered, st.Servers, st.LastError)
		},
		anomaly.RuleCheckpointStalled: func() (bool, string) {
			ls := loop.Status()
			stale := ls.Checked.IsZero() || time.Since(ls.Checked) > staleAfter
			return ls.Refusing || (l.Size() > ls.Size && stale), fmt.Sprintf("no checkpoint signed for tree size %d (last signed size %d; %s)", l.Size(), ls.Size, ls.LastError)
		},
	}
	if wc != nil {
		checks[anomaly.RuleWitnessQuorumLost] = func() (bool, string) {
			st := wc.Status()
			return st.Lagging, fmt.Sprintf("checkpoint %d lacks its witness quorum (%d cosigners; newest cosigned size %d)", st.LatestSize, st.QuorumCount, st.CosignedSize)
		}
	}
	return anomaly.NewHealthWatcher(anomaly.HealthOptions{Log: l, Checks: checks, After: after, Logger: logger})
}

// serveDebug serves Go's pprof profiles on addr (--debug-listen) until the
// process exits. Mutex and block profiles are sampled while it runs.
// checkDebugListen refuses a --debug-listen address that is not loopback:
// the profiles need no credential, and a CPU profile or an execution trace
// holds the process's CPU for as long as the caller asks.
func checkDebugListen(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return cmdline.Usagef("--debug-listen %q: Go's profiles need no credential, so they are served on a loopback address only (127.0.0.1:6060; reach it through SSH)", addr)
	}
	return nil
}

func serveDebug(addr string, logger *slog.Logger) {
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(100_000) // one blocking event per 100 µs blocked
	dm := http.NewServeMux()
	dm.HandleFunc("/debug/pprof/", pprof.Index)
	dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
	dm.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ds := &http.Server{Addr: addr, Handler: dm, ReadHeaderTimeout: 10 * time.Second}
	logger.Warn("debug server stopped", "err", ds.ListenAndServe())
}
