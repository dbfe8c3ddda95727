package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/agentlog/agentlog/internal/cmdhelp"
)

// verbHelp is what "agentlog help VERB" and "VERB -h" print besides the
// flags.
type verbHelp struct {
	summary string // one line
	usage   string // after "agentlog "; more lines for alternatives
	example string // commands a user can copy
}

// helps describes every verb and sub-verb, keyed as the FlagSet is named
// ("agent register"). TestHelp fails for a verb without an entry and for a
// flag without a description.
var helps = map[string]verbHelp{
	"serve": {"run the log server: appends, checkpoints signed every second, proofs, queries",
		"serve [--data DIR] [--listen ADDR] [--origin ORIGIN] [--ntp HOST[:PORT]]... [flags]",
		"agentlog serve --data agentlog-data --listen 127.0.0.1:8080 --ntp time.example.com"},
	"verify": {"verify the log's signed checkpoint and, with --index, an entry's inclusion proof",
		"verify --log-key FILE [--time-key FILE] [--policy FILE] [--index N --token-file FILE]",
		"agentlog verify --log-key agentlog-data/log.pub --index 3 --token-file auditor.token"},
	"append": {"append an agent's action to the log in its session",
		"append --session-token T|--session-token-file F --action A [--tool X] [--resource R] [--outcome O] [--attr k=v]...",
		"agentlog append --session-token \"$SESSION\" --action db.query --tool sql --resource customers/42 --outcome success"},
	"query": {"find entries by agent, action, tool, resource, time and business hours, from the indexes",
		"query --token-file F [--agent A] [--action A] [--tool X] [--resource R] [--from T1] [--to T2]\n" +
			"               [--outside-hours 09:00-17:00 --tz ZONE --weekdays mon-fri] [--limit N] [--json [--proof]] [--follow]",
		"agentlog query --token-file auditor.token --agent billing-bot --outside-hours 09:00-17:00 --tz Europe/Paris"},
	"reindex": {"rebuild or check the query indexes of a stopped server's data directory",
		"reindex --data DIR [--check]",
		"agentlog reindex --data agentlog-data --check"},
	"audit": {"re-derive the tree from every entry of a range and check it against a checkpoint the policy accepts",
		"audit --token-file F --policy FILE [--log-key FILE] [--from T --to T | --start N --end N] [--state FILE] [--json]",
		"echo 'quorum none' > no-witnesses.policy\n  agentlog audit --token-file auditor.token --policy no-witnesses.policy --log-key agentlog-data/log.pub"},
	"monitor": {"follow the log's checkpoints (and its witnesses' views) for forks and split views",
		"monitor --policy FILE [--log-key FILE] --state FILE [--interval D] [--once]",
		"agentlog monitor --policy policy.txt --log-key log.pub --state monitor.state --interval 1m"},
	"token create": {"create an operator token (admin, approver, auditor or gateway)",
		"token create --admin-token-file F --role admin|approver|auditor|gateway --name NAME [--out FILE]",
		"agentlog token create --admin-token-file agentlog-data/admin.token --role auditor --name alice --out auditor.token"},
	"token list": {"list the operator tokens",
		"token list --admin-token-file F",
		"agentlog token list --admin-token-file agentlog-data/admin.token"},
	"token revoke": {"revoke an operator token",
		"token revoke --admin-token-file F --id ID",
		"agentlog token revoke --admin-token-file agentlog-data/admin.token --id 5f2c0e8a"},
	"agent register": {"register an agent with a new key (written 0600 once the server accepts) and approve it",
		"agent register --admin-token-file F --id ID [--owner O] [--scope S] [--config FILE [--policy config=enforce]] --key-out FILE|--public-key-file FILE [--no-approve]",
		"agentlog agent register --admin-token-file agentlog-data/admin.token --id billing-bot --scope 'actions=db.*;tools=sql' --key-out billing-bot.key"},
	"agent approve": {"approve a pending agent (an approver or admin)",
		"agent approve --token-file F --id ID",
		"agentlog agent approve --token-file approver.token --id billing-bot"},
	"agent list": {"list the agents with their owners, status and scopes",
		"agent list --token-file F",
		"agentlog agent list --token-file auditor.token"},
	"agent show": {"show one agent as JSON",
		"agent show --token-file F --id ID",
		"agentlog agent show --token-file auditor.token --id billing-bot"},
	"agent revoke": {"revoke an agent: every session of it stops working at once",
		"agent revoke --admin-token-file F --id ID",
		"agentlog agent revoke --admin-token-file agentlog-data/admin.token --id billing-bot"},
	"agent scope": {"replace an agent's declared scope",
		"agent scope --admin-token-file F --id ID --scope S",
		"agentlog agent scope --admin-token-file agentlog-data/admin.token --id billing-bot --scope 'actions=db.query;hours=08:00-18:00'"},
	"session open": {"open a task session for an agent; prints the credential alone on stdout",
		"session open --agent-key FILE --task TASK [--ttl DUR] [--config FILE|--config-digest sha256:HEX] [--out FILE]",
		"SESSION=$(agentlog session open --agent-key billing-bot.key --task refund-7731 --ttl 30m)"},
	"session close": {"close a session at the end of its task",
		"session close --session-token T|--session-token-file F",
		"agentlog session close --session-token \"$SESSION\""},
	"session list": {"list sessions, open, closed, expired or of a revoked agent",
		"session list --token-file F [--agent ID]",
		"agentlog session list --token-file agentlog-data/admin.token --agent billing-bot"},
	"session end": {"end one session (admin) without revoking its agent",
		"session end --admin-token-file F --id SESSION",
		"agentlog session end --admin-token-file agentlog-data/admin.token --id 0123456789abcdef"},
	"evidence export": {"export query matches with proofs, checkpoint and keys, verifiable offline",
		"evidence export --token-file F [query flags] --out DIR [--log-key FILE] [--time-key FILE] [--policy FILE]",
		"agentlog evidence export --token-file auditor.token --agent billing-bot --from 2026-01-01T00:00:00Z --log-key agentlog-data/log.pub --out evidence-2026"},
	"export ocsf": {"write query matches as OCSF events (NDJSON), with the proofs that check them, for a SIEM",
		"export ocsf --token-file F [query flags] [--limit N] [--log-key FILE [--time-key FILE]] [--wait D] [--out FILE]",
		"agentlog export ocsf --token-file auditor.token --agent billing-bot --from 2026-01-01T00:00:00Z --log-key agentlog-data/log.pub > agent-activity.ocsf.ndjson"},
	"evidence verify": {"verify an evidence export offline",
		"evidence verify DIR --log-key FILE [--policy FILE]",
		"agentlog evidence verify evidence-2026 --log-key agentlog-data/log.pub"},
	"report": {"write the SOC 2 period report (CC6.1 to CC8.1) with the period's evidence export",
		"report --token-file F --from T1 --to T2 --out DIR [--log-key FILE] [--policy FILE] [--tz ZONE] [--pdf auto|always|never]",
		"agentlog report --token-file auditor.token --from 2026-01-01T00:00:00Z --to 2027-01-01T00:00:00Z --log-key agentlog-data/log.pub --out report-2026"},
	"controls": {"print the state of each control now (checkpoint, witnesses, NTP, agents, configurations, alerts) as one JSON document for a GRC tool",
		"controls --token-file F [--window 24h] [--format json|vanta|drata] [--vanta-resource-id ID] [--fail]",
		"agentlog controls --token-file auditor.token --format vanta --vanta-resource-id 64f0c0ffee > vanta-sync.json"},
	"bench append": {"load the server with appends and report throughput and latency",
		"bench append --token-file F [--concurrency N] [--batch N] [--duration D] [--size BYTES] [--scope S] [--config FILE]",
		"agentlog bench append --token-file agentlog-data/admin.token --concurrency 64 --batch 256 --duration 10s"},
	"gateway": {"run a recording reverse proxy in front of HTTP and MCP tools: each call is in the log before the agent gets the answer",
		"gateway --log URL [--listen ADDR] [--route NAME=URL]... [--config FILE] [--token-file F] [--metrics-listen ADDR]",
		"agentlog gateway --log http://127.0.0.1:8080 --listen 127.0.0.1:8091 --route billing=http://127.0.0.1:9000 --route crm=mcp+http://127.0.0.1:9001/mcp"},
	"bench gateway": {"measure the latency the gateway adds to a call, against the direct call in the same run",
		"bench gateway --gateway URL --upstream-listen ADDR --session-token-file F [--rate N] [--workers N] [--duration D]",
		"agentlog bench gateway --gateway http://127.0.0.1:8091/bench --upstream-listen 127.0.0.1:9100 --session-token-file bench.session --rate 2000"},
	"demo": {"the whole story in one command: a log and a witness on loopback, two agents, an out-of-scope and an off-hours action, and what an auditor sees",
		"demo [--dir agentlog-demo] [--keep-running]",
		"agentlog demo --dir /tmp/agentlog-demo && rm -rf /tmp/agentlog-demo"},
	"change propose": {"propose a change of an agent's configuration; prints the change id alone on stdout",
		"change propose --token-file F --agent ID --config FILE --description T --testing T --rollback T [--risk low|medium|high] [--ticket URL] [--policy config=enforce]",
		"CHANGE=$(agentlog change propose --token-file agentlog-data/admin.token --agent billing-bot --config billing-bot-v2.json --description 'model 4.6' --testing 'eval suite passed' --rollback 'propose v1 again')"},
	"change approve": {"approve a proposed change (an approver or admin other than its proposer)",
		"change approve --token-file F --id CHANGE [--comment T]",
		"agentlog change approve --token-file approver.token --id \"$CHANGE\" --comment 'reviewed the eval report'"},
	"change reject": {"reject a proposed change (its proposer may withdraw it)",
		"change reject --token-file F --id CHANGE [--comment T]",
		"agentlog change reject --token-file approver.token --id \"$CHANGE\" --comment 'needs a rollback plan'"},
	"change list": {"list changes, of one agent and in one state",
		"change list --token-file F [--agent ID] [--state proposed|approved|rejected|superseded] [--json]",
		"agentlog change list --token-file auditor.token --agent billing-bot"},
	"change show": {"show a change and its diff against the configuration it replaces, field by field",
		"change show --token-file F --id CHANGE [--json]",
		"agentlog change show --token-file approver.token --id \"$CHANGE\""},
	"change attest": {"print an approved change as an in-toto Statement v1 whose subject is the configuration digest",
		"change attest --token-file F --id CHANGE [--out FILE]",
		"agentlog change attest --token-file auditor.token --id \"$CHANGE\" --out change.intoto.json"},
	"change digest": {"print a configuration file's digest (sha256: of its RFC 8785 form, prompt files by their SHA-256), offline",
		"change digest --config FILE [--canonical]",
		"agentlog change digest --config billing-bot-v2.json"},
	"changes report": {"report every change of a period, the actions under each configuration and those under unapproved ones, with evidence",
		"changes report --token-file F --from T1 --to T2 [--out DIR --log-key FILE] [--json]",
		"agentlog changes report --token-file auditor.token --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z --out cc81-q1 --log-key agentlog-data/log.pub"},
	"bench peer": {"load a peer's single-entry HTTP append (Tessera's POST /add) with the same clients, for a side-by-side figure",
		"bench peer [--url URL] [--concurrency N] [--size BYTES] [--duration D]",
		"agentlog bench peer --url http://127.0.0.1:18200/add --concurrency 256 --duration 10s"},
	"dev synth": {"write a synthetic log (agents acting over a year) for benchmarks and demos",
		"dev synth --data DIR [--entries N] [--agents N] [--days N]",
		"agentlog dev synth --data /tmp/synth --entries 100000"},
}

