/**
 * Reservoir alone at a steady rate (issue 15's steady-rate targets), as the compare bench's
 * fixed-rate mode measures it (bench/compare/measure.ts, the same harness client), without the
 * peers and the max-rate runs: a warm-up, then `--rounds` fixed-rate runs per workload.
 *
 *   node --import tsx bench/steady-rate.ts --stack postgres-s3 --workloads 16p-1KiB --rate 5000 --messages 10000 --rounds 3
 *        [--root DIR] [--env NAME=VALUE]... [--cpu-prof DIR] [--node-arg FLAG]...
 *        [--warm-up rate|max] [--max-rate-first N] [--ack-with short-next-receive|own-call|next-receive|every-receive]
 *
 * --root DIR runs the server from another source tree; --format raw receives raw answers (a tree
 * from before answers in batches); --produce-format json produces JSON bodies instead of batches.
 *
 * The warm-up is a max-rate publish + consume, then (`--warm-up rate`, the default) as many
 * messages at the rate, as the full comparison warms up its first workload
 * (bench/compare/warm-up.ts). After a max-rate warm-up alone, the first round ran on code the
 * max-rate run had not warmed (the per-request paths of small requests): produce p50 37.5 ms
 * against a bound of 29.4, and 18.8 against 20.2 with the warm-up at the rate
 * (docs/benchmarks.md, "Session 21"). `--max-rate-first N` measures a max-rate run of N messages
 * between the warm-up and the rounds, as the full comparison runs its fixed-rate run after the
 * max-rate one.
 *
 * Per run: produce p50/p99 (from each message's scheduled time), end-to-end p50/p99, the server's
 * PUT and commit p50s, and the two targets: produce p50 ≤ PUT p50 + commit p50 + 10 ms linger +
 * 3 ms, end-to-end p50 ≤ 2 × produce p50; `windowUs`, the round's span in the monotonic clock
 * (`bench/lib/cpuprofile.ts --from --to` reads a server profile's part of it).
 */
import { parseArgs } from "node:util";
import { measureRun } from "./compare/measure.ts";
import { round } from "./compare/result.ts";
import { ACK_WITH, reservoir } from "./compare/systems/reservoir.ts";
import { workloadsNamed } from "./compare/workloads.ts";
import { firstWarmUpAtRate, warmUp } from "./compare/warm-up.ts";
import { guarded } from "./compare/guard.ts";

const { values: args } = parseArgs({
  options: {
    stack: { type: "string", default: "postgres-s3" },
    workloads: { type: "string", default: "16p-1KiB" },
    rate: { type: "string", default: "5000" },
    messages: { type: "string", default: "10000" },
    rounds: { type: "string", default: "3" },
    env: { type: "string", multiple: true, default: [] },
    root: { type: "string" },
    "cpu-prof": { type: "string" },
    "node-arg": { type: "string", multiple: true, default: [] },
    format: { type: "string", default: "batches" },
    "produce-format": { type: "string", default: "batches" },
    "warm-up": { type: "string", default: "rate" },
    "max-rate-first": { type: "string" },
    "ack-with": { type: "string", default: "short-next-receive" },
  },
});
if (args["warm-up"] !== "rate" && args["warm-up"] !== "max") throw new Error(`--warm-up is rate or max, not '${args["warm-up"]}'`);
const ackWith = ACK_WITH.find((a) => a === args["ack-with"]);
if (!ackWith) throw new Error(`--ack-with is one of ${ACK_WITH.join(", ")}, not '${args["ack-with"]}'`);
const stack = args.stack as "postgres-s3" | "embedded";
const env = Object.fromEntries(args.env.map((kv) => kv.split("=", 2) as [string, string]));
// --cpu-prof DIR: the server writes a V8 CPU profile there on exit (bench/lib/cpuprofile.ts reads it).
// --node-arg FLAG (repeatable): another flag for the server's Node (e.g. --perf-basic-prof for perf).
const nodeArgs = [...(args["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`] : []), ...args["node-arg"]];
const sut = guarded(
  reservoir({
    stack,
    env,
    root: args.root,
    nodeArgs,
    format: args.format as "batches" | "raw",
    produceFormat: args["produce-format"] as "batches" | "json",
    ackWith,
  }),
);
const rate = Number(args.rate);
const messages = Number(args.messages);
try {
  // In the order given (the first runs on the newest processes).
  for (const workload of workloadsNamed(args.workloads)) {
    const atRate = args["warm-up"] === "rate" ? { ratePerSec: rate, count: firstWarmUpAtRate(rate, messages) } : undefined;
    await warmUp(sut, workload, Math.min(messages, 10_000), atRate);
    if (args["max-rate-first"]) {
      const r = await measureRun(sut, workload, Number(args["max-rate-first"]));
      console.log(JSON.stringify({ stack, workload: workload.name, maxRatePublish: r.publish?.msgsPerSec, cpu: r.cpu?.seconds }));
    }
    for (let round_ = 1; round_ <= Number(args.rounds); round_++) {
      const fromUs = process.hrtime.bigint() / 1000n;
      const r = await measureRun(sut, workload, messages, rate);
      const windowUs = `${fromUs}-${process.hrtime.bigint() / 1000n}`;
      const put = r.produceOverhead?.putP50Ms ?? NaN;
      const commit = r.produceOverhead?.commitP50Ms ?? NaN;
      const bound = round(put + commit + 10 + 3);
      const produce = r.publish!.p50Ms;
      const e2e = r.endToEnd!.p50Ms!;
      console.log(
        JSON.stringify({
          stack,
          tree: args.root ?? "this",
          ackWith,
          workload: workload.name,
          round: round_,
          windowUs,
          produceP50: produce,
          produceP99: r.publish!.p99Ms,
          e2eP50: e2e,
          e2eP99: r.endToEnd!.p99Ms,
          putP50: put,
          putP99: r.produceOverhead?.putP99Ms,
          commitP50: commit,
          requestP50: r.produceOverhead?.requestP50Ms,
          serverWaitP50: r.produceOverhead?.serverWaitP50Ms,
          produceBound: bound,
          produceMet: produce <= bound,
          e2eBound: round(2 * produce),
          e2eMet: e2e <= 2 * produce,
          cpu: r.cpu?.seconds,
          serverThreads: r.cpu?.serverThreads,
          statementsPerMessage: r.cost?.statementsPerMessage,
          // Per flush commit: what a linger tick costs in statements, whatever the machine's speed
          // (a slower machine packs more messages into each flush and so fewer statements per message).
          statementsPerFlush:
            r.cost?.statementsPerMessage != null && r.cost.commitsPerMillion
              ? round((r.cost.statementsPerMessage * 1e6) / r.cost.commitsPerMillion)
              : null,
        }),
      );
    }
  }
} finally {
  await sut.close?.();
}
