/**
 * Background upkeep of usage (Node: on the dispatcher's sweep timer; Workers: on the Cron
 * Trigger): roll delta rows up into usage_hourly, and sample each tenant's stored bytes once
 * per UTC hour. Both are safe to run on every instance at once: the roll-up moves rows with
 * DELETE ... RETURNING under SKIP LOCKED (a row is moved by one roll-up only), and the first
 * sample of an hour wins.
 */
import { sql } from "drizzle-orm";
import { type Queryable, rows } from "../metadata/db.ts";
import { currentHour } from "./meter.ts";

const ROLLUP_BATCH = 10_000;

/** Moves up to `batch` delta rows into usage_hourly; returns how many it moved. */
export async function rollUpUsage(db: Queryable, batch = ROLLUP_BATCH): Promise<number> {
  const [moved] = await rows<{ n: number }>(
    db,
    sql`WITH moved AS (
          DELETE FROM usage_deltas WHERE ctid = ANY(ARRAY(SELECT ctid FROM usage_deltas LIMIT ${batch} FOR UPDATE SKIP LOCKED))
          RETURNING *),
        summed AS (
          INSERT INTO usage_hourly AS h (tenant_id, hour, messages_in, bytes_in, messages_out, bytes_out, deliveries, requests)
          SELECT tenant_id, hour, sum(messages_in), sum(bytes_in), sum(messages_out), sum(bytes_out), sum(deliveries), sum(requests)
          FROM moved GROUP BY tenant_id, hour
          ON CONFLICT (tenant_id, hour) DO UPDATE SET
            messages_in = h.messages_in + excluded.messages_in, bytes_in = h.bytes_in + excluded.bytes_in,
            messages_out = h.messages_out + excluded.messages_out, bytes_out = h.bytes_out + excluded.bytes_out,
            deliveries = h.deliveries + excluded.deliveries, requests = h.requests + excluded.requests
          RETURNING 1)
        SELECT (SELECT count(*) FROM moved) AS n, (SELECT count(*) FROM summed) AS s`,
  );
  return moved?.n ?? 0;
}

/** Records every tenant's stored bytes (its committed segments) for the current hour, unless sampled already. */
export async function sampleStorage(db: Queryable): Promise<number> {
  const sampled = await rows<{ tenant_id: string }>(
    db,
    sql`INSERT INTO usage_storage (tenant_id, hour, bytes)
        SELECT t.id, ${currentHour}, coalesce((SELECT sum(s.byte_length) FROM segments s WHERE s.tenant_id = t.id), 0)
        FROM tenants t
        ON CONFLICT (tenant_id, hour) DO NOTHING
        RETURNING tenant_id`,
  );
  return sampled.length;
}

/** One upkeep pass: the storage sample, then the roll-up until the deltas present are moved. */
export async function usageUpkeep(db: Queryable): Promise<void> {
  await sampleStorage(db);
  for (let pass = 0; pass < 100 && (await rollUpUsage(db)) === ROLLUP_BATCH; pass++);
}
