// Command agentlog runs the agentlog server and is its command-line client.
// Its verbs are the production ones; the development tools (the synthetic
// log, the load generators) are cmd/agentlog-dev.
//
// The whole story in one command:
//
//	agentlog demo     a log and a witness on loopback, two agents, what an auditor sees (demo.go)
//
// The server and the recording proxy:
//
//	agentlog serve    run the log server (serve.go; replication.go, witnessing.go)
//	agentlog gateway  record the calls agents make to HTTP and MCP tools (gateway.go)
//
// Operators and agents:
//
//	agentlog token    create, list and revoke operator tokens (token.go)
//	agentlog agent    register, approve, show, list, scope and revoke agents (agent.go)
//	agentlog session  open and close an agent's task session; list and end sessions (session.go)
//	agentlog append   append one action under a session (append.go)
//	agentlog change   propose, approve, reject, list, show, attest and digest configuration changes (change.go)
//
// Auditors:
//
//	agentlog query    run a filtered query (query.go)
//	agentlog verify   verify the checkpoint and an entry's inclusion (verify.go)
//	agentlog evidence export and verify offline evidence (evidence.go)
//	agentlog export   write query matches as OCSF events with their proofs, for a SIEM (export.go)
//	agentlog report   the SOC 2 period report with its evidence (report.go)
//	agentlog changes  report a period's changes and the actions under each configuration (change.go)
//	agentlog controls the state of each control now, for GRC tools (controls.go)
//	agentlog audit    recompute the tree from the entries and check every entry (audit.go)
//	agentlog monitor  follow the checkpoints and check each is consistent with the last (monitor.go)
//
// Maintenance:
//
//	agentlog reindex  rebuild or check the query indexes offline (reindex.go)
//
// Run "agentlog help" for every verb, "agentlog help VERB" (or "VERB -h")
// for its flags and an example, "agentlog --version" for the build. The
// verb table is main.go's, the help of each verb help.go's; running them,
// help, usage errors (exit 2) and flag parsing are internal/cmdline's,
// shared with cmd/agentlog-dev and cmd/agentlog-witness. TestHelp and
// TestPackageDocListsVerbs fail when a verb lacks its help or its line
// above.
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
