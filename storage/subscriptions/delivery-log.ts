/** The delivery log: one row per attempt, written in the transaction that settles it. */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";

export interface DeliveryAttempt {
  partition: number;
  offset: number;
  attempt: number;
  succeeded: boolean;
  httpStatus: number | null;
  error: string | null;
  /** When the attempt started (ms). */
  at: number;
  durationMs: number;
  /** The message's metered bytes (usage: bytesOut of a successful delivery); not logged. */
  bytes?: number;
}

/** How long attempts stay in the log. */
export const DELIVERY_LOG_RETENTION_MS = 7 * 24 * 3600 * 1000;

export async function recordAttempts(tx: Queryable, subscriptionId: number, attempts: DeliveryAttempt[]): Promise<void> {
  if (attempts.length === 0) return;
  const col = <K extends Exclude<keyof DeliveryAttempt, "succeeded">>(k: K) => attempts.map((a) => a[k]);
  await tx.execute(sql`
    INSERT INTO webhook_deliveries (subscription_id, partition, "offset", attempt, succeeded, http_status, error, at, duration_ms)
    SELECT ${subscriptionId}, p, o, a, s <> 0, h, e, t, d
    FROM unnest(${sqlArray(col("partition"), "int")}, ${sqlArray(col("offset"), "bigint")}, ${sqlArray(col("attempt"), "int")},
      ${sqlArray(
        attempts.map((a) => (a.succeeded ? 1 : 0)),
        "int",
      )}, ${sqlArray(col("httpStatus"), "int")},
      ${sqlArray(col("error"), "text")}, ${sqlArray(col("at"), "bigint")}, ${sqlArray(col("durationMs"), "int")}) AS v(p, o, a, s, h, e, t, d)`);
}

export async function latestAttempts(db: Queryable, subscriptionId: number, limit: number): Promise<DeliveryAttempt[]> {
  const found = await rows<{
    partition: number;
    offset: number;
    attempt: number;
    succeeded: boolean;
    http_status: number | null;
    error: string | null;
    at: number;
    duration_ms: number;
  }>(
    db,
    sql`SELECT partition, "offset", attempt, succeeded, http_status, error, at, duration_ms FROM webhook_deliveries
        WHERE subscription_id = ${subscriptionId} ORDER BY id DESC LIMIT ${limit}`,
  );
  return found.map((r) => ({
    partition: r.partition,
    offset: r.offset,
    attempt: r.attempt,
    succeeded: r.succeeded,
    httpStatus: r.http_status,
    error: r.error,
    at: r.at,
    durationMs: r.duration_ms,
  }));
}

export async function pruneAttempts(db: Queryable, now: number): Promise<void> {
  await db.execute(sql`DELETE FROM webhook_deliveries WHERE at < ${now - DELIVERY_LOG_RETENTION_MS}`);
}
