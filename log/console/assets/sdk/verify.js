// Verification of what an agentlog server says, trusting nothing it sends:
// RFC 6962 leaf hashes and inclusion and consistency proofs (RFC 9162,
// section 2.1), C2SP signed notes and checkpoints (c2sp.org/signed-note,
// c2sp.org/tlog-checkpoint) with the log's timestamp signature and witness
// cosignatures (c2sp.org/tlog-cosignature), witness policies
// (c2sp.org/tlog-policy), offline proofs (c2sp.org/tlog-proof) and agent
// record signatures (docs/identity.md).
//
// Every failure is a VerificationError whose reason is one of the codes of
// testdata/vectors/README.md; the shared vectors pin the behaviour to the
// Go client's. It only needs WebCrypto, so browsers can use it as it is.
import { concat, ecdsaImport, ecdsaVerifySHA256, ed25519Verify, equalBytes, fromBase64, fromUtf8, sha256, toBase64, utf8 } from "./bytes.js";
/** A verification failed; reason says why, the message says it in full. */
export class VerificationError extends Error {
    reason;
    constructor(reason, message) {
        super(message);
        this.name = "VerificationError";
        this.reason = reason;
    }
}
function fail(reason, message) {
    throw new VerificationError(reason, message);
}
// ---- RFC 6962 hashing and proofs ----
/** RFC 6962 leaf hash: SHA-256(0x00 || leaf). */
export async function leafHash(leaf) {
    return sha256(concat(new Uint8Array([0]), typeof leaf === "string" ? utf8(leaf) : leaf));
}
async function nodeHash(l, r) {
    return sha256(concat(new Uint8Array([1]), l, r));
}
/** The RFC 6962 hash of an empty tree, SHA-256 of nothing. */
export async function emptyRoot() {
    return sha256(new Uint8Array(0));
}
function big(n, what) {
    if (typeof n === "number" && (!Number.isSafeInteger(n) || n < 0))
        fail("malformed", `${what} ${n} is not a non-negative integer`);
    const b = BigInt(n);
    if (b < 0n || b >= 1n << 64n)
        fail("malformed", `${what} ${n} is not a 64-bit unsigned integer`);
    return b;
}
function bitLen(x) {
    return x === 0n ? 0 : x.toString(2).length;
}
function onesCount(x) {
    let n = 0;
    for (const c of x.toString(2))
        if (c === "1")
            n++;
    return n;
}
function trailingZeros(x) {
    let n = 0;
    while (x > 0n && (x & 1n) === 0n) {
        x >>= 1n;
        n++;
    }
    return n;
}
// decomp splits the inclusion proof of index in a tree of size leaves into
// its inner part (below the split with the right border) and border part.
function decomp(index, size) {
    const inner = bitLen(index ^ (size - 1n));
    return [inner, onesCount(index >> BigInt(inner))];
}
async function chainInner(seed, proof, index) {
    for (let i = 0; i < proof.length; i++) {
        seed = ((index >> BigInt(i)) & 1n) === 0n ? await nodeHash(seed, proof[i]) : await nodeHash(proof[i], seed);
    }
    return seed;
}
async function chainInnerRight(seed, proof, index) {
    for (let i = 0; i < proof.length; i++) {
        if (((index >> BigInt(i)) & 1n) === 1n)
            seed = await nodeHash(proof[i], seed);
    }
    return seed;
}
async function chainBorderRight(seed, proof) {
    for (const h of proof)
        seed = await nodeHash(h, seed);
    return seed;
}
function checkHashes(hs, what) {
    for (const h of hs)
        if (h.length !== 32)
            fail("malformed", `${what} holds a hash of ${h.length} bytes, not 32`);
}
/** The root an inclusion proof leads to (throws if it has the wrong size). */
export async function rootFromInclusionProof(index, size, leafHash, proof) {
    const i = big(index, "index");
    const n = big(size, "size");
    if (i >= n)
        fail("index-out-of-range", `index ${i} is not in a tree of size ${n}`);
    checkHashes([leafHash, ...proof], "the inclusion proof");
    const [inner, border] = decomp(i, n);
    if (proof.length !== inner + border)
        fail("wrong-proof-size", `the inclusion proof of index ${i} in a tree of size ${n} has ${proof.length} hashes, want ${inner + border}`);
    const r = await chainInner(leafHash, proof.slice(0, inner), i);
    return chainBorderRight(r, proof.slice(inner));
}
/** Verifies an RFC 6962 inclusion proof of the leaf with leafHash at index under root. */
export async function verifyInclusion(index, size, leafHash, proof, root) {
    const got = await rootFromInclusionProof(index, size, leafHash, proof);
    if (!equalBytes(got, root))
        fail("root-mismatch", `the inclusion proof of index ${index} leads to root ${toBase64(got)}, not ${toBase64(root)}`);
}
/** Verifies an RFC 6962 consistency proof between trees of sizes old and size. */
export async function verifyConsistency(old, size, proof, oldRoot, root) {
    const s1 = big(old, "old size");
    const s2 = big(size, "size");
    checkHashes([oldRoot, root, ...proof], "the consistency proof");
    if (s2 < s1)
        fail("size-order", `a tree of size ${s2} cannot extend one of size ${s1}`);
    if (s1 === s2) {
        if (proof.length > 0)
            fail("wrong-proof-size", "the consistency proof between equal sizes must be empty");
        if (!equalBytes(oldRoot, root))
            fail("root-mismatch", `two different roots for the tree of size ${s1}`);
        return;
    }
    if (s1 === 0n) {
        if (proof.length > 0)
            fail("wrong-proof-size", "the consistency proof from an empty tree must be empty");
        return;
    }
    if (proof.length === 0)
        fail("wrong-proof-size", "the consistency proof is empty");
    let [inner, border] = decomp(s1 - 1n, s2);
    const shift = trailingZeros(s1);
    inner -= shift;
    let seed = proof[0];
    let start = 1;
    if (s1 === 1n << BigInt(shift)) {
        seed = oldRoot;
        start = 0;
    }
    if (proof.length !== start + inner + border)
        fail("wrong-proof-size", `the consistency proof from ${s1} to ${s2} has ${proof.length} hashes, want ${start + inner + border}`);
    const p = proof.slice(start);
    const mask = (s1 - 1n) >> BigInt(shift);
    const h1 = await chainBorderRight(await chainInnerRight(seed, p.slice(0, inner), mask), p.slice(inner));
    if (!equalBytes(h1, oldRoot))
        fail("root-mismatch", `the consistency proof does not lead to the old root of size ${s1}`);
    const h2 = await chainBorderRight(await chainInner(seed, p.slice(0, inner), mask), p.slice(inner));
    if (!equalBytes(h2, root))
        fail("root-mismatch", `the consistency proof does not lead to the root of size ${s2}`);
}
// ---- Signed notes ----
/** Signature types of c2sp.org/signed-note that agentlog verifies. */
export const ALG_ED25519 = 0x01;
export const ALG_ECDSA_SHA256 = 0x02;
export const ALG_COSIGNATURE_V1 = 0x04;
function validName(name) {
    return name !== "" && !/[\s+]/u.test(name) && fromUtf8(utf8(name)) !== null;
}
async function keyId(name, typeAndKey) {
    const h = await sha256(concat(utf8(name + "\n"), typeAndKey));
    return new DataView(h.buffer, h.byteOffset).getUint32(0);
}
/**
 * Parses a verifier key of a type the Go verifier accepts for witnesses and
 * logs (transparency-dev/formats/note.NewVerifier) and this SDK verifies:
 * Ed25519 (0x01), ECDSA with SHA-256 (0x02: DER SPKI on P-256, P-384 or
 * P-521, key ID from SHA-256 of the DER) and Ed25519 cosignature v1 (0x04).
 * Other types (ML-DSA-44 cosignatures, 0x06, among them) fail with reason
 * unsupported-key; a malformed key, or a key ID that is not the key's, with
 * bad-key.
 */
