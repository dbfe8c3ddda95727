// The HTTP layer: one fetch with a timeout, errors typed with the server's sentence.
import { HTTPError } from "./errors.js";

/** The fetch function the SDK uses (globalThis.fetch by default). */
export type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

export interface Transport {
  base: string;
  fetch: Fetch;
  timeoutMs: number;
}

export function transport(server: string, f: Fetch | undefined, timeoutMs: number | undefined): Transport {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    throw new TypeError(`server URL ${JSON.stringify(server)} is not an http(s) URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`server URL ${JSON.stringify(server)} is not an http(s) URL`);
  return { base: server.replace(/\/+$/, ""), fetch: f ?? ((i, init) => globalThis.fetch(i, init)), timeoutMs: timeoutMs ?? 30000 };
}

/** Reads a non-2xx answer into an HTTPError (or a subclass). */
export async function httpError(method: string, path: string, r: Response, cls: typeof HTTPError = HTTPError): Promise<HTTPError> {
  const body = (await r.text().catch(() => "")).trim();
  let msg = body;
  try {
    const j = JSON.parse(body) as { error?: unknown };
    if (typeof j.error === "string" && j.error !== "") msg = j.error;
  } catch {
    // not JSON: the body is the message
  }
  const ra = Number.parseInt(r.headers.get("retry-after") ?? "", 10);
  return new cls(method, path, r.status, msg, Number.isFinite(ra) ? ra : undefined);
}

/**
 * Sends one request and returns the answer's body text; a non-2xx answer
 * is thrown as HTTPError, a network failure or timeout as the fetch error.
 */
export async function request(t: Transport, method: string, path: string, opts: { token?: string; body?: string; headers?: Record<string, string>; stream?: boolean } = {}): Promise<Response> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers["authorization"] = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const ctl = new AbortController();
  const timer = opts.stream ? undefined : setTimeout(() => ctl.abort(new Error(`${method} ${path}: no answer within ${t.timeoutMs} ms`)), t.timeoutMs);
  try {
    const init: RequestInit = { method, headers, signal: ctl.signal };
    if (opts.body !== undefined) init.body = opts.body;
    const r = await t.fetch(t.base + path, init);
    if (!r.ok) throw await httpError(method, path, r);
    if (!opts.stream) {
      // Read the body under the timeout.
      const text = await r.text();
      return new Response(text, { status: r.status, headers: r.headers });
    }
    return r;
  } finally {
    if (timer) clearTimeout(timer);
  }
}
