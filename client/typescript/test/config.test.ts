// Properties of the RFC 8785 canonicalization beyond the shared vectors: on
// random JSON values it is idempotent, keeps the value, and ignores the
// spelling of its input (key order, whitespace, escapes).
import { test } from "node:test";
import assert from "node:assert/strict";

import { canonicalize, parseJSON } from "../src/config.js";
import { ConfigError } from "../src/errors.js";

// A small seeded PRNG (mulberry32), so a failure is reproducible.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