export async function parseVerifierKey(vkey) {
    const s = vkey.trim();
    const p1 = s.indexOf("+");
    const p2 = p1 < 0 ? -1 : s.indexOf("+", p1 + 1);
    if (p2 < 0)
        fail("bad-key", `verifier key ${JSON.stringify(s)} is not <name>+<key id>+<base64 key>`);
    const name = s.slice(0, p1);
    const idHex = s.slice(p1 + 1, p2);
    const b64 = s.slice(p2 + 1);
    const key = fromBase64(b64);
    if (!validName(name) || !/^[0-9a-f]{8}$/.test(idHex) || !key || key.length < 2)
        fail("bad-key", `verifier key ${JSON.stringify(s)} is malformed`);
    const type = key[0];
    const pub = key.subarray(1);
    const id = parseInt(idHex, 16);
    if (type === ALG_ED25519 || type === ALG_COSIGNATURE_V1) {
        if (pub.length !== 32)
            fail("bad-key", `verifier key ${JSON.stringify(s)}: an Ed25519 key has 32 bytes, not ${pub.length}`);
        if ((await keyId(name, key)) !== id)
            fail("bad-key", `verifier key ${JSON.stringify(s)} has the wrong key ID`);
        return { vkey: s, name, keyId: id, type, publicKey: pub };
    }
    if (type === ALG_ECDSA_SHA256) {
        const h = await sha256(pub);
        if (new DataView(h.buffer, h.byteOffset).getUint32(0) !== id)
            fail("bad-key", `verifier key ${JSON.stringify(s)} has the wrong key ID`);
        const ecdsa = await ecdsaImport(pub);
        if (!ecdsa)
            fail("bad-key", `verifier key ${JSON.stringify(s)} is not a DER SPKI ECDSA key on P-256, P-384 or P-521`);
        return { vkey: s, name, keyId: id, type, publicKey: pub, ecdsa };
    }
    return fail("unsupported-key", `verifier key ${JSON.stringify(s)} has type 0x${type.toString(16).padStart(2, "0")}; this SDK verifies Ed25519 (0x01), ECDSA with SHA-256 (0x02) and Ed25519 cosignature v1 (0x04) keys`);
}
/**
 * The timestamp key as the Go client takes it (NewVerifierForCosignatureV1):
 * an Ed25519 key given in its 0x01 form is the cosignature v1 key (0x04) of
 * the same public key.
 */
