// Never-crash tests of the parsers: seeded random mutations of the vector
// inputs may only be refused with the SDK's typed errors, and the raw
// member scanner agrees with JSON.parse on every object it accepts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { parseAgentKey } from "../src/agent.js";
import { KeyFileError } from "../src/errors.js";
import { VerificationError, rawMembers, verifyCheckpoint, verifyLeafSignature, verifyTLogProof } from "../src/verify.js";

const dir = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..", "testdata", "vectors");
const load = (name: string): any => JSON.parse(readFileSync(join(dir, name), "utf8"));
const MUTATIONS = 2000;

// mulberry32: a small seeded PRNG, so failures reproduce.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(r: () => number, s: string): string {
  const b = [...new TextEncoder().encode(s)];
  const pick = "\n \u0000{}[]\",:\\+-0123456789abcAZ=/\u2014\r";
  for (let n = 1 + Math.floor(r() * 4); n > 0; n--) {
    const i = Math.floor(r() * (b.length + 1));
    const op = Math.floor(r() * 4);
    if (op === 0 && b.length) b.splice(Math.min(i, b.length - 1), 1);
    else if (op === 1) b.splice(i, 0, ...new TextEncoder().encode(pick[Math.floor(r() * pick.length)]!));
    else if (op === 2 && b.length) b[Math.min(i, b.length - 1)]! ^= 1 << Math.floor(r() * 8);
    else {
      const j = Math.floor(r() * (b.length + 1));
      b.splice(i, 0, ...b.slice(j, j + 1 + Math.floor(r() * 8)));
    }
  }
  return new TextDecoder().decode(new Uint8Array(b));
}

async function refusedOrOk(f: () => Promise<unknown>, ...types: (new (...a: any[]) => Error)[]): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!types.some((t) => e instanceof t)) throw e;
  }
}

test("checkpoints and policies", async () => {
  const f = load("checkpoints.json");
  const r = rng(1);
  const policies = Object.values(f.policies) as string[];
  for (let i = 0; i < MUTATIONS; i++) {
    const c = f.vectors[Math.floor(r() * f.vectors.length)];
    const pol = r() < 0.3 ? mutate(r, policies[Math.floor(r() * policies.length)]!) : policies[Math.floor(r() * policies.length)]!;
    await refusedOrOk(() => verifyCheckpoint(mutate(r, c.checkpoint), { timeKey: f.time_vkey, policy: pol }), VerificationError);
  }
});

test("tlog-proof files", async () => {
  const f = load("tlog_proofs.json");
  const r = rng(2);
  for (let i = 0; i < MUTATIONS; i++) {
    const c = f.vectors[Math.floor(r() * f.vectors.length)];
    await refusedOrOk(() => verifyTLogProof(mutate(r, c.proof), c.entry, { policy: f.policies.any }), VerificationError);
  }
});

test("agent key files", async () => {
  const f = load("agent_keys.json");
  const r = rng(3);
  for (let i = 0; i < MUTATIONS; i++) {
    const c = f.vectors[Math.floor(r() * f.vectors.length)];
    await refusedOrOk(() => parseAgentKey(mutate(r, c.file || "x")), KeyFileError);
  }
});

test("leaves and the raw member scanner", async () => {
  const f = load("records.json");
  const r = rng(4);
  const inputs = [...f.leaves.map((c: any) => c.leaf), '{"a" : 1 , "b":[1,{"c":"}"}], "d" : "x\\"y", "e":-1.5e3 ,"f":null,"g":{}}', "{}"];
  for (let i = 0; i < MUTATIONS; i++) {
    const text = mutate(r, inputs[Math.floor(r() * inputs.length)]);
    const m = rawMembers(text);
    let ref: unknown;
    try {
      ref = JSON.parse(text);
    } catch {
      ref = undefined;
    }
    if (typeof ref !== "object" || ref === null || Array.isArray(ref)) {
      assert.equal(m, null, text);
    } else {
      assert.ok(m, text);
      assert.deepEqual([...m.keys()].sort(), Object.keys(ref).sort(), text);
      for (const [k, raw] of m) assert.deepEqual(JSON.parse(raw), (ref as Record<string, unknown>)[k], text);
    }
    await refusedOrOk(() => verifyLeafSignature(text, new Uint8Array(32)), VerificationError);
  }
});
