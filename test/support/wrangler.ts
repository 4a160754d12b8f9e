// Runs the Worker (functions/runtime/workers/worker.ts) under `wrangler dev` in local mode: workerd on this
// machine, offline, listening on 127.0.0.1 only.
//
// - The Worker is bundled once, up front, with the same command as `npm run build`
//   (`wrangler deploy --dry-run`) into a temp dir, and `wrangler dev` serves that bundle. So the
//   test exercises what `wrangler deploy` would upload, and edits to the sources while a test
//   runs do not hot-reload the isolate under it (which would reset its counters): wrangler dev
//   watches only the bundle. It must still bundle it (no `--no-bundle`): in local mode wrangler
//   wraps the Worker in a middleware that drains unread request bodies; without it, a request
//   answered before its body was read (a 401, a 413 by Content-Length) fails at random with
//   "Your worker restarted mid-request" (503), ECONNRESET, or a hang of the next request on
//   the same connection (measured).
// - Settings go to a generated .dev.vars-style file in the temp dir (`--env-file`), never to the
//   repo; secrets therefore do not show up in `ps`.
// - No prompts, no telemetry, no update check, no `Request.cf` download: nothing leaves 127.0.0.1.
// - wrangler runs in its own process group (workerd is its child); stop() kills the group, and a
//   watchdog leading the group kills it too if the test process dies without calling stop().

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { freePort } from "./node-server.ts";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const wranglerBin = join(repoRoot, "node_modules", "wrangler", "bin", "wrangler.js");

export interface WorkerTarget {
  baseUrl: string;
  adminToken: string;
  /** Kills wrangler and workerd (the whole process group) and removes the temp dir. */
  stop(): Promise<void>;
  /** Everything wrangler and the Worker (console.*) printed so far. */
  logs(): string;
}

export interface StartWorkerOptions {
  /** Worker settings (API.md "Configuration"): DATABASE_URL, S3_*, RESERVOIR_LINGER_MS, ... */
  env: Record<string, string>;
  /**
   * What "started" means: `/healthz` answers 200 (default), or merely that wrangler is
   * listening (for tests of a misconfigured Worker, whose every answer is a 503).
   */
  ready?: "healthz" | "listening";
  /** How long to wait for readiness (default 90 s: bundling plus workerd start-up). */
  readyTimeoutMs?: number;
  /** Omit RESERVOIR_ADMIN_TOKEN instead of generating one (adminToken is then ""). */
  withoutAdminToken?: boolean;
}

const MAX_LOG_CHARS = 2_000_000;

/**
 * Runs as the leader of wrangler's process group (node -e WATCHDOG <wrangler args>): starts
 * wrangler, and if the test process dies without stopping it (vitest killed with SIGKILL: no
 * exit hook runs), removes the temp dir and kills the group, so no workerd is left behind.
 */
const WATCHDOG = `
const { spawn } = require("node:child_process");
const { rmSync } = require("node:fs");
const parent = process.ppid;
const child = spawn(process.execPath, process.argv.slice(1), { stdio: "inherit" });
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
process.on("SIGTERM", () => child.kill("SIGTERM"));
setInterval(() => {
  if (process.ppid === parent) return;
  try { rmSync(process.env.RESERVOIR_WATCHDOG_TEMP_DIR, { recursive: true, force: true }); } catch {}
  process.kill(-process.pid, "SIGKILL");
}, 500);
`;

/** Environment of the wrangler processes: no telemetry, no network, no colours, no prompts. */
function wranglerEnv(tempDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The Worker's settings come only from the env file; vitest's markers are not for wrangler.
  for (const k of ["NODE_OPTIONS", "VITEST", "VITEST_POOL_ID", "VITEST_WORKER_ID", "VITEST_MODE", "TEST", "CLOUDFLARE_ENV"]) delete env[k];
  return {
    ...env,
    WRANGLER_SEND_METRICS: "false",
    // The banner is what triggers wrangler's npm update check.
    WRANGLER_HIDE_BANNER: "true",
    // Otherwise wrangler dev downloads a Request.cf sample from workers.cloudflare.com.
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    // The generated env file is the Worker's only source of settings: not the runner's own
    // environment (a developer's DATABASE_URL), not a .dev.vars in the repo.
    CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV: "true",
    CLOUDFLARE_INCLUDE_PROCESS_ENV: "false",
    WRANGLER_LOG_PATH: join(tempDir, "logs"),
    WRANGLER_REGISTRY_PATH: join(tempDir, "registry"),
    NO_COLOR: "1",
    FORCE_COLOR: "0",
  };
}

