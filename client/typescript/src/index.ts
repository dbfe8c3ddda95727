// @agentlog/client: the agentlog SDK for agents and auditors.
export * from "./errors.js";
export * from "./agent.js";
export * from "./auditor.js";
export * from "./verify.js";
export * from "./config.js";
export { fromBase64, toBase64, leafHashBase64 } from "./exports.js";
export * from "./mcp.js";
