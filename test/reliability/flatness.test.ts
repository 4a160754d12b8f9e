// The soak's "flat after warm-up" rule (./flatness.ts) passes noise and fails leaks.
import { describe, expect, it } from "vitest";
import { prng } from "../support/prng.ts";
import { judgeFlat, RULES } from "./flatness.ts";

const noisy = (n: number, level: number, spread: number, seed = 7) => {
  const rand = prng(seed);
  return Array.from({ length: n }, () => level + (rand() - 0.5) * spread);
};

describe("the soak's flatness rule", () => {
  it("passes a warm-up ramp followed by noise around a level", () => {
    const ramp = Array.from({ length: 36 }, (_, i) => 80 + i * 3); // 80 -> 185 MiB while warming up
    expect(judgeFlat([...ramp, ...noisy(144, 190, 20)], RULES.rssMiB).flat).toBe(true);
  });

  it("fails a steady leak (1 MiB per sample over 180 samples)", () => {
    const leak = Array.from({ length: 180 }, (_, i) => 150 + i);
    const verdict = judgeFlat(leak, RULES.rssMiB);
    expect(verdict.flat).toBe(false);
    expect(verdict.why).toMatch(/late median/);
  });

  it("fails descriptors that keep growing by one every few samples, passes a constant count", () => {
    expect(
      judgeFlat(
        Array.from({ length: 100 }, (_, i) => 40 + Math.floor(i / 5)),
        RULES.fds,
      ).flat,
    ).toBe(false);
    expect(
      judgeFlat(
        Array.from({ length: 100 }, (_, i) => 40 + (i % 3)),
        RULES.fds,
      ).flat,
    ).toBe(true);
  });

  it("refuses to judge too few samples", () => {
    expect(judgeFlat([1, 2, 3], RULES.fds)).toMatchObject({ flat: false, why: expect.stringMatching(/only/) });
  });
});