export async function asCosignatureKey(k) {
    if (k.type === ALG_COSIGNATURE_V1)
        return k;
    if (k.type !== ALG_ED25519)
        fail("unsupported-key", `the timestamp key ${JSON.stringify(k.vkey)} is not an Ed25519 cosignature v1 key`);
    return { ...k, type: ALG_COSIGNATURE_V1, keyId: await keyId(k.name, concat(Uint8Array.of(ALG_COSIGNATURE_V1), k.publicKey)) };
}
/**
 * Splits a signed note (c2sp.org/signed-note) the way golang.org/x/mod's
 * note.Open does: valid UTF-8 without control characters but newlines, a
 * blank line before the signatures, each "— <name> <base64>" with at least
 * 5 bytes, at most 100 of them.
 */
export function parseNote(raw) {
    let s;
    if (typeof raw === "string")
        s = raw;
    else
        s = fromUtf8(raw);
    if (s === null)
        fail("malformed", "the note is not valid UTF-8");
    if (/[\u0000-\u0009\u000b-\u001f]/.test(s))
        fail("malformed", "the note holds control characters");
    const split = s.lastIndexOf("\n\n");
    if (split < 0)
        fail("malformed", "the note has no blank line before its signatures");
    const text = s.slice(0, split + 1);
    const block = s.slice(split + 2);
    if (block === "" || !block.endsWith("\n"))
        fail("malformed", "the note's signature block is empty or does not end in a newline");
    const lines = block.slice(0, -1).split("\n");
    if (lines.length > 100)
        fail("malformed", `the note has ${lines.length} signatures, more than 100`);
    const sigs = [];
    for (const line of lines) {
        if (!line.startsWith("\u2014 "))
            fail("malformed", `signature line ${JSON.stringify(line)} does not start with "— "`);
        const rest = line.slice(2);
        const sp = rest.indexOf(" ");
        const name = sp < 0 ? rest : rest.slice(0, sp);
        const b64 = sp < 0 ? "" : rest.slice(sp + 1);
        const b = fromBase64(b64);
        if (!validName(name) || b64 === "" || !b || b.length < 5)
            fail("malformed", `signature line ${JSON.stringify(line)} is malformed`);
        sigs.push({ name, keyId: new DataView(b.buffer, b.byteOffset).getUint32(0), sig: b.subarray(4) });
    }
    return { text, sigs };
}
/**
 * Checks one note signature (without its key ID) over text with key:
 * Ed25519 or ECDSA over the text, or cosignature v1 over
 * "cosignature/v1\ntime <t>\n" || text (whose time it returns).
 */
