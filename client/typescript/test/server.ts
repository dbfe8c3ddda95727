// Builds the real agentlog binary and runs it as a process for the
// integration tests (as internal/proctest does for the Go tests).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..");

export class Binary {
  readonly dir = mkdtempSync(join(tmpdir(), "agentlog-ts-bin"));
  readonly path = join(this.dir, "agentlog");
  constructor() {
    execFileSync("go", ["build", "-o", this.path, "./cmd/agentlog"], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  }
  cli(...args: string[]): string {
    return execFileSync(this.path, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Server {
  proc!: ChildProcess;
  url = "";
  addr = "";
  private constructor(
    readonly bin: Binary,
    readonly data: string,
  ) {}

  static async start(bin: Binary, data: string, listen = "127.0.0.1:0"): Promise<Server> {
    const s = new Server(bin, data);
    s.proc = spawn(bin.path, ["serve", "--data", data, "--listen", listen, "--anomaly=false", "--log-level", "warn"], { stdio: ["ignore", "pipe", "ignore"] });
    const rl = createInterface({ input: s.proc.stdout! });
    const line = await new Promise<string>((resolve, reject) => {
      rl.once("line", resolve);
      s.proc.once("exit", (code) => reject(new Error(`agentlog serve exited (${code}) before it was ready`)));
    });
    rl.close();
    s.proc.stdout!.resume();
    if (!line.startsWith("agentlog listening on ")) throw new Error(`agentlog serve: ${line}`);
    s.url = line.split(" ")[3]!;
    s.addr = s.url.split("://")[1]!;
    return s;
  }

  /** SIGKILL, and wait for the process to be gone. */
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGKILL");
    await gone;
  }

  async restart(): Promise<Server> {
    await this.kill();
    return Server.start(this.bin, this.data, this.addr);
  }

  read(name: string): string {
    return readFileSync(join(this.data, name), "utf8");
  }

  get adminTokenFile(): string {
    return join(this.data, "admin.token");
  }
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "agentlog-ts-"));
}
