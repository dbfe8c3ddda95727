// Command agentlog-witness is a transparency log witness
// (https://c2sp.org/tlog-witness): it cosigns the checkpoints of the logs it
// is told to follow, after checking that each is consistent with the last
// one it cosigned, so a log cannot show different histories to different
// readers without being caught.
//
//	agentlog-witness serve --data DIR --listen ADDR --name NAME --log VKEY [--log VKEY]... [--log-list FILE] [--ntp HOST[:PORT]]...
//
// On first start it creates DIR/witness.key (the private cosignature v1
// key, mode 0600) and DIR/witness.pub (its verifier key, to give to the
// logs and auditors who list this witness in their policy). The state of
// each log, the latest checkpoint cosigned, is in DIR/state, one fsynced
// file per log, written before any cosignature is returned; a witness
// killed at any point and restarted never cosigns a checkpoint inconsistent
// with one it cosigned before.
//
// Cosignatures carry the time of a clock disciplined by the --ntp servers
// (c2sp.org/tlog-cosignature v1).
//
// Endpoints: POST /add-checkpoint, GET /<hex SHA-256 of origin>/checkpoint,
// GET /healthz, GET /metrics.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	fnote "github.com/transparency-dev/formats/note"

	"github.com/agentlog/agentlog/internal/cmdline"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentlog/agentlog/checkpoint/clock"
	"github.com/agentlog/agentlog/internal/listener"
	"github.com/agentlog/agentlog/internal/tlsfile"
	"github.com/agentlog/agentlog/witness"
)

// command is agentlog-witness's one verb and its help, run by
// internal/cmdline as agentlog's are: "help", "serve -h", "--version",
// usage errors with exit 2.
var command = &cmdline.Command{
	Name:  "agentlog-witness",
	Title: "agentlog-witness: a C2SP transparency log witness.",
	Order: []string{"serve"},
	Helps: map[string]cmdline.Help{"serve": {
		Summary: "cosign the checkpoints of the logs it follows, after checking each is consistent with the last (c2sp.org/tlog-witness)",
		Usage:   "serve --data DIR [--listen ADDR] --name NAME --log VKEY [--log VKEY]... [--ntp HOST[:PORT]]...",
		Example: `agentlog-witness serve --data wdata --name witness.example.com/w1 --log "$(cat log.pub)"`,
	}},
}

func init() { command.Verbs = map[string]cmdline.VerbFunc{"serve": serve} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one agentlog-witness command line and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int { return command.Run(args, stdout, stderr) }

func serve(args []string, stdout, stderr io.Writer) error {
	fs := command.NewFlags("serve", stderr)
	data := fs.String("data", "agentlog-witness-data", "data directory (key and per-log state)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	name := fs.String("name", "", "name of the witness key, for example witness.example.com/w1 (needed on first start)")
	var logs, ntpServers cmdline.MultiFlag
	fs.Var(&logs, "log", "verifier key `VKEY` of a log to witness; its name is the log's origin (repeatable)")
	logList := fs.String("log-list", "", "file of log verifier keys, one a line (# comments), in addition to --log")
	fs.Var(&ntpServers, "ntp", "NTP server `HOST[:PORT]` (repeatable; default "+strings.Join(clock.DefaultServers, ", ")+")")
	ntpInterval := fs.Duration("ntp-interval", clock.DefaultSyncInterval, "how often to re-synchronize with NTP")
	rate := fs.Float64("rate", 4, "add-checkpoint requests allowed per second and log, on average")
	burst := fs.Int("burst", 20, "add-checkpoint requests a log may make at once")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate chain (with --tls-key; re-read when it changes)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert (mode 0600)")
	maxConns := fs.Int("max-connections", 1024, fmt.Sprintf("most HTTP connections served at once; %d more are kept for /healthz and /metrics, and beyond those connections are closed on accept", listener.DefaultReserve))
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cmdline.Usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	if *logList != "" {
		b, err := os.ReadFile(*logList)
		if err != nil {
			return fmt.Errorf("reading --log-list: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				logs = append(logs, line)
			}
		}
	}
	if len(logs) == 0 {
		return cmdline.Usagef("at least one --log VKEY (or a --log-list file) is needed")
	}
	if *rate <= 0 || *burst < 1 || *ntpInterval <= 0 || *maxConns < 1 {
		return cmdline.Usagef("--rate, --burst, --ntp-interval and --max-connections must be positive")
	}
	if _, err := net.ResolveTCPAddr("tcp", *listen); err != nil {
		return cmdline.Usagef("--listen %q: %v", *listen, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// A bad TLS file stops the witness before it creates its key.
	tlsPair, err := tlsfile.LoadIfSet(*tlsCert, *tlsKey, logger)
	if err != nil {
		return err
	}
	verifiers := map[string][]note.Verifier{}
	for _, k := range logs {
		v, err := fnote.NewVerifier(strings.TrimSpace(k))
		if err != nil {
			return cmdline.Usagef("--log %q: %v", k, err)
		}
		verifiers[v.Name()] = append(verifiers[v.Name()], v)
	}
	if len(ntpServers) == 0 {
		ntpServers = clock.DefaultServers
	}
	clk := clock.New(clock.Config{Servers: ntpServers, SyncInterval: *ntpInterval, Logger: logger})

	signer, created, err := witness.LoadOrCreateKey(*data, *name, clk.Now)
	if err != nil {
		return err
	}
	if created {
		logger.Info("generated the witness key", "name", signer.Name(), "witness.pub", filepath.Join(*data, witness.PubFile))
	}
	store, err := witness.OpenFileStore(filepath.Join(*data, "state"))
	if err != nil {
		return err
	}
	defer store.Close()
	w, err := witness.New(witness.Config{
		Signer: signer,
		Logs:   verifiers,
		Store:  store,
		Limit:  witness.RateLimit(*rate, *burst),
		Logger: logger,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	clk.Register(reg, "agentlog_witness")
	srv := witness.NewServer(witness.ServerConfig{Witness: w, Clock: clk, Registry: reg, Logger: logger})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Sync once before answering, so the first cosignatures carry NTP time
	// when NTP answers; Run keeps it synced (and logs failures).
	sctx, cancel := context.WithTimeout(ctx, 2*clock.DefaultNTPTimeout)
	if err := clk.Sync(sctx); err != nil {
		logger.Warn("NTP is not answering; cosigning with the host clock until it does", "err", err)
	}
	cancel()
	go clk.Run(ctx)

	// A flood of connections runs into --max-connections, not the
	// process's file descriptors, which the state files need.
	ln, scheme, err := tlsfile.ListenWrapped(*listen, tlsPair, func(ln net.Listener) net.Listener {
		return listener.Wrap(ln, listener.Config{Max: *maxConns, Reserve: listener.DefaultReserve, Registerer: reg})
	})
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       listener.ConnContext,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	origins := make([]string, 0, len(verifiers))
	for o := range verifiers {
		origins = append(origins, o)
	}
	logger.Info("agentlog-witness serving", "addr", ln.Addr().String(), "name", signer.Name(), "logs", origins, "data", *data)
	fmt.Fprintf(stdout, "agentlog-witness listening on %s://%s (name %s)\n", scheme, ln.Addr(), signer.Name())
	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	return hs.Shutdown(shctx)
}
