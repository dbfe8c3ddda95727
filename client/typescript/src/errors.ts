// Typed errors. Every error from the server carries its sentence (the
// JSON "error" of the answer) as serverMessage.

/** Base class of the SDK's errors. */
export class AgentlogError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The server answered with a non-2xx status. */
export class HTTPError extends AgentlogError {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** The server's sentence: the answer's JSON "error", or its body. */
  readonly serverMessage: string;
  /** Seconds the server asked to wait (Retry-After), if any. */
  readonly retryAfter: number | undefined;
  constructor(method: string, path: string, status: number, serverMessage: string, retryAfter?: number) {
    super(`${method} ${path}: server answered ${status}: ${serverMessage}`);
    this.method = method;
    this.path = path;
    this.status = status;
    this.serverMessage = serverMessage;
    this.retryAfter = retryAfter;
  }
}

/** The session credential was refused (expired, closed, revoked agent) and no new session could be opened. */
export class SessionEndedError extends HTTPError {}

/** The server kept answering 503 (busy) until the retries ran out. */
export class PushbackError extends HTTPError {}

/** The server could not be reached (network errors) until the retries ran out. */
export class UnreachableError extends AgentlogError {}

/**
 * Records could not be buffered: maxBuffer records are already waiting
 * (the log is unreachable or slower than the agent). Nothing was dropped
 * silently: the record passed to add() was not taken.
 */
export class BufferFullError extends AgentlogError {}

/** The agent key file is not valid (reason: not-agent-key, no-agent-id, bad-seed). */
export class KeyFileError extends AgentlogError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** An agent configuration is not valid (reason: invalid-json, invalid-config, too-large; testdata/vectors/configs.json). */
export class ConfigError extends AgentlogError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}
