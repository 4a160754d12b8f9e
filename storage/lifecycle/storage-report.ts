/**
 * What the bucket holds per tenant (GET /v1/admin/storage), from the metadata: committed
 * segment objects and their bytes, and the bytes index rows still reference (a range that two
 * rows name — a dead letter and its source — counts once). Orphans are not counted: no row
 * knows them until the orphan pass deletes them.
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";

export interface TenantStorage {
  tenantId: string;
  objects: number;
  bytes: number;
  liveBytes: number;
}

export async function storageByTenant(db: Queryable): Promise<TenantStorage[]> {
  const found = await rows<{ tenant_id: string; objects: number; bytes: number; live: number }>(
    db,
    sql`WITH objects AS (
          SELECT tenant_id, count(*) AS objects, sum(byte_length)::bigint AS bytes FROM segments GROUP BY tenant_id),
        live AS (
          SELECT tenant_id, sum(byte_length)::bigint AS live
          FROM (SELECT DISTINCT tenant_id, segment_id, byte_offset, byte_length FROM segment_index) r GROUP BY tenant_id)
        SELECT o.tenant_id, o.objects, o.bytes, COALESCE(l.live, 0) AS live
        FROM objects o LEFT JOIN live l USING (tenant_id) ORDER BY o.tenant_id`,
  );
  return found.map((r) => ({ tenantId: r.tenant_id, objects: r.objects, bytes: r.bytes, liveBytes: r.live }));
}

/** Bytes the index rows of a topic reference (API.md: a topic's `storedBytes`). */
export async function topicStoredBytes(db: Queryable, topicId: number): Promise<number> {
  const [row] = await rows<{ bytes: number }>(
    db,
    sql`SELECT coalesce(sum(byte_length), 0)::bigint AS bytes FROM segment_index WHERE topic_id = ${topicId}`,
  );
  return row.bytes;
}

/**
 * Committed segment objects and their bytes per tenant, for the metrics scrape: one pass over
 * the segment rows (no index join, unlike storageByTenant's live bytes), at most `limit`
 * tenants, the largest first.
 */
export async function objectsByTenant(db: Queryable, limit: number): Promise<Omit<TenantStorage, "liveBytes">[]> {
  const found = await rows<{ tenant_id: string; objects: number; bytes: number }>(
    db,
    sql`SELECT tenant_id, count(*) AS objects, sum(byte_length)::bigint AS bytes FROM segments
        GROUP BY tenant_id ORDER BY bytes DESC, tenant_id LIMIT ${limit}`,
  );
  return found.map((r) => ({ tenantId: r.tenant_id, objects: r.objects, bytes: r.bytes }));
}
