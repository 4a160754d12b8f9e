/**
 * Retention (API.md "Topics"): per partition, whole index rows leave from the front once every
 * message in them is older than `retentionHours`, and the oldest rows leave while the partition
 * would still hold at least `retentionBytes` without them (Kafka's rule). Offsets never move:
 * the earliest offset (the first remaining row's base, else the high watermark) rises.
 *
 * In the same transaction as a partition's rows go, every group of that topic whose committed
 * offset falls below the new earliest has it raised to it, and its leases wholly below it are
 * dropped (their receipts then ack as receipt_expired). The bytes stay until no row of any topic
 * names their segment (a dead letter keeps its source bytes alive): collect.ts.
 */
import { sql } from "drizzle-orm";
import { retryConflicts, rows, type Database } from "../metadata/db.ts";

export interface RetentionReport {
  /** Index rows removed (each one or more whole record batches). */
  batches: number;
  bytes: number;
}

const HOUR_MS = 3_600_000;

interface Expiring {
  topic_id: number;
  partition: number;
  target: number;
}

/**
 * Partitions whose earliest offset should rise, with the offset it rises to. The time rule walks
 * the primary key from the front (cheap when little has expired); the size rule sums the
 * partition's rows from the back, only for topics with a size limit.
 */
async function expiring(db: Database, asOf: number, limit: number): Promise<Expiring[]> {
  return rows<Expiring>(
    db,
    sql`SELECT * FROM (
          SELECT p.topic_id, p.partition, GREATEST(
            COALESCE((SELECT i.base_offset FROM segment_index i
                      WHERE i.topic_id = p.topic_id AND i.partition = p.partition
                        AND i.max_timestamp >= ${asOf}::bigint - t.retention_hours::bigint * ${HOUR_MS}
                      ORDER BY i.base_offset LIMIT 1), p.next_offset),
            CASE WHEN t.retention_bytes IS NULL THEN 0 ELSE
              COALESCE((SELECT x.base_offset FROM (
                          SELECT i.base_offset, COALESCE(sum(i.byte_length) OVER (ORDER BY i.base_offset DESC
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS after
                          FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition) x
                        WHERE x.after < t.retention_bytes ORDER BY x.base_offset LIMIT 1), p.next_offset)
            END) AS target,
            (SELECT min(i.base_offset) FROM segment_index i WHERE i.topic_id = p.topic_id AND i.partition = p.partition) AS earliest
          FROM partitions p JOIN topics t ON t.id = p.topic_id) c
        WHERE c.earliest IS NOT NULL AND c.target > c.earliest
        ORDER BY c.topic_id, c.partition
        LIMIT ${limit}`,
  );
}

/** Applies retention to every partition as of `asOf` (ms); at most `maxPartitions` per pass. */
export async function applyRetention(db: Database, asOf: number, maxPartitions = 10_000): Promise<RetentionReport> {
  const report: RetentionReport = { batches: 0, bytes: 0 };
  for (const { topic_id: topicId, partition, target } of await expiring(db, asOf, maxPartitions)) {
    const removed = await retryConflicts(() =>
      db.transaction(async (tx) => {
        const gone = await rows<{ byte_length: number }>(
          tx,
          sql`DELETE FROM segment_index
              WHERE topic_id = ${topicId} AND partition = ${partition} AND last_offset < ${target}
              RETURNING byte_length`,
        );
        await tx.execute(sql`
          UPDATE group_partitions gp SET committed = ${target}, frontier = GREATEST(gp.frontier, ${target}), cursor_version = gp.cursor_version + 1
          FROM consumer_groups g
          WHERE g.id = gp.group_id AND g.topic_id = ${topicId} AND gp.partition = ${partition} AND gp.committed < ${target}`);
        await tx.execute(sql`
          DELETE FROM group_leases l USING consumer_groups g
          WHERE g.id = l.group_id AND g.topic_id = ${topicId} AND l.partition = ${partition} AND l.last_offset < ${target}`);
        return gone;
      }),
    );
    report.batches += removed.length;
    report.bytes += removed.reduce((sum, r) => sum + r.byte_length, 0);
  }
  return report;
}
