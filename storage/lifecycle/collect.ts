/**
 * Collection of unreferenced segments (DESIGN.md "Retention, compaction, garbage"): mark, then
 * sweep after the grace period. A pass first stamps `unreferenced_at` (the database's clock) on
 * segments no row names (references.ts), clears it on any that gained a reference since, and
 * deletes the rows — then the objects — of segments stamped more than the grace period ago and
 * still unreferenced. A reader that looked up an index row before retention, deletion or
 * compaction removed it has the whole grace period to GET the bytes.
 *
 * Restart safety: the segment row goes first (in its own transaction), the object after. A
 * crash between the two leaves an object no row names: an orphan, which orphans.ts deletes.
 * Deleting the row also closes the door behind it: segment_index.segment_id references
 * segments.id, so no index row can name the segment once its row is gone.
 */
import { sql } from "drizzle-orm";
import { rows, type Database } from "../metadata/db.ts";
import type { ObjectStore } from "../objects/object-store.ts";
import { unavailable } from "../errors.ts";
import { segmentReferenced } from "./references.ts";

export interface Collected {
  objects: number;
  bytes: number;
}

/**
 * Segments looked at per pass by the mark, in id order from a checkpoint that wraps around at
 * the end: a pass costs the same however many segments the bucket holds, and every segment is
 * looked at again within (segments / MARK_WINDOW) passes. (Ids start with their creation time,
 * storage/log/segment-ids.ts, so a window is a stretch of time.)
 */
const MARK_WINDOW = 20_000;
const MARK_CHECKPOINT = "collect_mark_checkpoint";
const SWEEP_BATCH = 1000;

export async function collectUnreferenced(
  db: Database,
  store: ObjectStore,
  options: { graceSeconds: number; maxObjects?: number; markWindow?: number },
): Promise<Collected> {
  const window = options.markWindow ?? MARK_WINDOW;
  await db.execute(sql`
    WITH saved AS (SELECT coalesce((SELECT value FROM settings WHERE name = ${MARK_CHECKPOINT}), '') AS after),
    seen AS MATERIALIZED (
      SELECT c.id, c.unreferenced_at FROM segments c, saved WHERE c.id > saved.after ORDER BY c.id LIMIT ${window}),
    marked AS (
      UPDATE segments s SET unreferenced_at = clock_timestamp()
      FROM seen WHERE s.id = seen.id AND seen.unreferenced_at IS NULL AND NOT ${segmentReferenced(sql`seen.id`)}
      RETURNING 1)
    -- The next pass starts after this window, or from the start once the end was reached.
    INSERT INTO settings (name, value)
    SELECT ${MARK_CHECKPOINT}, CASE WHEN count(*) < ${window} THEN '' ELSE max(id) END FROM seen
    ON CONFLICT (name) DO UPDATE SET value = excluded.value`);
  // A dead-letter move or redrive that read its source row before retention removed it may
  // have added a row since the mark: such a segment is referenced again.
  await db.execute(sql`
    UPDATE segments s SET unreferenced_at = NULL
    WHERE s.unreferenced_at IS NOT NULL AND ${segmentReferenced(sql`s.id`)}`);
  const collected: Collected = { objects: 0, bytes: 0 };
  const maxObjects = options.maxObjects ?? 100_000;
  while (collected.objects < maxObjects) {
    const gone = await rows<{ object_key: string; byte_length: number }>(
      db,
      sql`DELETE FROM segments s
          WHERE s.id IN (SELECT c.id FROM segments c
                         WHERE c.unreferenced_at <= clock_timestamp() - ${options.graceSeconds} * interval '1 second'
                           AND NOT ${segmentReferenced(sql`c.id`)}
                         ORDER BY c.unreferenced_at
                         LIMIT ${Math.min(SWEEP_BATCH, maxObjects - collected.objects)}
                         FOR UPDATE SKIP LOCKED)
          RETURNING s.object_key, s.byte_length`,
    );
    if (gone.length === 0) break;
    try {
      await store.deleteMany(gone.map((g) => g.object_key));
    } catch (error) {
      // The rows are gone: the objects are orphans now, which the orphan pass deletes later.
      throw unavailable("the object store did not delete collected segments; the orphan pass will", error);
    }
    collected.objects += gone.length;
    collected.bytes += gone.reduce((sum, g) => sum + g.byte_length, 0);
  }
  return collected;
}