/** KEY='value' lines for dotenv (as wrangler reads .dev.vars / --env-file). */
function envFile(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid variable name for the Worker: ${k}`);
      if (/['\r\n]/.test(v)) throw new Error(`the value of ${k} contains a quote or a line break, which this helper does not escape`);
      return `${k}='${v}'\n`;
    })
    .join("");
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const child of live) killGroup(child, "SIGKILL");
  });
}

/** Runs wrangler to completion (for the bundle step); rejects with its output on failure. */
function runWrangler(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [wranglerBin, ...args], {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    live.add(child);
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      if (code === 0) resolveRun(out);
      else reject(new Error(`wrangler ${args.join(" ")} failed (${signal ?? `code ${code}`}):\n${out}`));
    });
  });
}

/** Bundles the Worker into `outDir` as `npm run build` does (`wrangler deploy --dry-run`); resolves with wrangler's output. */
function bundleWorker(outDir: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return runWrangler(["deploy", "--dry-run", "--outdir", outDir, "--config", "wrangler.toml"], env, timeoutMs);
}

export async function startWorker(opts: StartWorkerOptions): Promise<WorkerTarget> {
  installExitHook();
  const tempDir = mkdtempSync(join(tmpdir(), "reservoir-wrangler-"));
  const env = wranglerEnv(tempDir);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const started = Date.now();
  const adminToken = opts.withoutAdminToken ? "" : (opts.env.RESERVOIR_ADMIN_TOKEN ?? `rsv_admin_test_${randomBytes(16).toString("hex")}`);
  const vars: Record<string, string> = { ...opts.env };
  if (opts.withoutAdminToken) delete vars.RESERVOIR_ADMIN_TOKEN;
  else vars.RESERVOIR_ADMIN_TOKEN = adminToken;
  const varsPath = join(tempDir, "worker.env");
  writeFileSync(varsPath, envFile(vars), { mode: 0o600 });

  let log = "";
  /** Called on every output (and so on exit): what the readiness loop waits on. */
  let onOutput: (() => void) | undefined;
  const append = (s: string) => {
    log += s;
    if (log.length > MAX_LOG_CHARS) log = "[...earlier output dropped...]\n" + log.slice(-MAX_LOG_CHARS / 2);
    onOutput?.();
  };
  /** Resolves on the next output of wrangler or workerd, or after `ms`. */
  const nextOutput = (ms: number) =>
    new Promise<void>((resolveOutput) => {
      const done = () => {
        clearTimeout(timer);
        onOutput = undefined;
        resolveOutput();
      };
      const timer = setTimeout(done, ms);
      onOutput = done;
    });

  const cleanUp = () => rmSync(tempDir, { recursive: true, force: true });
  const bundleDir = join(tempDir, "bundle");
  try {
    append(await bundleWorker(bundleDir, env, readyTimeoutMs));
  } catch (error) {
    cleanUp();
    throw error;
  }

  const port = await freePort();
  const args = [
    wranglerBin,
    "dev",
    join(bundleDir, "worker.js"),
    "--config",
    "wrangler.toml",
    "--local",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    // 0: an ephemeral port, so concurrent runs never fight over 9229 (it binds 127.0.0.1).
    "--inspector-ip",
    "127.0.0.1",
    "--inspector-port",
    "0",
    "--env-file",
    varsPath,
    "--persist-to",
    join(tempDir, "state"),
    "--show-interactive-dev-session=false",
    // Exposes GET /__scheduled, which runs the Worker's `scheduled` handler (the Cron Trigger)
    // on demand: wrangler dev never fires crons by itself. Harmless for tests that do not call it.
    "--test-scheduled",
    "--log-level",
    "log",
  ];
  append(`\n===== wrangler dev on 127.0.0.1:${port} =====\n`);
  const child = spawn(process.execPath, ["-e", WATCHDOG, ...args], {
    cwd: repoRoot,
    env: { ...env, RESERVOIR_WATCHDOG_TEMP_DIR: tempDir },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  live.add(child);
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => append(d));
  child.stderr!.on("data", (d: string) => append(d));
  let exitInfo: string | null = null;
  const exited = new Promise<void>((res) => {
    child.once("exit", (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      append(`\n===== wrangler dev exited (${exitInfo}) =====\n`);
      live.delete(child);
      res();
    });
    child.once("error", (err) => {
      exitInfo = `spawn error ${err.message}`;
      append(`\n===== wrangler dev failed to start: ${err.message} =====\n`);
      live.delete(child);
      res();
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exitInfo === null) {
        killGroup(child, "SIGTERM");
        const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
        await exited;
        clearTimeout(timer);
      }
      // workerd may outlive wrangler for a moment; it is in the same group.
      killGroup(child, "SIGKILL");
      // For post-mortems: RESERVOIR_TEST_WRANGLER_LOGS=<dir> keeps each run's whole output.
      const keep = process.env.RESERVOIR_TEST_WRANGLER_LOGS;
      if (keep) {
        mkdirSync(keep, { recursive: true });
        writeFileSync(join(keep, `wrangler-${started}-${port}.log`), log);
      }
      cleanUp();
    })());

  // The port wrangler actually took (it moves on if the one asked for was taken meanwhile).
  let baseUrl: string | undefined;
  let last = "no answer yet";
  let isReady = false;
  while (!isReady && Date.now() - started < readyTimeoutMs) {
    if (exitInfo !== null) {
      await stop();
      throw new Error(`wrangler dev exited before it was ready (${exitInfo}). Output:\n${log}`);
    }
    const ready = /Ready on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
    if (ready) baseUrl = ready[1];
    if (baseUrl) {
      if (opts.ready === "listening") {
        isReady = true;
        break;
      }
      try {
        const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(5_000) });
        const text = await res.text();
        if (res.status === 200 && /"ok"\s*:\s*true/.test(text)) {
          isReady = true;
          break;
        }
        last = `${res.status} ${text.slice(0, 500)}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    // Before "Ready on": until wrangler prints more (or exits). After it: a bounded wait
    // before asking /healthz again (the isolate may still be starting).
    await nextOutput(baseUrl ? 200 : Math.max(0, readyTimeoutMs - (Date.now() - started)));
  }
  if (!isReady || !baseUrl) {
    const output = log;
    await stop();
    throw new Error(`wrangler dev not ready within ${readyTimeoutMs} ms (last /healthz: ${last}). Output:\n${output}`);
  }
  return { baseUrl, adminToken, stop, logs: () => log };
}