export async function verifyNoteSignature(key, text, sig) {
    if (key.type === ALG_ED25519)
        return { ok: await ed25519Verify(key.publicKey, utf8(text), sig) };
    if (key.type === ALG_ECDSA_SHA256)
        return { ok: key.ecdsa !== undefined && (await ecdsaVerifySHA256(key.ecdsa, utf8(text), sig)) };
    if (sig.length !== 72)
        return { ok: false };
    const t = new DataView(sig.buffer, sig.byteOffset).getBigUint64(0);
    const msg = utf8(`cosignature/v1\ntime ${t}\n${text}`);
    const ok = await ed25519Verify(key.publicKey, msg, sig.subarray(8));
    return { ok, time: Number(t) };
}
/** Parses a c2sp.org/tlog-policy file (log, witness, group and quorum lines). */
export async function parsePolicy(text) {
    if (text.length > 1 << 20)
        fail("malformed", "the policy is larger than 1 MiB");
    const logs = [];
    const witnesses = [];
    const names = new Map();
    const keys = new Set();
    let quorum;
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
        const f = lines[i].split(/[ \t]+/).filter((x) => x !== "");
        const bad = (msg) => fail("malformed", `policy line ${i + 1}: ${msg}`);
        if (f.length === 0 || f[0].startsWith("#"))
            continue;
        const newName = (n) => {
            if (n === "none")
                bad(`"none" is reserved`);
            if (names.has(n))
                bad(`${JSON.stringify(n)} is already defined`);
        };
        const addKey = async (vkey) => {
            const k = await parseVerifierKey(vkey).catch((e) => e instanceof VerificationError ? fail(e.reason, `policy line ${i + 1}: ${e.message}`) : bad(String(e)));
            const id = toBase64(k.publicKey);
            if (keys.has(id))
                bad("a key appears twice");
            keys.add(id);
            return k;
        };
        switch (f[0]) {
            case "log": {
                if (f.length < 2 || f.length > 3)
                    bad('want "log <vkey> [<url>]"');
                const key = await addKey(f[1]);
                logs.push(f[2] ? { key, url: f[2] } : { key });
                break;
            }
            case "witness": {
                if (f.length < 3 || f.length > 4)
                    bad('want "witness <name> <vkey> [<url>]"');
                newName(f[1]);
                const key = await addKey(f[2]);
                const w = f[3] ? { name: f[1], key, url: f[3] } : { name: f[1], key };
                witnesses.push(w);
                names.set(w.name, w);
                break;
            }
            case "group": {
                if (f.length < 4)
                    bad('want "group <name> all|any|<k> <name>..."');
                newName(f[1]);
                const members = [];
                const seen = new Set();
                for (const m of f.slice(3)) {
                    if (seen.has(m))
                        bad(`group ${f[1]} lists ${m} twice`);
                    seen.add(m);
                    const d = names.get(m);
                    if (!d)
                        bad(`group ${f[1]} names ${JSON.stringify(m)}, which no earlier line defines`);
                    members.push(d);
                }
                let k;
                if (f[2] === "all")
                    k = members.length;
                else if (f[2] === "any")
                    k = 1;
                else {
                    k = Number(f[2]);
                    if (!/^[1-9][0-9]*$/.test(f[2]) || k > members.length)
                        bad(`group ${f[1]} threshold ${f[2]}: want all, any or 1 to ${members.length}`);
                }
                names.set(f[1], { name: f[1], k, members });
                break;
            }
            case "quorum": {
                if (f.length !== 2)
                    bad('want "quorum <name>|none"');
                if (quorum !== undefined)
                    bad("a second quorum line");
                const d = names.get(f[1]);
                if (d && "key" in d)
                    quorum = { name: d.name, k: 1, members: [d] };
                else if (d)
                    quorum = d;
                else if (f[1] === "none")
                    quorum = null;
                else
                    bad(`quorum ${JSON.stringify(f[1])} names nothing defined on an earlier line`);
                break;
            }
            default:
                bad(`unknown keyword ${JSON.stringify(f[0])}`);
        }
    }
    if (quorum === undefined)
        fail("malformed", 'policy: no quorum line (write "quorum none" to need no witness)');
    return { logs, witnesses, quorum };
}
function satisfied(g, cosigned) {
    let n = 0;
    for (const m of g.members)
        if ("key" in m ? cosigned.has(m) : satisfied(m, cosigned))
            n++;
    return n >= g.k;
}
async function key(k) {
    return typeof k === "string" ? parseVerifierKey(k) : k;
}
/**
 * Verifies a signed checkpoint as the Go client does (checkpoint.Open and
 * witness.Policy.Verify): a valid log signature, the body exactly origin,
 * size and root in canonical form, the origin equal to the log key's name,
 * the timestamp signature if a time key is given, and the policy's quorum.
 * Signatures by other keys are ignored, and so are witness cosignatures
 * that do not verify.
 */
