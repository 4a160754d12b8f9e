/**
 * When a failed attempt is retried (docs/webhooks.md, "Outcome of an attempt"): full jitter
 * below min(max, initial × 2^(attempt−1)), raised by a Retry-After on 429 and 503.
 */

/** The most a Retry-After may hold a message back. */
const RETRY_AFTER_CAP_MS = 24 * 3600 * 1000;

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export function retryDelayMs(backoff: Backoff, failedAttempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failedAttempt - 1, 40));
  return Math.floor(random() * ceiling);
}

/** A Retry-After value (delta seconds or an HTTP date) in ms from `now`, capped; null if unusable. */
export function retryAfterMs(value: string | null, now: number): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  // An HTTP date names its day and month; Date.parse alone would take "-5" for a year.
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : /[A-Za-z]{3}/.test(trimmed) ? Date.parse(trimmed) - now : NaN;
  if (!Number.isFinite(ms)) return null;
  return Math.min(Math.max(0, ms), RETRY_AFTER_CAP_MS);
}
