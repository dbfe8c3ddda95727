// Agent configurations and their digests (docs/changes.md), as the Go
// client and the server compute them (package log/config).
//
// A configuration is identified by "sha256:" and the hex SHA-256 of its
// RFC 8785 canonical form (JSON Canonicalization Scheme,
// https://www.rfc-editor.org/rfc/rfc8785): numbers as IEEE 754 doubles in
// ECMAScript form, object names sorted by UTF-16 code units, only '"', '\'
// and control characters escaped. The server canonicalizes with
// github.com/go-json-experiment/json, whose one departure is kept here
// too: a number beyond the largest double becomes the largest double.
// JSON.parse would take duplicate names and lone surrogates silently, so
// the text is read by a strict parser of its own. Prompts given by file
// are resolved by loadConfig of "@agentlog/client/node".
// testdata/vectors/configs.json holds the shared vectors.
import { sha256, utf8 } from "./bytes.js";
import { ConfigError } from "./errors.js";

/** Largest configuration document, in bytes. */
export const MAX_CONFIG_SIZE = 64 << 10;

/** Prefix of every configuration digest. */
export const DIGEST_PREFIX = "sha256:";

/** A JSON value as the strict parser returns it: objects have no prototype. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [name: string]: JSONValue };

type JSONObject = { [name: string]: JSONValue };

function fail(reason: string, message: string): never {
  throw new ConfigError(reason, message);
}

/** Whether s is "sha256:" and 64 lowercase hex digits. */
export function validDigest(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function text(t: string | Uint8Array): string {
  if (typeof t === "string") return t;
  try {
    return decoder.decode(t);
  } catch {
    return fail("invalid-json", "the JSON text is not valid UTF-8");
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const MAX_DEPTH = 10000;

/**
 * Parses one JSON value strictly (RFC 8259 and I-JSON: valid UTF-8, no lone
 * surrogates, no duplicate names; numbers as doubles). Throws ConfigError
 * with reason invalid-json.
 */
export function parseJSON(input: string | Uint8Array): JSONValue {
  const s = text(input);
  let i = 0;
  const bad = (what: string): never => fail("invalid-json", `not JSON: ${what} at offset ${i}`);
  const ws = () => {
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const str = (): string => {
    i++; // the opening quote
    let out = "";
    let start = i;
    for (;;) {
      if (i >= s.length) bad("an unterminated string");
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        out += s.slice(start, i++);
        break;
      }
      if (c < 0x20) bad("a control character in a string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(start, i);
      const e = s[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case "\\": out += "\\"; break;
        case "/": out += "/"; break;
        case "b": out += "\b"; break;
        case "f": out += "\f"; break;
        case "n": out += "\n"; break;
        case "r": out += "\r"; break;
        case "t": out += "\t"; break;
        case "u": {
          const h = s.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) bad("a bad \\u escape");
          out += String.fromCharCode(parseInt(h, 16));
          i += 4;
          break;
        }
        default:
          bad("a bad escape");
      }
      start = i;
    }
    // Well-formed UTF-16: every surrogate in a pair.
    for (let j = 0; j < out.length; j++) {
      const c = out.charCodeAt(j);
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = out.charCodeAt(j + 1);
        if (d >= 0xdc00 && d <= 0xdfff) j++;
        else bad("a lone surrogate");
      } else if (c >= 0xdc00 && c <= 0xdfff) bad("a lone surrogate");
    }
    return out;
  };
  const value = (depth: number): JSONValue => {
    if (depth > MAX_DEPTH) bad("nesting too deep");
    ws();
    const c = s[i];
    if (c === "{") {
      i++;
      const o: JSONObject = Object.create(null);
      ws();
      if (s[i] === "}") {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') bad("an object name expected");
        const k = str();
        if (Object.prototype.hasOwnProperty.call(o, k)) fail("invalid-json", `duplicate object member name ${JSON.stringify(k)}`);
        ws();
        if (s[i++] !== ":") bad("':' expected");
        o[k] = value(depth + 1);
        ws();
        const d = s[i++];
        if (d === "}") return o;
        if (d !== ",") bad("',' or '}' expected");
      }
    }
    if (c === "[") {
      i++;
      const a: JSONValue[] = [];
      ws();
      if (s[i] === "]") {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        const d = s[i++];
        if (d === "]") return a;
        if (d !== ",") bad("',' or ']' expected");
      }
    }
    if (c === '"') return str();
    for (const [lit, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(s);
    if (!m) return bad("a value expected");
    i += m[0].length;
    const n = Number(m[0]);
    // As jsontext does: beyond the largest double, the largest double.
    return Number.isFinite(n) ? n : n > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE;
  };
  const v = value(0);
  ws();
  if (i !== s.length) bad("text after the value");
  return v;
}

function serialize(v: unknown, out: string[]): void {
  if (v === null) out.push("null");
  else if (v === true) out.push("true");
  else if (v === false) out.push("false");
  else if (typeof v === "string") out.push(JSON.stringify(v)); // RFC 8785 3.2.2.2 for well-formed strings
  else if (typeof v === "number") {
    if (!Number.isFinite(v)) fail("invalid-json", `${v} is not a JSON number`);
    out.push(JSON.stringify(v)); // ECMAScript's Number serialization, -0 as 0
  } else if (Array.isArray(v)) {
    out.push("[");
    v.forEach((e, i) => {
      if (i) out.push(",");
      serialize(e, out);
    });
    out.push("]");
  } else if (typeof v === "object") {
    out.push("{");
    // The default sort compares UTF-16 code units (RFC 8785 3.2.3).
    Object.keys(v as object).sort().forEach((k, i) => {
      if (i) out.push(",");
      out.push(JSON.stringify(k), ":");
      serialize((v as Record<string, unknown>)[k], out);
    });
    out.push("}");
  } else fail("invalid-json", `a ${typeof v} is not a JSON value`);
}

/** The RFC 8785 canonical form of a JSON text, as the server computes it. */
export function canonicalize(input: string | Uint8Array): string {
  const out: string[] = [];
  serialize(parseJSON(input), out);
  return out.join("");
}

/** "sha256:<hex>" of canonical text. */
export async function digestOf(canonical: string): Promise<string> {
  const h = await sha256(utf8(canonical));
  return DIGEST_PREFIX + Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A checked agent configuration: the document, its RFC 8785 form and its digest, the value a session declares. */
export interface ConfigDocument {
  config: JSONObject;
  canonical: string;
  digest: string;
}

const isObject = (v: JSONValue | undefined): v is JSONObject => typeof v === "object" && v !== null && !Array.isArray(v);

function members(v: JSONValue | undefined, where: string, allowed: string[] | null): JSONObject {
  if (!isObject(v)) return fail("invalid-config", `${where} must be a JSON object`);
  if (allowed) for (const k of Object.keys(v)) if (!allowed.includes(k)) fail("invalid-config", `unknown member ${JSON.stringify(k)} in ${where}`);
  return v;
}

function optString(o: JSONObject, k: string, where: string): string {
  const v = o[k];
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") return fail("invalid-config", `${where} "${k}" must be a string`);
  return v;
}

/** The checks of log/config's Parse. */
function validate(c: JSONValue): JSONObject {
  const top = members(c, "the configuration", ["model", "prompts", "scope", "framework", "parameters"]);
  const model = top.model;
  if (model !== undefined && model !== null) {
    members(model, '"model"', ["provider", "name", "version"]);
    for (const k of ["provider", "version"]) optString(model as JSONObject, k, '"model"');
  }
  if (model === undefined || model === null || !optString(model as JSONObject, "name", '"model"').trim()) fail("invalid-config", '"model" must have a "name"');
  const prompts = top.prompts;
  if (prompts !== undefined && prompts !== null) {
    for (const [name, p] of Object.entries(members(prompts, '"prompts"', null))) {
      const po = p === null ? (Object.create(null) as JSONObject) : members(p, `prompt ${JSON.stringify(name)}`, ["sha256", "text", "file"]);
      const [sha, txt, file] = ["sha256", "text", "file"].map((k) => optString(po, k, `prompt ${JSON.stringify(name)}`));
      if (name === "") fail("invalid-config", "a prompt has an empty name");
      if (file) fail("invalid-config", `prompt ${JSON.stringify(name)} is given by file; send its "sha256" (loadConfig reads files)`);
      if ((sha === "") === (txt === "")) fail("invalid-config", `prompt ${JSON.stringify(name)} needs exactly one of "text" or "sha256"`);
      if (sha && !/^[0-9a-f]{64}$/.test(sha!)) fail("invalid-config", `prompt ${JSON.stringify(name)}: "sha256" must be 64 lowercase hex digits`);
    }
  }
  for (const k of ["scope", "parameters"]) if (k in top && !isObject(top[k])) fail("invalid-config", `"${k}" must be a JSON object`);
  const fw = top.framework;
  if (fw !== undefined && fw !== null) {
    members(fw, '"framework"', ["name", "version"]);
    optString(fw as JSONObject, "version", '"framework"');
    if (!optString(fw as JSONObject, "name", '"framework"').trim()) fail("invalid-config", '"framework" must have a "name"');
  }
  return top;
}

function checkSize(input: string | Uint8Array): void {
  const n = typeof input === "string" ? utf8(input).length : input.length;
  if (n > MAX_CONFIG_SIZE) fail("too-large", `the configuration has ${n} bytes, at most ${MAX_CONFIG_SIZE}`);
}

/** Checks a parsed document and returns it with its canonical form and digest. */
export async function configDocument(c: JSONValue): Promise<ConfigDocument> {
  const config = validate(c);
  const out: string[] = [];
  serialize(config, out);
  const canonical = out.join("");
  return { config, canonical, digest: await digestOf(canonical) };
}

/**
 * Checks a configuration document (its JSON text, or the document as an
 * object) as the server does and returns it with its canonical form and
 * digest. A prompt given by file is refused: loadConfig of
 * "@agentlog/client/node" reads files. Throws ConfigError (reason
 * invalid-json, invalid-config or too-large).
 */
export async function parseConfig(doc: string | Uint8Array | object): Promise<ConfigDocument> {
  const t = typeof doc === "string" || doc instanceof Uint8Array ? doc : JSON.stringify(doc);
  checkSize(t);
  return configDocument(parseJSON(t));
}

/** What an agent's config option takes: a digest, a checked document, or a configuration document as an object. */
export type ConfigLike = string | ConfigDocument | object;

function isConfigDocument(c: object): c is ConfigDocument {
  const d = c as Partial<ConfigDocument>;
  return typeof d.digest === "string" && typeof d.canonical === "string" && typeof d.config === "object";
}

/** The digest a session declares for config ("" declares none). A string must be a digest. */
export async function configDigest(c: ConfigLike): Promise<string> {
  if (typeof c === "string") {
    if (c && !validDigest(c)) throw new TypeError(`the configuration digest ${JSON.stringify(c)} must be sha256: and 64 lowercase hex digits (use loadConfig for a file)`);
    return c;
  }
  if (isConfigDocument(c)) return c.digest;
  return (await parseConfig(c)).digest;
}
