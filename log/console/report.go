package console

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/client/report"
)

// ReportPath is the console's report button: GET with the caller's
// Authorization and from, to (RFC 3339), tz (IANA zone, default UTC),
// log_key and optionally time_key (the verifier keys the auditor pinned)
// answers a zip of what "agentlog report" writes: evidence/ (the period's
// evidence export), report.json and report.html, which "agentlog evidence
// verify DIR --log-key log.pub" checks offline once unzipped.
//
// The export is made by package client/report through the log's own API
// handler, in process, with the caller's token: every query is authorized
// as the caller's (an auditor or admin), exactly as the CLI's would be.
const ReportPath = Prefix + "report"

// reportTimeout bounds the making of one report.
const reportTimeout = 10 * time.Minute

// reports lets one report be made at a time: each holds a period's
// evidence export on disk and its queries in flight.
var reports = make(chan struct{}, 1)

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func serveReport(next http.Handler, w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		writeError(w, http.StatusUnauthorized, "the report needs an auditor or admin token (Authorization: Bearer)")
		return
	}
	q := r.URL.Query()
	from, err1 := time.Parse(time.RFC3339Nano, q.Get("from"))
	to, err2 := time.Parse(time.RFC3339Nano, q.Get("to"))
	zone := q.Get("tz")
	if zone == "" {
		zone = "UTC"
	}
	_, err3 := agentlog.LoadZone(zone)
	switch {
	case err1 != nil || err2 != nil:
		writeError(w, http.StatusBadRequest, "from and to (RFC 3339) bound the period")
		return
	case !from.Before(to):
		writeError(w, http.StatusBadRequest, "from must be before to")
		return
	case err3 != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("tz %q is not an IANA time zone", zone))
		return
	case strings.TrimSpace(q.Get("log_key")) == "":
		writeError(w, http.StatusBadRequest, "log_key (the log key the auditor pinned) is required: the export is verified with it")
		return
	}
	opts := evidence.ExportOptions{LogVKey: strings.TrimSpace(q.Get("log_key")), TimeVKey: strings.TrimSpace(q.Get("time_key"))}
	select {
	case reports <- struct{}{}:
		defer func() { <-reports }()
	default:
		h.Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "another report is being made; try again shortly")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), reportTimeout)
	defer cancel()
	c, err := client.New("http://agentlog.console",
		client.WithToken(strings.TrimPrefix(auth[0], "Bearer ")),
		client.WithHTTPClient(&http.Client{Transport: &inProcess{next: next, remote: r.RemoteAddr}}))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	dir, err := os.MkdirTemp("", "agentlog-console-report-")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot make a temporary directory for the report")
		return
	}
	defer os.RemoveAll(dir)
	rep, err := report.Make(ctx, c, from, to, zone, opts, dir, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		var he *client.HTTPError
		switch {
		case errors.As(err, &he) && he.Status < 500:
			writeError(w, he.Status, "making the report: "+err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusServiceUnavailable, "making the report took longer than "+reportTimeout.String())
		default:
			// A verification failure of the log's own answers, or a storage
			// error: either way not the caller's fault.
			slog.Error("console report", "err", err)
			writeError(w, http.StatusBadGateway, "making the report: "+err.Error())
		}
		return
	}
	name := fmt.Sprintf("agentlog-report-%s-%s.zip", from.UTC().Format("20060102T150405Z"), to.UTC().Format("20060102T150405Z"))
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Agentlog-Report", fmt.Sprintf("entries=%d; exceptions=%d", rep.Entries, rep.Exceptions()))
	if err := writeZip(w, dir); err != nil {
		slog.Warn("console report: sending the zip", "err", err)
	}
}

// writeZip writes the files under dir as a zip, in a fixed order.
func writeZip(w io.Writer, dir string) error {
	z := zip.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		zw, err := z.CreateHeader(&zip.FileHeader{Name: filepath.ToSlash(rel), Method: zip.Deflate, Modified: time.Unix(0, 0).UTC()})
		if err != nil {
			return err
		}
		_, err = io.Copy(zw, f)
		return err
	})
	if err != nil {
		return err
	}
	return z.Close()
}

// inProcess is an http.RoundTripper that serves requests with the log's API
// handler in this process, streaming the answer through a pipe.
type inProcess struct {
	next   http.Handler
	remote string
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RemoteAddr = t.remote
	in.RequestURI = req.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	rw := &pipeWriter{h: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			rw.WriteHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.next.ServeHTTP(rw, in)
	}()
	select {
	case <-rw.ready:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rw.status, http.StatusText(rw.status)), StatusCode: rw.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rw.sent, Body: pr, ContentLength: -1, Request: req,
	}, nil
}

// pipeWriter is the http.ResponseWriter of an in-process request.
type pipeWriter struct {
	h      http.Header
	sent   http.Header // h when the header was written
	pw     *io.PipeWriter
	status int
	once   sync.Once
	ready  chan struct{}
}

func (p *pipeWriter) Header() http.Header { return p.h }

func (p *pipeWriter) WriteHeader(code int) {
	p.once.Do(func() {
		p.status, p.sent = code, p.h.Clone()
		close(p.ready)
	})
}

func (p *pipeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.pw.Write(b)
}

// Flush lets handlers that stream (query answers) flush; the pipe has no
// buffer to flush.
func (p *pipeWriter) Flush() {}
