/**
 * Usage rows per tenant and UTC hour: the rolled-up hours plus the deltas not rolled up yet
 * (so work is visible as soon as its transaction commits) plus the hourly storage sample.
 * Read page by page (keyset on tenant, hour) so that a large range streams.
 */
import { sql } from "drizzle-orm";
import { type Queryable, rows } from "../metadata/db.ts";

export interface UsageRow {
  tenantId: string;
  hour: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  deliveries: number;
  requests: number;
  storageByteHours: number;
}

export const usageFields = [
  "tenantId",
  "hour",
  "messagesIn",
  "bytesIn",
  "messagesOut",
  "bytesOut",
  "deliveries",
  "requests",
  "storageByteHours",
] as const;

export interface UsageRange {
  /** One tenant, or every tenant (operator export). */
  tenantId?: string;
  /** Inclusive, ms (any instant: rows are hours starting at or after the hour containing it). */
  from: number;
  /** Exclusive, ms. */
  to: number;
}

/** bigint columns and sums cast to bigint: numbers (storage/metadata/pg-types.ts). */
interface Raw {
  tenant_id: string;
  hour: number;
  messages_in: number;
  bytes_in: number;
  messages_out: number;
  bytes_out: number;
  deliveries: number;
  requests: number;
  storage: number;
}

const PAGE = 1000;

/** One page of rows after (tenant, hour) `after`, in (tenant, hour) order. */
export async function usagePage(
  db: Queryable,
  range: UsageRange,
  after?: { tenantId: string; hour: number },
  limit = PAGE,
): Promise<UsageRow[]> {
  const tenant = (column: string) => (range.tenantId === undefined ? sql`true` : sql`${sql.raw(column)} = ${range.tenantId}`);
  const window = sql`hour >= ${range.from} AND hour < ${range.to}`;
  const page = after ? sql`(tenant_id, hour) > (${after.tenantId}, ${after.hour}::bigint)` : sql`true`;
  const found = await rows<Raw>(
    db,
    sql`SELECT tenant_id, hour, sum(messages_in)::bigint AS messages_in, sum(bytes_in)::bigint AS bytes_in,
               sum(messages_out)::bigint AS messages_out, sum(bytes_out)::bigint AS bytes_out, sum(deliveries)::bigint AS deliveries,
               sum(requests)::bigint AS requests, sum(storage)::bigint AS storage
        FROM (
          SELECT tenant_id, hour, messages_in, bytes_in, messages_out, bytes_out, deliveries, requests, 0 AS storage
          FROM usage_hourly WHERE ${tenant("tenant_id")} AND ${window} AND ${page}
          UNION ALL
          SELECT tenant_id, hour, messages_in, bytes_in, messages_out, bytes_out, deliveries, requests, 0
          FROM usage_deltas WHERE ${tenant("tenant_id")} AND ${window} AND ${page}
          UNION ALL
          SELECT tenant_id, hour, 0, 0, 0, 0, 0, 0, bytes
          FROM usage_storage WHERE ${tenant("tenant_id")} AND ${window} AND ${page}
        ) u
        GROUP BY tenant_id, hour ORDER BY tenant_id, hour LIMIT ${limit}`,
  );
  return found.map((r) => ({
    tenantId: r.tenant_id,
    hour: r.hour,
    messagesIn: r.messages_in,
    bytesIn: r.bytes_in,
    messagesOut: r.messages_out,
    bytesOut: r.bytes_out,
    deliveries: r.deliveries,
    requests: r.requests,
    storageByteHours: r.storage,
  }));
}

/** Every row of the range, page by page. */
export async function* usageRows(db: Queryable, range: UsageRange): AsyncGenerator<UsageRow> {
  let after: { tenantId: string; hour: number } | undefined;
  for (;;) {
    const page = await usagePage(db, range, after);
    yield* page;
    if (page.length < PAGE) return;
    const last = page[page.length - 1];
    after = { tenantId: last.tenantId, hour: last.hour };
  }
}
