/**
 * THE one place that knows which rows keep a segment's bytes alive. Every pass that deletes
 * objects (collection of unreferenced segments, orphans, compaction) asks through this
 * predicate, so a new table that can name a segment is one more line here and nowhere else.
 *
 * Tables that name a segment today:
 * - segment_index: the index rows of every topic — source topics, dead-letter topics (whose
 *   rows point into the source topic's bytes, storage/groups/dead-letter.ts) and redriven rows
 *   (new rows of the source topic pointing at the same bytes).
 * When pending transactional runs (issue 12) get a table naming segment ids, add
 * `OR EXISTS (SELECT 1 FROM <that table> x WHERE x.segment_id = ${segmentId})` below.
 */
import { type SQL, sql } from "drizzle-orm";

/** A boolean SQL expression: true while any row names the segment whose id is `segmentId`. */
export function segmentReferenced(segmentId: SQL): SQL {
  return sql`(EXISTS (SELECT 1 FROM segment_index r WHERE r.segment_id = ${segmentId}))`;
}
