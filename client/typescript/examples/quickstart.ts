// The ten-line example of the README: node dist/examples/quickstart.js AGENT.key [URL]
import { readFileSync } from "node:fs";
import { Agent, parseAgentKey } from "@agentlog/client";

const key = await parseAgentKey(readFileSync(process.argv[2]!, "utf8"));
const agent = new Agent({ server: process.argv[3] ?? "http://127.0.0.1:8080", key, task: "refund-7731" });
const [receipt] = await agent.append({ action: "db.query", tool: "sql", resource: "customers/42", outcome: "ok", attributes: { rows: 3 } });
console.log(`appended as entry ${receipt!.index}, leaf hash ${receipt!.leaf_hash}`);
await agent.add({ action: "email.send", tool: "smtp", resource: "customers/42", outcome: "ok" }); // batched, durable once it resolves
await agent.close();
