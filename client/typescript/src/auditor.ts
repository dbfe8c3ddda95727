// The auditor side: checkpoints, entries, proofs and queries, each
// verified against the log's keys before it is believed.

import { fromBase64 } from "./bytes.js";
import { AgentlogError } from "./errors.js";
import { httpError, request, transport, type Fetch, type Transport } from "./http.js";
import { leafHash, rawMembers, verifyCheckpoint, verifyConsistency, verifyInclusion, type CheckpointKeys, type VerifiedCheckpoint } from "./verify.js";

/** The auditor filters of GET /v1/query (docs/query.md). */
export interface QueryFilter {
  agent?: string;
  action?: string;
  tool?: string;
  resource?: string;
  outcome?: string;
  kind?: string;
  session?: string;
  task?: string;
  /** RFC 3339 times or Dates. */
  from?: string | Date;
  to?: string | Date;
  /** HH:MM-HH:MM, with tz and weekdays. */
  outside_hours?: string;
  tz?: string;
  weekdays?: string;
  /** Matches per page. */
  limit?: number;
  cursor?: string;
  /** Ask for an inclusion proof with every match. */
  proof?: boolean;
}

/** One entry a query matched. */
export interface QueryMatch {
  index: number;
  /** The leaf, byte for byte as stored (JSON text). */
  entry: string;
  inclusion_proof?: string[];
}

/** The summary line that ends every query answer. */
export interface QuerySummary {
  tree_size: number;
  start: number;
  end: number;
  next: number;
  matches: number;
  cursor?: string;
  checkpoint?: string;
  error?: string;
}

export interface AuditorOptions {
  server: string;
  /** An auditor or admin token (agentlog token create --role auditor). */
  token?: string;
  requestTimeoutMs?: number;
  fetch?: Fetch;
}

function decodeHashes(hs: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(hs)) throw new AgentlogError(`the server's ${what} has no hashes`);
  return hs.map((h) => {
    const b = typeof h === "string" ? fromBase64(h) : null;
    if (!b || b.length !== 32) throw new AgentlogError(`the server's ${what} holds a hash that is not 32 bytes of base64`);
    return b;
  });
}

/** Reads and verifies what the log serves. */
export class Auditor {
  private readonly t: Transport;
  private readonly token: string | undefined;

  constructor(opts: AuditorOptions) {
    this.t = transport(opts.server, opts.fetch, opts.requestTimeoutMs);
    this.token = opts.token?.trim();
  }

  private async get(path: string): Promise<string> {
    const r = await request(this.t, "GET", path, this.token ? { token: this.token } : {});
    return r.text();
  }

  /** The raw signed checkpoint. */
  checkpoint(): Promise<string> {
    return this.get("/checkpoint");
  }

  /** Fetches the checkpoint and verifies it (log key, timestamp key, witness policy). */
  async verifiedCheckpoint(keys: CheckpointKeys): Promise<VerifiedCheckpoint> {
    return verifyCheckpoint(await this.checkpoint(), keys);
  }

  /** The leaf at index, byte for byte (auditor or admin token). */
  async entry(index: number): Promise<string> {
    const m = rawMembers(await this.get(`/v1/entries/${index}`));
    const e = m?.get("entry");
    if (!e) throw new AgentlogError(`the server's answer for entry ${index} holds no entry`);
    return e;
  }

  /** The inclusion proof of index in the tree of size leaves. */
  async inclusionProof(index: number | bigint, size: number | bigint): Promise<Uint8Array[]> {
    return decodeHashes((JSON.parse(await this.get(`/v1/proof/inclusion?index=${index}&size=${size}`)) as { hashes: unknown }).hashes, "inclusion proof");
  }

  /** The consistency proof between two tree sizes. */
  async consistencyProof(old: number | bigint, size: number | bigint): Promise<Uint8Array[]> {
    return decodeHashes((JSON.parse(await this.get(`/v1/proof/consistency?old=${old}&size=${size}`)) as { hashes: unknown }).hashes, "consistency proof");
  }

  /** Fetches and verifies the inclusion of leaf at index under a verified checkpoint. */
  async verifyInclusion(cp: VerifiedCheckpoint, index: number | bigint, leaf: string | Uint8Array): Promise<void> {
    const p = await this.inclusionProof(index, cp.size);
    await verifyInclusion(index, cp.size, await leafHash(leaf), p, cp.root);
  }

  /** Fetches and verifies a consistency proof between two verified checkpoints (older first). */
  async verifyConsistency(older: VerifiedCheckpoint, newer: VerifiedCheckpoint): Promise<void> {
    const p = older.size === 0n || older.size >= newer.size ? [] : await this.consistencyProof(older.size, newer.size);
    await verifyConsistency(older.size, newer.size, p, older.root, newer.root);
  }

  /**
   * Runs a query, following the cursor page after page (all: true, the
   * default) or one page, and yields each match as it streams in. The
   * iterator's summary is set once the answer is complete; an answer cut
   * short throws.
   */
  query(filter: QueryFilter = {}, opts: { all?: boolean } = {}): QueryStream {
    return new QueryStream(this.t, this.token, filter, opts.all ?? true);
  }
}

/** The matches of a query, streamed; summary is set at the end. */
export class QueryStream implements AsyncIterable<QueryMatch> {
  summary: QuerySummary | undefined;
  constructor(
    private readonly t: Transport,
    private readonly token: string | undefined,
    private readonly filter: QueryFilter,
    private readonly all: boolean,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<QueryMatch> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(this.filter)) {
      if (v === undefined || v === false) continue;
      params.set(k, v instanceof Date ? v.toISOString() : v === true ? "true" : String(v));
    }
    for (;;) {
      const path = `/v1/query?${params}`;
      const r = await request(this.t, "GET", path, this.token ? { token: this.token, stream: true } : { stream: true });
      if (!r.body) throw await httpError("GET", path, r);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      let summary: QuerySummary | undefined;
      for (;;) {
        const { value, done } = await reader.read();
        if (value) pending += value;
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line.trim() === "") continue;
          if (line.startsWith('{"summary":')) {
            summary = (JSON.parse(line) as { summary: QuerySummary }).summary;
            continue;
          }
          const m = rawMembers(line);
          const idx = m?.get("index");
          const entry = m?.get("entry");
          if (!idx || !entry) throw new AgentlogError(`the query answer has a line that is not a match: ${line.slice(0, 200)}`);
          const match: QueryMatch = { index: Number(idx), entry };
          const p = m!.get("inclusion_proof");
          if (p) match.inclusion_proof = JSON.parse(p) as string[];
          yield match;
        }
        if (done) break;
      }
      if (!summary) throw new AgentlogError("the query answer ended without its summary line: it is incomplete");
      if (summary.error) throw new AgentlogError(`query: ${summary.error}`);
      this.summary = summary;
      if (!this.all || !summary.cursor) return;
      params.set("cursor", summary.cursor);
    }
  }
}
