/** Topics and their partitions, always scoped by tenant. */
import { and, asc, count, eq, sql } from "drizzle-orm";
import { rows, type Database, type Queryable } from "./db.ts";
import { partitions, tenants, topics } from "./schema.ts";
import { ReservoirError } from "../errors.ts";

export interface Topic {
  id: number;
  name: string;
  partitions: number;
  retentionHours: number;
  /** Per partition; null: no size limit. */
  retentionBytes: number | null;
  createdAt: number;
}

export interface TopicSettings {
  partitions: number;
  retentionHours: number;
  retentionBytes: number | null;
}

const columns = {
  id: topics.id,
  name: topics.name,
  partitions: topics.partitions,
  retentionHours: topics.retentionHours,
  retentionBytes: topics.retentionBytes,
  createdAt: topics.createdAt,
};

function toTopic(row: {
  id: number;
  name: string;
  partitions: number;
  retentionHours: number;
  retentionBytes: number | null;
  createdAt: Date;
}): Topic {
  return { ...row, createdAt: row.createdAt.getTime() };
}

export async function findTopic(db: Database, tenantId: string, name: string): Promise<Topic | null> {
  const found = await db
    .select(columns)
    .from(topics)
    .where(and(eq(topics.tenantId, tenantId), eq(topics.name, name)))
    .limit(1);
  return found.length ? toTopic(found[0]) : null;
}

export async function getTopic(db: Database, tenantId: string, name: string): Promise<Topic> {
  const topic = await findTopic(db, tenantId, name);
  if (!topic) throw new ReservoirError("topic_not_found", `topic '${name}' does not exist`);
  return topic;
}

export async function listTopics(db: Database, tenantId: string): Promise<Topic[]> {
  const found = await db.select(columns).from(topics).where(eq(topics.tenantId, tenantId)).orderBy(asc(topics.name));
  return found.map(toTopic);
}

/**
 * Creates the topic, or returns the existing one; `created` tells which. With `maxTopics` (the
 * tenant's topics quota), creations of one tenant queue on its tenant row, so that concurrent
 * ones cannot together pass the count; one that would is refused (quota_exceeded).
 */
export async function ensureTopic(
  db: Database,
  tenantId: string,
  name: string,
  settings: TopicSettings,
  maxTopics?: number,
): Promise<{ topic: Topic; created: boolean }> {
  return db.transaction(async (tx) => {
    if (maxTopics !== undefined) {
      await tx.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).for("update");
      const existing = await findTopic(tx as unknown as Database, tenantId, name);
      if (existing) return { topic: existing, created: false };
      const [{ n }] = await tx.select({ n: count() }).from(topics).where(eq(topics.tenantId, tenantId));
      if (n >= maxTopics) {
        throw new ReservoirError("quota_exceeded", `the tenant has ${n} topics; its topics quota is ${maxTopics}`, {
          retryAfterSeconds: 60,
        });
      }
    }
    const inserted = await tx
      .insert(topics)
      .values({ tenantId, name, ...settings })
      .onConflictDoNothing()
      .returning(columns);
    if (inserted.length === 0) {
      const [existing] = await tx
        .select(columns)
        .from(topics)
        .where(and(eq(topics.tenantId, tenantId), eq(topics.name, name)));
      return { topic: toTopic(existing), created: false };
    }
    const topic = toTopic(inserted[0]);
    await tx.insert(partitions).values(Array.from({ length: settings.partitions }, (_, p) => ({ topicId: topic.id, partition: p })));
    return { topic, created: true };
  });
}

/**
 * Changes a topic's settings. Partitions only grow; when they do, `onGrow` runs in the same
 * transaction, so that what hangs off partitions (consumer groups' positions) grows with them
 * atomically without this module knowing those tables.
 */
export async function updateTopic(
  db: Database,
  tenantId: string,
  name: string,
  changes: Partial<TopicSettings>,
  onGrow: (tx: Queryable, topicId: number) => Promise<void>,
): Promise<Topic> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select(columns)
      .from(topics)
      .where(and(eq(topics.tenantId, tenantId), eq(topics.name, name)))
      .for("update");
    if (!row) throw new ReservoirError("topic_not_found", `topic '${name}' does not exist`);
    const target = changes.partitions ?? row.partitions;
    if (target < row.partitions) {
      throw new ReservoirError("partitions_cannot_shrink", `topic '${name}' has ${row.partitions} partitions; partitions may only grow`);
    }
    const [updated] = await tx
      .update(topics)
      .set({
        partitions: target,
        retentionHours: changes.retentionHours ?? row.retentionHours,
        // undefined: unchanged; null: the size limit removed.
        retentionBytes: changes.retentionBytes === undefined ? row.retentionBytes : changes.retentionBytes,
      })
      .where(eq(topics.id, row.id))
      .returning(columns);
    if (target > row.partitions) {
      await tx
        .insert(partitions)
        .values(Array.from({ length: target - row.partitions }, (_, i) => ({ topicId: row.id, partition: row.partitions + i })));
      await onGrow(tx, row.id);
    }
    return toTopic(updated);
  });
}

export async function deleteTopic(db: Database, tenantId: string, name: string): Promise<boolean> {
  const deleted = await db
    .delete(topics)
    .where(and(eq(topics.tenantId, tenantId), eq(topics.name, name)))
    .returning({ id: topics.id });
  return deleted.length > 0;
}

/** Per partition, in partition order: the first retained offset (the next offset when none is). */
export async function earliestOffsets(db: Database, topicId: number): Promise<number[]> {
  const found = await rows<{ earliest: number }>(
    db,
    sql`SELECT COALESCE((SELECT min(i.base_offset) FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition),
                        p.next_offset) AS earliest
        FROM partitions p WHERE p.topic_id = ${topicId} ORDER BY p.partition`,
  );
  return found.map((r) => Number(r.earliest));
}

/** Next offset of every partition, in partition order. */
export async function highWatermarks(db: Database, topicId: number): Promise<number[]> {
  const found = await db
    .select({ next: partitions.nextOffset })
    .from(partitions)
    .where(eq(partitions.topicId, topicId))
    .orderBy(asc(partitions.partition));
  return found.map((r) => r.next);
}
