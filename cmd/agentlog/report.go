package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/agentlog/agentlog"
	"github.com/agentlog/agentlog/client"
	"github.com/agentlog/agentlog/client/evidence"
	"github.com/agentlog/agentlog/client/report"
	"github.com/agentlog/agentlog/internal/cmdline"
)

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "log server URL")
	tokenFile := fs.String("token-file", "", "file holding an auditor or admin token (mode 0600)")
	fromS := fs.String("from", "", "start of the period, RFC 3339 (inclusive)")
	toS := fs.String("to", "", "end of the period, RFC 3339 (exclusive)")
	out := fs.String("out", "", "directory to write the report and its evidence to (must not exist or be empty)")
	logKey := fs.String("log-key", "", "the log's verifier key file (log.pub): check the checkpoint and bundle the key")
	timeKey := fs.String("time-key", "", "the log's timestamp key file (time.pub); default: time.pub next to --log-key, if present")
	policyFile := fs.String("policy", "", "c2sp.org/tlog-policy file: require the witness quorum and bundle the policy")
	zone := fs.String("tz", "UTC", "IANA time zone of the activity heatmap")
	pdf := fs.String("pdf", "auto", "write report.pdf with Chromium: auto (when Chromium is installed), always, never")
	chromium := fs.String("chromium", "", "Chromium binary for --pdf (default: chromium, chromium-browser or google-chrome on PATH)")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up after this long")
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *tokenFile == "":
		return cmdline.Usagef("--token-file (an auditor or admin token) is required")
	case *fromS == "" || *toS == "":
		return cmdline.Usagef("--from and --to (RFC 3339) bound the period")
	case *out == "":
		return cmdline.Usagef("--out is required")
	case *pdf != "auto" && *pdf != "always" && *pdf != "never":
		return cmdline.Usagef("--pdf must be auto, always or never")
	}
	from, err := time.Parse(time.RFC3339Nano, *fromS)
	if err != nil {
		return cmdline.Usagef("--from: %v", err)
	}
	to, err := time.Parse(time.RFC3339Nano, *toS)
	if err != nil {
		return cmdline.Usagef("--to: %v", err)
	}
	if !from.Before(to) {
		return cmdline.Usagef("--from must be before --to")
	}
	if _, err := agentlog.LoadZone(*zone); err != nil {
		return cmdline.Usagef("--tz %q: %v", *zone, err)
	}
	browser := ""
	if *pdf != "never" {
		browser = findChromium(*chromium)
		if browser == "" && (*pdf == "always" || *chromium != "") {
			return cmdline.Usagef("--pdf always needs Chromium (install Debian's chromium or give --chromium)")
		}
	}
	tok, err := cmdline.ReadSecret(*tokenFile)
	if err != nil {
		return err
	}
	opts, err := exportOptions(*logKey, *timeKey, *policyFile)
	if err != nil {
		return err
	}
	if err := checkEmptyDir(*out); err != nil {
		return err
	}
	c, err := client.New(*server, client.WithToken(tok))
	if err != nil {
		return cmdline.Usagef("%s", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// Nothing is left behind on failure.
	created := !dirExists(*out)
	ok := false
	defer func() {
		if !ok {
			if created {
				os.RemoveAll(*out)
			} else {
				for _, f := range []string{report.EvidenceDir, report.JSONFile, report.HTMLFile, report.PDFFile} {
					os.RemoveAll(filepath.Join(*out, f))
				}
			}
		}
	}()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	r, err := report.Make(ctx, c, from, to, *zone, opts, *out, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	evDir := filepath.Join(*out, report.EvidenceDir)
	htmlPath := filepath.Join(*out, report.HTMLFile)
	if browser != "" {
		if err := printPDF(ctx, browser, htmlPath, filepath.Join(*out, report.PDFFile)); err != nil {
			return err
		}
	}
	ok = true
	exceptions := r.Exceptions()
	fmt.Fprintf(stdout, "report of %s for %s to %s: %s in index range [%d, %d), %s\n", r.Origin, r.From, r.To, plural(r.Entries, "entry", "entries"), r.Start, r.End, plural(exceptions, "exception", "exceptions"))
	fmt.Fprintf(stdout, "wrote %s, %s", htmlPath, filepath.Join(*out, report.JSONFile))
	if browser != "" {
		fmt.Fprintf(stdout, ", %s", filepath.Join(*out, report.PDFFile))
	}
	fmt.Fprintf(stdout, " and the evidence export %s\n", evDir)
	fmt.Fprintf(stdout, "verify with: agentlog evidence verify %s --log-key log.pub\n", *out)
	if *logKey == "" {
		fmt.Fprintln(stderr, "warning: without --log-key the checkpoint was not authenticated; verify the report with the log's key before relying on it")
	}
	return nil
}

// exportOptions reads the --log-key, --time-key and --policy files of an
// evidence export (evidence export, report): the keys bundled and checked,
// the policy bundled.
func exportOptions(logKey, timeKey, policyFile string) (evidence.ExportOptions, error) {
	var opts evidence.ExportOptions
	var err error
	if logKey != "" {
		if opts.LogVKey, opts.TimeVKey, err = readKeys(logKey, timeKey); err != nil {
			return opts, err
		}
	} else if timeKey != "" {
		return opts, cmdline.Usagef("--time-key needs --log-key")
	}
	if policyFile != "" {
		if opts.Policy, err = os.ReadFile(policyFile); err != nil {
			return opts, fmt.Errorf("reading the policy: %w", err)
		}
	}
	return opts, nil
}

// readKeys reads the log key and the timestamp key (given, or time.pub
// beside the log key).
func readKeys(logKey, timeKey string) (string, string, error) {
	b, err := os.ReadFile(logKey)
	if err != nil {
		return "", "", fmt.Errorf("reading the log key: %w", err)
	}
	if timeKey == "" {
		if p := filepath.Join(filepath.Dir(logKey), "time.pub"); fileExists(p) {
			timeKey = p
		}
	}
	var tk []byte
	if timeKey != "" {
		if tk, err = os.ReadFile(timeKey); err != nil {
			return "", "", fmt.Errorf("reading the time key: %w", err)
		}
	}
	return string(b), string(tk), nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// checkEmptyDir refuses a path that is a file or a non-empty directory.
func checkEmptyDir(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return cmdline.Usagef("--out %s is a file", p)
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return cmdline.Usagef("--out %s is not empty", p)
	}
	return nil
}

func findChromium(given string) string {
	if given != "" {
		if p, err := exec.LookPath(given); err == nil {
			return p
		}
		return ""
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// printPDF prints the HTML file to a PDF with headless Chromium, in a
// fresh profile and with the network features that reach out turned off.
func printPDF(ctx context.Context, browser, htmlPath, pdfPath string) error {
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return err
	}
	prof, err := os.MkdirTemp("", "agentlog-report-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(prof)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+prof, "--no-pdf-header-footer", "--print-to-pdf="+pdfPath,
		(&url.URL{Scheme: "file", Path: abs}).String())
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("printing %s with %s: %w\n%s", htmlPath, browser, err, outb)
	}
	if st, err := os.Stat(pdfPath); err != nil || st.Size() == 0 {
		return fmt.Errorf("%s wrote no PDF:\n%s", browser, outb)
	}
	return nil
}
