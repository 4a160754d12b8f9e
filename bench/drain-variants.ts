/**
 * Same-run comparison of Reservoir consumer settings on the compare bench's backlog drain
 * (bench/compare/backlog.ts: publish a backlog, then drain it with the harness's consumer; CPU
 * counted over the drain alone), variants alternating round by round:
 *
 *   node --import tsx bench/drain-variants.ts --stack postgres-s3 --mib 200 --rounds 2 \
 *     --variant 'own={"ackWith":"own-call"}' --variant 'next={"ackWith":"next-receive"}'
 *
 * A variant is `name=JSON` of ReservoirOptions (consumers, ackWith, env, root). Each variant runs
 * on a server of its own, started once. Prints one JSON line per run: msgs/s and CPU µs/msg per
 * process. `--max-rate 16p-100B --messages 200000` runs the compare bench's max-rate mode of
 * that workload instead (publish, then consume: msgs/s of the consume; CPU of both), after a
 * warm-up per variant. `--publish 1p-1KiB` times the max-rate publish alone (msgs/s and CPU of
 * the publish; each round's messages are drained untimed afterwards, so topics stay small),
 * with the server's pid and the publish's window in monotonic µs (for bench/lib/gc-trace.cjs).
 * A drain prints its window too (`drainWindowUs`), for a server profile's part of it
 * (`--variant 'p={"nodeArgs":["--cpu-prof","--cpu-prof-dir=DIR"]}'`, bench/lib/cpuprofile.ts).
 */
import { parseArgs } from "node:util";
import { backlogDrain } from "./compare/backlog.ts";
import { markPhase } from "./lib/phase-mark.ts";
import { measureRun } from "./compare/measure.ts";
import { warmUp } from "./compare/warm-up.ts";
import { workloadsNamed } from "./compare/workloads.ts";
import { guarded } from "./compare/guard.ts";
import { cpuMicrosPerMessage, measureCpu } from "./compare/cpu.ts";
import { payloadFor } from "./compare/payload.ts";
import type { SystemUnderTest, Workload } from "./compare/system.ts";
import { reservoir, type ReservoirOptions } from "./compare/systems/reservoir.ts";

const { values: args } = parseArgs({
  options: {
    stack: { type: "string", default: "postgres-s3" },
    mib: { type: "string", default: "200" },
    rounds: { type: "string", default: "2" },
    variant: { type: "string", multiple: true, default: [] },
    "max-rate": { type: "string" },
    publish: { type: "string" },
    messages: { type: "string", default: "200000" },
  },
});
const stack = args.stack as "postgres-s3" | "embedded";
const variants = args.variant.map((v) => {
  const at = v.indexOf("=");
  const options = JSON.parse(v.slice(at + 1)) as Partial<ReservoirOptions>;
  return { name: v.slice(0, at), sut: guarded(reservoir({ stack, ...options })) };
});
if (variants.length === 0) throw new Error("give at least one --variant name=JSON");
const maxRate = args["max-rate"] ? workloadsNamed(args["max-rate"])[0] : undefined;
const publishOnly = args.publish ? workloadsNamed(args.publish)[0] : undefined;
const messages = Number(args.messages);
try {
  const warm = maxRate ?? publishOnly;
  if (warm) for (const { sut } of variants) await warmUp(sut, warm, messages);
  for (let round = 1; round <= Number(args.rounds); round++) {
    // Alternating order: the first variant of one round is the last of the next.
    const order = round % 2 === 1 ? variants : [...variants].reverse();
    for (const { name, sut } of order) {
      if (publishOnly) {
        console.log(JSON.stringify({ variant: name, round, ...(await timedPublish(sut, publishOnly, messages)) }));
        continue;
      }
      const r = maxRate ? await measureRun(sut, maxRate, messages) : await backlogDrain(sut, Number(args.mib));
      // The drain's window in monotonic µs, for bench/lib/cpuprofile.ts --from --to (its end
      // overshoots by the cost query after the drain: a few milliseconds).
      const endUs = process.hrtime.bigint() / 1000n;
      const drainWindowUs = r.drain ? `${endUs - BigInt(Math.round(r.drain.seconds * 1e6))}-${endUs}` : undefined;
      const perMsg = microsPerMessage(r.cpu?.seconds ?? {}, r.messages);
      console.log(
        JSON.stringify({
          variant: name,
          round,
          msgsPerSec: r.consume?.msgsPerSec,
          ...(r.publish && { publishMsgsPerSec: r.publish.msgsPerSec }),
          cpuMicrosPerMessage: r.cpuMicrosPerMessage,
          perMsg,
          cost: r.cost,
          ...(drainWindowUs && { drainWindowUs }),
        }),
      );
    }
  }
} finally {
  for (const { sut } of variants) await sut.close?.();
}

/** The max-rate publish of `messages` alone: msgs/s, and CPU µs per message per process. */
async function timedPublish(sut: SystemUnderTest, workload: Workload, messages: number) {
  await sut.setup(workload);
  try {
    const cpuDone = measureCpu(sut);
    markPhase("BENCH_PUBLISH_MARK", sut.serverPid?.());
    const t0 = performance.now();
    const startUs = process.hrtime.bigint() / 1000n;
    await sut.publish(messages, payloadFor(workload.messageBytes));
    const seconds = (performance.now() - t0) / 1000;
    // The publish in monotonic microseconds, to place a server's traces in it (bench/lib/gc-trace.cjs).
    const publishWindowUs = [Number(startUs), Number(process.hrtime.bigint() / 1000n)];
    const cpu = cpuDone();
    await sut.consume(messages);
    return {
      publishMsgsPerSec: Math.round(messages / seconds),
      cpuMicrosPerMessage: cpuMicrosPerMessage(cpu, messages),
      perMsg: microsPerMessage(cpu.seconds, messages),
      serverThreads: cpu.serverThreads,
      serverPid: sut.serverPid?.(),
      publishWindowUs,
    };
  } finally {
    await sut.teardown();
  }
}

/** CPU µs per message of each process, to a tenth. */
function microsPerMessage(seconds: Record<string, number>, messages: number): Record<string, number> {
  return Object.fromEntries(Object.entries(seconds).map(([p, s]) => [p, Math.round((s * 1e7) / messages) / 10]));
}
