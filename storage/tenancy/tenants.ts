/** Tenants and their API keys. Keys are stored only as SHA-256 hashes. */
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Database } from "../metadata/db.ts";
import type { DeferredKeyCheck } from "./deferred-key-check.ts";
import { apiKeys, tenants } from "../metadata/schema.ts";
import { newId, newSecret, sha256Hex } from "../metadata/secrets.ts";
import { deriveApiKey } from "./derived-keys.ts";
import { usageInsert } from "../usage/meter.ts";
import { type Quotas, quotaExceeded, relaxedCommit, retryAfterSeconds, takeTokens } from "../usage/quota.ts";

export const allScopes = ["produce", "consume", "manage"] as const;
export type Scope = (typeof allScopes)[number];

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: Scope[];
  quotas: Quotas;
  /** Whether the key check took this request's bytes from the tenant's bytes bucket already. */
  bytesCharged: boolean;
  /** The operator token reading as this tenant (functions/auth.ts): nothing is metered for it. */
  operator?: boolean;
  /** A request whose key check is left to the statements that do its work (deferred-key-check.ts). */
  deferred?: DeferredKeyCheck;
}

/**
 * `keySecret`: the deployment secret API keys are derived from (derived-keys.ts), so that they
 * also sign SigV4 requests; without it (tests of the storage layer) a key is random.
 */
export async function createTenant(db: Database, name: string, quotas: Quotas, keySecret?: Uint8Array) {
  const tenantId = newId();
  const key = await newKey(tenantId, [...allScopes], keySecret);
  await db.transaction(async (tx) => {
    await tx.insert(tenants).values({ id: tenantId, name, quotas });
    await tx.insert(apiKeys).values(key.row);
  });
  return { tenantId, apiKey: key.apiKey, keyId: key.row.id };
}

export interface TenantView {
  tenantId: string;
  name: string;
  quotas: Quotas;
  createdAt: number;
}

/** Tenants by creation time, then id, at most `limit`. */
export async function listTenants(db: Database, limit: number): Promise<TenantView[]> {
  const found = await db.select().from(tenants).orderBy(tenants.createdAt, tenants.id).limit(limit);
  return found.map((t) => ({ tenantId: t.id, name: t.name, quotas: t.quotas, createdAt: t.createdAt.getTime() }));
}

export async function getTenant(db: Database, tenantId: string): Promise<TenantView | null> {
  const [found] = await db.select().from(tenants).where(eq(tenants.id, tenantId)).limit(1);
  return found ? { tenantId: found.id, name: found.name, quotas: found.quotas, createdAt: found.createdAt.getTime() } : null;
}

/**
 * Merges quota changes into the tenant's quotas (a null removes one). A bucket keeps its tokens
 * and takes the new rate at its next take; a removed rate leaves its row unused.
 */
export async function updateQuotas(db: Database, tenantId: string, changes: Record<string, number | null>): Promise<TenantView | null> {
  const updated = await db
    .update(tenants)
    .set({ quotas: sql`jsonb_strip_nulls(${tenants.quotas} || ${JSON.stringify(changes)}::jsonb)` })
    .where(eq(tenants.id, tenantId))
    .returning({ id: tenants.id });
  return updated.length ? getTenant(db, tenantId) : null;
}

export async function tenantExists(db: Database, tenantId: string): Promise<boolean> {
  const found = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).limit(1);
  return found.length > 0;
}

export async function createKey(db: Database, tenantId: string, scopes: Scope[], keySecret?: Uint8Array) {
  const key = await newKey(tenantId, scopes, keySecret);
  await db.insert(apiKeys).values(key.row);
  return { apiKey: key.apiKey, keyId: key.row.id, scopes };
}

export async function deleteKey(db: Database, tenantId: string, keyId: string): Promise<boolean> {
  const deleted = await db
    .delete(apiKeys)
    .where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, keyId)))
    .returning({ id: apiKeys.id });
  return deleted.length > 0;
}

/** Whether a key with this id exists and its secret hashes to `hash` (the SQS endpoint tells an unknown key from a bad signature by it). */
export async function keyHasHash(db: Database, keyId: string, hash: string): Promise<boolean> {
  const [found] = await db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.secretHash, hash)))
    .limit(1);
  return found !== undefined;
}

/**
 * The key check, one statement per request as before metering: find the key by its hash (the
 * unique index compares digests; the secret itself is never stored or compared), take a token
 * from the tenant's requests bucket when it has a requestsPerSecond quota and `bytes` tokens
 * from its bytes bucket when it has a bytesPerSecond quota (storage/usage/quota.ts; bytes only
 * if the requests bucket granted), and count the request in usage unless a bucket refused it.
 * Its answer is never reused: a revoked key fails on the very next request at every instance (a
 * request that skips this check is checked by the statements of its work: deferred-key-check.ts).
 */
