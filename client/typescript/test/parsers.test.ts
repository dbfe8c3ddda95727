// Never-crash tests of the parsers: seeded random mutations of the vector
// inputs may only be refused with the SDK's typed errors, and the raw
// member scanner agrees with JSON.parse on every object it accepts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { parseAgentKey } from "../src/agent.js";
import { canonicalize, parseConfig, parseJSON } from "../src/config.js";
import { ConfigError, KeyFileError } from "../src/errors.js";
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

test("configurations and the strict JSON parser", async () => {
  const f = load("configs.json");
  const docs = [...f.configs.map((c: any) => c.document), ...f.canonical.filter((c: any) => c.json !== undefined).map((c: any) => c.json)] as string[];
  const r = rng(5);
  for (let i = 0; i < MUTATIONS; i++) {
    const m = mutate(r, docs[Math.floor(r() * docs.length)]!);
    await refusedOrOk(() => parseConfig(m), ConfigError);
    let canon: string | undefined;
    try {
      canon = canonicalize(m);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
    }
    // What the strict parser accepts, JSON.parse accepts too, with the same
    // value (a magnitude beyond the largest double kept as the largest, as
    // jsontext does).
    const clamp = (_: string, x: unknown) => (typeof x === "number" && !Number.isFinite(x) ? (x > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE) : x);
    if (canon !== undefined) assert.equal(canonicalize(JSON.stringify(JSON.parse(m), clamp)), canon, m);
  }
});

test("witness key policies", async () => {
  const f = load("witness_keys.json");
  const r = rng(6);
  for (let i = 0; i < MUTATIONS; i++) {
    const c = f.keys[Math.floor(r() * f.keys.length)];
    const v = f.vectors[Math.floor(r() * f.vectors.length)];
    await refusedOrOk(() => verifyCheckpoint(mutate(r, v.checkpoint), { policy: mutate(r, c.policy) }), VerificationError);
  }
});

// Properties of the RFC 8785 canonicalization beyond the shared vectors: on
// random JSON values it is idempotent, keeps the value, and ignores the
// spelling of its input (key order, whitespace, escapes).

type V = null | boolean | number | string | V[] | { [k: string]: V };

function value(r: () => number, depth = 0): V {
  const k = Math.floor(r() * (depth < 4 ? 8 : 5));
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  if (k === 0) return null;
  if (k === 1) return r() < 0.5;
  if (k === 2) return pick([0, -1.5, 1e21, 1e-7, 123456789012.25, (r() - 0.5) * 2e30, Math.round((r() - 0.5) * 2 ** 61), 5e-324]);
  if (k === 3 || k === 4) {
    let s = "";
    for (let n = Math.floor(r() * 6); n > 0; n--) s += String.fromCodePoint(pick([0x1f, 0x22, 0x5c, 0x41, 0x7f, 0xe9, 0x2028, 0x20ac, 0x1f600, 0x20 + Math.floor(r() * 0xd7d0)]));
    return s;
  }
  if (k === 5) return Array.from({ length: Math.floor(r() * 4) }, () => value(r, depth + 1));
  const o: { [k: string]: V } = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) o[String(value(r, 9)) + i] = value(r, depth + 1);
  return o;
}

function reversed(v: V): V {
  if (Array.isArray(v)) return v.map(reversed);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed(v[k]!)]));
  return v;
}

// plain copies parseJSON's prototype-less objects into ordinary ones.
function plain(v: V): V {
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).map((k) => [k, plain(v[k]!)]));
  return v;
}

// JSON.stringify with every non-ASCII character escaped.
const asciiJSON = (v: V) => JSON.stringify(v, null, 2).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));

test("canonicalize on random values", () => {
  const r = rng(8785);
  for (let i = 0; i < 2000; i++) {
    const v = value(r);
    const canon = canonicalize(JSON.stringify(v));
    assert.deepEqual(plain(parseJSON(canon) as V), JSON.parse(JSON.stringify(v)), `value ${i}`);
    assert.equal(canonicalize(canon), canon, `idempotent ${i}`);
    assert.equal(canonicalize(asciiJSON(reversed(v))), canon, `respelled ${i}`);
  }
});

test("canonicalize refusals", () => {
  for (const bad of ['{"a":1,"a":1}', "[Infinity]", '"\\udc00"', "", "1 2", new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])]) {
    assert.throws(() => canonicalize(bad), (e: unknown) => e instanceof ConfigError && e.reason === "invalid-json", String(bad));
  }
});
