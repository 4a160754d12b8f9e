/**
 * The backlog drain (full run only): a 1 GiB backlog (by default) of 1 KiB messages on a topic of
 * 16 partitions, published beforehand at max rate with no consumer running, then drained by the
 * system's consumer (receive and acknowledge every message). The drain rate is what a consumer
 * that fell behind, or was down, gets back to work at; the publish figures are those of filling
 * the backlog. CPU is counted over the drain alone.
 */
import { markPhase } from "../lib/phase-mark.ts";
import { cpuMicrosPerMessage, measureCpu } from "./cpu.ts";
import { withSetup } from "./measure.ts";
import { payloadFor, ReceivedCheck } from "./payload.ts";
import { costFigures, publishFigures, round, type RunResult } from "./result.ts";
import type { SystemUnderTest, Workload } from "./system.ts";

export const BACKLOG_WORKLOAD: Workload = { name: "16p-1KiB", partitions: 16, messageBytes: 1024 };

export async function backlogDrain(sut: SystemUnderTest, backlogMiB: number): Promise<RunResult> {
  const workload = BACKLOG_WORKLOAD;
  const messages = Math.max(1, Math.round((backlogMiB * 1024 * 1024) / workload.messageBytes));
  const base = {
    system: sut.name,
    workload: workload.name,
    mode: "backlog-drain" as const,
    messageBytes: workload.messageBytes,
    partitions: workload.partitions,
    messages,
  };
  return withSetup(sut, workload, base, async () => {
    const costBefore = (await sut.cost?.()) ?? {};
    const t0 = performance.now();
    const published = await sut.publish(messages, payloadFor(workload.messageBytes));
    const publishSeconds = (performance.now() - t0) / 1000;
    if (published.acked !== messages) throw new Error(`${sut.name}: ${published.acked} of ${messages} published`);
    const check = new ReceivedCheck(messages, workload.messageBytes);
    const cpuDone = measureCpu(sut);
    markPhase("BENCH_DRAIN_MARK", sut.serverPid?.());
    const t1 = performance.now();
    await sut.consume(messages, (received) => void check.take(received));
    const seconds = (performance.now() - t1) / 1000;
    const cpu = cpuDone();
    check.assertComplete();
    const costAfter = (await sut.cost?.()) ?? {};
    const msgsPerSec = Math.round(messages / seconds);
    return {
      ...base,
      publish: publishFigures(messages, workload.messageBytes, publishSeconds, published.latenciesMs),
      endToEnd: { p50Ms: null, p99Ms: null },
      consume: { msgsPerSec },
      drain: {
        backlogMiB: round((messages * workload.messageBytes) / 2 ** 20),
        messages,
        // To the millisecond: a tiny backlog on a fast system drains in under 5 ms (0.00 s at two decimals).
        seconds: round(seconds, 3),
        msgsPerSec,
        mibPerSec: round((messages * workload.messageBytes) / seconds / 2 ** 20),
      },
      cost: costFigures(costBefore, costAfter, messages),
      cpu,
      cpuMicrosPerMessage: cpuMicrosPerMessage(cpu, messages),
      settings: sut.settings,
    };
  });
}