// groups are the verbs with sub-verbs, in the order help lists them.
var groups = map[string][]string{
	"token":    {"create", "list", "revoke"},
	"agent":    {"register", "approve", "list", "show", "revoke", "scope"},
	"session":  {"open", "close", "list", "end"},
	"evidence": {"export", "verify"},
	"export":   {"ocsf"},
	"bench":    {"append", "peer", "gateway"},
	"dev":      {"synth"},
	"change":   {"propose", "approve", "reject", "list", "show", "attest", "digest"},
	"changes":  {"report"},
}

// verbOrder is the order of the overview.
var verbOrder = []string{"demo", "serve", "agent", "session", "append", "token", "query", "verify", "evidence", "export", "report", "controls", "audit", "monitor", "change", "changes", "gateway", "reindex", "bench", "dev"}

// overview is "agentlog help": every verb with its summary.
func overview(w io.Writer) {
	fmt.Fprint(w, "agentlog: a verifiable audit log for AI agents.\n\nUsage: agentlog VERB [flags]    (agentlog help VERB, or VERB -h, for its flags and an example)\n\nVerbs:\n")
	names := slices.Clone(verbOrder)
	for v := range verbs {
		if !slices.Contains(names, v) {
			names = append(names, v)
		}
	}
	for _, v := range names {
		if _, ok := verbs[v]; !ok {
			continue
		}
		if subs, ok := groups[v]; ok {
			for _, s := range subs {
				fmt.Fprintf(w, "  %-17s %s\n", v+" "+s, helps[v+" "+s].summary)
			}
			continue
		}
		fmt.Fprintf(w, "  %-17s %s\n", v, helps[v].summary)
	}
	fmt.Fprint(w, "\n  --version         print the version and commit of this build\n")
}

