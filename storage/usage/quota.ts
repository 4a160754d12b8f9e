/**
 * Quotas as token buckets kept in Postgres (table quota_buckets), so that every instance takes
 * from the same bucket: two instances serving one tenant never give it twice its rate. A take
 * is one upsert of the tenant's bucket row, folded into a statement the request runs anyway
 * (the key check, for requestsPerSecond) or run once for the produce request (bytesPerSecond);
 * the row is locked only while that one statement runs. Time is the database's clock, the one
 * clock all instances share. The burst is one second's worth (the bucket holds `rate` tokens);
 * a request costing more than the burst is admitted when the bucket is full and leaves it in
 * debt, so a large produce is slowed, never refused for ever.
 */
import { sql, type SQL } from "drizzle-orm";
import { ReservoirError } from "../errors.ts";
import { type Queryable, rows } from "../metadata/db.ts";
import type { TtlCache } from "../metadata/ttl-cache.ts";
import { recordUsage } from "./meter.ts";

export type Quotas = {
  requestsPerSecond?: number;
  bytesPerSecond?: number;
  storageBytes?: number;
  topics?: number;
};

export type BucketKind = "requests" | "bytes";

const nowMs = sql`(extract(epoch from clock_timestamp()) * 1000)::float8`;

/**
 * A CTE (to reference, so that it runs) making the statement's own transaction commit without
 * waiting for its WAL flush: a bucket row (hot: every request of the tenant takes from it) is
 * then locked for the statement only, not for an fsync. What such a commit may lose in a
 * Postgres crash is the last fraction of a second of buckets and request counts, never a
 * message or byte count (those commit with the work, synchronously).
 */
export const relaxedCommit = sql`SELECT set_config('synchronous_commit', 'off', true)`;

/**
 * An upsert taking `cost` tokens from each (tenant, rate) row `source` yields (columns
 * tenant_id, rate, cost; rows with a null rate take nothing). RETURNING granted, tokens, rate.
 */
export function takeTokens(kind: BucketKind, source: SQL): SQL {
  // The inserted row carries the take: rate - cost tokens, so cost = rate - excluded.tokens.
  const cost = sql`(excluded.rate - excluded.tokens)`;
  const available = sql`least(excluded.rate, b.tokens + greatest(0, excluded.updated_ms - b.updated_ms) * excluded.rate / 1000.0)`;
  return sql`INSERT INTO quota_buckets AS b (tenant_id, kind, tokens, rate, updated_ms, granted)
    SELECT s.tenant_id, ${kind}, s.rate - s.cost, s.rate, ${nowMs}, true FROM ${source} s WHERE s.rate IS NOT NULL
    ON CONFLICT (tenant_id, kind) DO UPDATE SET
      tokens = CASE WHEN ${available} >= least(${cost}, excluded.rate) THEN ${available} - ${cost} ELSE ${available} END,
      granted = ${available} >= least(${cost}, excluded.rate),
      rate = excluded.rate,
      updated_ms = greatest(b.updated_ms, excluded.updated_ms)
    RETURNING b.granted, b.tokens, b.rate`;
}

/** Whole seconds until a refused take of `cost` would be granted (at least 1). */
export function retryAfterSeconds(cost: number, tokens: number, rate: number): number {
  const seconds = Math.ceil((Math.min(cost, rate) - tokens) / rate);
  // A vanishing rate would say "Infinity": a day is as long as a client should be told to wait.
  return Number.isFinite(seconds) ? Math.min(86_400, Math.max(1, seconds)) : 86_400;
}

export function quotaExceeded(what: string, retryAfter: number): ReservoirError {
  return new ReservoirError("quota_exceeded", `the tenant's ${what} quota is exhausted; retry after ${retryAfter} s`, {
    retryAfterSeconds: retryAfter,
  });
}

/**
 * A produce request's admission past the key check: the tenant's stored bytes plus its bytes
 * against storageBytes (one statement), and its bytes against bytesPerSecond (one statement),
 * each only when the tenant has that quota.
 */
export async function admitProduce(
  db: Queryable,
  tenantId: string,
  quotas: Quotas,
  bytes: number,
  storedCache: StoredBytesCache,
): Promise<void> {
  if (quotas.storageBytes !== undefined) {
    // Summing the tenant's segments per produce would cost a scan per request: the sum is read
    // at most once a second per instance, and what this instance admitted since is added to it.
    const stored = await storedCache.get(tenantId, async () => ({ bytes: await storedBytes(db, tenantId) }));
    if (stored.bytes + bytes > quotas.storageBytes) {
      throw new ReservoirError(
        "quota_exceeded",
        `the tenant stores ${stored.bytes} bytes; ${bytes} more would exceed its storageBytes quota of ${quotas.storageBytes}`,
        { retryAfterSeconds: 60 },
      );
    }
    stored.bytes += bytes;
  }
  if (quotas.bytesPerSecond !== undefined && bytes > 0) {
    const source = sql`(SELECT ${tenantId}::text AS tenant_id, ${quotas.bytesPerSecond}::float8 AS rate, ${bytes}::float8 AS cost)`;
    const [taken] = await rows<{ granted: boolean; tokens: number; rate: number }>(
      db,
      sql`WITH relaxed AS (${relaxedCommit}), taken AS (${takeTokens("bytes", source)}) SELECT taken.*, (SELECT count(*) FROM relaxed) AS relaxed FROM taken`,
    );
    if (taken && !taken.granted) throw quotaExceeded("bytesPerSecond", retryAfterSeconds(bytes, Number(taken.tokens), Number(taken.rate)));
  }
}

/** Per instance: each tenant's stored bytes as last read (at most a second ago) plus what this instance admitted since. */
export type StoredBytesCache = TtlCache<{ bytes: number }>;

/** The bytes of the tenant's committed segment objects: what its storage quota and its storageByteHours measure. */
export async function storedBytes(db: Queryable, tenantId: string): Promise<number> {
  const [stored] = await rows<{ bytes: number }>(
    db,
    sql`SELECT coalesce(sum(byte_length), 0)::bigint AS bytes FROM segments WHERE tenant_id = ${tenantId}`,
  );
  return stored.bytes;
}

/**
 * A request refused by a quota after its key check (bytes, storage, topics) is not billable:
 * the key check counted it, so the refusal takes that count back.
 */
export async function uncountRefusedRequest(db: Queryable, tenantId: string): Promise<void> {
  await recordUsage(db, tenantId, { requests: -1 });
}
