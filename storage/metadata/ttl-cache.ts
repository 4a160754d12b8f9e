/**
 * Per-instance lookups kept for a short time (default one second). Changes made through this
 * instance invalidate at once; another instance's change is seen within the TTL.
 *
 * Backed by lru-cache: at `maxEntries` the least recently used entry goes, not the whole cache.
 * Concurrent misses of one key each load on their own on purpose: on Workers a load runs on the
 * calling request's database client, which no other request may await (functions/runtime/workers/worker.ts).
 */
import { LRUCache } from "lru-cache";

export class TtlCache<V extends {}> {
  private readonly entries: LRUCache<string, V>;

  constructor(ttlMs = 1000, now: () => number = () => Date.now(), maxEntries = 10_000) {
    // `perf` is the clock lru-cache reads ages from. ttlResolution 0: read it on every check
    // rather than caching it behind a timer (a timer per cache miss on Workers buys nothing).
    this.entries = new LRUCache<string, V>({ max: maxEntries, ttl: ttlMs, ttlResolution: 0, perf: { now } });
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit;
    const value = await load();
    this.entries.set(key, value);
    return value;
  }

  invalidate(key: string): void {
    this.entries.delete(key);
  }
}
