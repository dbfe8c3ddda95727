// The agent side: key files, signed session requests (docs/identity.md),
// and an Agent that appends records singly or in batches, with a
// background flusher, idempotency keys and safe retries.

import { ed25519FromSeed, fromBase64, randomBytes, toBase64, toBase64Url, utf8 } from "./bytes.js";
import { AgentlogError, BufferFullError, HTTPError, KeyFileError, PushbackError, SessionEndedError, UnreachableError } from "./errors.js";
import { request, transport, type Fetch, type Transport } from "./http.js";
import { recordSignedBytes } from "./verify.js";
import { configDigest, validDigest, type ConfigLike } from "./config.js";

/** The SDK's version. */
export const VERSION = "0.1.0";

/** Prefix of an agent key file: AGENTLOG-AGENT-KEY+<agent id>+<base64 seed>. */
export const AGENT_KEY_PREFIX = "AGENTLOG-AGENT-KEY+";

/** An agent's Ed25519 key, as read from its key file. */
export interface AgentKey {
  readonly agent: string;
  readonly publicKey: Uint8Array;
  sign(msg: Uint8Array): Promise<Uint8Array>;
}

/** Parses the text of an agent key file (agentlog agent register --key-out). */
export async function parseAgentKey(text: string): Promise<AgentKey> {
  const s = text.trim();
  if (!s.startsWith(AGENT_KEY_PREFIX)) throw new KeyFileError("not-agent-key", `not an agentlog agent key (want ${AGENT_KEY_PREFIX}<id>+<seed>)`);
  const rest = s.slice(AGENT_KEY_PREFIX.length);
  const plus = rest.indexOf("+");
  if (plus < 0 || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(rest.slice(0, plus))) throw new KeyFileError("no-agent-id", "agent key file has no valid agent id");
  const seed = fromBase64(rest.slice(plus + 1), true);
  if (!seed || seed.length !== 32) throw new KeyFileError("bad-seed", "agent key file seed is not 32 bytes of base64");
  const k = await ed25519FromSeed(seed);
  return { agent: rest.slice(0, plus), publicKey: k.publicKey, sign: (m) => k.sign(m) };
}

/** The body of POST /v1/sessions. */
export interface SessionRequestBody {
  agent: string;
  task: string;
  ttl_seconds?: number;
  time: string;
  nonce: string;
  config?: string;
  sig: string;
}

/** The six lines an agent signs to open a session, and a seventh, "config <digest>", when it declares its configuration. */
export function sessionSignedBytes(agent: string, task: string, ttlSeconds: number, time: string, nonce: string, config = ""): Uint8Array {
  return utf8(`agentlog session open v1\nagent ${agent}\ntask ${task}\nttl ${ttlSeconds}\ntime ${time}\nnonce ${nonce}\n` + (config ? `config ${config}\n` : ""));
}

/** RFC 3339 UTC with milliseconds, as Date gives. */
function rfc3339(d: Date): string {
  return d.toISOString();
}

/**
 * Signs a session-open request. time (RFC 3339) and nonce (unpadded
 * base64url) default to now and 18 random bytes; ttlSeconds 0 asks for the
 * server's default.
 */
export async function sessionRequest(key: AgentKey, opts: { task: string; ttlSeconds?: number; time?: string; nonce?: string; config?: string }): Promise<{ signedBytes: Uint8Array; body: SessionRequestBody }> {
  const ttl = opts.ttlSeconds ?? 0;
  const time = opts.time ?? rfc3339(new Date());
  const nonce = opts.nonce ?? toBase64Url(randomBytes(18));
  const config = opts.config ?? "";
  const signedBytes = sessionSignedBytes(key.agent, opts.task, ttl, time, nonce, config);
  const sig = toBase64(await key.sign(signedBytes));
  // Members in the order of the Go client's body.
  const body = { agent: key.agent, task: opts.task, ...(ttl ? { ttl_seconds: ttl } : {}), time, nonce, ...(config ? { config } : {}), sig } as SessionRequestBody;
  return { signedBytes, body };
}

/** One agent action to append. */
export interface AgentRecord {
  action: string;
  tool?: string;
  resource?: string;
  outcome?: string;
  /** Free-form detail, a JSON object. */
  attributes?: Record<string, unknown>;
}

