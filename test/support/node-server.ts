// Starts the Node server (`functions/runtime/node/server.ts`) as a real child process, so that `kill("SIGKILL")`
// is a real kill -9. The child runs `node <npm start's flags> --import tsx functions/runtime/node/server.ts`
// directly (not through npx, whose wrapper process would survive a kill of the server).

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { configVariables } from "../../functions/config.ts";
import { SERVER_NODE_FLAGS } from "../../functions/runtime/node/node-flags.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface NodeServer {
  baseUrl: string;
  adminToken: string;
  dataDir: string;
  port: number;
  /** Pid of the current server process (changes on restart). */
  readonly pid: number;
  /** Sends `signal` (default SIGTERM) and waits for the process to exit (SIGKILL after 10 s). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the server if it still runs, then starts it again with the same env, port and data dir. */
  restart(): Promise<void>;
  /** Everything the server wrote to stdout and stderr so far, over all its starts. */
  logs(): string;
  /** Whether the current process is still running. */
  running(): boolean;
  /** kill() and, if this helper created the data dir, remove it. */
  stop(): Promise<void>;
}

export interface StartNodeServerOptions {
  /** Extra environment (DATABASE_URL, S3_*, RESERVOIR_LINGER_MS...). */
  env?: Record<string, string>;
  /** Data dir to use; default: a fresh temp dir (removed by stop()). */
  dataDir?: string;
  /** How long to wait for /healthz (default 30 s). */
  readyTimeoutMs?: number;
  /** Label used in log lines (default "node-server"). */
  label?: string;
  /** Extra Node flags, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] for benchmarks. */
  nodeArgs?: string[];
  /** The source tree to run the server from (default: this repository; a benchmark's baseline: another commit's tree). */
  root?: string;
  /** Told each piece of the server's output as it comes (before it is ready, too). */
  onOutput?: (text: string) => void;
}

/**
 * Variables a test server must not inherit from the test runner's environment: every
 * configuration variable (functions/config.ts), and the runner's own.
 */
const SCRUBBED_ENV = [
  ...configVariables,
  "NODE_OPTIONS",
  // vitest marks its workers with these; the server is not a test process.
  "VITEST",
  "VITEST_POOL_ID",
  "VITEST_WORKER_ID",
  "VITEST_MODE",
  "TEST",
];

const MAX_LOG_CHARS = 4_000_000;

/**
 * Ports for the servers tests start as child processes, below Linux's ephemeral range (32768–60999
 * here). A port in that range that was free when asked could be taken by an outgoing connection of
 * any process as its local port before the child bound it: workerd then exited with "Address
 * already in use" (CI, session 21). Each test process walks its own part of 20000–31999 (from an
 * offset of its pid), and takes the next port that it can bind.
 */
const PORTS_FROM = 20_000;
const PORTS = 12_000;
let nextPort = (process.pid * 7_919) % PORTS;

