import { performance } from "node:perf_hooks";

/**
 * Runs `op(i)` for i in [0, count) with `window` calls in flight, and reports the process's CPU
 * and event-loop time per call (µs) and calls per second.
 */
export async function measureOps(
  op: (i: number) => Promise<unknown>,
  count: number,
  window: number,
): Promise<{ cpuUs: number; loopUs: number; perSecond: number }> {
  let next = 0;
  const cpu = process.cpuUsage();
  const loop = performance.eventLoopUtilization();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < count) await op(next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const busy = performance.eventLoopUtilization(loop).active * 1000;
  return { cpuUs: (used.user + used.system) / count, loopUs: busy / count, perSecond: count / seconds };
}
