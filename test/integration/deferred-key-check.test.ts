// A produce's key check left to its flush commit (storage/tenancy/tenants.ts, DeferredKeyCheck),
// at the batcher: the commit stores nothing when a key it was to vouch for is gone, rejects the
// requests that came with such keys (KeyCheckRefused) and stores the others' in the next flush;
// a commit that vouches counts those requests in usage. PGlite (the Postgres engine, in process)
// and the folder store, in one batch made deterministic by submitting in the same tick.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FolderObjectStore } from "../../functions/runtime/node/folder-store.ts";
import { Batcher, type ProduceEntry } from "../../storage/log/batcher.ts";
import { rows, type Database } from "../../storage/metadata/db.ts";
import { ensureTopic, type Topic } from "../../storage/metadata/topics.ts";
import { createKey, createTenant, deleteKey, updateQuotas } from "../../storage/tenancy/tenants.ts";
import { type DeferredKeyCheck, KeyCheckRefused } from "../../storage/tenancy/deferred-key-check.ts";
import { embeddedDatabase } from "../support/embedded-db.ts";

const entry = (topic: Topic, value: string, idempotencyKey?: string): ProduceEntry => {
  const bytes = new TextEncoder().encode(value);
  return { topicId: topic.id, partition: 0, value: bytes, binary: false, timestamp: Date.now(), bytes: bytes.length + 16, idempotencyKey };
};

describe("a flush commit that vouches for its produces' keys", () => {
  let db: Database;
  let close: () => Promise<void>;
  let folder: string;
  let store: FolderObjectStore;
  beforeAll(async () => {
    ({ db, close } = await embeddedDatabase());
    folder = await mkdtemp(join(tmpdir(), "reservoir-deferred-"));
    store = new FolderObjectStore(folder);
  });
  afterAll(async () => {
    await close();
    await rm(folder, { recursive: true, force: true });
  });

  async function tenantWithTopic(name: string) {
    const { tenantId, keyId } = await createTenant(db, name, {});
    const topic = (await ensureTopic(db, tenantId, "t", { partitions: 1, retentionHours: 168, retentionBytes: null })).topic;
    return { tenantId, keyId, topic };
  }
  const requestsCounted = async (tenantId: string) =>
    Number(
      (await rows<{ n: number }>(db, sql`SELECT coalesce(sum(requests), 0) AS n FROM usage_deltas WHERE tenant_id = ${tenantId}`))[0].n,
    );
  const stored = async (topic: Topic) =>
    Number((await rows<{ n: number }>(db, sql`SELECT next_offset AS n FROM partitions WHERE topic_id = ${topic.id}`))[0].n);

  it("counts the requests it vouched for, and only those, in the commit that stores their messages", async () => {
    const { tenantId, keyId, topic } = await tenantWithTopic("vouched");
    const batcher = new Batcher({ lingerMs: 0 });
    const io = { db, store };
    const checks: DeferredKeyCheck[] = [{ keyId }, { keyId }];
    await Promise.all([
      batcher.submit(tenantId, [entry(topic, "a")], io, checks[0]),
      batcher.submit(tenantId, [entry(topic, "b")], io, checks[1]),
      batcher.submit(tenantId, [entry(topic, "c")], io),
    ]);
    expect(batcher.stats.commits).toBe(1);
    expect(checks.map((c) => c.outcome)).toEqual(["vouched", "vouched"]);
    // The third request's key was checked by its route, which counted it there.
    expect(await requestsCounted(tenantId)).toBe(2);
    expect(await stored(topic)).toBe(3);
  });

  it("vouches, and counts, even when every message of the flush is an idempotent repeat", async () => {
    const { tenantId, keyId, topic } = await tenantWithTopic("repeats");
    const batcher = new Batcher({ lingerMs: 0 });
    const io = { db, store };
    const first = await batcher.submit(tenantId, [entry(topic, "x", "same")], io);
    const check: DeferredKeyCheck = { keyId };
    expect(await batcher.submit(tenantId, [entry(topic, "x", "same")], io, check)).toEqual(first);
    expect(check.outcome).toBe("vouched");
    expect(await requestsCounted(tenantId)).toBe(1);
    expect(await stored(topic)).toBe(1);
  });

  it("stores nothing when a key is revoked: requests it was to vouch for are refused (their routes check them), the others go into the next flush", async () => {
    const { tenantId, keyId, topic } = await tenantWithTopic("revoked");
    const doomed = await createKey(db, tenantId, ["produce"]);
    expect(await deleteKey(db, tenantId, doomed.keyId)).toBe(true);
    const batcher = new Batcher({ lingerMs: 0 });
    const io = { db, store };
    const kept: DeferredKeyCheck = { keyId };
    const refused: DeferredKeyCheck = { keyId: doomed.keyId };
    // Submitted in one tick: one batch, whose commit finds one of its two keys gone.
    const results = await Promise.allSettled([
      batcher.submit(tenantId, [entry(topic, "by the good key")], io, kept),
      batcher.submit(tenantId, [entry(topic, "by the revoked key")], io, refused),
      batcher.submit(tenantId, [entry(topic, "checked by its route")], io),
    ]);
    expect(results[0].status).toBe("rejected");
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(KeyCheckRefused);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(KeyCheckRefused);
    // The request whose key its route had checked was stored by the next flush, alone.
    expect(results[2]).toEqual({ status: "fulfilled", value: [{ partition: 0, offset: 0 }] });
    expect(batcher.stats.refusedFlushes).toBe(1);
    expect(batcher.stats.commits).toBe(2);
    expect([kept.outcome, refused.outcome]).toEqual([undefined, undefined]);
    expect(await stored(topic)).toBe(1);
    expect(await requestsCounted(tenantId)).toBe(0);
    // Nothing of the refused flush is indexed: one segment row, the second flush's.
    const [segments] = await rows<{ n: number }>(db, sql`SELECT count(*) AS n FROM segments WHERE tenant_id = ${tenantId}`);
    expect(Number(segments.n)).toBe(1);
  });

  it("stores nothing once the tenant has a quota that is checked first (a rate, storage)", async () => {
    for (const quota of ["requestsPerSecond", "bytesPerSecond", "storageBytes"]) {
      const { tenantId, keyId, topic } = await tenantWithTopic(`quota-${quota}`);
      await updateQuotas(db, tenantId, { [quota]: 1_000_000 });
      const batcher = new Batcher({ lingerMs: 0 });
      const check: DeferredKeyCheck = { keyId };
      await expect(batcher.submit(tenantId, [entry(topic, "m")], { db, store }, check)).rejects.toBeInstanceOf(KeyCheckRefused);
      expect(await stored(topic)).toBe(0);
      // A quota checked later (topics) leaves the commit vouching.
      await updateQuotas(db, tenantId, { [quota]: null, topics: 10 });
      await batcher.submit(tenantId, [entry(topic, "m")], { db, store }, check);
      expect(check.outcome).toBe("vouched");
      expect(await stored(topic)).toBe(1);
    }
  });
});
