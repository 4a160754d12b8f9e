// The read cache's bound (storage/log/batch-cache.ts; docs/reliability.md, anomaly 6): it counts
// what a decoded range holds, not only its encoded bytes, and never holds more than its bound;
// a whole segment is one entry whose ranges are views; concurrent loads of one key share one.
import { describe, expect, it } from "vitest";
import { BatchCache, DECODED_HEADER_BYTES, DECODED_RECORD_BYTES, type ReadScope } from "../../storage/log/batch-cache.ts";
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

const bytes = (n: number) => new Uint8Array(n);

describe("BatchCache", () => {
  it("counts an undecoded range by its bytes, and the same range decoded by its bytes and records", () => {
    const cache = new BatchCache(10 * 1024 * 1024);
    cache.setRange("a", 0, bytes(32_000), () => records(100, 300));
    expect(cache.bytes).toBe(32_000);
    expect(cache.get("a", 0, 32_000)).toHaveLength(100);
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES);
    cache.setRange("b", 0, bytes(500), () => records(10, 10, { h1: "x", h2: "y" }));
    cache.get("b", 0, 500);
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES + 500 + 10 * (DECODED_RECORD_BYTES + 2 * DECODED_HEADER_BYTES));
    // Replacing an entry counts the new one only.
    cache.setRange("b", 0, bytes(500), () => records(10, 10));
    expect(cache.bytes).toBe(32_000 + 100 * DECODED_RECORD_BYTES + 500);
  });

  it("keeps a whole segment as one entry: its ranges are views, each counted once decoded", () => {
    const cache = new BatchCache(10 * 1024 * 1024);
    const segment = bytes(50_000);
    const decoded: number[] = [];
    cache.setSegment("seg", segment, (encoded, offset) => {
      decoded.push(offset);
      return records(encoded.byteLength / 1000, 10);
    });
    const range = cache.getEncoded("seg", 8, 20_000)!;
    expect(range.buffer).toBe(segment.buffer);
    expect([range.byteOffset, range.byteLength]).toEqual([8, 20_000]);
    expect(cache.get("seg", 8, 20_000)).toHaveLength(20);
    expect(cache.get("seg", 8, 20_000)).toHaveLength(20);
    expect(cache.get("seg", 20_008, 10_000)).toHaveLength(10);
    expect(decoded).toEqual([8, 20_008]);
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(50_000 + 30 * DECODED_RECORD_BYTES);
    // A range past the segment's end is not in it; the same GET's bytes set again keep what is decoded.
    expect(cache.getEncoded("seg", 40_000, 20_000)).toBeUndefined();
    cache.setSegment("seg", segment, () => records(1, 1));
    expect(cache.bytes).toBe(50_000 + 30 * DECODED_RECORD_BYTES);
  });

  it("stays within its bound when the ranges it holds are decoded, dropping the least recently used", () => {
    // The soak's mix: small records, whose decoded form holds about twice their encoded bytes.
    // Encoded, these 200 batches (6.4 MB) fit the 8 MiB bound; decoded (13.4 MB) they do not.
    const max = 8 * 1024 * 1024;
    const cache = new BatchCache(max);
    const batches = 200;
    // As the batcher adds each flush and a consumer that keeps up reads it.
    for (let b = 0; b < batches; b++) {
      cache.setSegment(`s${b}`, bytes(32_000), () => records(100, 300));
      expect(cache.get(`s${b}`, 0, 32_000)).toHaveLength(100);
      expect(cache.bytes).toBeLessThanOrEqual(max);
    }
    const perDecoded = 32_000 + 100 * DECODED_RECORD_BYTES;
    expect(cache.size).toBe(Math.floor(max / perDecoded));
    expect(cache.bytes).toBe(cache.size * perDecoded);
    // The most recently read stayed, the first read went.
    expect(cache.get(`s${batches - 1}`, 0, 32_000)).toBeDefined();
    expect(cache.get("s0", 0, 32_000)).toBeUndefined();
  });

  it("drops a range that alone exceeds the bound once decoded, after returning its records", () => {
    const cache = new BatchCache(1024 * 1024);
    // 4,000 records of 10 bytes: 64 KB encoded, 1.46 MB decoded.
    cache.setRange("big", 0, bytes(64_000), () => records(4_000, 10));
    cache.setRange("small", 0, bytes(100), () => records(1, 10));
    expect(cache.get("big", 0, 64_000)).toHaveLength(4_000);
    expect(cache.bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(cache.get("big", 0, 64_000)).toBeUndefined();
    // Bytes alone above the bound are not kept.
    cache.setSegment("huge", bytes(2 * 1024 * 1024), () => []);
    expect(cache.getEncoded("huge", 0, 10)).toBeUndefined();
  });

  it("keeps the written tail while a backlog larger than the cache is read through it (scan-resistant)", () => {
    // 40 segments of 1 MB written; a bound of 10 MB holds the last 10 of them.
    const max = 10 * 1_000_000;
    const cache = new BatchCache(max);
    for (let s = 0; s < 40; s++) cache.setSegment(`w${s}`, bytes(1_000_000), () => [], "written");
    expect(cache.size).toBe(10);
    // A consumer catching up reads the 30 evicted ones from the store, loading each whole.
    for (let s = 0; s < 30; s++) {
      expect(cache.getEncoded(`w${s}`, 0, 10)).toBeUndefined();
      cache.setSegment(`w${s}`, bytes(1_000_000), () => []);
      expect(cache.bytes).toBeLessThanOrEqual(max);
    }
    // Loads took their share (25 %: 2 segments) from the oldest written ones; the loads past it
    // evicted loads, never the rest of the tail. Under plain LRU nothing written would be left.
    const held = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => cache.getEncoded(`w${from + i}`, 0, 10) !== undefined);
    expect(held(32, 40)).toEqual(Array(8).fill(true));
    expect(held(28, 32)).toEqual([true, true, false, false]);
    expect(held(0, 28)).toEqual(Array(28).fill(false));
    expect(cache.size).toBe(10);
  });

  it("gives a written segment back for reuse when it leaves unread, never one a read had a view of", () => {
    const cache = new BatchCache(1000);
    const recycled: Uint8Array[] = [];
    const recycle = (b: Uint8Array) => void recycled.push(b);
    const [a, b, c, d] = [bytes(400), bytes(400), bytes(400), bytes(400)];
    cache.setSegment("a", a, () => records(1, 1), "written", recycle);
    cache.setSegment("b", b, () => records(1, 1), "written", recycle);
    expect(cache.getEncoded("b", 0, 100)).toEqual(b.subarray(0, 100)); // b is read: a view left the cache
    cache.setSegment("c", c, () => records(1, 1), "written", recycle);
    expect(recycled).toEqual([a]); // a left unread
    cache.get("c", 0, 400); // c is decoded: its records are views
    cache.setSegment("d", d, () => records(1, 1), "written", recycle);
    cache.setSegment("e", bytes(400), () => records(1, 1), "written", recycle);
    // b and c left too, but they had been read.
    expect(recycled).toEqual([a]);
    expect(cache.getEncoded("b", 0, 100)).toBeUndefined();
    expect(cache.getEncoded("c", 0, 100)).toBeUndefined();
    // Too large to keep: given back at once.
    const huge = bytes(2000);
    cache.setSegment("huge", huge, () => records(1, 1), "written", recycle);
    expect(recycled).toEqual([a, huge]);
    expect(recycled.includes(d)).toBe(false);
  });

  it("gives back a segment read in a scope once it left the cache and every scope that read it closed", async () => {
    const cache = new BatchCache(1000);
    const recycled: Uint8Array[] = [];
    const recycle = (b: Uint8Array) => void recycled.push(b);
    const [a, b, c] = [bytes(400), bytes(400), bytes(400)];
    cache.setSegment("a", a, () => records(1, 1), "written", recycle);
    cache.setSegment("b", b, () => records(1, 1), "written", recycle);
    // Two scopes read a (a range, then records), one of them twice; a third reads b and closes.
    let closeFirst!: () => void;
    const firstDone = new Promise<void>((resolve) => (closeFirst = resolve));
    const first = cache.scoped(async (scope) => {
      expect(cache.getEncoded("a", 0, 100, scope)).toEqual(a.subarray(0, 100));
      expect(cache.get("a", 0, 400, scope)).toHaveLength(1);
      await firstDone;
    });
    let closeSecond!: () => void;
    const secondDone = new Promise<void>((resolve) => (closeSecond = resolve));
    const second = cache.scoped(async (scope) => {
      cache.getEncoded("a", 100, 100, scope);
      await secondDone;
    });
    await cache.scoped(async (scope) => void cache.getEncoded("b", 0, 100, scope));
    // b was read, but its scope closed before it left: given back as it leaves.
    cache.setSegment("c", c, () => records(1, 1), "written", recycle);
    cache.setSegment("d", bytes(400), () => records(1, 1), "written", recycle);
    expect(cache.getEncoded("a", 0, 100)).toBeUndefined(); // a left too, still read by two open scopes
    expect(recycled).toEqual([b]);
    closeFirst();
    await first;
    expect(recycled).toEqual([b]); // the second scope still holds a view of a
    closeSecond();
    await second;
    expect(recycled).toEqual([b, a]);
  });

  it("never gives back a segment read outside a scope, nor one a scope reads after it closed", async () => {
    const cache = new BatchCache(1000);
    const recycled: Uint8Array[] = [];
    const recycle = (b: Uint8Array) => void recycled.push(b);
    const [a, b] = [bytes(400), bytes(400)];
    cache.setSegment("a", a, () => records(1, 1), "written", recycle);
    cache.setSegment("b", b, () => records(1, 1), "written", recycle);
    await cache.scoped(async (scope) => void cache.getEncoded("a", 0, 100, scope));
    cache.getEncoded("a", 0, 50); // outside any scope: a view nobody will report the end of
    const kept: ReadScope = await cache.scoped(async (scope) => scope);
    expect(cache.get("b", 0, 400, kept)).toHaveLength(1); // through a scope already closed: as if outside one
    cache.setSegment("c", bytes(400), () => records(1, 1), "written", recycle);
    cache.setSegment("d", bytes(400), () => records(1, 1), "written", recycle);
    expect(cache.getEncoded("a", 0, 1)).toBeUndefined();
    expect(cache.getEncoded("b", 0, 1)).toBeUndefined();
    expect(recycled).toEqual([]);
  });

  it("closes a scope whose work failed", async () => {
    const cache = new BatchCache(1000);
    const recycled: Uint8Array[] = [];
    const a = bytes(400);
    cache.setSegment(
      "a",
      a,
      () => records(1, 1),
      "written",
      (b) => void recycled.push(b),
    );
    await expect(
      cache.scoped(async (scope) => {
        cache.getEncoded("a", 0, 10, scope);
        throw new Error("the answer failed");
      }),
    ).rejects.toThrow("the answer failed");
    cache.setSegment("b", bytes(400), () => records(1, 1), "written");
    cache.setSegment("c", bytes(400), () => records(1, 1), "written");
    expect(recycled).toEqual([a]);
  });

  it("holds nothing with a bound of 0 (RESERVOIR_READ_CACHE_BYTES=0)", () => {
    const cache = new BatchCache(0);
    cache.setRange("a", 0, bytes(100), () => records(1, 10));
    cache.setSegment("b", bytes(100), () => records(1, 10));
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it("shares one load of a key among concurrent callers, and loads again once it settled", async () => {
    const cache = new BatchCache();
    let loads = 0;
    let release!: (b: Uint8Array) => void;
    const load = () => {
      loads++;
      return new Promise<Uint8Array>((resolve) => (release = resolve));
    };
    const first = cache.once("seg", load);
    const second = cache.once("seg", load);
    release(bytes(3));
    expect(await first).toBe(await second);
    expect(loads).toBe(1);
    const third = cache.once("seg", load);
    release(bytes(4));
    expect((await third).byteLength).toBe(4);
    expect(loads).toBe(2);
    // Not shared where a request must not wait on another's I/O (the Worker).
    const apart = new BatchCache(1024, { shareLoads: false });
    const a = apart.once("seg", load);
    const b = apart.once("seg", load);
    expect(loads).toBe(4);
    release(bytes(1));
    expect((await b).byteLength).toBe(1);
    expect(a).not.toBe(b);
  });
});
