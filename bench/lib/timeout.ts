/**
 * Every call a benchmark makes gets a bound: a server or broker that stops answering fails the
 * run loudly, naming the call that hung, instead of leaving the benchmark waiting forever.
 */

/**
 * Default bound of one call (a long poll adds its own wait to it): longer than Reservoir's own
 * request deadline (65 s), so that a server stuck in a handler answers its 503 (and logs where it
 * waited) first. BENCH_CALL_TIMEOUT_MS overrides it.
 */
export const CALL_TIMEOUT_MS = Number(process.env.BENCH_CALL_TIMEOUT_MS ?? 90_000);

export class CallTimeout extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: no answer within ${ms / 1000} s (the call hung)`);
    this.name = "CallTimeout";
  }
}

/**
 * `work`, or a CallTimeout naming `what` after `ms`. `onTimeout` frees what the call holds (a
 * socket, a subscription); the timer never keeps the process alive.
 */
export function withTimeout<T>(what: string, work: Promise<T>, ms = CALL_TIMEOUT_MS, onTimeout?: (error: CallTimeout) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new CallTimeout(what, ms);
      onTimeout?.(error);
      reject(error);
    }, ms);
    timer.unref?.();
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
