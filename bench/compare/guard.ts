/**
 * A system under test whose every call is bounded (issue 19): setup, teardown, cost and close
 * must answer within CALL_TIMEOUT_MS; publish and consume must make progress (an ack, a
 * message) at least that often. A system that stops answering then fails its run loudly,
 * naming the call and how far it got, and the benchmark goes on with the next run, instead of
 * waiting forever. (Reservoir's HTTP calls also carry their own timeout: bench/lib/http-json.ts.)
 */
import { CALL_TIMEOUT_MS, CallTimeout, withTimeout } from "../lib/timeout.ts";
import type { SystemUnderTest } from "./system.ts";

/**
 * Rejects with a CallTimeout once `ms` pass without a call of the returned `progress` (which
 * only counts: it runs per message, so it reads no clock).
 */
function stallWatch(what: () => string, ms: number): { progress(): void; stalled: Promise<never>; stop(): void } {
  let count = 0;
  let seen = 0;
  let since = performance.now();
  let timer: ReturnType<typeof setInterval> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(
      () => {
        const now = performance.now();
        if (count !== seen) [seen, since] = [count, now];
        else if (now - since > ms) reject(new CallTimeout(what(), ms));
      },
      Math.min(1000, ms / 4),
    );
    timer.unref?.();
  });
  stalled.catch(() => {});
  return { progress: () => void count++, stalled, stop: () => clearInterval(timer) };
}

export function guarded(sut: SystemUnderTest, ms = CALL_TIMEOUT_MS): SystemUnderTest {
  const bounded = <T>(call: string, work: () => Promise<T>) => withTimeout(`${sut.name} ${call}`, work(), ms);
  return {
    name: sut.name,
    settings: sut.settings,
    setup: (workload) => bounded(`setup(${workload.name})`, () => sut.setup(workload)),
    async publish(count, payload, options = {}) {
      let acked = 0;
      const watch = stallWatch(() => `${sut.name} publish: no acknowledgement (${acked} of ${count} acked)`, ms);
      const onAck = (i: number) => {
        acked++;
        watch.progress();
        options.onAck?.(i);
      };
      try {
        return await Promise.race([sut.publish(count, payload, { ...options, onAck }), watch.stalled]);
      } finally {
        watch.stop();
      }
    },
    async consume(count, onMessage) {
      let received = 0;
      const watch = stallWatch(() => `${sut.name} consume: no message (${received} of ${count} received)`, ms);
      try {
        await Promise.race([
          sut.consume(count, (payload) => {
            received++;
            watch.progress();
            onMessage?.(payload);
          }),
          watch.stalled,
        ]);
      } finally {
        watch.stop();
      }
    },
    cost: sut.cost && (() => bounded("cost", () => sut.cost!())),
    serverLatency: sut.serverLatency && (() => bounded("serverLatency", () => sut.serverLatency!())),
    serverPid: sut.serverPid && (() => sut.serverPid!()),
    teardown: () => bounded("teardown", () => sut.teardown()),
    close: sut.close && (() => bounded("close", () => sut.close!())),
  };
}
