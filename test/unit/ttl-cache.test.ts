import { describe, expect, it } from "vitest";
import { TtlCache } from "../../storage/metadata/ttl-cache.ts";

/** A clock the test moves by hand: the cache ages entries by it alone. */
function manualClock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function counter() {
  let loads = 0;
  return {
    load: (value: string) => async () => {
      loads++;
      return value;
    },
    get loads() {
      return loads;
    },
  };
}

describe("TtlCache", () => {
  it("serves a loaded value until its second is over, then loads again", async () => {
    const clock = manualClock();
    const cache = new TtlCache<string>(1000, clock.now);
    const c = counter();
    expect(await cache.get("k", c.load("v1"))).toBe("v1");
    clock.advance(999);
    expect(await cache.get("k", c.load("v2"))).toBe("v1");
    expect(c.loads).toBe(1);
    clock.advance(2);
    expect(await cache.get("k", c.load("v2"))).toBe("v2");
    expect(c.loads).toBe(2);
  });

  it("invalidate makes the next get load at once", async () => {
    const clock = manualClock();
    const cache = new TtlCache<string>(1000, clock.now);
    const c = counter();
    await cache.get("k", c.load("v1"));
    cache.invalidate("k");
    expect(await cache.get("k", c.load("v2"))).toBe("v2");
    expect(c.loads).toBe(2);
  });

  it("a failed load caches nothing", async () => {
    const cache = new TtlCache<string>(1000);
    await expect(cache.get("k", async () => Promise.reject(new Error("not found")))).rejects.toThrow("not found");
    expect(await cache.get("k", async () => "found")).toBe("found");
  });

  it("when full, drops the least recently used entry only (not everything)", async () => {
    const clock = manualClock();
    const cache = new TtlCache<string>(1000, clock.now, 3);
    const c = counter();
    await cache.get("a", c.load("a"));
    await cache.get("b", c.load("b"));
    await cache.get("c", c.load("c"));
    await cache.get("a", c.load("a")); // a is now the most recently used
    await cache.get("d", c.load("d")); // evicts b
    expect(c.loads).toBe(4);
    await cache.get("a", c.load("a"));
    await cache.get("c", c.load("c"));
    await cache.get("d", c.load("d"));
    expect(c.loads).toBe(4);
    await cache.get("b", c.load("b"));
    expect(c.loads).toBe(5);
  });
});
