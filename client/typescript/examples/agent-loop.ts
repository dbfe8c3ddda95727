// An agent loop recorded in agentlog: the agent's tools are behind an MCP
// server, its MCP client (@modelcontextprotocol/sdk) is wrapped so every
// tools/call is recorded with its outcome and latency, and the final answer
// is appended too. At the end an auditor proves each record is in the log
// under a verified checkpoint.
//
//   node dist/examples/agent-loop.js AGENT.key DATA_DIR [URL]
//
// DATA_DIR is the server's data directory (log.pub, time.pub and the admin
// token the auditor uses).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Agent, Auditor, fromBase64, leafHash, parseAgentKey, recordToolCalls, verifyCheckpoint, verifyInclusion, verifyLeafSignature } from "@agentlog/client";

const [keyFile, data] = [process.argv[2]!, process.argv[3]!];
const url = process.argv[4] ?? "http://127.0.0.1:8080";
const key = await parseAgentKey(readFileSync(keyFile, "utf8"));
const agent = new Agent({ server: url, key, task: "ticket-4711", flushIntervalMs: 20 });

// The tools, served over MCP (in-process here; any MCP transport works).
const tools = new McpServer({ name: "crm", version: "1.0.0" });
tools.tool("crm.lookup", "finds customer 42", async () => ({ content: [{ type: "text", text: '{"name":"Zoë","plan":"pro"}' }] }));
tools.tool("billing.refund", "refunds the last invoice", async () => ({ content: [{ type: "text", text: "refunded 30" }] }));
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await tools.connect(serverSide);
const mcp = recordToolCalls(new Client({ name: "support-agent", version: "1.0.0" }), agent, { server: "crm", resource: () => "customers/42" });
await mcp.connect(clientSide);

// A stand-in for the model: it plans the tool calls for the ticket.
const plan = ["crm.lookup", "billing.refund", "crm.unknown"];
const notes: string[] = [];
for (const name of plan) {
  const r = await mcp.callTool({ name, arguments: {} }); // recorded before it returns
  notes.push(r.isError ? `${name} failed` : (r.content as { text: string }[])[0]!.text);
}
await agent.append({ action: "agent.answer", outcome: "ok", attributes: { answer: notes.join("; ") } });
await agent.close();
await mcp.close();
console.log(notes.join("; "));

// The auditor's side: every record of the task, proven.
const auditor = new Auditor({ server: url, token: readFileSync(join(data, "admin.token"), "utf8") });
const keys = { logKey: readFileSync(join(data, "log.pub"), "utf8"), timeKey: readFileSync(join(data, "time.pub"), "utf8") };
const deadline = Date.now() + 30000;
for (;;) {
  const q = auditor.query({ agent: key.agent, task: "ticket-4711", kind: "action", proof: true });
  const matches = [];
  for await (const m of q) matches.push(m);
  if (matches.length >= plan.length + 1 && q.summary?.checkpoint) {
    const cp = await verifyCheckpoint(q.summary.checkpoint, keys);
    for (const m of matches) {
      await verifyInclusion(m.index, cp.size, await leafHash(m.entry), m.inclusion_proof!.map((h) => fromBase64(h)!), cp.root);
      await verifyLeafSignature(m.entry, key.publicKey);
    }
    console.log(`${matches.length} records of task ticket-4711 verified in the tree of size ${cp.size}`);
    break;
  }
  if (Date.now() > deadline) throw new Error("the records were not covered by a checkpoint within 30 s");
  await new Promise((r) => setTimeout(r, 200)); // the next checkpoint (one a second)
}
