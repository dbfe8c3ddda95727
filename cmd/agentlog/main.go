// Command agentlog runs the agentlog server and is its command-line client.
//
//	agentlog serve   [--data DIR] [--listen ADDR] [--origin ORIGIN] [--ntp HOST[:PORT]]... [--checkpoint-interval DUR]
//	agentlog verify  --server URL --log-key FILE [--time-key FILE] [--index N --token-file F]
//	agentlog token   create|list|revoke --admin-token-file F [--role R --name N] [--id ID]
//	agentlog agent   register|approve|list|show|revoke|scope --admin-token-file F --id ID [--scope S] [--key-out FILE]
//	agentlog session open --agent-key FILE --task TASK [--ttl DUR] | close --session-token T | list|end --admin-token-file F [--agent A] [--id ID]
//	agentlog append  --server URL --session-token T --action A [--tool X] [--resource R] [--outcome O] [--attr k=v]...
//	agentlog gateway --log URL [--listen ADDR] [--route NAME=URL]... [--config FILE]
//	agentlog bench append --server URL --token-file F [--concurrency N] [--batch N] [--duration D] [--size B]
//
// Run "agentlog <verb> -h" for every flag of a verb.
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

// usageError is a command-line mistake; main prints it with the usage hint
// and exits 2.
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
}

const usage = `agentlog: a verifiable audit log for AI agents.

Usage:
  agentlog serve   [--data DIR] [--listen ADDR] [--origin ORIGIN] [--ntp HOST[:PORT]]... [--checkpoint-interval DUR]
  agentlog verify  --server URL --log-key FILE [--time-key FILE] [--index N --token-file FILE]
  agentlog token   create --admin-token-file F --role admin|approver|auditor --name NAME
  agentlog token   list|revoke --admin-token-file F [--id ID]
  agentlog agent   register --admin-token-file F --id ID [--owner O] [--scope S] --key-out FILE [--no-approve]
  agentlog agent   approve|show|revoke|scope|list --admin-token-file F [--id ID] [--scope S]
  agentlog session open --agent-key FILE --task TASK [--ttl DUR]    (prints the credential alone on stdout)
  agentlog session close --session-token T
  agentlog session list|end --admin-token-file F [--agent ID] [--id SESSION]
  agentlog append  --server URL --session-token T --action A [--tool X] [--resource R] [--outcome O] [--attr k=v]...
  agentlog query   --server URL --token-file F [--agent A] [--action A] [--tool X] [--resource R] [--from T1] [--to T2]
                   [--outside-hours 09:00-17:00 --tz ZONE --weekdays mon-fri] [--limit N] [--json [--proof]]
  agentlog reindex --data DIR [--check]    (offline: rebuild or check the query indexes)
  agentlog dev synth --data DIR [--entries 10000000] [--agents 1000] [--days 365]
  agentlog audit   --server URL --token-file F --policy FILE [--log-key FILE] [--from T --to T | --start N --end N] [--state FILE] [--json]
  agentlog monitor --server URL --policy FILE [--log-key FILE] --state FILE [--interval D] [--once]
  agentlog bench append --server URL --token-file FILE [--concurrency N] [--batch N] [--duration D] [--size BYTES]
  agentlog gateway --log URL [--listen ADDR] [--route NAME=URL]... [--config FILE]   (mcp+URL for an MCP server)
  agentlog evidence export --server URL --token-file F [query flags] --out DIR [--log-key FILE] [--policy FILE] | verify DIR --log-key FILE [--policy FILE]

Run "agentlog <verb> -h" for the flags of a verb.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "agentlog: unknown verb %q\n\n%s", args[0], usage)
		return 2
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
			fmt.Fprintf(stderr, "agentlog %s: %s\n", args[0], err)
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
	return fs
}

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

// readSecret reads a token or key file, refusing files others can read.
func readSecret(path string) (string, error) { return secretfile.Read(path) }
