/**
 * The reconciling collector (DESIGN.md, write path step 3): objects under a segment prefix
 * (`tenants/<tenantId>/segments/`) that no committed segment row names and that are older than
 * the grace period are orphans — a flush whose commit failed, or a collection interrupted
 * between deleting a segment's row and its object. Each pass lists at most `maxKeys` keys past
 * a checkpoint kept in `settings`, and wraps around at the end, so every object is seen within
 * a bounded number of passes wherever its name sorts. Keys outside a segment prefix are never
 * deleted (nor looked at beyond their name).
 *
 * Why the age test is safe: a flush fails rather than commit later than its deadline after its
 * PUT started, and that deadline is at most half the grace period (commitDeadlineMs in
 * functions/instance.ts), so an unnamed object older than the grace period can no longer be
 * named by a commit.
 */
import { sql } from "drizzle-orm";
import { rows, type Database } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import { ObjectNotFoundError, type ObjectStore } from "../objects/object-store.ts";
import type { Collected } from "./collect.ts";

const CHECKPOINT = "orphan_checkpoint";
const SEGMENT_KEY = /^tenants\/[^/]+\/segments\/[^/]+$/;

export async function collectOrphans(
  db: Database,
  store: ObjectStore,
  options: { graceSeconds: number; now: number; maxKeys?: number },
): Promise<Collected> {
  const [saved] = await rows<{ value: string }>(db, sql`SELECT value FROM settings WHERE name = ${CHECKPOINT}`);
  const startAfter = saved?.value || undefined;
  const page = await store.list("tenants/", { startAfter, limit: options.maxKeys ?? 1000 });
  const candidates = page.keys.filter((key) => SEGMENT_KEY.test(key));
  const orphans: { key: string; size: number }[] = [];
  if (candidates.length > 0) {
    const named = await rows<{ object_key: string }>(
      db,
      sql`SELECT object_key FROM segments WHERE object_key = ANY(${sqlArray(candidates, "text")})`,
    );
    const known = new Set(named.map((n) => n.object_key));
    const cutoff = options.now - options.graceSeconds * 1000;
    for (const key of candidates) {
      if (known.has(key)) continue;
      try {
        const info = await store.head(key);
        if (info.lastModified < cutoff) orphans.push({ key, size: info.size });
      } catch (error) {
        if (!(error instanceof ObjectNotFoundError)) throw error;
      }
    }
  }
  if (orphans.length > 0) await store.deleteMany(orphans.map((o) => o.key));
  // The checkpoint moves only once the page is handled: a crash re-lists it, which is harmless.
  const next = page.nextStartAfter ?? "";
  await db.execute(sql`
    INSERT INTO settings (name, value) VALUES (${CHECKPOINT}, ${next})
    ON CONFLICT (name) DO UPDATE SET value = excluded.value`);
  return { objects: orphans.length, bytes: orphans.reduce((sum, o) => sum + o.size, 0) };
}
