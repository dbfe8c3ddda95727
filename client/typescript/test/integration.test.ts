// Integration tests against the real server binary (built by the test):
// provisioning with the CLI, 10,000 records from 32 concurrent tasks across
// a SIGKILL and restart of the server, exactly once and each with a
// verified inclusion proof; revocation; an unreachable log; the MCP wrapper
// around the official SDK's client and server.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";

import {
  Agent,
  Auditor,
  BufferFullError,
  HTTPError,
  SessionEndedError,
  UnreachableError,
  VerificationError,
  leafHashBase64,
  parseAgentKey,
  rawMembers,
  recordToolCalls,
  toBase64,
  verifyCheckpoint,
  verifyInclusion,
  verifyLeafSignature,
  fromBase64,
  leafHash,
  type AgentKey,
  type Receipt,
} from "../src/index.js";
import { loadConfig } from "../src/node.js";
import { Binary, REPO, Server, tempDir } from "./server.js";

let bin: Binary;
before(() => {
  bin = new Binary();
});
after(() => bin.remove());

async function setup(t: { after: (f: () => Promise<void> | void) => void }) {
  const dir = tempDir();
  const env = { srv: await Server.start(bin, join(dir, "data")), dir };
  t.after(async () => {
    await env.srv.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  return env;
}

async function register(env: { srv: Server; dir: string }, id: string): Promise<AgentKey> {
  const path = join(env.dir, `${id}.key`);
  bin.cli("agent", "register", "--server", env.srv.url, "--admin-token-file", env.srv.adminTokenFile, "--id", id, "--key-out", path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  return parseAgentKey(readFileSync(path, "utf8"));
}

function auditor(srv: Server): Auditor {
  return new Auditor({ server: srv.url, token: srv.read("admin.token") });
}

describe("against agentlog serve", () => {
  test("10,000 records from 32 tasks across a SIGKILL and restart, exactly once, each proven", async (t) => {
    const env = await setup(t);
    const key = await register(env, "ts-bot");
    const agent = new Agent({ server: env.srv.url, key, task: "T-crash", batchSize: 100, maxRetries: 12, requestTimeoutMs: 10000 });
    const total = 10000;
    const workers = 32;
    let acked = 0;
    let killAt: (n: number) => void = () => {};
    const thousands = new Promise<number>((r) => (killAt = r));
    const receipts = new Map<string, Promise<Receipt>>();
    const tasks = Array.from({ length: workers }, async (_, w) => {
      for (let n = w; n < total; n += workers) {
        const id = `r${n}`;
        const p = agent.add({ action: "ts.append", tool: "node-test", resource: `items/${n}`, outcome: "ok", attributes: { id, worker: w } });
        p.then(() => {
          if (++acked === 3000) killAt(acked);
        }, () => {});
        receipts.set(id, p);
        if (n % 64 === 0) await new Promise((r) => setImmediate(r)); // let the other tasks run
      }
    });
    const atKill = await thousands;
    env.srv = await env.srv.restart();
    await Promise.all(tasks);
    await agent.close();
    assert.ok(atKill < total, "the server was killed after the run, not during it");

    const got = new Map<string, Receipt>();
    for (const [id, p] of receipts) got.set(id, await p);
    assert.equal(got.size, total);

    const a = auditor(env.srv);
    // A query with proofs is against one checkpoint: let the log sign the
    // one covering its whole tree (the session's close included) so that
    // no new one appears between the pages.
    const q0 = a.query({ limit: 1 }, { all: false });
    for await (const _ of q0);
    const keys = { logKey: env.srv.read("log.pub"), timeKey: env.srv.read("time.pub") };
    for (const deadline = Date.now() + 30000; (await a.verifiedCheckpoint(keys)).size < BigInt(q0.summary!.tree_size) && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const q = a.query({ agent: "ts-bot", kind: "action", proof: true });
    const matches = [];
    for await (const m of q) matches.push(m);
    assert.ok(q.summary?.checkpoint, "the query names its checkpoint");
    const cp = await verifyCheckpoint(q.summary.checkpoint, keys);
    const seen = new Map<string, number>();
    const byIndex = new Map<number, string>();
    for (const m of matches) {
      await verifyInclusion(m.index, cp.size, await leafHash(m.entry), m.inclusion_proof!.map((h) => fromBase64(h)!), cp.root);
      await verifyLeafSignature(m.entry, key.publicKey);
      byIndex.set(m.index, m.entry);
      const id = (JSON.parse(m.entry) as { attributes: { id: string } }).attributes.id;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    assert.equal(matches.length, total, "the log holds other records of the agent than those reported");
    for (const [id, r] of got) {
      assert.equal(seen.get(id), 1, `record ${id} is in the log ${seen.get(id) ?? 0} times`);
      assert.equal(await leafHashBase64(byIndex.get(r.index)!), r.leaf_hash);
    }
  });

  test("a revoked agent's next append raises SessionEndedError with the server's sentence", async (t) => {
    const env = await setup(t);
    const key = await register(env, "ts-revoked");
    const agent = new Agent({ server: env.srv.url, key, task: "T-revoke" });
    assert.equal((await agent.append({ action: "ts.before" })).length, 1);
    bin.cli("agent", "revoke", "--server", env.srv.url, "--admin-token-file", env.srv.adminTokenFile, "--id", "ts-revoked");
    await assert.rejects(agent.append({ action: "ts.after" }), (e: unknown) => e instanceof SessionEndedError && e.status === 401 && e.serverMessage.includes("revoked"));
    await assert.rejects(agent.add({ action: "ts.after" }), SessionEndedError);
  });

  test("a declared configuration: the SDK's digest is the CLI's, and the server enforces it", async (t) => {
    const env = await setup(t);
    const d = join(env.dir, "cfg");
    mkdirSync(d);
    writeFileSync(join(d, "system.txt"), "You are a careful agent.\n");
    const cfg = join(d, "agent.json");
    writeFileSync(cfg, '{"model": {"name": "m", "version": "1"}, "prompts": {"system": {"file": "system.txt"}}, "parameters": {"temperature": 0.20}}');
    const path = join(env.dir, "ts-config.key");
    bin.cli("agent", "register", "--server", env.srv.url, "--admin-token-file", env.srv.adminTokenFile, "--id", "ts-config", "--key-out", path, "--config", cfg, "--policy", "config=enforce");
    const key = await parseAgentKey(readFileSync(path, "utf8"));
    const doc = await loadConfig(cfg);
    const agent = new Agent({ server: env.srv.url, key, task: "T-config", config: doc });
    const [r] = await agent.append({ action: "ts.configured" });
    assert.ok(r);
    assert.equal(JSON.parse(await auditor(env.srv).entry(r.index)).config, doc.digest);
    await agent.close();
    // Another configuration (the same prompt inline) is refused.
    const other = new Agent({ server: env.srv.url, key, task: "T-config-2", config: { model: { name: "m", version: "1" }, prompts: { system: { text: "You are a careful agent.\n" } } } });
    await assert.rejects(other.append({ action: "ts.unapproved" }), (e: unknown) => e instanceof HTTPError && e.status === 403);
  });

  test("refused records leave no gap in the sequence numbers", async (t) => {
    const env = await setup(t);
    const key = await register(env, "ts-gap");
    const agent = new Agent({ server: env.srv.url, key, task: "T-gap" });
    await agent.append({ action: "ts.one" });
    await assert.rejects(agent.append({ action: "ts.bad\u0001" }, { action: "ts.fine" }), (e: unknown) => e instanceof HTTPError && e.status === 400 && e.serverMessage.includes("control character"));
    await agent.append({ action: "ts.two" });
    await agent.close();
    const seqs = [];
    for await (const m of auditor(env.srv).query({ agent: "ts-gap", kind: "action" })) seqs.push(JSON.parse(m.entry).seq);
    assert.deepEqual(seqs, [1, 2]);
  });

  test("verified checkpoints, entries, inclusion and consistency", async (t) => {
    const env = await setup(t);
    const key = await register(env, "ts-cons");
    const agent = new Agent({ server: env.srv.url, key, task: "T-cons" });
    const keys = { logKey: env.srv.read("log.pub"), timeKey: env.srv.read("time.pub") };
    const a = auditor(env.srv);
    const waitFor = async (size: number) => {
      const deadline = Date.now() + 30000;
      for (;;) {
        const cp = await a.verifiedCheckpoint(keys);
        if (cp.size >= BigInt(size) || Date.now() > deadline) return cp;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const r1 = await agent.append({ action: "ts.one", attributes: { html: "<&>\u2028", n: 1 } });
    const old = await waitFor(r1[0]!.index + 1);
    const r2 = await agent.append(...Array.from({ length: 50 }, (_, i) => ({ action: "ts.two", attributes: { i } })));
    await agent.close();
    const cp = await waitFor(r2.at(-1)!.index + 1);
    await a.verifyConsistency(old, cp);
    const leaf = await a.entry(r1[0]!.index);
    assert.equal(await leafHashBase64(leaf), r1[0]!.leaf_hash, "the entry is the leaf byte for byte");
    await verifyLeafSignature(leaf, key.publicKey);
    await a.verifyInclusion(cp, r2[7]!.index, await a.entry(r2[7]!.index));
    await assert.rejects(a.verifyConsistency(old, { ...cp, root: new Uint8Array(32) }), (e: unknown) => e instanceof VerificationError && e.reason === "root-mismatch");
    assert.equal(rawMembers(leaf)!.get("attributes"), JSON.stringify({ html: "<&>\u2028", n: 1 }));
  });

  test("MCP: every tools/call of the official SDK's client is recorded", async (t) => {
    const env = await setup(t);
    const key = await register(env, "ts-mcp");
    const agent = new Agent({ server: env.srv.url, key, task: "T-mcp", flushIntervalMs: 20 });
    const server = new McpServer({ name: "crm", version: "1.0.0" });
    server.tool("lookup", "finds a customer", async () => ({ content: [{ type: "text", text: "found" }] }));
    server.tool("broken", "always fails", async () => {
      throw new Error("backend down");
    });
    const [ct, st] = InMemoryTransport.createLinkedPair();
    await server.connect(st);
    const client = new Client({ name: "agent", version: "1.0.0" });
    await client.connect(ct);
    const receipts: Receipt[] = [];
    recordToolCalls(client, agent, { server: "crm", resource: (tool) => `crm/${tool}`, onReceipt: (r) => receipts.push(r) });
    const ok = await client.callTool({ name: "lookup", arguments: {} });
    assert.equal((ok.content as { text: string }[])[0]!.text, "found");
    const bad = await client.callTool({ name: "broken", arguments: {} });
    assert.equal(bad.isError, true);
    const unknown = await client.callTool({ name: "no-such-tool", arguments: {} });
    assert.equal(unknown.isError, true);
    // A call that throws (here: a client whose transport is gone) is recorded, then rethrown.
    const dead = recordToolCalls({ callTool: async (_p: { name: string }) => Promise.reject(new Error("transport closed")) }, agent, { onReceipt: (r) => receipts.push(r) });
    await assert.rejects(dead.callTool({ name: "thrown" }), /transport closed/);
    assert.equal(receipts.length, 4, "each call was durable before it returned");
    await agent.close();
    await client.close();
    const byTool = new Map<string, any>();
    for await (const m of auditor(env.srv).query({ agent: "ts-mcp", kind: "action" })) {
      const e = JSON.parse(m.entry);
      byTool.set(e.tool, e);
      await verifyLeafSignature(m.entry, key.publicKey);
    }
    assert.equal(byTool.get("lookup").outcome, "ok");
    assert.equal(byTool.get("lookup").resource, "crm/lookup");
    assert.equal(byTool.get("lookup").attributes["mcp.server"], "crm");
    assert.equal(typeof byTool.get("lookup").attributes.latency_ms, "number");
    assert.equal(byTool.get("broken").outcome, "error");
    assert.equal(byTool.get("no-such-tool").outcome, "error");
    assert.equal(byTool.get("thrown").outcome, "error: transport closed");
    assert.deepEqual([...byTool.values()].map((e) => e.seq).sort(), [1, 2, 3, 4]);
  });
});

describe("examples", () => {
  test("the README's examples run as written against the server", async (t) => {
    const env = await setup(t);
    await register(env, "ts-example");
    const key = join(env.dir, "ts-example.key");
    const run = (file: string, ...args: string[]) => execFileSync(process.execPath, [join(REPO, "client", "typescript", "dist", "examples", file), ...args], { encoding: "utf8" });
    assert.match(run("quickstart.js", key, env.srv.url), /appended as entry \d+/);
    assert.match(run("agent-loop.js", key, env.srv.data, env.srv.url), /4 records of task ticket-4711 verified/);
  });
});

describe("unreachable log", () => {
  test("a bounded buffer, then errors the agent sees", async () => {
    // A listening socket that never answers: requests wait until their timeout.
    const sockets: import("node:net").Socket[] = [];
    const ln = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => ln.listen(0, "127.0.0.1", r));
    const port = (ln.address() as { port: number }).port;
    const key = await parseAgentKey("AGENTLOG-AGENT-KEY+ghost+" + toBase64(new Uint8Array(32)));
    const agent = new Agent({ server: `http://127.0.0.1:${port}`, key, task: "T-down", maxBuffer: 5, maxRetries: 1, requestTimeoutMs: 500 });
    const ps = Array.from({ length: 5 }, () => agent.add({ action: "ts.lost" }));
    await assert.rejects(agent.add({ action: "ts.sixth" }), BufferFullError);
    for (const p of ps) await assert.rejects(p, UnreachableError);
    await agent.add({ action: "ts.again" }).catch((e) => assert.ok(e instanceof UnreachableError));
    for (const s of sockets) s.destroy();
    await new Promise((r) => ln.close(r));

    // Nothing listening: connection refused, the same error.
    const a2 = new Agent({ server: `http://127.0.0.1:${port}`, key, task: "T-down", maxRetries: 2 });
    await assert.rejects(a2.append({ action: "ts.refused" }), (e: unknown) => e instanceof UnreachableError && /after 3 attempts/.test(e.message));
  });
});
