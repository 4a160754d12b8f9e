/**
 * Topic lookups on the produce and read paths, cached per instance for a second (TtlCache, an LRU of at most 10,000).
 * Staleness is safe for produce: the commit itself refuses partitions that no longer exist.
 */
import type { Database } from "./db.ts";
import { getTopic, type Topic } from "./topics.ts";
import { TtlCache } from "./ttl-cache.ts";

export class TopicCache {
  private readonly cache: TtlCache<Topic>;

  constructor(ttlMs = 1000, now: () => number = () => Date.now()) {
    this.cache = new TtlCache(ttlMs, now);
  }

  get(db: Database, tenantId: string, name: string): Promise<Topic> {
    return this.cache.get(`${tenantId}\u0000${name}`, () => getTopic(db, tenantId, name));
  }

  invalidate(tenantId: string, name: string): void {
    this.cache.invalidate(`${tenantId}\u0000${name}`);
  }
}