/** The server's receipt for one durable entry. */
export interface Receipt {
  index: number;
  /** base64 RFC 6962 leaf hash. */
  leaf_hash: string;
  time: string;
}

/** An open session. */
export interface Session {
  session: string;
  credential: string;
  agent: string;
  task: string;
  expires: string;
}

export interface AgentOptions {
  /** The log's base URL, e.g. http://127.0.0.1:8080. */
  server: string;
  /** The agent's key (parseAgentKey). */
  key: AgentKey;
  /** The task sessions are opened for. */
  task: string;
  /** Session lifetime to ask for, seconds (0: the server's default). */
  ttlSeconds?: number;
  /**
   * The configuration sessions declare, for a log with change management:
   * its digest ("sha256:<hex>"), a ConfigDocument (parseConfig, or
   * loadConfig of "@agentlog/client/node" for a file), or the configuration
   * document as an object, whose digest is computed (RFC 8785) on the first
   * session.
   */
  config?: ConfigLike;
  /** Renew the session when less than this is left, seconds (default 60). */
  renewBeforeSeconds?: number;
  /** Sign every record with the agent's key (default true). */
  sign?: boolean;
  /** Records per request of the background flusher (default 100, at most 10000). */
  batchSize?: number;
  /** How long add() may hold a record before it is sent, ms (default 200). */
  flushIntervalMs?: number;
  /** Requests the flusher keeps in flight at once (default 4). */
  maxInFlight?: number;
  /** Records add() may hold, buffered or in flight, before it refuses with BufferFullError (default 10000). */
  maxBuffer?: number;
  /** Retries of one request after a network error, a 5xx or a 503 (default 8, about 20 s of backoff). */
  maxRetries?: number;
  /** Timeout of one HTTP request, ms (default 30000). */
  requestTimeoutMs?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: Fetch;
}

interface Pending {
  rec: AgentRecord;
  resolve: (r: Receipt) => void;
  reject: (e: unknown) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * An agent appending its records under task sessions. It opens a session
 * on first use with the agent's key, renews it before it expires (or once
 * after a 401), numbers each session's records 1, 2, 3, ... and signs them.
 * append() sends records in one request; add() buffers a record and
 * resolves once it is durable, sent by a background flusher in batches.
 * Every request carries an Idempotency-Key and is retried with it after a
 * network error, a 5xx or a 503 (honouring Retry-After), so a record is
 * appended at most once whatever fails. When the log stays unreachable,
 * add() refuses new records with BufferFullError once maxBuffer are
 * waiting, and the waiting ones are rejected with the last error: the
 * agent always sees a failure, nothing is dropped silently.
 */
export class Agent {
  private readonly t: Transport;
  private readonly o: Required<Omit<AgentOptions, "fetch" | "requestTimeoutMs" | "server" | "key" | "task">>;
  private readonly key: AgentKey;
  private readonly task: string;
  private session: Session | undefined;
  private opening: Promise<Session> | undefined;
  private seq = 0n;
  private buf: Pending[] = [];
  private waiting = 0; // records add() holds, buffered or in flight
  private inFlight = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private idle: (() => void)[] = [];
  private closed = false;
  private digest: string | undefined;

  constructor(opts: AgentOptions) {
    this.t = transport(opts.server, opts.fetch, opts.requestTimeoutMs);
    this.key = opts.key;
    if (!opts.task.trim()) throw new TypeError("an agent needs a task");
    this.task = opts.task;
    if (typeof opts.config === "string" && opts.config && !validDigest(opts.config)) throw new TypeError("the configuration digest must be sha256: and 64 lowercase hex digits");
    this.o = {
      ttlSeconds: opts.ttlSeconds ?? 0,
      config: opts.config ?? "",
      renewBeforeSeconds: opts.renewBeforeSeconds ?? 60,
      sign: opts.sign ?? true,
      batchSize: Math.min(Math.max(opts.batchSize ?? 100, 1), 10000),
      flushIntervalMs: opts.flushIntervalMs ?? 200,
      maxInFlight: Math.max(opts.maxInFlight ?? 4, 1),
      maxBuffer: Math.max(opts.maxBuffer ?? 10000, 1),
      maxRetries: opts.maxRetries ?? 8,
    };
  }

