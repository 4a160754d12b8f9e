/**
 * THE one place that knows which rows keep a segment's bytes alive. Every pass that deletes
 * objects (collection of unreferenced segments, orphans, compaction) asks through this
 * predicate, so a new table that can name a segment is one more line here and nowhere else.
 *
 * Tables that name a segment today:
 * - segment_index: the index rows of every topic — source topics, dead-letter topics (whose
 *   rows point into the source topic's bytes, storage/groups/dead-letter.ts) and redriven rows
 *   (new rows of the source topic pointing at the same bytes);
 * - transaction_runs: the pending runs of open transactions (storage/transactions/pending.ts);
 *   a commit turns them into index rows in the same transaction that deletes them, and a
 *   rollback or timeout deletes them, after which the collector finds the segment unreferenced.
 */
import { type SQL, sql } from "drizzle-orm";

/** A boolean SQL expression: true while any row names the segment whose id is `segmentId`. */
export function segmentReferenced(segmentId: SQL): SQL {
  return sql`(EXISTS (SELECT 1 FROM segment_index r WHERE r.segment_id = ${segmentId})
    OR EXISTS (SELECT 1 FROM transaction_runs t WHERE t.segment_id = ${segmentId}))`;
}
