// Command agentlog-dev holds agentlog's development tools, the synthetic
// log and the load generators that docs/bench*.sh and docs/benchmarks.md
// use, apart from the production binary (cmd/agentlog), whose verbs are
// only what an operator, an agent or an auditor runs:
//
//	agentlog-dev synth          write a synthetic log (agents acting over a year) for benchmarks and demos (synth.go)
//	agentlog-dev bench append   load a server with appends: throughput, latency, time to provable (bench.go)
//	agentlog-dev bench peer     the same clients against a peer's single-entry HTTP append (Tessera's POST /add) (bench.go)
//	agentlog-dev bench gateway  the latency the gateway adds to a call, against the direct call in the same run (bench_gateway.go)
//	agentlog-dev bench null     serve a single-entry HTTP append that does nothing, to show what the load generator and the machine allow any server (bench.go)
//
// One command rather than two (a synth and a bench binary): the tools
// serve the same readers (whoever measures agentlog), share their
// plumbing, and the scripts build one extra binary. The verb table, help,
// usage errors and flag parsing are internal/cmdline's, as in
// cmd/agentlog, so both behave the same way. Run "agentlog-dev help" for
// every verb, "agentlog-dev help VERB" (or "VERB -h") for its flags and an
// example.
package main

import (
	"flag"
	"io"
	"os"

	"github.com/agentlog/agentlog/internal/cmdline"
)

// command is agentlog-dev's verb table and help; the verbs join it at
// init, as they use it for their flags.
var command = &cmdline.Command{
	Name:  "agentlog-dev",
	Title: "agentlog-dev: agentlog's development tools: a synthetic log and load generators.",
	Groups: map[string][]string{
		"bench": {"append", "peer", "gateway", "null"},
	},
	Order: []string{"synth", "bench"},
	Helps: map[string]cmdline.Help{
		"synth": {
			Summary: "write a synthetic log (agents acting over a year) for benchmarks and demos",
			Usage:   "synth --data DIR [--entries N] [--agents N] [--days N]",
			Example: "agentlog-dev synth --data /tmp/synth --entries 100000",
		},
		"bench append": {
			Summary: "load the server with appends and report throughput and latency",
			Usage:   "bench append --token-file F [--concurrency N] [--batch N] [--duration D] [--size BYTES] [--scope S] [--config FILE]",
			Example: "agentlog-dev bench append --token-file agentlog-data/admin.token --concurrency 64 --batch 256 --duration 10s",
		},
		"bench peer": {
			Summary: "load a peer's single-entry HTTP append (Tessera's POST /add) with the same clients, for a side-by-side figure",
			Usage:   "bench peer [--url URL] [--concurrency N] [--size BYTES] [--duration D]",
			Example: "agentlog-dev bench peer --url http://127.0.0.1:18200/add --concurrency 256 --duration 10s",
		},
		"bench null": {
			Summary: "serve a single-entry HTTP append (POST /add) that reads the body and answers 1, doing nothing else, until stopped: driven by bench peer, the most requests per second the load generator gets from any server on this machine",
			Usage:   "bench null [--listen ADDR]",
			Example: "agentlog-dev bench null --listen 127.0.0.1:18201",
		},
		"bench gateway": {
			Summary: "measure the latency the gateway adds to a call, against the direct call in the same run",
			Usage:   "bench gateway --gateway URL --upstream-listen ADDR --session-token-file F [--rate N] [--direct-rate N] [--workers N] [--duration D]",
			Example: "agentlog-dev bench gateway --gateway http://127.0.0.1:8091/bench --upstream-listen 127.0.0.1:9100 --session-token-file bench.session --rate 2000",
		},
	},
}

func init() {
	command.Verbs = map[string]cmdline.VerbFunc{
		"synth": runSynth,
		"bench": runBench,
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one agentlog-dev command line and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int { return command.Run(args, stdout, stderr) }

// newFlags returns the FlagSet of the verb name, whose usage is its help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet { return command.NewFlags(name, stderr) }
