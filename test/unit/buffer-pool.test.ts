import { describe, expect, it } from "vitest";
import { BufferPool, MIN_POOLED_BYTES, sizeClass } from "../../storage/buffer-pool.ts";

describe("BufferPool", () => {
  it("sizes arrays to at most a quarter more than asked, never less", () => {
    for (let length = 1; length < 20_000_000; length = Math.ceil(length * 1.37) + 1) {
      const size = sizeClass(length);
      expect(size).toBeGreaterThanOrEqual(length);
      expect(size).toBeLessThanOrEqual(Math.max(length * 1.25, 4));
      expect(sizeClass(size)).toBe(size);
    }
    expect(sizeClass(70_000)).toBe(sizeClass(72_000));
  });

  it("lends an array given back to the next request of its size, and each array to one user at a time", () => {
    const pool = new BufferPool(1 << 30);
    const first = pool.take(100_000);
    expect(first.byteLength).toBe(100_000);
    const second = pool.take(100_000);
    expect(second.buffer).not.toBe(first.buffer);
    pool.give(first);
    const third = pool.take(99_000);
    expect(third.buffer).toBe(first.buffer);
    expect(third.byteLength).toBe(99_000);
    // Given back twice: lent once more, not twice.
    pool.give(third);
    pool.give(third);
    const fourth = pool.take(100_000);
    const fifth = pool.take(100_000);
    expect(fourth.buffer).toBe(first.buffer);
    expect(fifth.buffer).not.toBe(first.buffer);
    expect(fifth.buffer).not.toBe(second.buffer);
  });

  it("ignores arrays it did not lend, and does not pool small arrays", () => {
    const pool = new BufferPool(1 << 30);
    pool.give(new Uint8Array(sizeClass(100_000)));
    expect(pool.idleBytes).toBe(0);
    const small = pool.take(MIN_POOLED_BYTES - 1);
    pool.give(small);
    expect(pool.idleBytes).toBe(0);
    expect(pool.take(MIN_POOLED_BYTES - 1).buffer).not.toBe(small.buffer);
  });

  it("keeps no more idle bytes than its bound", () => {
    const size = sizeClass(100_000);
    const pool = new BufferPool(2 * size);
    const bodies = [pool.take(100_000), pool.take(100_000), pool.take(100_000)];
    for (const body of bodies) pool.give(body);
    expect(pool.idleBytes).toBe(2 * size);
    const again = [pool.take(100_000), pool.take(100_000), pool.take(100_000)];
    expect(again[0].buffer).toBe(bodies[1].buffer);
    expect(again[1].buffer).toBe(bodies[0].buffer);
    expect(again[2].buffer).not.toBe(bodies[2].buffer);
    expect(pool.idleBytes).toBe(0);
  });
});
