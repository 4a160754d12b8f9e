/**
 * Max-rate produce of 1 KiB messages into 16 partitions against 1 (issue 15), with the compare
 * bench's Reservoir client (1,000 messages per request, 32 in flight), publish only: the rounds
 * alternate the workloads (and, with --root, the two trees: same-run A/B pairs, the order
 * swapped every round), each on a new topic of an already warm server, and report the CPU per
 * message of the server and of what it talks to (Postgres, s3rver) from /proc.
 *
 *   node --import tsx bench/produce-partitions.ts [--messages 100000] [--rounds 3]
 *        [--workloads 16p-1KiB,1p-1KiB] [--warm-up 64000] [--root DIR] [--b-node-args FLAGS] [--consume] [--cpu-prof DIR]
 *
 * --consume: each round's messages are then consumed (untimed), as in the compare bench.
 * --root DIR: a second server from another tree (its own s3rver and database); each round runs
 * each workload on both. --b-node-args="FLAGS": the second server (this tree unless --root) runs
 * with these Node flags. --cpu-prof DIR: this tree's server writes a V8 CPU profile there on exit
 * (bench/lib/cpuprofile.ts summarises it).
 */
import { parseArgs } from "node:util";
import { round } from "./compare/result.ts";
import { reservoir } from "./compare/systems/reservoir.ts";
import { payloadFor } from "./compare/payload.ts";
import type { SystemUnderTest, Workload } from "./compare/system.ts";
import { workloadsNamed } from "./compare/workloads.ts";
import { guarded } from "./compare/guard.ts";
import { cpuDelta, cpuSnapshot } from "./lib/proc-cpu.ts";
import { percentile } from "./lib/load.ts";
import { histogramDelta, histogramPercentile } from "../storage/log/latency-histogram.ts";

const { values: args } = parseArgs({
  options: {
    messages: { type: "string", default: "100000" },
    rounds: { type: "string", default: "3" },
    "warm-up": { type: "string", default: "64000" },
    workloads: { type: "string", default: "16p-1KiB,1p-1KiB" },
    root: { type: "string" },
    "b-node-args": { type: "string" },
    consume: { type: "boolean", default: false },
    "cpu-prof": { type: "string" },
  },
});
const messages = Number(args.messages);
const workloads = workloadsNamed(args.workloads);
const nodeArgs = args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : [];
const trees: { label: string; sut: SystemUnderTest }[] = [{ label: "this", sut: guarded(reservoir({ stack: "postgres-s3", nodeArgs })) }];
if (args.root || args["b-node-args"]) {
  const bArgs = args["b-node-args"]?.split(" ").filter(Boolean) ?? [];
  const label = [args.root ?? "this", ...bArgs].join(" ");
  trees.push({ label, sut: guarded(reservoir({ stack: "postgres-s3", root: args.root, nodeArgs: bArgs })) });
}

async function publishOnce(sut: SystemUnderTest, workload: Workload, count: number) {
  await sut.setup(workload);
  const pid = sut.serverPid!()!;
  const flushesBefore = (await sut.cost!()).flushes ?? 0;
  const latencyBefore = await sut.serverLatency!();
  const before = cpuSnapshot(pid);
  const t0 = performance.now();
  const out = await sut.publish(count, payloadFor(workload.messageBytes));
  const seconds = (performance.now() - t0) / 1000;
  const use = cpuDelta(before, cpuSnapshot(pid));
  const flushes = ((await sut.cost!()).flushes ?? 0) - flushesBefore;
  const latencyAfter = await sut.serverLatency!();
  // --consume: then drain it (untimed), as the compare bench's max-rate run does before the next.
  if (args.consume) await sut.consume(count);
  const p50 = (name: "putMs" | "commitMs") =>
    round(histogramPercentile(histogramDelta(latencyBefore[name], latencyAfter[name]), 50) ?? NaN);
  await sut.teardown();
  const perMessage = (s: number | undefined) => round(((s ?? 0) / count) * 1e6, 2);
  const latencies = out.requestLatenciesMs ?? [];
  latencies.sort((a, b) => a - b);
  return {
    msgsPerSec: Math.round(count / seconds),
    requestP50Ms: round(percentile(latencies, 50)),
    requestP99Ms: round(percentile(latencies, 99)),
    cpuMicrosPerMessage: {
      server: perMessage(use.seconds.server),
      serverMainThread: perMessage(use.seconds["server main thread"]),
      postgres: perMessage(use.seconds.postgres),
      s3: perMessage(use.seconds["node bench/s3-server.ts"]),
    },
    flushes,
    putP50Ms: p50("putMs"),
    commitP50Ms: p50("commitMs"),
  };
}

try {
  // Warm-up: every tree, every workload (by default twice a window's worth), untimed.
  const warmUp = Number(args["warm-up"]);
  if (warmUp > 0) for (const { sut } of trees) for (const w of workloads) await publishOnce(sut, w, warmUp);
  for (let r = 1; r <= Number(args.rounds); r++) {
    const order = r % 2 === 1 ? trees : [...trees].reverse();
    const wOrder = r % 2 === 1 ? workloads : [...workloads].reverse();
    for (const w of wOrder) {
      for (const { label, sut } of order) {
        const result = await publishOnce(sut, w, messages);
        console.log(JSON.stringify({ round: r, tree: label, workload: w.name, ...result }));
      }
    }
  }
} finally {
  for (const { sut } of trees) await sut.close?.();
}