/**
 * What `wrangler deploy` would upload: the Worker bundled by its dry run (as `npm run build`),
 * in KiB as wrangler prints it, whole and compressed (the size Cloudflare's limits apply to).
 */
export async function workerUploadSize(): Promise<{ kib: number; gzipKib: number }> {
  installExitHook();
  const tempDir = mkdtempSync(join(tmpdir(), "reservoir-wrangler-"));
  try {
    const out = await bundleWorker(join(tempDir, "bundle"), wranglerEnv(tempDir), 90_000);
    const sizes = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(out);
    if (!sizes) throw new Error(`wrangler printed no "Total Upload" line:\n${out}`);
    return { kib: Number(sizes[1]), gzipKib: Number(sizes[2]) };
  } finally {
    rmSync(tempDir, { recursive: true, force: true });
  }
}

/**
 * Runs the Worker's Cron Trigger once (`scheduled`, through the `/__scheduled` route that
 * `--test-scheduled` adds) and resolves when wrangler answers; throws on any other answer than 200.
 */
export async function triggerScheduled(baseUrl: string, cron = "* * * * *"): Promise<void> {
  const url = `${baseUrl}/__scheduled?cron=${cron.split(" ").map(encodeURIComponent).join("+")}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /__scheduled answered ${res.status}: ${text.slice(0, 1000)}`);
}
