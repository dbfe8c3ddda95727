// Appends signed records through Agent.add (the background flusher) and
// prints the rate; docs/sdk-bench.sh runs it beside the Go and Python peers
// against one server.
//
//   node dist/examples/bench.js AGENT.key [URL] [N] [BATCH]
import { readFileSync } from "node:fs";
import { Agent, parseAgentKey } from "@agentlog/client";

const key = await parseAgentKey(readFileSync(process.argv[2]!, "utf8"));
const n = Number(process.argv[4] ?? 20000);
const agent = new Agent({ server: process.argv[3] ?? "http://127.0.0.1:8080", key, task: "bench", batchSize: Number(process.argv[5] ?? 100), maxInFlight: 4, maxBuffer: n });
await agent.open();
const start = performance.now();
const all = [];
for (let i = 0; i < n; i++) all.push(agent.add({ action: "bench.append", tool: "bench", resource: `items/${i}`, outcome: "ok", attributes: { i: String(i) } }));
await Promise.all(all);
await agent.close();
const s = (performance.now() - start) / 1000;
console.log(`typescript: ${n} records in ${s.toFixed(2)} s = ${(n / s).toFixed(0)} records/s`);
