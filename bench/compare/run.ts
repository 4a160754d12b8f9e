/**
 * The side-by-side benchmark (issue 5): every system, every workload, the same message bytes,
 * in one run on this machine.
 *
 *   npm run bench                       full run
 *   npm run bench -- --quick            small counts (a few minutes)
 *   npm run bench -- --systems reservoir-s3,nats-jetstream --workloads 16p-1KiB --messages 50000
 *   npm run bench -- --out DIR          where results go (default bench/results)
 *   npm run bench -- --rate 5000        the fixed-rate mode's rate (msgs/s)
 *
 * Per (system, workload), two runs. Max rate: publish N messages as fast as the system takes
 * them (its fastest honest client path, see docs/benchmarks.md), then consume and acknowledge
 * them all. Fixed rate (--rate, default 5,000 msgs/s): publish N/2 messages on a schedule while
 * a consumer runs; end-to-end latency is a message's arrival minus its scheduled send time,
 * and publish latency counts from the schedule too (a stall is charged in full). Results:
 * DIR/latest.json (and a dated copy), DIR/latest.md, DIR/latest.png. A system whose service is not reachable
 * is recorded as skipped. Progress goes to stderr.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, freemem, totalmem, type as osType, release } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { percentile } from "../lib/load.ts";
import { Unavailable, type CostCounters, type SystemName, type SystemUnderTest, type Workload } from "./system.ts";
import { natsJetStream } from "./systems/nats-jetstream.ts";
import { pgBoss } from "./systems/pg-boss.ts";
import { rabbitmq } from "./systems/rabbitmq.ts";
import { reservoir } from "./systems/reservoir.ts";
import { s3PutBaseline } from "./systems/s3-put-baseline.ts";
import { chartPng } from "./chart.ts";
import { markdownReport } from "./report.ts";

export const WORKLOADS: Workload[] = [
  { name: "16p-1KiB", partitions: 16, messageBytes: 1024 },
  { name: "1p-1KiB", partitions: 1, messageBytes: 1024 },
  { name: "16p-100B", partitions: 16, messageBytes: 100 },
];

const SYSTEMS: Record<SystemName, () => SystemUnderTest> = {
  "reservoir-s3": () => reservoir({ stack: "postgres-s3" }),
  "reservoir-embedded": () => reservoir({ stack: "embedded" }),
  "nats-jetstream": () => natsJetStream(),
  rabbitmq: () => rabbitmq(),
  "pg-boss": () => pgBoss(),
  "s3-put-baseline": () => s3PutBaseline(),
};

export interface RunResult {
  system: SystemName;
  workload: string;
  mode: "max-rate" | "fixed-rate";
  /** Fixed rate: the schedule (msgs/s). */
  ratePerSec?: number;
  messageBytes: number;
  partitions: number;
  messages: number;
  skipped?: string;
  publish?: { msgsPerSec: number; mibPerSec: number; p50Ms: number; p99Ms: number; p999Ms: number };
  /** Fixed rate only (at max rate, publish and consume run one after the other). */
  endToEnd?: { p50Ms: number | null; p99Ms: number | null };
  consume?: { msgsPerSec: number };
  cost?: {
    putsPerFlush: number | null;
    commitsPerFlush: number | null;
    putsPerMillion: number | null;
    getsPerMillion: number | null;
    commitsPerMillion: number | null;
  };
  settings?: Record<string, string | number | boolean>;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/** Distinct, deterministic bytes per message: printable, so every client sends them as is. */
function payloadFor(bytes: number): (i: number) => Uint8Array {
  const filler = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) filler[i] = 97 + (i % 26);
  return (i) => {
    const out = filler.slice();
    const tag = String(i).padStart(Math.min(12, bytes), "0");
    for (let k = 0; k < tag.length && k < bytes; k++) out[k] = tag.charCodeAt(k);
    return out;
  };
}

function costFigures(before: CostCounters, after: CostCounters, messages: number): RunResult["cost"] {
  const delta = (k: keyof CostCounters) => (after[k] === undefined || before[k] === undefined ? null : after[k]! - before[k]!);
  const puts = delta("puts");
  const gets = delta("gets");
  const commits = delta("commits");
  const flushes = delta("flushes");
  const perMillion = (x: number | null) => (x === null ? null : round((x / messages) * 1e6, 1));
  const perFlush = (x: number | null) => (x === null || !flushes ? null : round(x / flushes, 3));
  return {
    putsPerFlush: perFlush(puts),
    commitsPerFlush: perFlush(commits),
    putsPerMillion: perMillion(puts),
    getsPerMillion: perMillion(gets),
    commitsPerMillion: perMillion(commits),
  };
}

const indexDecoder = new TextDecoder();
/** The message index payloadFor wrote at the start of the bytes. */
const indexOf = (bytes: Uint8Array) => Number(indexDecoder.decode(bytes.subarray(0, Math.min(12, bytes.length))));