export async function verifyCheckpoint(raw, keys) {
    const rawText = typeof raw === "string" ? raw : fromUtf8(raw) ?? fail("malformed", "the checkpoint is not valid UTF-8");
    if (rawText.length > 1 << 20)
        fail("malformed", "the checkpoint is larger than 1 MiB");
    const policy = keys.policy === undefined ? undefined : typeof keys.policy === "string" ? await parsePolicy(keys.policy) : keys.policy;
    const n = parseNote(rawText);
    const origin = n.text.slice(0, n.text.indexOf("\n"));
    let logKey = keys.logKey === undefined ? undefined : await key(keys.logKey);
    if (policy) {
        const inPolicy = policy.logs.find((l) => (logKey ? l.key.vkey === logKey.vkey || equalBytes(l.key.publicKey, logKey.publicKey) && l.key.name === logKey.name : l.key.name === origin));
        if (!inPolicy)
            fail("no-log-signature", logKey ? `the log key ${logKey.name} is not in the policy` : `the policy has no log of origin ${origin}`);
        logKey = inPolicy.key;
    }
    if (!logKey)
        throw new Error("verifyCheckpoint needs a log key or a policy");
    const timeKey = keys.timeKey === undefined ? undefined : await asCosignatureKey(await key(keys.timeKey));
    if (timeKey && timeKey.name === logKey.name && timeKey.keyId === logKey.keyId)
        throw new Error("the timestamp key must differ from the log key");
    const known = timeKey ? [logKey, timeKey] : [logKey];
    let logSigned = false;
    let time;
    const seen = new Set();
    const others = [];
    for (const s of n.sigs) {
        const k = known.find((k) => k.name === s.name && k.keyId === s.keyId);
        if (!k) {
            others.push(s);
            continue;
        }
        const id = `${s.name} ${s.keyId}`;
        if (seen.has(id))
            continue;
        seen.add(id);
        const r = await verifyNoteSignature(k, n.text, s.sig);
        if (!r.ok)
            fail("bad-signature", `the checkpoint's signature by ${s.name} does not verify`);
        if (k === logKey)
            logSigned = true;
        else
            time = r.time;
    }
    if (!logSigned)
        fail("no-log-signature", `the checkpoint is not signed by the log key ${logKey.name}`);
    const lines = n.text.split("\n");
    if (lines.length < 4)
        fail("malformed", "the checkpoint body is not origin, size and root");
    if (lines.length > 4 || lines[3] !== "")
        fail("extension-lines", "the checkpoint has extension lines, which agentlog never signs");
    const [o, sizeText, rootText] = lines;
    if (o === "")
        fail("malformed", "the checkpoint origin is empty");
    if (!/^[0-9]+$/.test(sizeText) || BigInt(sizeText) >= 1n << 64n)
        fail("malformed", `the checkpoint size ${JSON.stringify(sizeText)} is not a decimal number`);
    const root = fromBase64(rootText);
    if (!root)
        fail("malformed", "the checkpoint root is not base64");
    if (root.length !== 32)
        fail("bad-root", `the checkpoint root hash has ${root.length} bytes, not 32`);
    const size = BigInt(sizeText);
    if (size.toString() !== sizeText || toBase64(root) !== rootText)
        fail("non-canonical", "the checkpoint body is not in canonical form (leading zeros in the size, or non-canonical base64)");
    if (o !== logKey.name)
        fail("origin-mismatch", `the checkpoint origin ${JSON.stringify(o)} differs from the log key name ${JSON.stringify(logKey.name)}`);
    if (timeKey && time === undefined)
        fail("no-timestamp", `the checkpoint has no timestamp signature by ${timeKey.name}`);
    const cosigned = new Set();
    if (policy) {
        for (const s of others) {
            for (const w of policy.witnesses) {
                if (cosigned.has(w) || w.key.name !== s.name || w.key.keyId !== s.keyId)
                    continue;
                if ((await verifyNoteSignature(w.key, n.text, s.sig)).ok)
                    cosigned.add(w);
            }
        }
        if (policy.quorum && !satisfied(policy.quorum, cosigned)) {
            fail("quorum", `the witness quorum is not met: checkpoint ${o} size ${size} has valid cosignatures from ${cosigned.size} witnesses of the policy`);
        }
    }
    const cosigners = [...cosigned].map((w) => w.name).sort();
    const out = { origin: o, size, root, cosigners, text: n.text, raw: rawText };
    return time === undefined ? out : { ...out, time };
}
const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
/** Parses a c2sp.org/tlog-proof@v1 file, in the canonical form agentlog writes (no extra line). */
export function parseTLogProof(file) {
    if (file.length > (1 << 20) + 8192)
        fail("malformed", "the proof file is too large");
    if (file.includes("\r"))
        fail("malformed", "the proof file has carriage returns");
    const split = file.indexOf("\n\n");
    if (split < 0)
        fail("malformed", "the proof file has no blank line before its checkpoint");
    const head = file.slice(0, split).split("\n");
    const checkpoint = file.slice(split + 2);
    if (head[0] !== TLOG_PROOF_HEADER)
        fail("malformed", `the proof file does not start with ${TLOG_PROOF_HEADER}`);
    let i = 1;
    if (head[i]?.startsWith("extra "))
        fail("extra-data", "the proof file has an extra line, which agentlog never writes");
    const m = /^index ([0-9]+)$/.exec(head[i] ?? "");
    if (!m)
        fail("malformed", "the proof file has no index line");
    const index = BigInt(m[1]);
    if (index >= 1n << 64n)
        fail("malformed", "the proof index is not a 64-bit number");
    const hashes = [];
    let canonical = index.toString() === m[1];
    for (const line of head.slice(i + 1)) {
        const h = fromBase64(line);
        if (!h || h.length !== 32)
            fail("malformed", `proof line ${JSON.stringify(line)} is not a base64 SHA-256 hash`);
        if (toBase64(h) !== line)
            canonical = false;
        hashes.push(h);
    }
    if (hashes.length > 64)
        fail("malformed", `the proof has ${hashes.length} hashes; a tree of 2^64 leaves needs at most 64`);
    if (checkpoint === "")
        fail("malformed", "the proof file holds no checkpoint");
    if (!canonical)
        fail("non-canonical", "the proof file is not in canonical form (leading zeros or non-canonical base64)");
    return { index, hashes, checkpoint };
}
/**
 * Verifies a c2sp.org/tlog-proof@v1 file for entry (the leaf): its form,
 * the index (if expected), the checkpoint against keys, then the inclusion
 * proof. Returns the verified checkpoint.
 */
