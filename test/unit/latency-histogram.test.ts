import { describe, expect, it } from "vitest";
import { histogramDelta, histogramPercentile, LatencyHistogram } from "../../storage/log/latency-histogram.ts";

describe("latency histogram", () => {
  it("reads percentiles back within one bucket (10%)", () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    const s = h.snapshot();
    expect(s.count).toBe(1000);
    expect(s.sumMs).toBe(500500);
    for (const [p, truth] of [
      [50, 500],
      [99, 990],
      [99.9, 999],
    ] as const) {
      const got = histogramPercentile(s, p)!;
      expect(Math.abs(got - truth) / truth).toBeLessThan(0.1);
    }
  });

  it("describes only the interval between two snapshots", () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 100; i++) h.record(1000);
    const before = h.snapshot();
    for (let i = 0; i < 100; i++) h.record(2);
    const delta = histogramDelta(before, h.snapshot());
    expect(delta.count).toBe(100);
    expect(histogramPercentile(delta, 99)!).toBeLessThan(2.2);
    expect(histogramPercentile(delta, 99)!).toBeGreaterThan(1.8);
  });

  it("puts zero, tiny and huge samples in the end buckets", () => {
    const h = new LatencyHistogram();
    h.record(0);
    h.record(1e9);
    const s = h.snapshot();
    expect(s.counts[0]).toBe(1);
    expect(s.counts[s.counts.length - 1]).toBe(1);
    expect(s.boundsMs[s.boundsMs.length - 1]).toBeNull();
    expect(histogramPercentile(s, 100)).toBe(s.boundsMs[s.boundsMs.length - 2]);
    expect(histogramPercentile(new LatencyHistogram().snapshot(), 50)).toBeNull();
  });
});
