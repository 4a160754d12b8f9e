/**
 * Retries with exponential backoff and full jitter (AWS's "full jitter": a delay drawn below
 * min(maxDelay, base × 2^attempt)), never shorter than what a Retry-After asked for. Only
 * retryable errors (ReservoirError.retryable) are retried.
 */
import { ReservoirError } from "./errors.ts";

export interface RetryPolicy {
  /** Attempts after the first (default 5). */
  retries?: number;
  /** Base delay in ms (default 100). */
  baseDelayMs?: number;
  /** Cap of a delay in ms (default 10,000). */
  maxDelayMs?: number;
  /** Random source in [0, 1) (default Math.random): tests pass a fixed one. */
  random?: () => number;
}

/** The delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, policy: RetryPolicy = {}, retryAfterMs?: number): number {
  const base = policy.baseDelayMs ?? 100;
  const cap = policy.maxDelayMs ?? 10_000;
  const jittered = Math.floor((policy.random ?? Math.random)() * Math.min(cap, base * 2 ** attempt));
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Runs `fn` until it succeeds, fails with a non-retryable error, or the retries run out. */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy = {},
  opts: { signal?: AbortSignal; onRetry?: (error: ReservoirError, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  const retries = policy.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (!(error instanceof ReservoirError) || !error.retryable || attempt >= retries || opts.signal?.aborted) throw error;
      const delay = backoffDelay(attempt, policy, error.retryAfterMs);
      opts.onRetry?.(error, attempt, delay);
      await sleep(delay, opts.signal);
    }
  }
}
