import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { murmur2, partitionForKey, StickyPartitioner } from "../../storage/log/partitioner.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("partitioner", () => {
  it("murmur2 matches Kafka's Utils.murmur2 test vectors, so keys land where a Kafka producer puts them", () => {
    expect(murmur2(bytes("21"))).toBe(-973932308);
    expect(murmur2(bytes("foobar"))).toBe(-790332482);
    expect(murmur2(bytes("a-little-bit-long-string"))).toBe(-985981536);
    expect(murmur2(bytes("a-little-bit-longer-string"))).toBe(-1486304829);
    expect(murmur2(bytes("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"))).toBe(-58897971);
    expect(murmur2(bytes("abc"))).toBe(479470107);
  });

  it("maps a key to the same partition every time, within range", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 256 }), (key, n) => {
        const p = partitionForKey(key, n);
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThan(n);
        expect(partitionForKey(key, n)).toBe(p);
      }),
    );
  });

  it("spreads keys roughly evenly across partitions", () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionForKey(`user-${i}`, 16)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it("gives each keyless request one partition and rotates across requests", () => {
    const sticky = new StickyPartitioner();
    const seen = Array.from({ length: 8 }, () => sticky.forRequest("t", 4));
    expect(new Set(seen).size).toBe(4);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe((seen[i - 1] + 1) % 4);
  });
});
