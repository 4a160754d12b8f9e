/**
 * One measured run of a system on a workload. Max rate: publish N messages as fast as the system
 * takes them, then consume and acknowledge them all. Fixed rate: publish on a schedule while a
 * consumer runs; end-to-end latency is a message's arrival minus its scheduled send time, and
 * publish latency counts from the schedule too (a stall is charged in full). Every message
 * received is checked (payload.ts), and the run fails if one is missing.
 */
import { cpuMicrosPerMessage, measureCpu } from "./cpu.ts";
import { payloadFor, ReceivedCheck } from "./payload.ts";
import { produceOverhead } from "./produce-overhead.ts";
import { costFigures, publishFigures, round, type RunResult } from "./result.ts";
import { percentile } from "../lib/load.ts";
import { markPhase } from "../lib/phase-mark.ts";
import { Unavailable, type SystemUnderTest, type Workload } from "./system.ts";

type RunBase = Pick<RunResult, "system" | "workload" | "mode" | "ratePerSec" | "messageBytes" | "partitions" | "messages">;

/** Sets up `workload`, runs `measure`, tears down; a system whose service is not there is recorded as skipped. */
export async function withSetup(
  sut: SystemUnderTest,
  workload: Workload,
  base: RunBase,
  measure: () => Promise<RunResult>,
): Promise<RunResult> {
  try {
    await sut.setup(workload);
  } catch (error) {
    if (error instanceof Unavailable) return { ...base, skipped: error.message };
    throw error;
  }
  try {
    return await measure();
  } finally {
    await sut.teardown();
  }
}

export async function measureRun(sut: SystemUnderTest, workload: Workload, messages: number, ratePerSec?: number): Promise<RunResult> {
  const mode = ratePerSec ? ("fixed-rate" as const) : ("max-rate" as const);
  const base: RunBase = {
    system: sut.name,
    workload: workload.name,
    mode,
    ...(ratePerSec && { ratePerSec }),
    messageBytes: workload.messageBytes,
    partitions: workload.partitions,
    messages,
  };
  return withSetup(sut, workload, base, async () => {
    const payload = payloadFor(workload.messageBytes);
    const check = new ReceivedCheck(messages, workload.messageBytes);
    const costBefore = (await sut.cost?.()) ?? {};
    const latencyBefore = await sut.serverLatency?.();
    const cpuDone = measureCpu(sut);
    const endToEnd: number[] = [];
    let t0 = performance.now();
    let lastArrival = 0;
    // At a fixed rate the consumer runs meanwhile; at max rate it drains afterwards.
    const consume = () =>
      sut.consume(messages, (received) => {
        lastArrival = performance.now();
        const i = check.take(received);
        if (ratePerSec && i >= 0) endToEnd.push(lastArrival - (t0 + (i * 1000) / ratePerSec));
      });
    const consuming = ratePerSec ? consume() : null;
    t0 = performance.now();
    const published = await sut.publish(messages, payload, ratePerSec ? { ratePerSec } : {});
    const publishSeconds = (performance.now() - t0) / 1000;
    if (published.acked !== messages) throw new Error(`${sut.name}: ${published.acked} of ${messages} published`);
    const t1 = performance.now();
    // The server's pid and the harness's, once a max-rate consume starts.
    if (!ratePerSec) markPhase("BENCH_CONSUME_MARK", sut.serverPid?.(), process.pid);
    await (consuming ?? consume());
    const consumeSeconds = ((ratePerSec ? lastArrival - t0 : performance.now() - t1) || 1) / 1000;
    const cpu = cpuDone();
    check.assertComplete();
    const costAfter = (await sut.cost?.()) ?? {};
    const latencyAfter = await sut.serverLatency?.();
    const e2e = endToEnd.sort((a, b) => a - b);
    return {
      ...base,
      publish: publishFigures(messages, workload.messageBytes, publishSeconds, published.latenciesMs),
      endToEnd: ratePerSec ? { p50Ms: round(percentile(e2e, 50)), p99Ms: round(percentile(e2e, 99)) } : { p50Ms: null, p99Ms: null },
      consume: { msgsPerSec: Math.round(messages / consumeSeconds) },
      cost: costFigures(costBefore, costAfter, messages),
      ...(latencyBefore &&
        latencyAfter && { produceOverhead: produceOverhead(latencyBefore, latencyAfter, published.requestLatenciesMs ?? []) }),
      cpu,
      cpuMicrosPerMessage: cpuMicrosPerMessage(cpu, messages),
      settings: sut.settings,
    };
  });
}
