package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"io"

	"github.com/agentlog/agentlog/internal/cmdline"
)

// verbHelp is what "agentlog help VERB" and "VERB -h" print besides the
// flags (cmdline.Help, kept positional here so that the table stays short).
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
	"gateway": {"run a recording reverse proxy in front of HTTP and MCP tools: each call is in the log before the agent gets the answer",
		"gateway --log URL [--listen ADDR] [--route NAME=URL]... [--config FILE] [--token-file F] [--metrics-listen ADDR]",
		"agentlog gateway --log http://127.0.0.1:8080 --listen 127.0.0.1:8091 --route billing=http://127.0.0.1:9000 --route crm=mcp+http://127.0.0.1:9001/mcp"},
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
}

// groups are the verbs with sub-verbs, in the order help lists them.
var groups = map[string][]string{
	"token":    {"create", "list", "revoke"},
	"agent":    {"register", "approve", "list", "show", "revoke", "scope"},
	"session":  {"open", "close", "list", "end"},
	"evidence": {"export", "verify"},
	"export":   {"ocsf"},
	"change":   {"propose", "approve", "reject", "list", "show", "attest", "digest"},
	"changes":  {"report"},
}

// verbOrder is the order of the overview.
var verbOrder = []string{"demo", "serve", "agent", "session", "append", "token", "query", "verify", "evidence", "export", "report", "controls", "audit", "monitor", "change", "changes", "gateway", "reindex"}

// command is agentlog's verb table and help (internal/cmdline runs it); its
// verbs join it at init, as they use it for their flags.
var command = &cmdline.Command{
	Name:   "agentlog",
	Title:  "agentlog: a verifiable audit log for AI agents.",
	Groups: groups,
	Order:  verbOrder,
	Helps:  cliHelps(helps),
	Hint:   errorHint,
}

func cliHelps(m map[string]verbHelp) map[string]cmdline.Help {
	out := make(map[string]cmdline.Help, len(m))
	for k, h := range m {
		out[k] = cmdline.Help{Summary: h.summary, Usage: h.usage, Example: h.example}
	}
	return out
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

// newFlags returns the FlagSet of the verb name, whose usage is its help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet { return command.NewFlags(name, stderr) }
