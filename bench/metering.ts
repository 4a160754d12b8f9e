/**
 * What metering and quotas cost produce: the same closed-loop produce load against this tree
 * with usage counted in every commit and key check ("metered"), the same with the tenant's four
 * quotas set, so the key check takes from its requests bucket and each produce from its bytes
 * bucket and checks storage ("quotas"), and a baseline tree without either (default: the merge-base with main), back to back
 * on the same machine, each on a fresh Postgres database and s3rver, alternating the order
 * round by round. Reports messages per second, latency, and CPU per request of the server and
 * of the Postgres backends, and each variant's ratio to the baseline.
 *
 *   npx tsx bench/metering.ts [--clients 50] [--seconds 10] [--rounds 2] [--batch 1] [--size 1024]
 *                             [--baseline <git ref>] [--stack postgres-s3|embedded]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { closedLoop, percentile, post } from "./lib/load.ts";
import { cpuDelta, cpuSnapshot } from "./lib/proc-cpu.ts";
import { startStack } from "./lib/stack.ts";
import { CALL_TIMEOUT_MS } from "./lib/timeout.ts";
import { repoRoot } from "../test/support/node-server.ts";

const { values: args } = parseArgs({
  options: {
    clients: { type: "string", default: "50" },
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
    batch: { type: "string", default: "1" },
    size: { type: "string", default: "1024" },
    baseline: { type: "string" },
    stack: { type: "string", default: "postgres-s3" },
  },
});
const clients = Number(args.clients);
const seconds = Number(args.seconds);
const batch = Number(args.batch);
const size = Number(args.size);

const git = (...a: string[]) => execFileSync("git", a, { cwd: repoRoot, encoding: "utf8" }).trim();
const baselineRef = args.baseline ?? git("merge-base", "HEAD", "main");
const baselineSha = git("rev-parse", baselineRef);
const meteredSha = git("rev-parse", "HEAD");

/** The baseline's source tree, unpacked from git (no worktree is added), sharing this tree's node_modules. */
const baselineRoot = mkdtempSync(join(tmpdir(), "reservoir-baseline-"));
execFileSync("sh", ["-c", `git archive ${baselineSha} | tar -x -C ${baselineRoot}`], { cwd: repoRoot });
symlinkSync(join(repoRoot, "node_modules"), join(baselineRoot, "node_modules"));

/** baseline: the tree without metering; metered: this tree, a tenant without quotas; quotas: this tree, a tenant with all four. */
type Variant = "baseline" | "metered" | "quotas";
const variants: Variant[] = ["baseline", "metered", "quotas"];

interface Run {
  variant: Variant;
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  serverCpuMsPerRequest: number;
  postgresCpuMsPerRequest: number;
  dbStatementsPerRequest: number | null;
}

async function measure(variant: Variant): Promise<Run> {
  const stack = await startStack(
    args.stack as "postgres-s3" | "embedded",
    { RESERVOIR_LINGER_MS: "5" },
    [],
    variant === "baseline" ? baselineRoot : undefined,
  );
  try {
    const base = stack.server.baseUrl;
    const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
    const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
      (
        await fetch(`${base}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        })
      ).json();
    // Quotas far above the load: every request takes tokens, none is refused.
    const quotas = { requestsPerSecond: 1e9, bytesPerSecond: 1e12, storageBytes: 1e15, topics: 1000 };
    const tenant = await call("POST", "/v1/admin/tenants", admin, { name: "bench", ...(variant === "quotas" && { quotas }) });
    const auth = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
    await call("PUT", "/v1/topics/bench", auth, { partitions: 16 });
    const metrics = async () => (await call("GET", "/v1/admin/metrics", admin)) as { db: { statements: number } };

    const value = "x".repeat(size);
    const body = Buffer.from(JSON.stringify({ messages: Array.from({ length: batch }, () => ({ value })) }));
    const agent = new Agent({ keepAlive: true, maxSockets: clients });
    const url = new URL(`${base}/v1/topics/bench/messages`);
    const send = async () => (await post(agent, url, auth, body)) === 200;
    await closedLoop(clients, 2, send); // warm-up
    const before = await metrics();
    const cpuBefore = cpuSnapshot(stack.server.pid);
    const result = await closedLoop(clients, seconds, send);
    const cpu = cpuDelta(cpuBefore, cpuSnapshot(stack.server.pid));
    const after = await metrics();
    agent.destroy();
    const ok = result.requests - result.errors;
    const perRequest = (cpuSeconds: number) => Number(((cpuSeconds * 1000) / result.requests).toFixed(3));
    const postgres = Object.entries(cpu.seconds)
      .filter(([label]) => /postgres/i.test(label))
      .reduce((n, [, s]) => n + s, 0);
    const statements = after.db.statements - before.db.statements;
    return {
      variant,
      msgsPerSec: Math.round((ok * batch) / result.seconds),
      p50Ms: Number(percentile(result.latenciesMs, 50).toFixed(2)),
      p99Ms: Number(percentile(result.latenciesMs, 99).toFixed(2)),
      errors: result.errors,
      serverCpuMsPerRequest: perRequest(cpu.seconds.server ?? 0),
      postgresCpuMsPerRequest: perRequest(postgres),
      dbStatementsPerRequest: statements > 0 ? Number((statements / result.requests).toFixed(2)) : null,
    };
  } finally {
    await stack.stop();
  }
}

try {
  const runs: Run[] = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const variant of order) {
      const run = await measure(variant);
      console.error(JSON.stringify(run));
      runs.push(run);
    }
  }
  const mean = (variant: Variant, key: keyof Run) => {
    const of = runs.filter((r) => r.variant === variant).map((r) => Number(r[key]));
    return of.reduce((a, b) => a + b, 0) / of.length;
  };
  const keys = ["msgsPerSec", "p50Ms", "p99Ms", "serverCpuMsPerRequest", "postgresCpuMsPerRequest", "dbStatementsPerRequest"] as const;
  // Each variant's mean, and its ratio to the baseline's.
  const summary = Object.fromEntries(
    keys.map((k) => {
      const base = mean("baseline", k);
      const of = (v: Variant) => ({ mean: Number(mean(v, k).toFixed(3)), ratio: Number((mean(v, k) / base).toFixed(3)) });
      return [k, { baseline: Number(base.toFixed(3)), metered: of("metered"), quotas: of("quotas") }];
    }),
  );
  console.log(
    JSON.stringify(
      {
        baseline: `${baselineRef} (${baselineSha.slice(0, 10)})`,
        metered: meteredSha.slice(0, 10),
        clients,
        seconds,
        batch,
        size,
        runs,
        summary,
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(baselineRoot, { recursive: true, force: true });
}
