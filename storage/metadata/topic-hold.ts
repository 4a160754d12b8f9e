/**
 * A write that adds rows referencing a topic (a group, a subscription) first holds the topic
 * row with a key-share lock: a concurrent DELETE of the topic then waits for the write's
 * transaction, or has already removed the row and the write answers topic_not_found — never
 * a foreign-key violation. Key-share locks do not conflict with each other, so such writes
 * do not wait for one another.
 */
import { sql } from "drizzle-orm";
import { ReservoirError } from "../errors.ts";
import { rows, type Queryable } from "./db.ts";

export async function holdTopic(tx: Queryable, topic: { id: number; name: string }): Promise<void> {
  const [live] = await rows<{ id: number }>(tx, sql`SELECT id FROM topics WHERE id = ${topic.id} FOR KEY SHARE`);
  if (!live) throw new ReservoirError("topic_not_found", `topic '${topic.name}' does not exist`);
}
