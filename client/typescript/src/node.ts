// @agentlog/client/node: what needs Node's file system.
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

import { ConfigError } from "./errors.js";
import { MAX_CONFIG_SIZE, configDocument, parseJSON, type ConfigDocument, type JSONValue } from "./config.js";
import { sha256 } from "./bytes.js";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/**
 * Reads an agent configuration file, replaces each prompt given as
 * {"file": PATH} (relative to the file's directory) with {"sha256": HEX} of
 * that file's bytes, and checks the result, as the Go client's LoadConfig
 * and "agentlog agent register --config" do.
 */
export async function loadConfig(path: string): Promise<ConfigDocument> {
  const b = new Uint8Array(await readFile(path));
  try {
    if (b.length > MAX_CONFIG_SIZE) throw new ConfigError("too-large", `the configuration has ${b.length} bytes, at most ${MAX_CONFIG_SIZE}`);
    const c = parseJSON(b);
    const prompts = typeof c === "object" && c !== null && !Array.isArray(c) ? c.prompts : undefined;
    if (typeof prompts === "object" && prompts !== null && !Array.isArray(prompts)) {
      for (const [name, p] of Object.entries(prompts)) {
        if (typeof p !== "object" || p === null || Array.isArray(p) || !("file" in p)) continue;
        const f: JSONValue | undefined = p.file;
        if (typeof f !== "string" || f === "" || Object.keys(p).length !== 1) throw new ConfigError("invalid-config", `prompt ${JSON.stringify(name)}: "file" must be a path, alone`);
        const body = new Uint8Array(await readFile(resolve(dirname(path), f)));
        const o = Object.create(null) as { [k: string]: JSONValue };
        o.sha256 = hex(await sha256(body));
        prompts[name] = o;
      }
    }
    return await configDocument(c);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.reason, `${path}: ${e.message}`);
    throw e;
  }
}

export * from "./index.js";
