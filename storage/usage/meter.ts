/**
 * The one way usage is counted: a row of deltas inserted into usage_deltas by the transaction
 * (or statement) that commits the work, so what is billed is exactly what committed, and a
 * rolled-back transaction counts nothing. Insert-only: concurrent flushes of one tenant never
 * wait for each other on a counter row. Every commit path calls `recordUsage` (inside its own
 * transaction) or folds `usageInsert` into its single statement.
 */
import { sql, type SQL } from "drizzle-orm";
import type { Queryable } from "../metadata/db.ts";

export interface UsageDelta {
  messagesIn?: number;
  bytesIn?: number;
  messagesOut?: number;
  bytesOut?: number;
  deliveries?: number;
  requests?: number;
}

export const usageCounters = ["messagesIn", "bytesIn", "messagesOut", "bytesOut", "deliveries", "requests"] as const;

/** The start of the current UTC hour (ms), by the database's clock at the transaction's start. */
export const currentHour = sql`(floor(extract(epoch from now()) / 3600) * 3600000)::bigint`;

/**
 * An INSERT of one delta row whose counters are SQL expressions (evaluated over `from`, e.g.
 * a CTE of what a statement committed); nothing is inserted when `where` is false. For
 * statements that must stay one statement (the flush commit, the key check).
 */
export function usageInsert(
  tenantId: SQL | string,
  counters: Partial<Record<(typeof usageCounters)[number], SQL>>,
  from?: SQL,
  where?: SQL,
): SQL {
  const zero = sql`0`;
  return sql`INSERT INTO usage_deltas (tenant_id, hour, messages_in, bytes_in, messages_out, bytes_out, deliveries, requests)
    SELECT ${tenantId}, ${currentHour}, ${counters.messagesIn ?? zero}, ${counters.bytesIn ?? zero}, ${counters.messagesOut ?? zero},
           ${counters.bytesOut ?? zero}, ${counters.deliveries ?? zero}, ${counters.requests ?? zero}
    ${from ? sql`FROM ${from}` : sql``} ${where ? sql`WHERE ${where}` : sql``}`;
}

/** Adds a tenant's usage within the caller's transaction (`db` a transaction) or on its own. */
export async function recordUsage(db: Queryable, tenantId: string, delta: UsageDelta): Promise<void> {
  if (!usageCounters.some((c) => (delta[c] ?? 0) !== 0)) return;
  const counters = Object.fromEntries(usageCounters.map((c) => [c, sql`${delta[c] ?? 0}::bigint`]));
  await db.execute(usageInsert(tenantId, counters));
}