  /** The agent's id. */
  get agent(): string {
    return this.key.agent;
  }

  /** The current session, if one is open. */
  get currentSession(): Session | undefined {
    return this.session;
  }

  /** Opens a new session now. Appends open one when needed, so this is optional. */
  async open(): Promise<Session> {
    if (!this.opening) {
      this.opening = (async () => {
        try {
          // Each attempt is signed afresh: a retry of a request whose answer
          // was lost would be refused as a replay (its nonce is spent).
          const r = await this.retrying("POST", "/v1/sessions", async () => {
            this.digest ??= await configDigest(this.o.config);
            const { body } = await sessionRequest(this.key, { task: this.task, ttlSeconds: this.o.ttlSeconds, config: this.digest });
            return request(this.t, "POST", "/v1/sessions", { body: JSON.stringify(body) });
          });
          const s = JSON.parse(await r.text()) as Session;
          if (typeof s.credential !== "string" || !s.credential.startsWith("agentlog-session-v1.")) throw new AgentlogError("the server's session answer has no session credential");
          this.session = s;
          this.seq = 0n;
          return s;
        } finally {
          this.opening = undefined;
        }
      })();
    }
    return this.opening;
  }

  private async current(): Promise<Session> {
    const s = this.session;
    if (s && Date.parse(s.expires) - Date.now() > this.o.renewBeforeSeconds * 1000) return s;
    return this.open();
  }

  // retrying runs send, retrying network errors, 5xx and 503 answers with
  // backoff; a 4xx is thrown at once. send must be safe to repeat (an
  // append carries its idempotency key).
  private async retrying(method: string, path: string, send: () => Promise<Response>): Promise<Response> {
    let backoff = 100;
    for (let attempt = 0; ; attempt++) {
      try {
        return await send();
      } catch (e) {
        const http = e instanceof HTTPError;
        if (http && e.status < 500) throw e;
        if (attempt >= this.o.maxRetries) {
          if (http && e.status === 503) throw new PushbackError(method, path, e.status, e.serverMessage, e.retryAfter);
          if (http) throw e;
          throw new UnreachableError(`${method} ${this.t.base}${path}: the log is unreachable after ${attempt + 1} attempts: ${(e as Error).message}`, { cause: e });
        }
        const wait = http && e.retryAfter ? e.retryAfter * 1000 : backoff;
        backoff = Math.min(backoff * 2, 5000);
        await sleep(wait);
      }
    }
  }

  // encode numbers recs with a contiguous block of sequence numbers (taken
  // synchronously, so concurrent appends never interleave), signs them and
  // returns the body and the block's last number.
  private async encode(s: Session, recs: AgentRecord[]): Promise<{ body: string; seqEnd: bigint }> {
    const ws: { w: Record<string, unknown>; msg?: Uint8Array }[] = [];
    for (const r of recs) {
      if (typeof r.action !== "string" || r.action.trim() === "") throw new TypeError("a record needs an action");
      const attributes = r.attributes === undefined ? undefined : JSON.stringify(r.attributes);
      if (attributes !== undefined && !attributes.startsWith("{")) throw new TypeError("record attributes must be a JSON object");
    }
    const first = this.seq + 1n;
    this.seq += BigInt(recs.length);
    recs.forEach((r, i) => {
      const attributes = r.attributes === undefined ? "" : JSON.stringify(r.attributes);
      const seq = first + BigInt(i);
      const w: Record<string, unknown> = { action: r.action };
      if (r.tool) w["tool"] = r.tool;
      if (r.resource) w["resource"] = r.resource;
      if (r.outcome) w["outcome"] = r.outcome;
      if (attributes !== "" && attributes !== "{}") w["attributes"] = r.attributes;
      w["seq"] = Number(seq);
      const msg = this.o.sign
        ? recordSignedBytes({ agent: s.agent, session: s.session, task: s.task, seq, action: r.action, tool: r.tool ?? "", resource: r.resource ?? "", outcome: r.outcome ?? "", attributes: attributes === "{}" ? "" : attributes })
        : undefined;
      ws.push(msg ? { w, msg } : { w });
    });
    await Promise.all(ws.map(async (x) => {
      if (x.msg) x.w["sig"] = toBase64(await this.key.sign(x.msg));
    }));
    return { body: JSON.stringify({ entries: ws.map((x) => x.w) }), seqEnd: first + BigInt(recs.length) - 1n };
  }

