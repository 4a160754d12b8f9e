/**
 * The side-by-side benchmark (issue 5): every system, every workload, the same message bytes,
 * in one run on this machine.
 *
 *   npm run bench                       full run (with the 1 GiB backlog drain per system)
 *   npm run bench -- --quick            small counts, no backlog drain (under 3 minutes here)
 *   npm run bench -- --systems reservoir-s3,nats-jetstream --workloads 16p-1KiB --messages 50000
 *   npm run bench -- --out DIR          where results go (default bench/results)
 *   npm run bench -- --rate 5000        the fixed-rate mode's rate (msgs/s)
 *   npm run bench -- --backlog-mib 64   the backlog drain's size (default 1024; 0: none)
 *   npm run bench -- --max-rate-trials 3   max-rate trials per system and workload (default 2; 1 with --quick)
 *
 * Per (system, workload): an untimed warm-up on a setup of its own (warm-up.ts; 5× longer for a
 * system's first workload, whose processes are new), then two measured runs (measure.ts): max
 * rate with N messages (the fastest of --max-rate-trials, trials.ts), and a fixed rate (--rate,
 * default 5,000 msgs/s) with N/2 (at most 10,000 with --quick). Then per system, unless --quick,
 * the backlog drain (backlog.ts). Results: DIR/latest.json (and a dated copy), DIR/latest.md,
 * DIR/latest.png. A system whose service is not reachable is recorded as skipped. Progress goes
 * to stderr.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, freemem, totalmem, type as osType, release } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { backlogDrain, BACKLOG_WORKLOAD } from "./backlog.ts";
import { chartPng } from "./chart.ts";
import { measureRun } from "./measure.ts";
import { markdownReport } from "./report.ts";
import { round, type RunResult } from "./result.ts";
import type { SystemName, SystemUnderTest, Workload } from "./system.ts";
import { WORKLOADS, workloadsNamed } from "./workloads.ts";
import { natsJetStream } from "./systems/nats-jetstream.ts";
import { pgBoss } from "./systems/pg-boss.ts";
import { rabbitmq } from "./systems/rabbitmq.ts";
import { reservoir } from "./systems/reservoir.ts";
import { s3PutBaseline } from "./systems/s3-put-baseline.ts";
import { firstWarmUpAtRate, firstWarmUpCount, warmUp, warmUpCount } from "./warm-up.ts";
import { guarded } from "./guard.ts";
import { fastestOf } from "./trials.ts";

const SYSTEMS: Record<SystemName, () => SystemUnderTest> = {
  "reservoir-s3": () => reservoir({ stack: "postgres-s3" }),
  "reservoir-embedded": () => reservoir({ stack: "embedded" }),
  "nats-jetstream": () => natsJetStream(),
  rabbitmq: () => rabbitmq(),
  "pg-boss": () => pgBoss(),
  "s3-put-baseline": () => s3PutBaseline(),
};

/**
 * Max-rate messages per run with --quick: several rounds of every system's publish window
 * (Reservoir's is 32 requests of 1,000), while the whole quick run stays under 3 minutes here.
 */
const QUICK_MESSAGES = 80_000;
const FULL_MESSAGES = 200_000;
/** Max-rate trials per system and workload in a full run (trials.ts); one with --quick. */
const FULL_MAX_RATE_TRIALS = 2;
/** With --quick, the fixed-rate run's count is capped: at 5,000 msgs/s its length is count / rate. */
const QUICK_FIXED_RATE_MESSAGES = 10_000;

