// Verification of agentlog's proofs in the browser, with WebCrypto only
// (SHA-256 and Ed25519). Every function either returns what it verified or
// throws a VerifyError saying what failed; nothing here trusts the server.
//
//   c2sp.org/signed-note         parseNote, parseVerifierKey, verifyNote
//   c2sp.org/tlog-checkpoint     openCheckpoint
//   c2sp.org/tlog-cosignature    the timestamp signature (type 0x04)
//   RFC 6962 / RFC 9162 2.1      leafHash, verifyInclusion, verifyConsistency
//   c2sp.org/tlog-tiles          bundlePath, parseBundle
//
// The Go implementation (checkpoint/, tree/, client/) is the reference; the
// browser tests in log/console check this module against it on random trees.

export class VerifyError extends Error {
  constructor(message) {
    super(message);
    this.name = "VerifyError";
  }
}

const enc = new TextEncoder();

export function b64decode(s) {
  if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new VerifyError("malformed base64");
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// RFC 6962 hashing: leaves are prefixed with 0x00, interior nodes with 0x01.
export async function leafHash(leaf) {
  return sha256(concat(Uint8Array.of(0), leaf));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function checkHashes(proof) {
  for (const h of proof) {
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new VerifyError("a proof hash is not 32 bytes");
  }
}

// verifyInclusion checks an RFC 6962 audit path (RFC 9162 2.1.3.2) for the
// leaf hash at index in a tree of size leaves with the given root. Indexes
// and sizes are BigInt-safe numbers or BigInts.
export async function verifyInclusion(index, size, leafHashBytes, proof, root) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (BigInt(index) >= BigInt(size)) throw new VerifyError(`index ${index} is not below tree size ${size}`);
  checkHashes(proof);
  let r = leafHashBytes;
  for (const p of proof) {
    if (sn === 0n) throw new VerifyError("the inclusion proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("the inclusion proof is shorter than the tree is deep");
  if (!equalBytes(r, root)) throw new VerifyError("the inclusion proof does not lead to the checkpoint's root hash");
}

// verifyConsistency checks an RFC 6962 consistency proof (RFC 9162 2.1.4.2)
// between the tree of size1 with root1 and the tree of size2 with root2.
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  let m = BigInt(size1);
  const n = BigInt(size2);
  checkHashes(proof);
  if (m > n) throw new VerifyError(`old size ${size1} is larger than new size ${size2}`);
  if (m === n) {
    if (proof.length !== 0) throw new VerifyError("a consistency proof between equal sizes must be empty");
    if (!equalBytes(root1, root2)) throw new VerifyError(`two different root hashes for tree size ${size1}`);
    return;
  }
  if (m === 0n) {
    if (proof.length !== 0) throw new VerifyError("a consistency proof from the empty tree must be empty");
    return;
  }
  if (proof.length === 0) throw new VerifyError("the consistency proof is empty");
  let path = proof;
  if ((m & (m - 1n)) === 0n) path = [root1, ...proof];
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerifyError("the consistency proof is too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new VerifyError("the consistency proof is too short");
  if (!equalBytes(fr, root1)) throw new VerifyError(`the consistency proof does not reproduce the root hash of size ${size1}`);
  if (!equalBytes(sr, root2)) throw new VerifyError(`the consistency proof does not reproduce the root hash of size ${size2}`);
}

// Signature types of c2sp.org/signed-note.
export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;

async function keyID(name, alg, pub) {
  const h = await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, alg), pub));
  return h.slice(0, 4);
}

function validKeyName(name) {
  return name.length > 0 && !/[\s+]/.test(name);
}