async function runOne(sut: SystemUnderTest, workload: Workload, messages: number, ratePerSec?: number): Promise<RunResult> {
  const mode = ratePerSec ? ("fixed-rate" as const) : ("max-rate" as const);
  const base = { system: sut.name, workload: workload.name, mode, ...(ratePerSec && { ratePerSec }), messageBytes: workload.messageBytes, partitions: workload.partitions, messages };
  try {
    await sut.setup(workload);
  } catch (error) {
    if (error instanceof Unavailable) return { ...base, skipped: error.message };
    throw error;
  }
  try {
    const payload = payloadFor(workload.messageBytes);
    const before = (await sut.cost?.()) ?? {};
    const endToEnd: number[] = [];
    let t0 = performance.now();
    let lastArrival = 0;
    // At a fixed rate the consumer runs meanwhile; at max rate it drains afterwards.
    const consume = () =>
      sut.consume(messages, (bytes) => {
        lastArrival = performance.now();
        if (ratePerSec) endToEnd.push(lastArrival - (t0 + (indexOf(bytes) * 1000) / ratePerSec));
      });
    const consuming = ratePerSec ? consume() : null;
    t0 = performance.now();
    const published = await sut.publish(messages, payload, ratePerSec ? { ratePerSec } : {});
    const publishSeconds = (performance.now() - t0) / 1000;
    if (published.acked !== messages) throw new Error(`${sut.name}: ${published.acked} of ${messages} published`);
    const t1 = performance.now();
    await (consuming ?? consume());
    const consumeSeconds = ((ratePerSec ? lastArrival - t0 : performance.now() - t1) || 1) / 1000;
    const after = (await sut.cost?.()) ?? {};
    const sorted = published.latenciesMs.slice().sort((a, b) => a - b);
    const e2e = endToEnd.sort((a, b) => a - b);
    return {
      ...base,
      publish: {
        msgsPerSec: Math.round(messages / publishSeconds),
        mibPerSec: round((messages * workload.messageBytes) / publishSeconds / 1024 / 1024),
        p50Ms: round(percentile(sorted, 50)),
        p99Ms: round(percentile(sorted, 99)),
        p999Ms: round(percentile(sorted, 99.9)),
      },
      endToEnd: ratePerSec ? { p50Ms: round(percentile(e2e, 50)), p99Ms: round(percentile(e2e, 99)) } : { p50Ms: null, p99Ms: null },
      consume: { msgsPerSec: Math.round(messages / consumeSeconds) },
      cost: costFigures(before, after, messages),
      settings: sut.settings,
    };
  } finally {
    await sut.teardown();
  }
}

function progress(done: number, total: number, label: string): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${label}\n`);
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      systems: { type: "string" },
      workloads: { type: "string" },
      messages: { type: "string" },
      rate: { type: "string", default: "5000" },
      out: { type: "string", default: "bench/results" },
    },
  });
  const systems = (args.systems?.split(",") ?? Object.keys(SYSTEMS)) as SystemName[];
  for (const s of systems) if (!SYSTEMS[s]) throw new Error(`unknown system '${s}' (known: ${Object.keys(SYSTEMS).join(", ")})`);
  const workloads = args.workloads ? WORKLOADS.filter((w) => args.workloads!.split(",").includes(w.name)) : WORKLOADS;
  const messages = Number(args.messages ?? (args.quick ? 20_000 : 200_000));
  const rate = Number(args.rate);
  const runs: RunResult[] = [];
  const total = systems.length * workloads.length * 2;
  progress(0, total, "starting");
  for (const name of systems) {
    const sut = SYSTEMS[name]();
    try {
      for (const workload of workloads) {
        for (const ratePerSec of [undefined, rate]) {
          const count = ratePerSec ? Math.max(1, Math.floor(messages / 2)) : messages;
          const result: RunResult = await runOne(sut, workload, count, ratePerSec).catch((error: unknown) => ({
            system: name,
            workload: workload.name,
            mode: ratePerSec ? ("fixed-rate" as const) : ("max-rate" as const),
            messageBytes: workload.messageBytes,
            partitions: workload.partitions,
            messages: count,
            skipped: `failed: ${(error as Error).message}`,
          }));
          runs.push(result);
          const e2e = result.endToEnd?.p50Ms != null ? `, end-to-end p50 ${result.endToEnd.p50Ms} ms` : "";
          const summary = result.skipped
            ? `skipped (${result.skipped})`
            : `publish ${result.publish!.msgsPerSec} msgs/s p99 ${result.publish!.p99Ms} ms, consume ${result.consume!.msgsPerSec} msgs/s${e2e}`;
          progress(runs.length, total, `${name} ${workload.name} ${result.mode}: ${summary}`);
        }
      }
    } finally {
      await sut.close?.();
    }
  }
  const report = {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryGiB: round(totalmem() / 2 ** 30, 1),
      freeMemoryGiB: round(freemem() / 2 ** 30, 1),
      os: `${osType()} ${release()}`,
      node: process.version,
      startedAt: new Date().toISOString(),
      quick: args.quick,
      messagesPerRun: messages,
      fixedRatePerSec: rate,
    },
    runs,
  };
  mkdirSync(args.out!, { recursive: true });
  const json = JSON.stringify(report, null, 2) + "\n";
  writeFileSync(join(args.out!, "latest.json"), json);
  writeFileSync(join(args.out!, `${report.machine.startedAt.replaceAll(":", "-").slice(0, 19)}.json`), json);
  writeFileSync(join(args.out!, "latest.md"), markdownReport(report));
  const caption = `Reservoir and its peers — ${report.machine.cpus} × ${report.machine.cpuModel}, ${messages} messages per run${args.quick ? " (--quick)" : ""}`;
  writeFileSync(join(args.out!, "latest.png"), chartPng(runs, caption));
  process.stderr.write(`results: ${["latest.json", "latest.md", "latest.png"].map((f) => join(args.out!, f)).join(", ")}\n`);
}

await main();