  /**
   * Appends records in one request, all or none, and returns their
   * receipts once durable. Retries reuse the request's idempotency key.
   */
  async append(...recs: AgentRecord[]): Promise<Receipt[]> {
    if (recs.length === 0) return [];
    let renewed = false;
    for (;;) {
      let s: Session;
      try {
        s = await this.current();
      } catch (e) {
        // The agent may not open a session (revoked, not approved).
        if (e instanceof HTTPError && (e.status === 401 || e.status === 403)) throw new SessionEndedError(e.method, e.path, e.status, e.serverMessage);
        throw e;
      }
      const { body, seqEnd } = await this.encode(s, recs);
      const key = toBase64Url(randomBytes(16));
      try {
        const r = await this.retrying("POST", "/v1/entries", () =>
          request(this.t, "POST", "/v1/entries", { token: s.credential, body, headers: { "idempotency-key": key } }),
        );
        const out = JSON.parse(await r.text()) as { entries: Receipt[] };
        return out.entries;
      } catch (e) {
        // Refused (4xx): nothing was written. Give the sequence numbers back
        // unless another request took numbers since: a gap must mean a
        // dropped record.
        if (e instanceof HTTPError && e.status >= 400 && e.status < 500 && e.status !== 401 && this.session === s && this.seq === seqEnd) {
          this.seq -= BigInt(recs.length);
        }
        if (e instanceof HTTPError && e.status === 401) {
          // Expired, closed or revoked: open a new session once.
          if (this.session === s) this.session = undefined;
          if (!renewed) {
            renewed = true;
            try {
              await this.open();
              continue;
            } catch (oe) {
              if (oe instanceof HTTPError) throw new SessionEndedError("POST", "/v1/sessions", oe.status, oe.serverMessage);
              throw oe;
            }
          }
          throw new SessionEndedError("POST", "/v1/entries", e.status, e.serverMessage);
        }
        throw e;
      }
    }
  }

  /**
   * Buffers one record for the background flusher and resolves with its
   * receipt once it is durable. Rejects at once with BufferFullError when
   * maxBuffer records are already waiting.
   */
  add(rec: AgentRecord): Promise<Receipt> {
    if (this.closed) return Promise.reject(new AgentlogError("the agent is closed"));
    if (this.waiting >= this.o.maxBuffer) {
      return Promise.reject(new BufferFullError(`${this.waiting} records are waiting for the log at ${this.t.base} (maxBuffer ${this.o.maxBuffer}): it is unreachable or slower than the agent`));
    }
    this.waiting++;
    return new Promise<Receipt>((resolve, reject) => {
      this.buf.push({ rec, resolve, reject });
      this.pump();
    });
  }

  // pump sends full batches while there is room in flight, and arms the
  // timer for a partial one.
  private pump(force = false): void {
    while (this.buf.length > 0 && this.inFlight < this.o.maxInFlight && (force || this.buf.length >= this.o.batchSize)) {
      this.send(this.buf.splice(0, this.o.batchSize));
    }
    if (this.buf.length > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump(true);
      }, this.o.flushIntervalMs);
    }
    if (this.buf.length === 0 && this.inFlight === 0) {
      for (const f of this.idle.splice(0)) f();
    }
  }

  private send(batch: Pending[]): void {
    this.inFlight++;
    this.append(...batch.map((p) => p.rec)).then(
      (rs) => batch.forEach((p, i) => p.resolve(rs[i]!)),
      (e) => batch.forEach((p) => p.reject(e)),
    ).finally(() => {
      this.inFlight--;
      this.waiting -= batch.length;
      this.pump(this.idle.length > 0);
    });
  }

  /** Sends everything add() buffered and waits until it is acknowledged (or failed). */
  async flush(): Promise<void> {
    if (this.buf.length === 0 && this.inFlight === 0) return;
    const done = new Promise<void>((r) => this.idle.push(r));
    this.pump(true);
    await done;
  }

  /** Flushes, then closes the session (DELETE /v1/sessions/current). */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const s = this.session;
    this.session = undefined;
    if (s) await request(this.t, "DELETE", "/v1/sessions/current", { token: s.credential });
  }
}
