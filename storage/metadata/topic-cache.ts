/**
 * Topic lookups on the produce and read paths, cached per instance for a second. Changes made
 * through this instance invalidate at once; another instance's change is seen within the TTL.
 * Staleness is safe for produce: the commit itself refuses partitions that no longer exist.
 */
import type { Database } from "./db.ts";
import { getTopic, type Topic } from "./topics.ts";

export class TopicCache {
  private readonly entries = new Map<string, { topic: Topic; expires: number }>();

  constructor(
    private readonly ttlMs = 1000,
    private readonly now: () => number = () => Date.now(),
    private readonly maxEntries = 10_000,
  ) {}

  async get(db: Database, tenantId: string, name: string): Promise<Topic> {
    const key = `${tenantId}\u0000${name}`;
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) return hit.topic;
    const topic = await getTopic(db, tenantId, name);
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { topic, expires: this.now() + this.ttlMs });
    return topic;
  }

  invalidate(tenantId: string, name: string): void {
    this.entries.delete(`${tenantId}\u0000${name}`);
  }
}