// groupHelp is "agentlog help agent".
func groupHelp(w io.Writer, v string) {
	fmt.Fprintf(w, "agentlog %s: ", v)
	fmt.Fprintf(w, "%s\n\n", strings.Join(groups[v], ", "))
	for _, s := range groups[v] {
		h := helps[v+" "+s]
		fmt.Fprintf(w, "  agentlog %s\n      %s\n", h.usage, h.summary)
	}
	fmt.Fprintf(w, "\nRun \"agentlog help %s SUBVERB\" for its flags and an example.\n", v)
}

// runHelp is "agentlog help [VERB [SUBVERB]]".
func runHelp(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		overview(stdout)
		return nil
	case len(args) > 2:
		return usagef("want \"agentlog help [VERB [SUBVERB]]\"")
	}
	v, ok := verbs[args[0]]
	if !ok || args[0] == "help" {
		return usagef("unknown verb %q; \"agentlog help\" lists them", args[0])
	}
	if _, isGroup := groups[args[0]]; isGroup && len(args) == 1 {
		groupHelp(stdout, args[0])
		return nil
	}
	// The verb prints its own flags when asked with -h.
	err := v(append(args[1:], "-h"), stdout, stdout)
	if err != nil && !errorsIsHelp(err) {
		return err
	}
	return nil
}

// flagUsage prints a verb's help: summary, usage, every flag with double
// dashes and its default, an example.
func flagUsage(w io.Writer, name string, fs *flag.FlagSet) {
	h := helps[name]
	v := cmdhelp.Verb{Summary: h.summary, Usage: "agentlog " + h.usage, Example: h.example}
	if h.summary == "" {
		v = cmdhelp.Verb{}
	}
	cmdhelp.Print(w, "agentlog "+name, v, fs)
}

// version is "agentlog --version".
func version() string { return cmdhelp.Version("agentlog") }
