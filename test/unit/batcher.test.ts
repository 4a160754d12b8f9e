import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Batcher, type ProduceEntry } from "../../storage/log/batcher.ts";
import { MAX_BATCH_RECORDS } from "../../storage/log/stored-batch.ts";
import { BatchCache } from "../../storage/log/batch-cache.ts";
import { partitionBounds, readFrom } from "../../storage/log/reader.ts";
import { rows, type Database } from "../../storage/metadata/db.ts";
import { createTenant } from "../../storage/tenancy/tenants.ts";
import { ensureTopic, type Topic } from "../../storage/metadata/topics.ts";
import { ReservoirError } from "../../storage/errors.ts";
import { embeddedDatabase } from "../support/embedded-db.ts";
import { MemoryObjectStore } from "../support/memory-store.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function entry(topic: Topic, partition: number, value: string, idempotencyKey?: string): ProduceEntry {
  const bytes = encoder.encode(value);
  return {
    topicId: topic.id,
    partition,
    value: bytes,
    binary: false,
    timestamp: 1_700_000_000_000,
    idempotencyKey,
    bytes: bytes.length + 16,
  };
}

describe("Batcher", () => {
  let db: Database;
  let close: () => Promise<void>;
  let tenantId: string;
  let orders: Topic;
  let audit: Topic;

  beforeAll(async () => {
    ({ db, close } = await embeddedDatabase());
    tenantId = (await createTenant(db, "acme", {})).tenantId;
    orders = (await ensureTopic(db, tenantId, "orders", { partitions: 3, retentionHours: 1, retentionBytes: null })).topic;
    audit = (await ensureTopic(db, tenantId, "audit", { partitions: 1, retentionHours: 1, retentionBytes: null })).topic;
  });
  afterAll(() => close());

  async function values(topic: Topic, partition: number, store: MemoryObjectStore, from = 0) {
    const messages = await readFrom({ db, store, cache: new BatchCache() }, topic.id, partition, from, 1000);
    return messages.map((m) => [m.offset, decoder.decode(m.record.value)]);
  }

  it("coalesces concurrent requests across topics and partitions into one PUT and one commit", async () => {
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 20 });
    const io = { db, store };
    const results = await Promise.all([
      batcher.submit(tenantId, [entry(orders, 0, "a0"), entry(orders, 1, "a1")], io),
      batcher.submit(tenantId, [entry(orders, 0, "b0"), entry(audit, 0, "b-audit")], io),
      batcher.submit(tenantId, [entry(orders, 2, "c2"), entry(orders, 0, "c0")], io),
    ]);
    expect(batcher.stats).toMatchObject({ flushes: 1, puts: 1, commits: 1, requests: 3, messages: 6 });
    expect(store.puts).toBe(1);
    expect(results).toEqual([
      [
        { partition: 0, offset: 0 },
        { partition: 1, offset: 0 },
      ],
      [
        { partition: 0, offset: 1 },
        { partition: 0, offset: 0 },
      ],
      [
        { partition: 2, offset: 0 },
        { partition: 0, offset: 2 },
      ],
    ]);
    expect(await values(orders, 0, store)).toEqual([
      [0, "a0"],
      [1, "b0"],
      [2, "c0"],
    ]);
    expect(await values(audit, 0, store)).toEqual([[0, "b-audit"]]);
  });

  it("flushes at once when the pending bytes reach maxBytes, without waiting for the linger", async () => {
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 60_000, maxBytes: 100 });
    const big = "x".repeat(200);
    const offsets = await batcher.submit(tenantId, [entry(orders, 1, big)], { db, store });
    expect(offsets).toEqual([{ partition: 1, offset: 1 }]);
    expect(batcher.stats.flushes).toBe(1);
  });

  it("under load, batches grow while flushes are in flight instead of queueing up as small flushes", async () => {
    const store = new MemoryObjectStore();
    const gate = store.holdPuts();
    const batcher = new Batcher({ lingerMs: 1, maxInFlight: 1 });
    const io = { db, store };
    const first = batcher.submit(tenantId, [entry(orders, 2, "first")], io);
    await gate.started; // the first flush is now in its PUT, and stays there until released
    const early = Array.from({ length: 5 }, (_, i) => batcher.submit(tenantId, [entry(orders, 2, `early-${i}`)], io));
    // Waits for time itself: the early requests' linger must run out while the only flush slot
    // is taken, so that their batch is due. A due batch must stay open and keep growing (the
    // late ones join it) rather than be queued as a flush of its own: the counts below show which.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const late = Array.from({ length: 5 }, (_, i) => batcher.submit(tenantId, [entry(orders, 2, `late-${i}`)], io));
    gate.release();
    await Promise.all([first, ...early, ...late]);
    expect(batcher.stats).toMatchObject({ flushes: 2, puts: 2, commits: 2, requests: 11 });
  });

  it("fails every request of a flush with a retryable 503 when the PUT fails, and commits nothing", async () => {
    const store = new MemoryObjectStore();
    store.failPuts = true;
    const batcher = new Batcher({ lingerMs: 5 });
    const before = await partitionBounds(db, orders.id, 0);
    const results = await Promise.allSettled([
      batcher.submit(tenantId, [entry(orders, 0, "lost-1")], { db, store }),
      batcher.submit(tenantId, [entry(orders, 0, "lost-2")], { db, store }),
    ]);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ReservoirError);
      expect((r as PromiseRejectedResult).reason.code).toBe("service_unavailable");
    }
    expect(await partitionBounds(db, orders.id, 0)).toEqual(before);
    expect(batcher.stats).toMatchObject({ flushes: 1, failedFlushes: 1, commits: 0 });
  });

  // A database that fails (unreachable, shutting down) reaches the batcher as `unavailable` from the
  // adapter (test/integration/database-failures.test.ts shows the 503); a statement that fails
  // otherwise, as here on a missing table, is a bug and must not pass for a retryable 503.
  it("fails the flush with the commit's own error when the commit fails, and leaves no offset or index row behind", async () => {
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 5 });
    const before = await partitionBounds(db, orders.id, 2);
    const indexRows = async () => (await rows<{ n: number }>(db, sql`SELECT count(*)::int AS n FROM segment_index`))[0].n;
    const rowsBefore = await indexRows();
    await db.execute(sql`ALTER TABLE segments RENAME TO segments_away`);
    try {
      const attempt = batcher.submit(tenantId, [entry(orders, 2, "not-committed")], { db, store });
      const failure = await attempt.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(Error);
      expect(failure).not.toBeInstanceOf(ReservoirError);
      expect(String((failure as Error).cause ?? failure)).toMatch(/relation "segments" does not exist/);
    } finally {
      await db.execute(sql`ALTER TABLE segments_away RENAME TO segments`);
    }
    expect(await partitionBounds(db, orders.id, 2)).toEqual(before);
    expect(await indexRows()).toBe(rowsBefore);
    expect(store.puts).toBe(1); // the orphan object is the collector's to delete
  });

  it("deduplicates idempotency keys inside the commit: within one flush and across flushes", async () => {
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 10 });
    const io = { db, store };
    const hw = (await partitionBounds(db, audit.id, 0))!.highWatermark;
    const [first, second] = await Promise.all([
      batcher.submit(tenantId, [entry(audit, 0, "k1-a", "k1"), entry(audit, 0, "plain"), entry(audit, 0, "k1-b", "k1")], io),
      batcher.submit(tenantId, [entry(audit, 0, "k1-c", "k1"), entry(audit, 0, "k2", "k2")], io),
    ]);
    expect(first).toEqual([
      { partition: 0, offset: hw },
      { partition: 0, offset: hw + 1 },
      { partition: 0, offset: hw },
    ]);
    expect(second).toEqual([
      { partition: 0, offset: hw },
      { partition: 0, offset: hw + 2 },
    ]);
    const again = await batcher.submit(tenantId, [entry(audit, 0, "k2-again", "k2"), entry(audit, 0, "new")], io);
    expect(again).toEqual([
      { partition: 0, offset: hw + 2 },
      { partition: 0, offset: hw + 3 },
    ]);
    expect(await values(audit, 0, store, hw)).toEqual([
      [hw, "k1-a"],
      [hw + 1, "plain"],
      [hw + 2, "k2"],
      [hw + 3, "new"],
    ]);
  });

  it("answers topic_not_found for requests whose topic was deleted before the commit", async () => {
    const gone = (await ensureTopic(db, tenantId, "ephemeral", { partitions: 1, retentionHours: 1, retentionBytes: null })).topic;
    await db.execute(sql`DELETE FROM topics WHERE id = ${gone.id}`);
    const batcher = new Batcher({ lingerMs: 5 });
    const store = new MemoryObjectStore();
    const [lost, kept] = await Promise.allSettled([
      batcher.submit(tenantId, [entry(gone, 0, "x")], { db, store }),
      batcher.submit(tenantId, [entry(orders, 1, "kept")], { db, store }),
    ]);
    expect(lost.status === "rejected" && lost.reason.code).toBe("topic_not_found");
    expect(kept.status).toBe("fulfilled");
  });

  it("stores a partition's records of one flush in batches of at most MAX_BATCH_RECORDS, each indexed, offsets in request order", async () => {
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ lingerMs: 20 });
    const io = { db, store };
    const topic = (await ensureTopic(db, tenantId, "bulk", { partitions: 2, retentionHours: 1, retentionBytes: null })).topic;
    // Two requests into partition 0 (400 and 300 records) around one into partition 1.
    const first = Array.from({ length: 400 }, (_, i) => entry(topic, 0, `a${i}`));
    const other = Array.from({ length: 10 }, (_, i) => entry(topic, 1, `o${i}`));
    const second = Array.from({ length: 300 }, (_, i) => entry(topic, 0, `b${i}`));
    const [a, o, b] = await Promise.all([io, io, io].map((x, k) => batcher.submit(tenantId, [first, other, second][k], x)));
    expect(batcher.stats.flushes).toBe(1);
    expect(a).toEqual(first.map((_, i) => ({ partition: 0, offset: i })));
    expect(o).toEqual(other.map((_, i) => ({ partition: 1, offset: i })));
    expect(b).toEqual(second.map((_, i) => ({ partition: 0, offset: 400 + i })));
    const index = await rows<{ base_offset: number; last_offset: number }>(
      db,
      sql`SELECT base_offset::int, last_offset::int FROM segment_index WHERE topic_id = ${topic.id} AND partition = 0 ORDER BY base_offset`,
    );
    expect(index.map((r) => [r.base_offset, r.last_offset])).toEqual([
      [0, MAX_BATCH_RECORDS - 1],
      [MAX_BATCH_RECORDS, 2 * MAX_BATCH_RECORDS - 1],
      [2 * MAX_BATCH_RECORDS, 699],
    ]);
    const stored = await values(topic, 0, store);
    expect(stored.map(([, v]) => v)).toEqual([...first.map((_, i) => `a${i}`), ...second.map((_, i) => `b${i}`)]);
    expect(stored.map(([offset]) => offset)).toEqual(Array.from({ length: 700 }, (_, i) => i));
  });

  it("writes a flush into a read segment's array only once the scope that read it closed", async () => {
    const store = new MemoryObjectStore();
    // Three segments of 100 KB fit; each flush's segment is pooled (over MIN_POOLED_BYTES).
    const cache = new BatchCache(320 * 1024);
    const batcher = new Batcher({ lingerMs: 1, cache });
    const io = { db, store };
    const big = (letter: string) => letter.repeat(100 * 1024);
    const produce = async (letter: string) => (await batcher.submit(tenantId, [entry(audit, 0, big(letter))], io))[0]!.offset;
    const first = await produce("a");
    await cache.scoped(async (readScope) => {
      const [held] = await readFrom({ db, store, cache, readScope }, audit.id, 0, first, 1);
      // Five more flushes: the first segment leaves the cache while this scope still holds a view of it.
      for (const letter of "bcdef") await produce(letter);
      // d evicted a (held: kept from the pool), e evicted b (unread: to the pool), f took b's array.
      expect(batcher.stats.segmentsReused).toBe(1);
      expect(decoder.decode(held.record.value)).toBe(big("a"));
    });
    const reusedBefore = batcher.stats.segmentsReused;
    await produce("g"); // a's array, free since the scope closed
    await produce("h");
    expect(batcher.stats.segmentsReused).toBe(reusedBefore + 2);
    expect(await values(audit, 0, store, first)).toEqual([..."abcdefgh"].map((letter, i) => [first + i, big(letter)]));
  });
});
