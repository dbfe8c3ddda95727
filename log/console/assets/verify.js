// The console's verification: the TypeScript SDK's (client/typescript,
// @agentlog/client/verify), compiled into ./sdk by
//
//	make console-sdk
//
// (tsc from the SDK's sources; make sdk-typescript fails when the committed
// copy differs), so the console, the SDK and the shared vectors of
// testdata/vectors cannot drift apart. This module adds only what the pages
// need around it: the signature list of a checkpoint for the overview, the
// entry-bundle paths (c2sp.org/tlog-tiles) and a few byte helpers. Every
// failure is the SDK's VerificationError (exported here as VerifyError too),
// whose reason is a code of testdata/vectors/README.md.
//
//   c2sp.org/signed-note         parseNote, parseVerifierKey (the SDK's)
//   c2sp.org/tlog-checkpoint     openCheckpoint (verdict by the SDK's verifyCheckpoint)
//   c2sp.org/tlog-cosignature    the timestamp signature and witness cosignatures
//   RFC 6962 / RFC 9162 2.1      leafHash, verifyInclusion, verifyConsistency (the SDK's)
//   c2sp.org/tlog-tiles          bundlePath, parseBundle

import * as sdk from "./sdk/verify.js";
import { equalBytes, fromBase64, sha256, toBase64 } from "./sdk/bytes.js";

export { equalBytes, sha256 };
export const { VerificationError, leafHash, verifyInclusion, verifyConsistency, parseNote, ALG_ED25519, ALG_ECDSA_SHA256, ALG_COSIGNATURE_V1 } = sdk;
export const VerifyError = sdk.VerificationError;

export function b64decode(s) {
  const b = typeof s === "string" ? fromBase64(s) : null;
  if (!b) throw new VerificationError("malformed", "malformed base64");
  return b;
}

export const b64encode = toBase64;

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function keyIdHex(id) {
  return id.toString(16).padStart(8, "0");
}

// parseVerifierKey is the SDK's, with the names the pages use: alg (the
// key type) and id (the 4-byte key ID).
export async function parseVerifierKey(vkey) {
  const k = await sdk.parseVerifierKey(String(vkey));
  const id = new Uint8Array(4);
  new DataView(id.buffer).setUint32(0, k.keyId);
  return { ...k, alg: k.type, id };
}

// openCheckpoint verifies a signed checkpoint with the pinned keys, exactly
// as the SDK (and the Go client) does:
//   logKey     the log's verifier key (required; its name must be the origin)
//   timeKey    the log's timestamp key, optional: its signature is then required
//   witnesses  further verifier keys, optional: listed as verified or not
// It returns origin, size (BigInt), root, the verified time (seconds, or
// null), and every signature line with whether it verified (signers that
// are not pinned are listed, unverified).
export async function openCheckpoint(raw, { logKey, timeKey = null, witnesses = [] }) {
  if (!logKey) throw new VerificationError("no-log-signature", "no log key is pinned");
  const cp = await sdk.verifyCheckpoint(raw, timeKey ? { logKey, timeKey } : { logKey });
  const tk = timeKey ? await sdk.asCosignatureKey(timeKey) : null;
  const signatures = [];
  for (const s of sdk.parseNote(raw).sigs) {
    const entry = { name: s.name, keyID: keyIdHex(s.keyId), verified: false, time: null, role: "unknown" };
    if (s.sig.length === 72) {
      entry.time = Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0));
      entry.role = "witness";
    }
    const k = [logKey, tk, ...witnesses].find((k) => k && k.name === s.name && k.keyId === s.keyId);
    if (k) {
      const r = await sdk.verifyNoteSignature(k, cp.text, s.sig);
      entry.verified = r.ok;
      if (r.time !== undefined) entry.time = r.time;
      entry.role = k === logKey ? "log" : k === tk ? "timestamp" : "witness";
    }
    signatures.push(entry);
  }
  return { raw, origin: cp.origin, size: cp.size, root: cp.root, time: cp.time ?? null, signatures };
}

// Entry bundles (c2sp.org/tlog-tiles): 256 entries per bundle.
export const TILE_WIDTH = 256n;

function tileIndexPath(n) {
  const groups = [];
  do {
    groups.unshift(n % 1000n);
    n /= 1000n;
  } while (n > 0n);
  return groups.map((g, i) => (i < groups.length - 1 ? "x" : "") + String(g).padStart(3, "0")).join("/");
}

// bundlePath is the path, after /tile/, of the entry bundle holding index in
// a tree of size leaves.
export function bundlePath(index, size) {
  const i = BigInt(index);
  const s = BigInt(size);
  const n = i / TILE_WIDTH;
  let p = "entries/" + tileIndexPath(n);
  const full = s / TILE_WIDTH;
  if (n >= full) p += `.p/${s % TILE_WIDTH}`;
  return p;
}

// parseBundle splits an entry bundle: each entry is a 2-byte big-endian
// length then its bytes.
export function parseBundle(bytes) {
  const out = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 2 > bytes.length) throw new VerificationError("malformed", "truncated entry bundle");
    const n = (bytes[o] << 8) | bytes[o + 1];
    o += 2;
    if (o + n > bytes.length) throw new VerificationError("malformed", "truncated entry bundle");
    out.push(bytes.slice(o, o + n));
    o += n;
  }
  return out;
}
