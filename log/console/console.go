// Package console serves the auditor's console: a browser application,
// embedded in the binary, that reads the log through the ordinary HTTP API
// (docs/api.md) and verifies what it shows with the browser's own WebCrypto:
// the checkpoint's Ed25519 note signature (c2sp.org/signed-note,
// c2sp.org/tlog-checkpoint) with the log key the auditor pinned, the
// timestamp cosignature (c2sp.org/tlog-cosignature), RFC 6962 inclusion
// proofs and consistency proofs between the checkpoints this browser has
// seen. The server adds no verdict of its own: it serves static files, and
// the report button ([ReportPath]), which makes the period report of
// package client/report with the caller's token, to be verified offline.
//
// The assets are plain ES modules. The verification is the TypeScript SDK's
// (client/typescript/src/verify.ts and bytes.ts), compiled by tsc into
// assets/sdk with "make console-sdk" and committed, so running the console
// needs only Go; make sdk-typescript fails when the copy differs from the
// SDK's sources, and the browser tests run the shared vectors of
// testdata/vectors through it in Chromium. Every answer carries a
// strict Content-Security-Policy (scripts, styles and connections only from
// this origin, no inline script, no framing), so a page of the console
// cannot load anything from a third party. docs/console.md is the manual.
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/agentlog/agentlog/internal/listener"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is mounted.
const Prefix = "/console/"

// CSP is the Content-Security-Policy of every console answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Assets returns the console's files (index.html, the ES modules, the
// style sheet), for tests and tools that need them without a server.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	return sub
}

// Handler serves the console under [Prefix], and its report button at
// [ReportPath] (made through next). Every other path is passed to next
// (the log's API), so Handler(api) is the whole server.
func Handler(next http.Handler) http.Handler {
	files := http.StripPrefix(Prefix, http.FileServerFS(Assets()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == strings.TrimSuffix(Prefix, "/"):
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		case !strings.HasPrefix(r.URL.Path, Prefix):
			next.ServeHTTP(w, r)
			return
		case listener.Overflow(r.Context()):
			// A reserve connection (beyond --max-connections) is for
			// health checks: no page, and no report, made for minutes.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "too many connections are open; retry later")
			return
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			w.Write([]byte(`{"error": "the console only serves GET and HEAD"}` + "\n"))
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.URL.Path == ReportPath {
			serveReport(next, w, r)
			return
		}
		// A directory other than the console's own is no page: the file
		// server would list it. A name no file can have (invalid UTF-8)
		// is none either: the file server answered it 500.
		name := strings.TrimPrefix(path.Clean(r.URL.Path), strings.TrimSuffix(Prefix, "/"))
		rel := strings.TrimPrefix(name, "/")
		if rel != "" && !fs.ValidPath(rel) {
			writeError(w, http.StatusNotFound, "Not Found: "+strings.ToValidUTF8(r.URL.Path, "\uFFFD"))
			return
		}
		if st, err := fs.Stat(Assets(), rel); err == nil && st.IsDir() && rel != "" {
			writeError(w, http.StatusNotFound, "Not Found: "+r.URL.Path)
			return
		}
		// The files change with the binary; revalidate on every load so
		// an upgraded server never runs with an old module.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(&errorWriter{ResponseWriter: w, path: r.URL.Path}, r)
	})
}

// errorWriter turns the file server's error answers (404, 416 for a range
// beyond the file, ...), plain text, into the JSON {"error": ...} every
// other answer of the server uses.
type errorWriter struct {
	http.ResponseWriter
	path   string
	failed bool
}

func (w *errorWriter) WriteHeader(code int) {
	if code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.failed = true
	w.Header().Del("Content-Length")
	w.Header().Set("Cache-Control", "no-store")
	writeError(w.ResponseWriter, code, fmt.Sprintf("%s: %s", http.StatusText(code), w.path))
}

func (w *errorWriter) Write(p []byte) (int, error) {
	if w.failed {
		return len(p), nil // the file server's text, replaced
	}
	return w.ResponseWriter.Write(p)
}