function progress(done: number, total: number, label: string): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total} ${label}\n`);
}

function summary(r: RunResult): string {
  if (r.skipped) return `skipped (${r.skipped})`;
  if (r.drain)
    return `drained ${r.drain.messages} messages in ${r.drain.seconds} s: ${r.drain.msgsPerSec} msgs/s, ${r.drain.mibPerSec} MiB/s`;
  const e2e = r.endToEnd?.p50Ms != null ? `, end-to-end p50 ${r.endToEnd.p50Ms} ms` : "";
  const overhead = r.produceOverhead ? `, produce overhead p99 ${r.produceOverhead.overheadP99Ms} ms` : "";
  return `publish ${r.publish!.msgsPerSec} msgs/s p99 ${r.publish!.p99Ms} ms, consume ${r.consume!.msgsPerSec} msgs/s${e2e}${overhead}`;
}

/** A run that threw is recorded as failed, and the benchmark goes on. */
const failed =
  (sut: SystemUnderTest, workload: Workload, mode: RunResult["mode"], messages: number) =>
  (error: unknown): RunResult => ({
    system: sut.name,
    workload: workload.name,
    mode,
    messageBytes: workload.messageBytes,
    partitions: workload.partitions,
    messages,
    skipped: `failed: ${(error as Error).message}`,
  });

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      systems: { type: "string" },
      workloads: { type: "string" },
      messages: { type: "string" },
      rate: { type: "string", default: "5000" },
      "backlog-mib": { type: "string", default: "1024" },
      "max-rate-trials": { type: "string" },
      out: { type: "string", default: "bench/results" },
    },
  });
  const systems = (args.systems?.split(",") ?? Object.keys(SYSTEMS)) as SystemName[];
  for (const s of systems) if (!SYSTEMS[s]) throw new Error(`unknown system '${s}' (known: ${Object.keys(SYSTEMS).join(", ")})`);
  // In the order given: the first workload runs on a server that only its warm-up has warmed.
  const workloads = args.workloads ? workloadsNamed(args.workloads) : WORKLOADS;
  const messages = Number(args.messages ?? (args.quick ? QUICK_MESSAGES : FULL_MESSAGES));
  const fixedRateMessages = Math.max(1, Math.min(Math.floor(messages / 2), args.quick ? QUICK_FIXED_RATE_MESSAGES : Infinity));
  const warmUpMessages = warmUpCount(messages);
  const firstWarmUpMessages = firstWarmUpCount(messages);
  const rate = Number(args.rate);
  const firstWarmUpAtRateMessages = firstWarmUpAtRate(rate, fixedRateMessages);
  const backlogMiB = args.quick ? 0 : Number(args["backlog-mib"]);
  const maxRateTrials = Number(args["max-rate-trials"] ?? (args.quick ? 1 : FULL_MAX_RATE_TRIALS));
  const runs: RunResult[] = [];
  const total = systems.length * (workloads.length * 2 + (backlogMiB > 0 ? 1 : 0));
  const started = performance.now();
  const startedAt = new Date().toISOString();
  progress(0, total, "starting");
  const record = (r: RunResult) => {
    runs.push(r);
    progress(runs.length, total, `${r.system} ${r.workload} ${r.mode}: ${summary(r)}`);
  };
  for (const name of systems) {
    // Every call bounded: a system that stops answering fails its run, loudly (issue 19).
    const sut = guarded(SYSTEMS[name]());
    try {
      for (const [w, workload] of workloads.entries()) {
        const warmStart = performance.now();
        const count = w === 0 ? firstWarmUpMessages : warmUpMessages;
        // The first workload also warms up at the fixed rate, as every later one follows a fixed-rate run.
        const atRate = w === 0 ? { ratePerSec: rate, count: firstWarmUpAtRateMessages } : undefined;
        await warmUp(sut, workload, count, atRate).then(
          () =>
            process.stderr.write(
              `  warm-up ${name} ${workload.name}: ${count} messages${atRate ? ` and ${atRate.count} at ${atRate.ratePerSec} msgs/s` : ""} in ${round((performance.now() - warmStart) / 1000, 1)} s\n`,
            ),
          (error: unknown) => process.stderr.write(`  warm-up ${name} ${workload.name} failed: ${(error as Error).message}\n`),
        );
        record(
          await fastestOf(maxRateTrials, () => measureRun(sut, workload, messages)).catch(failed(sut, workload, "max-rate", messages)),
        );
        record(await measureRun(sut, workload, fixedRateMessages, rate).catch(failed(sut, workload, "fixed-rate", fixedRateMessages)));
      }
      if (backlogMiB > 0)
        record(await backlogDrain(sut, backlogMiB).catch(failed(sut, BACKLOG_WORKLOAD, "backlog-drain", Math.round(backlogMiB * 1024))));
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
      startedAt,
      quick: args.quick,
      messagesPerRun: messages,
      fixedRateMessagesPerRun: fixedRateMessages,
      fixedRatePerSec: rate,
      maxRateTrials,
      warmUpMessages,
      firstWarmUpMessages,
      firstWarmUpAtRateMessages,
      backlogMiB: backlogMiB > 0 ? backlogMiB : null,
      wallSeconds: round((performance.now() - started) / 1000, 1),
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
  process.stderr.write(`wall time: ${report.machine.wallSeconds} s\n`);
}

await main();
