// The collector's mark looks at a bounded window of segments per pass, from a checkpoint that
// wraps around (storage/lifecycle/collect.ts): every unreferenced segment is still collected,
// window by window, and a referenced one never is. On PGlite, with the in-memory store.
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectUnreferenced } from "../../storage/lifecycle/collect.ts";
import { Batcher, type ProduceEntry } from "../../storage/log/batcher.ts";
import { rows, type Database } from "../../storage/metadata/db.ts";
import { deleteTopic, ensureTopic, type Topic } from "../../storage/metadata/topics.ts";
import { createTenant } from "../../storage/tenancy/tenants.ts";
import { embeddedDatabase } from "../support/embedded-db.ts";
import { MemoryObjectStore } from "../support/memory-store.ts";

const entry = (topic: Topic, value: string): ProduceEntry => {
  const bytes = new TextEncoder().encode(value);
  return {
    topicId: topic.id,
    partition: 0,
    value: bytes,
    binary: false,
    timestamp: 1_700_000_000_000,
    bytes: bytes.length + 16,
  };
};

describe("the collector's bounded mark", () => {
  let db: Database;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ db, close } = await embeddedDatabase());
  });
  afterAll(() => close());

  it("collects every unreferenced segment within (segments / window) passes, and never a referenced one", async () => {
    const { tenantId } = await createTenant(db, "window", {});
    const settings = { partitions: 1, retentionHours: 168, retentionBytes: null };
    const gone = (await ensureTopic(db, tenantId, "gone", settings)).topic;
    const kept = (await ensureTopic(db, tenantId, "kept", settings)).topic;
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 0 });
    // One flush (one segment) per request, interleaving the two topics: 6 segments to collect, 4 to keep.
    for (let i = 0; i < 10; i++) await batcher.submit(tenantId, [entry(i % 3 === 0 ? kept : gone, `m${i}`)], { db, store });
    expect(store.objects.size).toBe(10);
    expect(await deleteTopic(db, tenantId, "gone")).toBe(true);

    const passes: number[] = [];
    for (let pass = 0; pass < 10 && store.objects.size > 4; pass++) {
      passes.push((await collectUnreferenced(db, store, { graceSeconds: 0, markWindow: 3 })).objects);
    }
    // A window of 3 over 10 segments: the collection spreads over passes, and ends complete.
    expect(passes.length).toBeGreaterThan(1);
    expect(passes.every((n) => n <= 3)).toBe(true);
    expect(passes.reduce((a, b) => a + b, 0)).toBe(6);
    expect(store.objects.size).toBe(4);
    const [left] = await rows<{ n: number }>(db, sql`SELECT count(*) AS n FROM segments`);
    expect(left.n).toBe(4);
  });
});
