// Byte helpers: UTF-8, standard base64 (with the canonical check Go's
// base64.StdEncoding.Strict makes), base64url, SHA-256 and Ed25519 through
// WebCrypto. Nothing here needs Node: it runs in browsers, Deno and edge
// runtimes too.
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
/** UTF-8 bytes of s. */
export function utf8(s) {
    return enc.encode(s);
}
/** Decodes UTF-8, or returns null when b is not valid UTF-8. */
export function fromUtf8(b) {
    try {
        return dec.decode(b);
    }
    catch {
        return null;
    }
}
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/**
 * Decodes standard padded base64. With canonical, an encoding whose unused
 * bits are not zero is refused too (as Go's Strict decoder does). Returns
 * null when s is not base64.
 */
export function fromBase64(s, canonical = false) {
    if (!B64.test(s))
        return null;
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++)
        out[i] = bin.charCodeAt(i);
    if (canonical && toBase64(out) !== s)
        return null;
    return out;
}
/** Standard padded base64 of b. */
export function toBase64(b) {
    let s = "";
    for (let i = 0; i < b.length; i += 0x8000) {
        s += String.fromCharCode(...b.subarray(i, i + 0x8000));
    }
    return btoa(s);
}
/** Unpadded base64url of b. */
export function toBase64Url(b) {
    return toBase64(b).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
/** Concatenation of the arrays. */
export function concat(...parts) {
    let n = 0;
    for (const p of parts)
        n += p.length;
    const out = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
        out.set(p, off);
        off += p.length;
    }
    return out;
}
/** Whether a and b hold the same bytes. */
export function equalBytes(a, b) {
    if (a.length !== b.length)
        return false;
    let d = 0;
    for (let i = 0; i < a.length; i++)
        d |= a[i] ^ b[i];
    return d === 0;
}
function subtle() {
    const c = globalThis.crypto;
    if (!c?.subtle)
        throw new Error("agentlog: WebCrypto (globalThis.crypto.subtle) is not available in this runtime");
    return c.subtle;
}
// Copies into a fresh ArrayBuffer-backed array (WebCrypto wants BufferSource).
function buf(b) {
    const out = new Uint8Array(new ArrayBuffer(b.length));
    out.set(b);
    return out;
}
/** SHA-256 of b. */
export async function sha256(b) {
    return new Uint8Array(await subtle().digest("SHA-256", buf(b)));
}
/** Random bytes from the runtime's CSPRNG. */
export function randomBytes(n) {
    const b = new Uint8Array(n);
    globalThis.crypto.getRandomValues(b);
    return b;
}
const keyCache = new Map();
/** Verifies an Ed25519 signature; false for any malformed input. */
export async function ed25519Verify(publicKey, msg, sig) {
    if (publicKey.length !== 32 || sig.length !== 64)
        return false;
    const id = toBase64(publicKey);
    let k = keyCache.get(id);
    if (!k) {
        k = subtle().importKey("raw", buf(publicKey), { name: "Ed25519" }, false, ["verify"]);
        if (keyCache.size > 1024)
            keyCache.clear();
        keyCache.set(id, k);
    }
    try {
        return await subtle().verify("Ed25519", await k, buf(sig), buf(msg));
    }
    catch {
        return false;
    }
}
// PKCS #8 prefix of an Ed25519 private key (RFC 8410), before the 32-byte seed.
const PKCS8_ED25519 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
/** Makes the Ed25519 key of a 32-byte seed. */
export async function ed25519FromSeed(seed) {
    if (seed.length !== 32)
        throw new Error("an Ed25519 seed is 32 bytes");
    const priv = await subtle().importKey("pkcs8", buf(concat(PKCS8_ED25519, seed)), { name: "Ed25519" }, true, ["sign"]);
    const jwk = await subtle().exportKey("jwk", priv);
    const pub = fromBase64((jwk.x ?? "").replace(/-/g, "+").replace(/_/g, "/") + "=");
    if (!pub || pub.length !== 32)
        throw new Error("agentlog: this runtime's WebCrypto did not derive an Ed25519 public key");
    const signer = await subtle().importKey("pkcs8", buf(concat(PKCS8_ED25519, seed)), { name: "Ed25519" }, false, ["sign"]);
    return {
        publicKey: pub,
        async sign(msg) {
            return new Uint8Array(await subtle().sign("Ed25519", signer, buf(msg)));
        },
    };
}
/** Imports an ECDSA public key (DER SPKI) on P-256, P-384 or P-521; null when it is none of them. */
export async function ecdsaImport(der) {
    for (const [namedCurve, size] of [["P-256", 32], ["P-384", 48], ["P-521", 66]]) {
        try {
            return { key: await subtle().importKey("spki", buf(der), { name: "ECDSA", namedCurve }, false, ["verify"]), size };
        }
        catch {
            // another curve, or not a key
        }
    }
    return null;
}
// derInteger reads a DER INTEGER at b[o] as a positive big-endian number
// without leading zeros (minimal, as Go's cryptobyte requires); null when it
// is not one.
function derInteger(b, o) {
    if (b[o] !== 0x02)
        return null;
    const n = b[o + 1];
    if (n === undefined || n === 0 || n > 0x7f || o + 2 + n > b.length)
        return null;
    let v = b.subarray(o + 2, o + 2 + n);
    if (v[0] & 0x80)
        return null; // negative
    if (v[0] === 0 && (n === 1 || !(v[1] & 0x80)))
        return null; // non-minimal (or zero)
    if (v[0] === 0)
        v = v.subarray(1);
    return { v, next: o + 2 + n };
}
/**
 * Verifies an ASN.1 DER ECDSA signature over SHA-256 of msg (as Go's
 * ecdsa.VerifyASN1 of the SHA-256 digest); false for any malformed input.
 */
export async function ecdsaVerifySHA256(k, msg, der) {
    // SEQUENCE { INTEGER r, INTEGER s }, short or one-byte long form.
    if (der[0] !== 0x30 || der.length < 8)
        return false;
    let o = 2;
    let len = der[1];
    if (len === 0x81) {
        len = der[2];
        if (len < 0x80)
            return false;
        o = 3;
    }
    else if (len > 0x7f)
        return false;
    if (o + len !== der.length)
        return false;
    const r = derInteger(der, o);
    const s = r && derInteger(der, r.next);
    if (!r || !s || s.next !== der.length || r.v.length > k.size || s.v.length > k.size)
        return false;
    const raw = new Uint8Array(2 * k.size);
    raw.set(r.v, k.size - r.v.length);
    raw.set(s.v, 2 * k.size - s.v.length);
    try {
        return await subtle().verify({ name: "ECDSA", hash: "SHA-256" }, k.key, buf(raw), buf(msg));
    }
    catch {
        return false;
    }
}