function keyCheck(hash: Placeholder, bytes: Placeholder) {
  const requests = sql`(SELECT tenant_id, (quotas->>'requestsPerSecond')::float8 AS rate, 1::float8 AS cost FROM k)`;
  const bodyBytes = sql`(SELECT tenant_id, (quotas->>'bytesPerSecond')::float8 AS rate, ${bytes}::float8 AS cost FROM k
    WHERE ${bytes}::float8 > 0 AND NOT EXISTS (SELECT 1 FROM by_requests WHERE NOT by_requests.granted))`;
  const refused = sql`(SELECT 1 FROM by_requests WHERE NOT granted UNION ALL SELECT 1 FROM by_bytes WHERE NOT granted)`;
  return sql`WITH relaxed AS (${relaxedCommit}), k AS MATERIALIZED (
      SELECT a.id, a.tenant_id, a.scopes, t.quotas FROM api_keys a JOIN tenants t ON t.id = a.tenant_id
      WHERE a.secret_hash = ${hash} LIMIT 1),
    by_requests AS (${takeTokens("requests", requests)}),
    by_bytes AS (${takeTokens("bytes", bodyBytes)}),
    counted AS (${usageInsert(sql`k.tenant_id`, { requests: sql`1` }, sql`k`, sql`NOT EXISTS ${refused}`)} RETURNING 1)
    SELECT k.id AS key_id, k.tenant_id, to_json(k.scopes) AS scopes, k.quotas,
      r.granted, r.tokens, r.rate, b.granted AS bytes_granted, b.tokens AS bytes_tokens, b.rate AS bytes_rate,
      (SELECT count(*) FROM counted) AS counted, (SELECT count(*) FROM relaxed) AS relaxed
    FROM k LEFT JOIN by_requests r ON true LEFT JOIN by_bytes b ON true`;
}

type Placeholder = ReturnType<typeof sql.placeholder>;

interface KeyCheckRow {
  key_id: string;
  tenant_id: string;
  scopes: string[];
  quotas: Quotas;
  granted: boolean | null;
  tokens: number | null;
  rate: number | null;
  bytes_granted: boolean | null;
  bytes_tokens: number | null;
  bytes_rate: number | null;
}

/**
 * The principal a presented key stands for, or null. `bytes`: what the request asks of the
 * tenant's bytes bucket (a produce body's declared length; 0 for anything else). Throws
 * quota_exceeded (with the seconds to wait) when a bucket is empty.
 */
export function authenticate(db: Database, presented: string, bytes = 0): Promise<Principal | null> {
  return authenticateHash(db, sha256Hex(presented), bytes);
}

/** The same, for a key whose secret the caller hashed already (sha256Hex). */
export async function authenticateHash(db: Database, hash: string, bytes = 0): Promise<Principal | null> {
  const [found] = await runKeyCheck(db, hash, bytes);
  if (!found) return null;
  if (found.granted === false) {
    throw quotaExceeded("requestsPerSecond", retryAfterSeconds(1, Number(found.tokens), Number(found.rate)));
  }
  if (found.bytes_granted === false) {
    throw quotaExceeded("bytesPerSecond", retryAfterSeconds(bytes, Number(found.bytes_tokens), Number(found.bytes_rate)));
  }
  return {
    tenantId: found.tenant_id,
    keyId: found.key_id,
    scopes: found.scopes as Scope[],
    quotas: found.quotas,
    bytesCharged: found.bytes_granted === true,
  };
}

interface PreparedKeyCheck {
  execute(values: { hash: string; bytes: number }): Promise<unknown>;
}

// Prepared once per database handle (the statement's text never changes, and building it per
// request cost more CPU than running it): drizzle's own prepared-query path, as a query
// builder's .prepare() takes, so the adapter's failure translation (db.ts) applies.
const prepared = new WeakMap<Database, PreparedKeyCheck>();

async function runKeyCheck(db: Database, hash: string, bytes: number): Promise<KeyCheckRow[]> {
  let query = prepared.get(db);
  if (!query) {
    const internals = db as unknown as {
      session: { prepareQuery(query: unknown, fields: undefined, name: string, arrayMode: boolean): PreparedKeyCheck };
      dialect: { sqlToQuery(query: SQL): unknown };
    };
    query = internals.session.prepareQuery(
      internals.dialect.sqlToQuery(keyCheck(sql.placeholder("hash"), sql.placeholder("bytes"))),
      undefined,
      "reservoir_key_check",
      false,
    );
    prepared.set(db, query);
  }
  const result = (await query.execute({ hash, bytes })) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: KeyCheckRow[] }).rows) as KeyCheckRow[];
}

/** A new key: derived from the deployment secret when one is given, else random. */
async function newKey(tenantId: string, scopes: Scope[], keySecret?: Uint8Array) {
  const id = newId();
  const apiKey = keySecret ? deriveApiKey(keySecret, id) : newSecret("rsv_");
  return { apiKey, row: { id, tenantId, secretHash: sha256Hex(apiKey), scopes } };
}