// parseVerifierKey reads "<name>+<8 hex key ID>+<base64(type || key)>" and
// checks that the key ID matches the key. Only Ed25519 (0x01) and
// cosignature v1 (0x04) keys are accepted.
export async function parseVerifierKey(vkey) {
  const s = String(vkey).trim();
  // The base64 key may itself contain '+': cut at the first two.
  const i = s.indexOf("+");
  const j = i < 0 ? -1 : s.indexOf("+", i + 1);
  if (j < 0) throw new VerifyError("a verifier key is <name>+<key ID>+<base64 key>");
  const [name, idHex, keyB64] = [s.slice(0, i), s.slice(i + 1, j), s.slice(j + 1)];
  if (!validKeyName(name)) throw new VerifyError(`invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new VerifyError("the key ID of a verifier key is 8 lowercase hex digits");
  const raw = b64decode(keyB64);
  const alg = raw[0];
  if ((alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) || raw.length !== 33) {
    throw new VerifyError("only Ed25519 (type 1) and cosignature v1 (type 4) verifier keys are supported");
  }
  const pub = raw.slice(1);
  const id = await keyID(name, alg, pub);
  if (hex(id) !== idHex) throw new VerifyError(`the key ID ${idHex} does not match the key of ${name}`);
  const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  return { name, id, alg, pub, key, vkey: s };
}

// parseNote splits a signed note into its text (ending in a newline) and
// its signature lines.
export function parseNote(raw) {
  if (typeof raw !== "string") throw new VerifyError("a signed note is text");
  if (raw.length > 1 << 20) throw new VerifyError("the signed note is too large");
  if (!raw.endsWith("\n")) throw new VerifyError("a signed note ends with a newline");
  const cut = raw.lastIndexOf("\n\n");
  if (cut < 0) throw new VerifyError("a signed note has a blank line before its signatures");
  const text = raw.slice(0, cut + 1);
  const sigLines = raw.slice(cut + 2, -1).split("\n");
  const sigs = [];
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    if (!m) throw new VerifyError(`malformed signature line ${JSON.stringify(line)}`);
    const bytes = b64decode(m[2]);
    if (bytes.length < 5) throw new VerifyError("a signature is shorter than its key ID");
    sigs.push({ name: m[1], id: bytes.slice(0, 4), sig: bytes.slice(4), line });
  }
  if (sigs.length === 0) throw new VerifyError("the note has no signatures");
  return { text, sigs };
}

function sameKey(s, k) {
  return s.name === k.name && equalBytes(s.id, k.id);
}

async function ed25519Verify(key, sig, msg) {
  if (sig.length !== 64) return false;
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
}

// cosignedMessage is what a cosignature v1 signs: a header with the time,
// then the checkpoint body.
function cosignedMessage(text, seconds) {
  return enc.encode(`cosignature/v1\ntime ${seconds}\n${text}`);
}

// verifySignature checks one signature line against a parsed verifier key
// (Ed25519 or cosignature v1) and returns the signing time in seconds for a
// cosignature, null for a plain Ed25519 signature. A bad signature throws.
async function verifySignature(text, s, k) {
  if (k.alg === ALG_ED25519) {
    if (!(await ed25519Verify(k.key, s.sig, enc.encode(text)))) {
      throw new VerifyError(`the signature of ${k.name} does not verify`);
    }
    return null;
  }
  if (s.sig.length !== 72) throw new VerifyError(`the cosignature of ${k.name} is not 72 bytes`);
  const t = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
  if (!(await ed25519Verify(k.key, s.sig.slice(8), cosignedMessage(text, t)))) {
    throw new VerifyError(`the cosignature of ${k.name} does not verify`);
  }
  return Number(t);
}

// openCheckpoint verifies a signed checkpoint with the pinned keys:
//   logKey   the log's Ed25519 verifier key (required; its name must be the origin)
//   timeKey  the log's timestamp key (cosignature v1), optional
//   witnesses  further verifier keys (cosignature v1 or Ed25519), optional
// It throws unless the log's signature verifies; a bad signature by any
// pinned key throws too. It returns origin, size (BigInt), root, the
// verified time (seconds, or null), and every signature line with whether
// it was verified (signers that are not pinned are listed, unverified).
export async function openCheckpoint(raw, { logKey, timeKey = null, witnesses = [] }) {
  const { text, sigs } = parseNote(raw);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length !== 3) throw new VerifyError("a checkpoint body is three lines: origin, size, root hash");
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || sizeText.length > 20) throw new VerifyError("malformed tree size");
  const size = BigInt(sizeText);
  if (size > 0xffffffffffffffffn) throw new VerifyError("tree size out of range");
  const root = b64decode(rootText);
  if (root.length !== 32) throw new VerifyError("the root hash is not 32 bytes");
  if (b64encode(root) !== rootText) throw new VerifyError("the root hash is not canonical base64");
  if (!logKey) throw new VerifyError("no log key is pinned");
  if (origin !== logKey.name) throw new VerifyError(`the checkpoint's origin ${JSON.stringify(origin)} is not the pinned log key's name ${JSON.stringify(logKey.name)}`);
  const keys = [logKey, ...(timeKey ? [timeKey] : []), ...witnesses];
  const signatures = [];
  let logOK = false;
  let time = null;
  for (const s of sigs) {
    const k = keys.find((k) => sameKey(s, k));
    const entry = { name: s.name, keyID: hex(s.id), verified: false, time: null, role: "unknown" };
    if (s.sig.length === 72) {
      entry.time = Number(new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0));
    }
    if (k) {
      const t = await verifySignature(text, s, k);
      entry.verified = true;
      entry.time = t;
      if (k === logKey) {
        logOK = true;
        entry.role = "log";
      } else if (k === timeKey) {
        time = t;
        entry.role = "timestamp";
      } else {
        entry.role = "witness";
      }
    } else if (s.sig.length === 72) {
      entry.role = "witness";
    }
    signatures.push(entry);
  }
  if (!logOK) throw new VerifyError(`the checkpoint carries no signature by the pinned log key ${logKey.name}+${hex(logKey.id)}`);
  if (timeKey && time === null) throw new VerifyError("the checkpoint carries no timestamp signature by the pinned timestamp key");
  return { raw, origin, size, root, time, signatures };
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
    if (o + 2 > bytes.length) throw new VerifyError("truncated entry bundle");
    const n = (bytes[o] << 8) | bytes[o + 1];
    o += 2;
    if (o + n > bytes.length) throw new VerifyError("truncated entry bundle");
    out.push(bytes.slice(o, o + n));
    o += n;
  }
  return out;
}
