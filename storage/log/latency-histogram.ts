/**
 * A cumulative latency histogram with log-spaced buckets, as Prometheus keeps them: counts only
 * grow, so a reader takes two snapshots and the difference describes exactly the interval
 * between them (a benchmark phase), which a sliding window of samples cannot.
 *
 * Bucket i holds samples in (bounds[i-1], bounds[i]] ms; the last bound is +Infinity (as null in
 * JSON). Bounds grow by 10%, so a percentile read back is within 10% of the true value.
 */

const FIRST_BOUND_MS = 0.05;
const GROWTH = 1.1;
const BUCKETS = 160; // up to about 0.05 × 1.1^158 ≈ 180 s, then +Infinity

export const latencyBoundsMs: readonly number[] = Array.from({ length: BUCKETS }, (_, i) =>
  i === BUCKETS - 1 ? Infinity : Number((FIRST_BOUND_MS * GROWTH ** i).toPrecision(4)),
);

export interface HistogramSnapshot {
  /** Upper bounds in ms; the last is null (+Infinity). */
  boundsMs: (number | null)[];
  counts: number[];
  count: number;
  sumMs: number;
}

export class LatencyHistogram {
  private readonly counts = new Array<number>(BUCKETS).fill(0);
  private count = 0;
  private sumMs = 0;

  record(ms: number): void {
    let lo = 0;
    let hi = BUCKETS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ms <= latencyBoundsMs[mid]) hi = mid;
      else lo = mid + 1;
    }
    this.counts[lo]++;
    this.count++;
    this.sumMs += ms;
  }

  snapshot(): HistogramSnapshot {
    return {
      boundsMs: latencyBoundsMs.map((b) => (Number.isFinite(b) ? b : null)),
      counts: this.counts.slice(),
      count: this.count,
      sumMs: Number(this.sumMs.toFixed(3)),
    };
  }
}

/** What was recorded between two snapshots of the same histogram. */
export function histogramDelta(before: HistogramSnapshot, after: HistogramSnapshot): HistogramSnapshot {
  return {
    boundsMs: after.boundsMs,
    counts: after.counts.map((c, i) => c - (before.counts[i] ?? 0)),
    count: after.count - before.count,
    sumMs: after.sumMs - before.sumMs,
  };
}

/**
 * The p-th percentile (0 < p ≤ 100), interpolated linearly inside its bucket; null when empty.
 * A percentile in the last (unbounded) bucket is reported as that bucket's lower bound.
 */
export function histogramPercentile(h: HistogramSnapshot, p: number): number | null {
  if (h.count <= 0) return null;
  const rank = (p / 100) * h.count;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i];
    if (c > 0 && seen + c >= rank) {
      const lower = i === 0 ? 0 : (h.boundsMs[i - 1] ?? 0);
      const upper = h.boundsMs[i];
      if (upper === null) return lower;
      return lower + ((upper - lower) * Math.max(0, rank - seen)) / c;
    }
    seen += c;
  }
  return h.boundsMs[h.boundsMs.length - 2];
}
