/** A group's view (positions, lag, in flight, dead letters) and seeking. */
import { sql } from "drizzle-orm";
import { rows, sqlState, type Database } from "../metadata/db.ts";
import { unavailable } from "../errors.ts";
import type { Topic } from "../metadata/topics.ts";
import { offsetForTimestamp, type ReadIo } from "../log/reader.ts";
import type { Group } from "./groups.ts";
import { sqlArray } from "../metadata/sql-array.ts";

export interface GroupView {
  partitions: { partition: number; committedOffset: number; highWatermark: number; lag: number; inFlight: number }[];
  deadLettered: number;
}

export async function groupView(db: Database, group: Group, now: number): Promise<GroupView> {
  const found = await rows<{ partition: number; committed: number; next_offset: number; in_flight: number }>(
    db,
    sql`SELECT gp.partition, gp.committed, p.next_offset,
          (SELECT COALESCE(sum(l.last_offset - l.first_offset + 1 - cardinality(l.settled)), 0)::bigint FROM group_leases l
           WHERE l.group_id = gp.group_id AND l.partition = gp.partition AND l.visible_at > ${now} AND l.attempt > 0) AS in_flight
        FROM group_partitions gp JOIN partitions p ON p.topic_id = ${group.topicId} AND p.partition = gp.partition
        WHERE gp.group_id = ${group.id} ORDER BY gp.partition`,
  );
  const [dead] = await rows<{ n: number }>(
    db,
    sql`SELECT count(*) AS n FROM dead_letters WHERE group_id = ${group.id} AND redriven_at IS NULL`,
  );
  return {
    partitions: found.map((r) => {
      const committedOffset = r.committed;
      const highWatermark = r.next_offset;
      return {
        partition: r.partition,
        committedOffset,
        highWatermark,
        lag: Math.max(0, highWatermark - committedOffset),
        inFlight: r.in_flight,
      };
    }),
    deadLettered: dead.n,
  };
}

/**
 * How many of the group's messages are delayed and not yet due (SQS's
 * ApproximateNumberOfMessagesDelayed): the index runs due after `now` at or past each
 * partition's committed offset. A delayed message cannot have been delivered before it is due,
 * so none of them is in flight; one the group already settled (acked) could count, hence
 * approximate.
 */
export async function delayedMessages(db: Database, group: Group, now: number): Promise<number> {
  const [row] = await rows<{ n: number }>(
    db,
    sql`SELECT COALESCE(sum(i.last_offset - GREATEST(i.base_offset, gp.committed) + 1), 0)::bigint AS n
        FROM segment_index i JOIN group_partitions gp ON gp.group_id = ${group.id} AND gp.partition = i.partition
        WHERE i.topic_id = ${group.topicId} AND i.deliver_at > ${now} AND i.last_offset >= gp.committed`,
  );
  return row.n;
}

export type SeekTarget = { offset: number; partition?: number } | { timestamp: number } | { to: "earliest" | "latest" };

/** Drops the leases in flight and moves the positions; delivery resumes from there. */
export async function seek(io: ReadIo & { db: Database }, group: Group, topic: Topic, target: SeekTarget): Promise<void> {
  const bounds = await rows<{ partition: number; next_offset: number; earliest: number | null }>(
    io.db,
    sql`SELECT p.partition, p.next_offset,
          (SELECT min(i.base_offset) FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition) AS earliest
        FROM partitions p WHERE p.topic_id = ${topic.id} ORDER BY p.partition`,
  );
  const targets = new Map<number, number>();
  for (const b of bounds) {
    const hw = b.next_offset;
    const earliest = b.earliest === null ? hw : b.earliest;
    let t: number | undefined;
    if ("to" in target) t = target.to === "earliest" ? earliest : hw;
    else if ("timestamp" in target) t = (await offsetForTimestamp(io, topic.id, b.partition, target.timestamp)) ?? hw;
    else if (target.partition === undefined || target.partition === b.partition) t = target.offset;
    if (t !== undefined) targets.set(b.partition, Math.min(Math.max(t, earliest), hw));
  }
  const parts = [...targets.keys()];
  // A seek locks positions, then leases; acks (and receives that dead-letter) lock leases, then
  // positions. Rather than deadlock with one of them, and have Postgres abort either side, a
  // seek stops waiting well before deadlock_timeout (1 s by default) and starts over.
  for (let attempt = 1; ; attempt++) {
    try {
      await io.db.transaction(async (tx) => {
        await tx.execute(sql`SET LOCAL lock_timeout = '300ms'`);
        // Lock first: the next statement's snapshot then sees every lease a receive committed meanwhile.
        await tx.execute(
          sql`SELECT 1 FROM group_partitions WHERE group_id = ${group.id} AND partition = ANY(${sqlArray(parts, "int")}) ORDER BY partition FOR UPDATE`,
        );
        // Then the leases, in a statement of their own: a settle or receive holding one may cut it
        // into rows it inserts, which only a statement after it commits sees (and deletes).
        await tx.execute(
          sql`SELECT 1 FROM group_leases WHERE group_id = ${group.id} AND partition = ANY(${sqlArray(parts, "int")}) FOR UPDATE`,
        );
        await tx.execute(sql`
          WITH dropped AS (
            DELETE FROM group_leases WHERE group_id = ${group.id} AND partition = ANY(${sqlArray(parts, "int")}) RETURNING 1)
          UPDATE group_partitions gp SET committed = t.o, frontier = t.o, cursor_version = gp.cursor_version + 1
          FROM unnest(${sqlArray(parts, "int")}, ${sqlArray(
            parts.map((p) => targets.get(p)!),
            "bigint",
          )}) AS t(p, o)
          WHERE gp.group_id = ${group.id} AND gp.partition = t.p`);
      });
      return;
    } catch (error) {
      if (sqlState(error) !== LOCK_NOT_AVAILABLE) throw error;
      // Busy for ten rounds: the database is the bottleneck, not the request; say so (a 503 to retry).
      if (attempt >= 10) throw unavailable("the group's positions stayed locked by other requests; retry the seek", error);
    }
  }
}

const LOCK_NOT_AVAILABLE = "55P03";
