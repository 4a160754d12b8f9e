// The retry schedule of docs/webhooks.md: full jitter below min(max, initial × 2^(attempt−1)),
// and Retry-After (delta seconds or an HTTP date) capped at a day.
import { describe, expect, it } from "vitest";
import { retryAfterMs, retryDelayMs } from "../../functions/push/backoff.ts";

const defaults = { initialMs: 5_000, maxMs: 3_600_000 };

describe("retry delays", () => {
  it("stay below the doubling ceiling, capped at maxSeconds", () => {
    const ceilings = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600].map((s) => s * 1000);
    ceilings.forEach((ceiling, i) => {
      expect(retryDelayMs(defaults, i + 1, () => 0.999999)).toBeLessThan(ceiling);
      expect(retryDelayMs(defaults, i + 1, () => 0.999999)).toBeGreaterThan(ceiling * 0.99);
      expect(retryDelayMs(defaults, i + 1, () => 0)).toBe(0);
    });
  });

  it("are drawn uniformly (full jitter)", () => {
    expect(retryDelayMs(defaults, 3, () => 0.5)).toBe(10_000);
    expect(retryDelayMs(defaults, 1, () => 0.25)).toBe(1_250);
  });

  it("do not overflow for absurd attempt numbers", () => {
    expect(retryDelayMs(defaults, 10_000, () => 0.5)).toBe(1_800_000);
  });
});

describe("Retry-After", () => {
  const now = Date.parse("2026-11-23T10:00:00Z");
  it("reads delta seconds", () => {
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs(" 0 ", now)).toBe(0);
  });
  it("reads an HTTP date", () => {
    expect(retryAfterMs("Mon, 23 Nov 2026 10:01:30 GMT", now)).toBe(90_000);
    expect(retryAfterMs("Mon, 23 Nov 2026 09:00:00 GMT", now)).toBe(0);
  });
  it("caps at a day and ignores what it cannot read", () => {
    expect(retryAfterMs("999999999", now)).toBe(24 * 3600 * 1000);
    expect(retryAfterMs("soon", now)).toBeNull();
    expect(retryAfterMs("-5", now)).toBeNull();
    expect(retryAfterMs(null, now)).toBeNull();
  });
});
