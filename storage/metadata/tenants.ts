/** Tenants and their API keys. Keys are stored only as SHA-256 hashes. */
import { and, eq, sql } from "drizzle-orm";
import type { Database } from "./db.ts";
import { apiKeys, tenants } from "./schema.ts";
import { newId, newSecret, sha256Hex } from "./secrets.ts";

export const allScopes = ["produce", "consume", "manage"] as const;
export type Scope = (typeof allScopes)[number];

export interface Principal {
  tenantId: string;
  keyId: string;
  scopes: Scope[];
}

export async function createTenant(db: Database, name: string, quotas: Record<string, number>) {
  const tenantId = newId();
  const key = await newKey(tenantId, [...allScopes]);
  await db.transaction(async (tx) => {
    await tx.insert(tenants).values({ id: tenantId, name, quotas });
    await tx.insert(apiKeys).values(key.row);
  });
  return { tenantId, apiKey: key.apiKey, keyId: key.row.id };
}

export async function tenantExists(db: Database, tenantId: string): Promise<boolean> {
  const found = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId)).limit(1);
  return found.length > 0;
}

export async function createKey(db: Database, tenantId: string, scopes: Scope[]) {
  const key = await newKey(tenantId, scopes);
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

function keyByHash(db: Database) {
  return db
    .select({ tenantId: apiKeys.tenantId, keyId: apiKeys.id, scopes: apiKeys.scopes })
    .from(apiKeys)
    .where(eq(apiKeys.secretHash, sql.placeholder("hash")))
    .limit(1)
    .prepare("reservoir_key_by_hash");
}

// Built once per database handle: every request runs it, and building it cost more than running it.
const prepared = new WeakMap<Database, ReturnType<typeof keyByHash>>();

/** The principal a presented key stands for, or null. Looked up by hash, never by secret. */
export async function authenticate(db: Database, presented: string): Promise<Principal | null> {
  let query = prepared.get(db);
  if (!query) {
    query = keyByHash(db);
    prepared.set(db, query);
  }
  const found = await query.execute({ hash: sha256Hex(presented) });
  return found.length ? { ...found[0], scopes: found[0].scopes as Scope[] } : null;
}

async function newKey(tenantId: string, scopes: Scope[]) {
  const apiKey = newSecret("rsv_");
  return { apiKey, row: { id: newId(), tenantId, secretHash: sha256Hex(apiKey), scopes } };
}
