/**
 * One maintenance pass at a time across every instance (Node processes and Worker isolates
 * alike): a lease row in `settings`, taken when absent or expired and released when the pass
 * ends. A lease, not a session advisory lock, because a Worker's connection lives for one
 * event and a Node pool hands statements to any connection. Times are the database's.
 *
 * The lease is short and renewed while the pass runs, so an instance killed mid-pass blocks
 * the others for one lease at most. Two passes overlapping anyway (a renewal too late) is safe,
 * only wasteful: collection skips locked rows, and a compaction whose rows another one switched
 * first switches nothing (its object is then collected).
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";

const LEASE = "maintenance_lease";

/** Takes the lease for `ttlMs` under `holder`; false if another holder's lease is still live. */
export async function takeMaintenanceLease(db: Queryable, holder: string, ttlMs: number): Promise<boolean> {
  const taken = await rows<{ name: string }>(
    db,
    sql`INSERT INTO settings (name, value)
        VALUES (${LEASE}, ${holder} || ':' || ((extract(epoch FROM clock_timestamp()) * 1000)::bigint + ${ttlMs})::text)
        ON CONFLICT (name) DO UPDATE SET value = excluded.value
        WHERE split_part(settings.value, ':', 2)::bigint < (extract(epoch FROM clock_timestamp()) * 1000)::bigint
        RETURNING name`,
  );
  return taken.length > 0;
}

export async function releaseMaintenanceLease(db: Queryable, holder: string): Promise<void> {
  await db.execute(sql`DELETE FROM settings WHERE name = ${LEASE} AND split_part(value, ':', 1) = ${holder}`);
}

/** Extends the lease `holder` still holds by `ttlMs` from now; false if it was lost. */
export async function renewMaintenanceLease(db: Queryable, holder: string, ttlMs: number): Promise<boolean> {
  const renewed = await rows<{ name: string }>(
    db,
    sql`UPDATE settings SET value = ${holder} || ':' || ((extract(epoch FROM clock_timestamp()) * 1000)::bigint + ${ttlMs})::text
        WHERE name = ${LEASE} AND split_part(value, ':', 1) = ${holder}
        RETURNING name`,
  );
  return renewed.length > 0;
}
