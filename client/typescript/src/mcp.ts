// Recording every tools/call of an MCP client (@modelcontextprotocol/sdk)
// in agentlog. The SDK is not imported: any object with its callTool
// method can be wrapped, so this package keeps no runtime dependency.

import type { Agent, AgentRecord, Receipt } from "./agent.js";

/** The part of an MCP client (the SDK's Client) the wrapper uses. */
export interface ToolCallingClient {
  callTool(params: { name: string; arguments?: Record<string, unknown> } & Record<string, unknown>, ...rest: any[]): Promise<any>;
}

export interface RecordToolCallsOptions {
  /** The record's action (default "tool.call"). */
  action?: string;
  /** The resource a call touches, from its tool name and arguments. */
  resource?: (tool: string, args: Record<string, unknown> | undefined) => string | undefined;
  /** A name for the MCP server, recorded as the attribute mcp.server. */
  server?: string;
  /**
   * Wait until the call's record is durable before returning the tool's
   * result (default true). With false the record is buffered, and a
   * failure to record it is passed to onError.
   */
  wait?: boolean;
  /** Called with each call's receipt. */
  onReceipt?: (receipt: Receipt, tool: string) => void;
  /** With wait false: called when a record could not be appended (default: throw it at the next call). */
  onError?: (err: unknown, tool: string) => void;
}

/**
 * Wraps client so that every callTool (MCP tools/call) is recorded by agent
 * with its outcome and latency: tool is the tool's name, outcome "ok",
 * "error" (a result with isError) or "error: <message>" (the call threw),
 * attributes latency_ms and mcp.server. It returns the same client.
 */
export function recordToolCalls<C extends ToolCallingClient>(client: C, agent: Agent, opts: RecordToolCallsOptions = {}): C {
  const orig = client.callTool.bind(client);
  const wait = opts.wait ?? true;
  let pendingError: unknown;
  const wrapped = async (params: Parameters<C["callTool"]>[0], ...rest: any[]): Promise<any> => {
    if (pendingError !== undefined) {
      const e = pendingError;
      pendingError = undefined;
      throw e;
    }
    const name = params.name;
    const t0 = performance.now();
    let outcome: string;
    let result: any;
    let thrown: unknown;
    let failed = false;
    try {
      result = await orig(params, ...rest);
      outcome = result && result.isError ? "error" : "ok";
    } catch (e) {
      failed = true;
      thrown = e;
      outcome = `error: ${e instanceof Error ? e.message : String(e)}`.slice(0, 256).replace(/[\u0000-\u001f\u007f]/g, " ");
    }
    const attributes: Record<string, unknown> = { latency_ms: Math.round((performance.now() - t0) * 1000) / 1000 };
    if (opts.server) attributes["mcp.server"] = opts.server;
    const rec: AgentRecord = { action: opts.action ?? "tool.call", tool: name, outcome, attributes };
    const res = opts.resource?.(name, params.arguments);
    if (res) rec.resource = res;
    const p = agent.add(rec).then((r) => {
      opts.onReceipt?.(r, name);
      return r;
    });
    if (wait) await p;
    else
      p.catch((e: unknown) => {
        if (opts.onError) opts.onError(e, name);
        else pendingError = e;
      });
    if (failed) throw thrown;
    return result;
  };
  (client as { callTool: unknown }).callTool = wrapped;
  return client;
}