export async function verifyTLogProof(file, entry, keys) {
    const p = parseTLogProof(file);
    if (keys.index !== undefined && BigInt(keys.index) !== p.index)
        fail("index-mismatch", `the proof is of entry ${p.index}, not ${keys.index}`);
    const cp = await verifyCheckpoint(p.checkpoint, keys);
    await verifyInclusion(p.index, cp.size, await leafHash(entry), p.hashes, cp.root);
    return { ...cp, index: p.index };
}
// ---- Agent record signatures ----
/** The ten lines an agent signs for a record (docs/identity.md). */
export function recordSignedBytes(r) {
    return utf8("agentlog record v1\n" +
        `agent ${r.agent}\nsession ${r.session}\ntask ${r.task}\nseq ${BigInt(r.seq)}\n` +
        `action ${r.action}\ntool ${r.tool ?? ""}\nresource ${r.resource ?? ""}\noutcome ${r.outcome ?? ""}\nattributes ${r.attributes ?? ""}\n`);
}
/**
 * Splits a JSON object's text into its members' raw value texts, keeping
 * their bytes (attributes are signed as the leaf holds them). Returns null
 * if text is not a JSON object.
 */
export function rawMembers(text) {
    let v;
    try {
        v = JSON.parse(text);
    }
    catch {
        return null;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v))
        return null;
    const out = new Map();
    let i = 0;
    const ws = () => {
        while (i < text.length && " \t\n\r".includes(text[i]))
            i++;
    };
    const str = () => {
        const start = i++;
        while (text[i] !== '"')
            i += text[i] === "\\" ? 2 : 1;
        i++;
        return text.slice(start, i);
    };
    const value = () => {
        const start = i;
        let depth = 0;
        for (;;) {
            const c = text[i];
            if (c === '"') {
                str();
                if (depth === 0)
                    break;
                continue;
            }
            if (c === "{" || c === "[")
                depth++;
            else if (c === "}" || c === "]") {
                if (depth === 0)
                    break;
                depth--;
                if (depth === 0) {
                    i++;
                    break;
                }
            }
            else if (depth === 0 && (c === "," || " \t\n\r".includes(c)))
                break;
            i++;
        }
        return text.slice(start, i);
    };
    ws();
    i++; // {
    for (;;) {
        ws();
        if (text[i] === "}")
            break;
        const k = JSON.parse(str());
        ws();
        i++; // :
        ws();
        out.set(k, value());
        ws();
        if (text[i] === ",")
            i++;
    }
    return out;
}
/** Verifies the agent signature a leaf carries ("sig") with the agent's Ed25519 public key. */
export async function verifyLeafSignature(leaf, publicKey) {
    const text = typeof leaf === "string" ? leaf : fromUtf8(leaf);
    const m = text === null ? null : rawMembers(text);
    if (!m)
        fail("malformed", "the leaf is not a JSON object");
    const str = (k) => {
        const raw = m.get(k);
        if (raw === undefined || raw === "null")
            return "";
        const v = JSON.parse(raw);
        if (typeof v !== "string")
            fail("malformed", `the leaf's ${k} is not a string`);
        return v;
    };
    const sigText = str("sig");
    if (sigText === "")
        fail("no-signature", "the leaf carries no agent signature");
    const sig = fromBase64(sigText);
    if (!sig)
        fail("malformed", "the leaf's sig is not base64");
    const seqRaw = m.get("seq") ?? "0";
    if (!/^(0|[1-9][0-9]*)$/.test(seqRaw) || BigInt(seqRaw) >= 1n << 64n)
        fail("malformed", "the leaf's seq is not a 64-bit unsigned integer");
    const attrs = m.get("attributes");
    const msg = recordSignedBytes({
        agent: str("agent"),
        session: str("session"),
        task: str("task"),
        seq: BigInt(seqRaw),
        action: str("action"),
        tool: str("tool"),
        resource: str("resource"),
        outcome: str("outcome"),
        attributes: attrs === undefined || attrs === "null" ? "" : attrs,
    });
    if (!(await ed25519Verify(publicKey, msg, sig)))
        fail("bad-signature", `the agent signature of the leaf does not verify with the key of ${JSON.stringify(str("agent"))}`);
}
