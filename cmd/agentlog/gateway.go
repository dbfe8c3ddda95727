package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentlog/agentlog/internal/cmdline"
	"github.com/agentlog/agentlog/internal/listener"
	"github.com/agentlog/agentlog/log/gateway"
)

// runGateway serves "agentlog gateway": the recording reverse proxy in
// front of tools (docs/gateway.md).
func runGateway(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gateway", stderr)
	logURL := fs.String("log", "", "the agentlog server's URL (required)")
	listen := fs.String("listen", "127.0.0.1:8091", "address to listen on")
	var routes cmdline.MultiFlag
	fs.Var(&routes, "route", "NAME=URL: serve the upstream at /NAME (mcp+URL for an MCP server over Streamable HTTP; repeatable)")
	config := fs.String("config", "", "configuration file, JSON (docs/gateway.md): per-route record, scope, fail_open, credentials, resources")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	tokenFile := fs.String("token-file", "", "operator token of role gateway (agentlog token create --role gateway): the configuration is recorded in the log at start; required when a route is fail_open")
	metricsAddr := fs.String("metrics-listen", "", "serve GET /metrics on this address instead of on --listen")
	debugAddr := fs.String("debug-listen", "", "if set, serve Go's pprof profiles on this loopback address")
	maxConns := fs.Int("max-connections", 4096, fmt.Sprintf("most HTTP connections served at once; %d more are kept for /healthz and /metrics, and beyond those connections are closed on accept", connReserve))
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	if *logURL == "" {
		return cmdline.Usagef("--log URL is required")
	}
	if *maxConns < 1 {
		return cmdline.Usagef("--max-connections must be positive")
	}
	if err := checkDebugListen(*debugAddr); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cmdline.Usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	cfg, err := gateway.Load(*logURL, *config, routes)
	if err != nil {
		return err
	}
	var token string
	if fo := cfg.FailOpen(); len(fo) > 0 && *tokenFile == "" {
		return cmdline.Usagef("route %s is fail_open, which must be on record: give --token-file with an operator token of role gateway (agentlog token create --role gateway --name NAME), and the gateway records its configuration in the log before it serves", strings.Join(fo, ", "))
	}
	if *tokenFile != "" {
		if token, err = cmdline.ReadSecret(*tokenFile); err != nil {
			return err
		}
	}
	cfg.MetricsElsewhere = *metricsAddr != ""
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	g := gateway.New(cfg, gateway.Options{Logger: logger})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	// A flood of connections runs into --max-connections, not the
	// process's file descriptors, which calls need for the upstreams and
	// the log.
	ln = listener.Wrap(ln, listener.Config{Max: *maxConns, Reserve: connReserve})
	if *metricsAddr != "" {
		mln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s (--metrics-listen): %w", *metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", g.Metrics())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln)
		defer ms.Close()
	}
	hs := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       listener.ConnContext,
	}
	if *debugAddr != "" {
		go serveDebug(*debugAddr, logger)
	}
	if token != "" {
		rctx, cancel := context.WithTimeout(context.Background(), cfg.LogTimeout)
		rc, err := g.RecordConfig(rctx, token, ln.Addr().String())
		cancel()
		if err != nil {
			ln.Close()
			return fmt.Errorf("recording the gateway's configuration in the log (--token-file): %w; the gateway does not serve unrecorded", err)
		}
		logger.Info("configuration recorded in the log", "receipt", rc.String(), "fail_open", cfg.FailOpen())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	for _, r := range cfg.Routes {
		logger.Info("route", "path", "/"+r.Name, "upstream", r.Upstream.String(), "mcp", r.MCP, "record_before", r.Before, "enforce", r.Enforce, "fail_open", r.FailOpen)
	}
	fmt.Fprintf(stdout, "agentlog gateway listening on http://%s (log %s, %d routes)\n", ln.Addr(), cfg.Log, len(cfg.Routes))
	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
