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

export async function warmUp(sut: SystemUnderTest, workload: Workload, count: number): Promise<void> {
  await sut.setup(workload);
  try {
    const published = await sut.publish(count, payloadFor(workload.messageBytes));
    if (published.acked !== count) throw new Error(`warm-up: ${published.acked} of ${count} published`);
    await sut.consume(count);
  } finally {
    await sut.teardown();
  }
}
