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
// Maintenance:
//
//	agentlog reindex  rebuild or check the query indexes offline (reindex.go)
//
// Run "agentlog help" for every verb, "agentlog help VERB" (or "VERB -h")
// for its flags and an example, "agentlog --version" for the build. The
// verb table, help, usage errors and flag parsing are internal/cmdline's,
// shared with cmd/agentlog-dev, which holds the development tools (the
// synthetic log and the load generators) outside this binary.
package main

import (
	"io"
	"os"

	"github.com/agentlog/agentlog/internal/cmdline"
)

var verbs = map[string]cmdline.VerbFunc{
	"serve":    runServe,
	"verify":   runVerify,
	"append":   runAppend,
	"token":    runToken,
	"agent":    runAgent,
	"session":  runSession,
	"query":    runQuery,
	"reindex":  runReindex,
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

// The verbs join the command at init, and demo (which runs other verbs
// through run) joins the verbs, to break the initialization cycle.
func init() {
	verbs["demo"] = runDemo
	command.Verbs = verbs
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one agentlog command line and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int { return command.Run(args, stdout, stderr) }
