/**
 * Transactions as resources (API.md "Transactions"): begin, state, rollback, and the end of a
 * rolled-back transaction, which drops its pending runs (the segments they alone referenced are
 * then collected by the storage lifecycle). The commit is commit.ts.
 */
import { sql } from "drizzle-orm";
import { ReservoirError } from "../errors.ts";
import { rows, type Database, type Queryable } from "../metadata/db.ts";
import { transactionLimits } from "./limits.ts";

export type TransactionState = "open" | "committed" | "rolled_back";

export interface TransactionRow {
  id: string;
  tenantId: string;
  state: TransactionState;
  expiresAt: number;
  checkUrl: string | null;
  checkSecret: string | null;
  checkIntervalMs: number;
  checks: number;
  unknowns: number;
  offsets: { topic: string; partition: number; offset: number }[] | null;
}

interface RawRow {
  id: string;
  tenant_id: string;
  state: TransactionState;
  expires_at: number;
  check_url: string | null;
  check_secret: string | null;
  check_interval_ms: number;
  checks: number;
  unknowns: number;
  offsets: TransactionRow["offsets"];
}

export const rowColumns = sql`id, tenant_id, state, expires_at, check_url, check_secret, check_interval_ms, checks, unknowns, offsets`;

export function toTransaction(r: RawRow): TransactionRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    state: r.state,
    expiresAt: r.expires_at,
    checkUrl: r.check_url,
    checkSecret: r.check_secret,
    checkIntervalMs: r.check_interval_ms,
    checks: r.checks,
    unknowns: r.unknowns,
    offsets: r.offsets,
  };
}

/** Random, unguessable: an id is all a producer needs to add to or end a transaction of its tenant. */
export function newTransactionId(): string {
  return `tx_${crypto.randomUUID().replaceAll("-", "")}`;
}

export interface Begin {
  tenantId: string;
  timeoutMs: number;
  checkUrl?: string;
  checkSecret?: string;
  checkIntervalMs: number;
  now: number;
}

/** Opens a transaction unless the tenant has transactionLimits.openPerTenant open already, in one statement. */
export async function beginTransaction(db: Database, begin: Begin): Promise<{ id: string; expiresAt: number }> {
  const id = newTransactionId();
  const expiresAt = begin.now + begin.timeoutMs;
  const created = await rows<{ id: string }>(
    db,
    // Counted from the tenant's open rows (an index range of at most the limit), not kept in a
    // counter row: a row every begin and every end of the tenant updates would make them all
    // wait for each other's commit. Concurrent begins may pass the bound by at most their number.
    sql`INSERT INTO transactions (id, tenant_id, state, created_at, expires_at, check_url, check_secret, check_interval_ms, next_check_at)
        SELECT ${id}, ${begin.tenantId}, 'open', ${begin.now}, ${expiresAt}, ${begin.checkUrl ?? null}, ${begin.checkSecret ?? null},
               ${begin.checkIntervalMs}, ${expiresAt}
        WHERE (SELECT count(*) FROM transactions WHERE tenant_id = ${begin.tenantId} AND state = 'open') < ${transactionLimits.openPerTenant}
        RETURNING id`,
  );
  if (created.length === 0) {
    throw new ReservoirError(
      "too_many_transactions",
      `the tenant has ${transactionLimits.openPerTenant} open transactions; commit or roll back some first`,
      { limit: transactionLimits.openPerTenant },
    );
  }
  return { id, expiresAt };
}

export async function findTransaction(db: Queryable, tenantId: string, id: string, lock = false): Promise<TransactionRow | null> {
  const [row] = await rows<RawRow>(
    db,
    sql`SELECT ${rowColumns} FROM transactions WHERE id = ${id} AND tenant_id = ${tenantId} ${lock ? sql`FOR UPDATE` : sql``}`,
  );
  return row ? toTransaction(row) : null;
}

export async function getTransaction(db: Queryable, tenantId: string, id: string): Promise<TransactionRow> {
  const found = await findTransaction(db, tenantId, id);
  if (!found) throw notFound(id);
  return found;
}

export const notFound = (id: string) => new ReservoirError("transaction_not_found", `transaction '${id}' does not exist`);

export function notOpen(row: { id: string; state: TransactionState }, doing: string): ReservoirError {
  const state = row.state === "committed" ? "committed" : "rolled back";
  return new ReservoirError("transaction_not_open", `transaction '${row.id}' is ${state}: it cannot ${doing}`, { state: row.state });
}

/**
 * Whether the producer may still end it: open, and either before its timeout or checked back
 * (with a checkUrl, the producer's own commit or rollback decides as well as a check's answer).
 */
export const timedOut = (row: TransactionRow, now: number) => row.state === "open" && row.checkUrl === null && row.expiresAt <= now;

/** Rolls back an open transaction by its producer's request: 200 again for a rolled-back one, 409 for a committed one. */
export async function rollbackTransaction(db: Database, tenantId: string, id: string, now: number): Promise<void> {
  await db.transaction(async (tx) => {
    const row = await findTransaction(tx, tenantId, id, true);
    if (!row) throw notFound(id);
    if (row.state === "committed") throw notOpen(row, "be rolled back");
    if (row.state === "open") await endRolledBack(tx, id, timedOut(row, now) ? "timeout" : "rollback", now);
  });
}

/**
 * Ends an open transaction as rolled back (its row locked by the caller): its pending runs go.
 * The segments they alone named become garbage that the storage lifecycle's collector finds by
 * itself (storage/lifecycle/references.ts counts pending runs as references).
 */
export async function endRolledBack(tx: Queryable, id: string, reason: string, now: number): Promise<void> {
  await tx.execute(sql`
    WITH gone AS (DELETE FROM transaction_runs WHERE transaction_id = ${id} RETURNING 1)
    UPDATE transactions SET state = 'rolled_back', ended_at = ${now}, end_reason = ${reason}, claimed_until = 0
    WHERE id = ${id}`);
}
