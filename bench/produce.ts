/**
 * Produce throughput: 1 KiB messages from N concurrent HTTP clients against the Node server
 * on Postgres + s3rver (or the embedded default), with PUTs and commits per flush.
 *
 *   npx tsx bench/produce.ts [--clients 50] [--seconds 15] [--batch 1] [--size 1024]
 *                            [--partitions 16] [--stack postgres-s3|embedded] [--linger 5]
 *                            [--cpu-prof DIR]   (the server writes a V8 CPU profile there on exit)
 *
 * cpu: CPU seconds per process over the measured phase (server, Postgres backends, s3rver, client).
 */
import { Agent } from "node:http";
import { parseArgs } from "node:util";
import { closedLoop, percentile, post } from "./lib/load.ts";
import { CALL_TIMEOUT_MS } from "./lib/timeout.ts";
import { startStack } from "./lib/stack.ts";
import { cpuDelta, cpuSnapshot } from "./lib/proc-cpu.ts";
import { histogramDelta, histogramPercentile, type HistogramSnapshot } from "../storage/log/latency-histogram.ts";

const { values: args } = parseArgs({
  options: {
    clients: { type: "string", default: "50" },
    seconds: { type: "string", default: "15" },
    batch: { type: "string", default: "1" },
    size: { type: "string", default: "1024" },
    partitions: { type: "string", default: "16" },
    stack: { type: "string", default: "postgres-s3" },
    linger: { type: "string", default: "5" },
    "cpu-prof": { type: "string" },
  },
});
const clients = Number(args.clients);
const seconds = Number(args.seconds);
const batch = Number(args.batch);
const size = Number(args.size);

const profile = args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : [];
const stack = await startStack(args.stack as "postgres-s3" | "embedded", { RESERVOIR_LINGER_MS: args.linger! }, profile);
try {
  const base = stack.server.baseUrl;
  const admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
  const tenant = await (
    await fetch(`${base}/v1/admin/tenants`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "bench" }),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    })
  ).json();
  const auth = { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" };
  await fetch(`${base}/v1/topics/bench`, {
    method: "PUT",
    headers: auth,
    body: JSON.stringify({ partitions: Number(args.partitions) }),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  const allMetrics = async () =>
    (await (await fetch(`${base}/v1/admin/metrics`, { headers: admin, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) })).json()) as {
      produce: Record<string, number>;
      latency: Record<string, HistogramSnapshot>;
    };

  const value = "x".repeat(size);
  const body = Buffer.from(JSON.stringify({ messages: Array.from({ length: batch }, () => ({ value })) }));
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const url = new URL(`${base}/v1/topics/bench/messages`);
  const statuses = new Map<number, number>();
  const send = async () => {
    const status = await post(agent, url, auth, body);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    return status === 200;
  };

  await closedLoop(clients, 2, send); // warm-up
  const before = await allMetrics();
  const cpuBefore = cpuSnapshot(stack.server.pid);
  const result = await closedLoop(clients, seconds, send);
  const cpu = cpuDelta(cpuBefore, cpuSnapshot(stack.server.pid));
  const after = await allMetrics();
  agent.destroy();

  const d = (k: string) => after.produce[k] - before.produce[k];
  // Server-side distributions over the measured phase (cumulative histograms, subtracted).
  const serverP = (name: string, p: number) =>
    Number(histogramPercentile(histogramDelta(before.latency[name], after.latency[name]), p)!.toFixed(2));
  const ok = result.requests - result.errors;
  const msgs = ok * batch;
  const report = {
    stack: args.stack,
    clients,
    messagesPerRequest: batch,
    messageBytes: size,
    seconds: Number(result.seconds.toFixed(2)),
    requests: result.requests,
    errors: result.errors,
    statuses: Object.fromEntries(statuses),
    msgsPerSec: Math.round(msgs / result.seconds),
    mibPerSec: Number(((msgs * size) / result.seconds / 1024 / 1024).toFixed(2)),
    requestLatencyMs: {
      p50: Number(percentile(result.latenciesMs, 50).toFixed(2)),
      p99: Number(percentile(result.latenciesMs, 99).toFixed(2)),
      p999: Number(percentile(result.latenciesMs, 99.9).toFixed(2)),
    },
    flushes: d("flushes"),
    putsPerFlush: Number((d("puts") / d("flushes")).toFixed(3)),
    commitsPerFlush: Number((d("commits") / d("flushes")).toFixed(3)),
    requestsPerFlush: Number((d("requests") / d("flushes")).toFixed(1)),
    messagesPerFlush: Number((d("messages") / d("flushes")).toFixed(1)),
    segmentKiBPerFlush: Number((d("bytes") / d("flushes") / 1024).toFixed(1)),
    failedFlushes: d("failedFlushes"),
    putMsPerFlush: Number((d("putMs") / d("flushes")).toFixed(2)),
    commitMsPerFlush: Number((d("commitMs") / d("flushes")).toFixed(2)),
    server: {
      putMs: { p50: serverP("putMs", 50), p99: serverP("putMs", 99) },
      commitMs: { p50: serverP("commitMs", 50), p99: serverP("commitMs", 99) },
      produceWaitMs: { p50: serverP("produceWaitMs", 50), p99: serverP("produceWaitMs", 99) },
    },
    // The target: request p99 − (PUT p99 + commit p99) ≤ 10 ms.
    overheadP99Ms: Number((percentile(result.latenciesMs, 99) - serverP("putMs", 99) - serverP("commitMs", 99)).toFixed(2)),
    cpu,
  };
  console.log(JSON.stringify(report, null, 2));
  if (result.errors > 0)
    console.error(
      stack.server
        .logs()
        .split("\n")
        .filter((l) => l.includes("failed"))
        .slice(-5)
        .join("\n"),
    );
} finally {
  await stack.stop();
}
