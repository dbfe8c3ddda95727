// Command agentlog runs the agentlog server and is its command-line client.
//
// The server and the recording proxy:
//
//	agentlog serve    run the log server (serve.go)
//	agentlog gateway  record the calls agents make to HTTP and MCP tools (gateway.go)
//
// Operators and agents:
//
//	agentlog token    create, list and revoke operator tokens (token.go)
//	agentlog agent    register, approve, show, list, scope and revoke agents (agent.go)
//	agentlog session  open and close an agent's task session; list and end sessions (session.go)
//	agentlog append   append one action under a session (append.go)
//
// Auditors:
//
//	agentlog query    run a filtered query (query.go)
//	agentlog verify   verify the checkpoint and an entry's inclusion (verify.go)
//	agentlog audit    recompute the tree from the entries and check every entry (audit.go)
//	agentlog monitor  follow the checkpoints and check each is consistent with the last (monitor.go)
//	agentlog evidence export and verify offline evidence (evidence.go)
//	agentlog controls the state of each control now, for GRC tools (controls.go)
//
// Maintenance and development:
//
//	agentlog reindex  rebuild or check the query indexes offline (reindex.go)
//	agentlog dev      synthetic data for benchmarks (dev.go)
//	agentlog bench    load generator for the HTTP append path (bench.go)
//
// Run "agentlog help" for every verb, "agentlog help VERB" (or "VERB -h")
// for its flags and an example, "agentlog --version" for the build.
package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentlog/agentlog/internal/secretfile"
)

// usageError is a command-line mistake; run prints it with a hint to the
// verb's help and exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

var verbs = map[string]func(args []string, stdout, stderr io.Writer) error{
	"serve":    runServe,
	"verify":   runVerify,
	"append":   runAppend,
	"token":    runToken,
	"agent":    runAgent,
	"session":  runSession,
	"bench":    runBench,
	"query":    runQuery,
	"reindex":  runReindex,
	"dev":      runDev,
	"audit":    runAudit,
	"monitor":  runMonitor,
	"evidence": runEvidence,
	"gateway":  runGateway,
	"change":   runChange,
	"changes":  runChanges,
	"report":   runReport,
	"controls": runControls,
	"export":   runExport,
}

// demo runs other verbs through run, which reads verbs: it joins the map
// at init to break the initialization cycle.
func init() { verbs["demo"] = runDemo }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		overview(stderr)
		return 2
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help":
		overview(stdout)
		return 0
	case args[0] == "--version" || args[0] == "-version" || args[0] == "version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	if args[0] == "help" {
		if err := runHelp(args[1:], stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "agentlog help: %s\n", err)
			return 2
		}
		return 0
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "agentlog: unknown verb %q\n\n", args[0])
		overview(stderr)
		return 2
	}
	if _, isGroup := groups[args[0]]; isGroup && (len(args) == 1 || isHelpArg(args[1])) {
		if len(args) == 1 {
			groupHelp(stderr, args[0])
			return 2
		}
		groupHelp(stdout, args[0])
		return 0
	}
	err := v(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "agentlog %s: %s\nRun \"agentlog help %s\" for its flags.\n", args[0], err, args[0])
			return 2
		}
		fmt.Fprintf(stderr, "agentlog %s: %s\n", args[0], err)
		if hint := errorHint(err); hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", hint)
		}
		return 1
	}
}

// errorHint names the fix for errors whose cause is outside agentlog.
func errorHint(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "the server's certificate is not signed by a CA this machine trusts; " +
			"if it is your own CA (or a self-signed certificate), run the command with SSL_CERT_FILE=/path/to/ca.pem"
	}
	return ""
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("agentlog "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if flagSetHook != nil {
			flagSetHook(fs)
		}
		flagUsage(fs.Output(), name, fs)
	}
	return fs
}

// flagSetHook, if set by a test, receives each FlagSet whose usage is
// printed.
var flagSetHook func(*flag.FlagSet)

func isHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" || s == "help" }

func errorsIsHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// parseFlags parses args and rejects stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// secretOut starts the --out file of a secret the server is about to
// hand out (nil when path is empty): commit it once the server answered;
// "defer p.Abort()" removes it otherwise.
func secretOut(path string) (*secretfile.Pending, error) {
	if path == "" {
		return nil, nil
	}
	return secretfile.Create(path, nil)
}

// credential is the one reader of credential flags: the value of
// --valueFlag, or the content of the --fileFlag file (a secret file, see
// readSecret), never both; missing is the usage error when neither is given.
func credential(value, file, valueFlag, fileFlag, missing string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", usagef("give --%s or --%s, not both", valueFlag, fileFlag)
	case file != "":
		return readSecret(file)
	case value == "":
		return "", usagef("%s", missing)
	}
	return value, nil
}

// readSecret reads a token or key file, refusing files others can read.
func readSecret(path string) (string, error) { return secretfile.Read(path) }
