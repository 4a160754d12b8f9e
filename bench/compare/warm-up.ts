/**
 * An untimed publish + consume before a system's measured max-rate run of a workload, on a setup
 * of its own (then torn down): the client's JIT, the server's JIT, its first connections and its
 * caches are then warm for every system and workload alike, instead of being charged to
 * whichever run comes first.
 */
import { payloadFor } from "./payload.ts";
import type { SystemUnderTest, Workload } from "./system.ts";

/** Messages to warm up with before a max-rate run of `messages`. */
export const warmUpCount = (messages: number) => Math.min(20_000, Math.max(1, Math.floor(messages / 10)));

/**
 * Before a system's first workload its processes (and this client's code for it) are new: 20,000
 * messages were less than one publish window of Reservoir's (32 requests of 1,000), and the
 * workload measured first ran on code still warming, whichever it was (docs/benchmarks.md,
 * "Produce: 16 partitions against 1"). The first workload of each system warms up 5× longer,
 * which narrows that penalty without removing it: compare workloads in both orders.
 */
export const firstWarmUpCount = (messages: number) => Math.min(messages, 5 * warmUpCount(messages));

/** Messages of the first workload's warm-up at the fixed rate: 5 seconds' worth, at most the fixed-rate run's. */
export const firstWarmUpAtRate = (ratePerSec: number, fixedRateMessages: number) =>
  Math.max(1, Math.min(fixedRateMessages, Math.round(5 * ratePerSec)));

/**
 * `atRate`: then as many messages again at this rate, consumed as they come, as a fixed-rate run
 * does. A max-rate warm-up of N messages makes few requests (Reservoir's: N / 1,000), and code
 * that runs once per request stays in V8's lower tiers: the first workload measured after it was
 * 15–20% slower than the same workload measured second, after a fixed-rate run, in either order
 * (docs/benchmarks.md, "Session 20").
 */
export async function warmUp(
  sut: SystemUnderTest,
  workload: Workload,
  count: number,
  atRate?: { ratePerSec: number; count: number },
): Promise<void> {
  await sut.setup(workload);
  try {
    const payload = payloadFor(workload.messageBytes);
    const published = await sut.publish(count, payload);
    if (published.acked !== count) throw new Error(`warm-up: ${published.acked} of ${count} published`);
    await sut.consume(count);
  } finally {
    await sut.teardown();
  }
  if (!atRate) return;
  await sut.setup(workload);
  try {
    const consuming = sut.consume(atRate.count);
    const published = await sut.publish(atRate.count, payloadFor(workload.messageBytes), { ratePerSec: atRate.ratePerSec });
    if (published.acked !== atRate.count) throw new Error(`warm-up at a rate: ${published.acked} of ${atRate.count} published`);
    await consuming;
  } finally {
    await sut.teardown();
  }
}
