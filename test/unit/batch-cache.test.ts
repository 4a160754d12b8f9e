// The read cache's bound (storage/log/batch-cache.ts; docs/reliability.md, anomaly 6): it counts
// what a decoded batch holds, not only its encoded bytes, and never holds more than its bound.
import { describe, expect, it } from "vitest";
import { BatchCache, DECODED_HEADER_BYTES, DECODED_RECORD_BYTES } from "../../storage/log/batch-cache.ts";
import type { SegmentRecord } from "../../storage/segment/codec.ts";

/** `n` records of `valueBytes` each, as a decoded batch is. */
function records(n: number, valueBytes: number, headers?: Record<string, string>): SegmentRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `k${i % 20}`,
    value: new Uint8Array(valueBytes),
    binary: false,
    timestamp: 1_700_000_000_000 + i,
    ...(headers ? { headers } : {}),
  }));
}

describe("BatchCache", () => {
  it("counts an undecoded batch by its bytes, and the same batch decoded by its bytes and records", () => {
    const cache = new BatchCache(10 * 1024 * 1024);
    cache.set("a", () => records(100, 300), 32_000);
    expect(cache.bytes).toBe(32_000);
    expect(cache.get("a")).toHaveLength(100);
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES);
    cache.set("b", records(10, 10, { h1: "x", h2: "y" }), 500);
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES + 500 + 10 * (DECODED_RECORD_BYTES + 2 * DECODED_HEADER_BYTES));
    // Replacing an entry counts the new one only.
    cache.set("b", () => records(10, 10), 500);
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES + 500);
  });

  it("stays within its bound when the batches it holds are decoded, dropping the least recently used", () => {
    // The soak's mix: small records, whose decoded form holds about twice their encoded bytes.
    // Encoded, these 200 batches (6.4 MB) fit the 8 MiB bound; decoded (13.4 MB) they do not.
    const max = 8 * 1024 * 1024;
    const cache = new BatchCache(max);
    const batches = 200;
    // As the batcher adds each flush and a consumer that keeps up reads it.
    for (let b = 0; b < batches; b++) {
      cache.set(`s${b}`, () => records(100, 300), 32_000);
      expect(cache.get(`s${b}`)).toHaveLength(100);
      expect(cache.bytes).toBeLessThanOrEqual(max);
    }
    const perDecoded = 32_000 + 100 * DECODED_RECORD_BYTES;
    expect(cache.size).toBe(Math.floor(max / perDecoded));
    expect(cache.bytes).toBe(cache.size * perDecoded);
    // The most recently read stayed, the first read went.
    expect(cache.get(`s${batches - 1}`)).toBeDefined();
    expect(cache.get("s0")).toBeUndefined();
  });

  it("drops a batch that alone exceeds the bound once decoded, after returning its records", () => {
    const cache = new BatchCache(1024 * 1024);
    // 4,000 records of 10 bytes: 64 KB encoded, 1.46 MB decoded.
    cache.set("big", () => records(4_000, 10), 64_000);
    cache.set("small", () => records(1, 10), 100);
    expect(cache.get("big")).toHaveLength(4_000);
    expect(cache.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(cache.get("big")).toBeUndefined();
    // Decoded records handed to set() are counted before they are kept: too big, not kept.
    cache.set("big2", records(4_000, 10), 64_000);
    expect(cache.get("big2")).toBeUndefined();
    expect(cache.bytes).toBeLessThanOrEqual(1024 * 1024);
  });

  it("holds nothing with a bound of 0 (RESERVOIR_READ_CACHE_BYTES=0)", () => {
    const cache = new BatchCache(0);
    cache.set("a", () => records(1, 10), 100);
    cache.set("b", records(1, 10), 100);
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });
});