/** A free TCP port on 127.0.0.1 that no outgoing connection can take meanwhile (see above). */
export async function freePort(): Promise<number> {
  for (let tried = 0; tried < PORTS; tried++) {
    const port = PORTS_FROM + nextPort;
    nextPort = (nextPort + 1) % PORTS;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port in ${PORTS_FROM}–${PORTS_FROM + PORTS - 1}`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolveBind) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolveBind(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolveBind(true)));
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // If the test process goes away, do not leave servers behind.
  process.once("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  });
}

const TEST_KEY_SECRET = "reservoir-test-key-secret-not-for-production";

export async function startNodeServer(opts: StartNodeServerOptions = {}): Promise<NodeServer> {
  installExitHook();
  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "reservoir-test-"));
  const adminToken = opts.env?.RESERVOIR_ADMIN_TOKEN ?? `rsv_admin_test_${randomBytes(16).toString("hex")}`;
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const label = opts.label ?? "node-server";
  // A bound, not a speed check: a loaded 2-core machine has taken over 30 s to start one.
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUBBED_ENV.includes(k)) env[k] = v;
  // Several servers share one Postgres in a test run (max_connections 100): small pools.
  env.DATABASE_POOL_MAX = opts.env?.DATABASE_POOL_MAX ?? "6";
  Object.assign(env, opts.env ?? {}, {
    // A test may pass its own (e.g. a bad one, to see the server refuse to start).
    PORT: opts.env?.PORT ?? String(port),
    RESERVOIR_DATA_DIR: dataDir,
    RESERVOIR_ADMIN_TOKEN: adminToken,
    // One key secret for every server of a run: servers sharing a database must agree on it
    // (start-up refuses another); a test may pass its own, or "" to have one generated.
    RESERVOIR_KEY_SECRET: opts.env?.RESERVOIR_KEY_SECRET ?? TEST_KEY_SECRET,
    NODE_ENV: opts.env?.NODE_ENV ?? "test",
    // The background maintenance pass (every 60 s by default) compacts and collects on its own
    // schedule: tests run their passes themselves (POST /v1/admin/maintenance), and one arriving
    // in the middle of a test changed what it counted. A test of the timer sets its own.
    RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: opts.env?.RESERVOIR_MAINTENANCE_INTERVAL_SECONDS ?? "86400",
    // Listen on loopback only: all test traffic stays on 127.0.0.1.
    HOST: opts.env?.HOST ?? "127.0.0.1",
  });

  let log = "";
  /** Called on every output and on exit: what waitReady waits on instead of polling. */
  let onEvent: (() => void) | undefined;
  const append = (s: string) => {
    opts.onOutput?.(s);
    log += s;
    if (log.length > MAX_LOG_CHARS) log = "[...earlier output dropped...]\n" + log.slice(-MAX_LOG_CHARS / 2);
    onEvent?.();
  };
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let exitInfo: string | null = null;
  let starts = 0;

  function spawnOnce(): void {
    starts++;
    exitInfo = null;
    // The flags `npm start` gives the server, then the caller's (a later flag wins).
    const args = [...SERVER_NODE_FLAGS, ...(opts.nodeArgs ?? []), "--import", "tsx", "functions/runtime/node/server.ts"];
    append(`\n===== [${label}] start #${starts}: node ${args.join(" ")} (port ${port}, data dir ${dataDir}) =====\n`);
    const c = spawn(process.execPath, args, {
      cwd: opts.root ?? repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    live.add(c);
    c.stdout!.setEncoding("utf8");
    c.stderr!.setEncoding("utf8");
    c.stdout!.on("data", (d: string) => append(d));
    c.stderr!.on("data", (d: string) => append(d));
    exited = new Promise<void>((res) => {
      c.once("exit", (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        append(`\n===== [${label}] process ${c.pid} exited (${exitInfo}) =====\n`);
        live.delete(c);
        res();
      });
      c.once("error", (err) => {
        exitInfo = `spawn error ${err.message}`;
        append(`\n===== [${label}] spawn error: ${err.stack ?? err.message} =====\n`);
        live.delete(c);
        res();
      });
    });
  }

  /** Resolves on the next output or exit of the server, or after `ms`. */
  function nextEvent(ms: number): Promise<void> {
    return new Promise((resolveEvent) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        onEvent = undefined;
        resolveEvent();
      }
      onEvent = done;
    });
  }

  /** Healthy: /healthz answers 200 {"ok":true}; else what it answered. */
  async function healthz(): Promise<true | string> {
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
      const text = await res.text();
      if (res.status === 200 && /"ok"\s*:\s*true/.test(text)) return true;
      return `${res.status} ${text.slice(0, 300)}`;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * Waits for the server's "Reservoir listening on" line (printed once it listens, after
   * migrations), then for /healthz to answer 200. Fails at once if the process exits.
   */
  async function waitReady(startedAt: number): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
    let last = "no answer yet";
    let checked = Date.now();
    while (Date.now() < deadline) {
      if (exitInfo !== null) {
        throw new Error(`[${label}] exited before it was ready (${exitInfo}). Output:\n${log}`);
      }
      // Also once a second without the line, should its wording ever change.
      if (log.includes("Reservoir listening on", startedAt) || Date.now() - checked >= 1_000) {
        checked = Date.now();
        const health = await healthz();
        if (health === true) return;
        last = health;
      }
      // The next line of output or the exit; a bounded wait only to re-check /healthz.
      await nextEvent(Math.min(250, Math.max(0, deadline - Date.now())));
    }
    const output = log;
    await kill("SIGKILL");
    throw new Error(`[${label}] not ready within ${readyTimeoutMs} ms (last /healthz: ${last}). Output:\n${output}`);
  }

  async function kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const c = child;
    if (!c || exitInfo !== null) return;
    c.kill(signal);
    if (signal !== "SIGKILL") {
      const timer = setTimeout(() => {
        if (exitInfo === null) c.kill("SIGKILL");
      }, 10_000);
      await exited;
      clearTimeout(timer);
    } else {
      await exited;
    }
  }

  async function startAndWait(): Promise<void> {
    spawnOnce();
    // Only this start's output counts (a restart's log still holds the earlier "listening").
    await waitReady(log.lastIndexOf("===== ["));
  }

  await startAndWait();

  return {
    baseUrl,
    adminToken,
    dataDir,
    port,
    get pid() {
      return child?.pid ?? -1;
    },
    kill,
    async restart() {
      await kill("SIGTERM");
      await startAndWait();
    },
    logs: () => log,
    running: () => child !== null && exitInfo === null,
    async stop() {
      await kill("SIGTERM");
      if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Prints what each server wrote during a test, if the test fails (servers named A, B, ...):
 * call from beforeEach with its onTestFailed.
 */
export function printOutputOnFailure(onTestFailed: (handler: () => void) => void, servers: NodeServer[]): void {
  const marks = servers.map((s) => s.logs().length);
  onTestFailed(() => {
    servers.forEach((s, i) => {
      const name = String.fromCharCode(65 + i);
      console.error(`----- output of server ${name} during the failed test -----\n${s.logs().slice(marks[i]).slice(-20_000)}`);
    });
  });
}
