/**
 * What the SQS-compatible endpoint keeps of a queue beyond its topic and its group: the SQS
 * attributes as the client set them (string values, SQS units) and the queue's tags. A topic
 * made through /v1 has no row here and reads as a queue with SQS's defaults.
 */
import { eq, sql } from "drizzle-orm";
import type { Queryable } from "../metadata/db.ts";
import { sqsQueues } from "../metadata/schema.ts";
import { sqlArray } from "../metadata/sql-array.ts";

export interface QueueRow {
  attributes: Record<string, string>;
  tags: Record<string, string>;
}

export async function findQueueRow(db: Queryable, topicId: number): Promise<QueueRow | null> {
  const [row] = await db
    .select({ attributes: sqsQueues.attributes, tags: sqsQueues.tags })
    .from(sqsQueues)
    .where(eq(sqsQueues.topicId, topicId))
    .limit(1);
  return row ?? null;
}

/** Merges attributes into the queue's (creating its row). */
export async function mergeQueueAttributes(db: Queryable, topicId: number, attributes: Record<string, string>): Promise<void> {
  await db
    .insert(sqsQueues)
    .values({ topicId, attributes })
    .onConflictDoUpdate({
      target: sqsQueues.topicId,
      set: { attributes: sql`${sqsQueues.attributes} || ${JSON.stringify(attributes)}::jsonb` },
    });
}

/** Adds tags and removes the named ones. */
export async function changeQueueTags(db: Queryable, topicId: number, add: Record<string, string>, remove: string[]): Promise<void> {
  await db.insert(sqsQueues).values({ topicId, tags: {} }).onConflictDoNothing();
  await db
    .update(sqsQueues)
    .set({ tags: sql`(${sqsQueues.tags} || ${JSON.stringify(add)}::jsonb) - ${sqlArray(remove, "text")}` })
    .where(eq(sqsQueues.topicId, topicId));
}
