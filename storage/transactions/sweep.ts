/**
 * What the periodic sweep does to transactions, in SQL: roll back those past their timeout
 * without a checkUrl, claim those due for a check-back (a lease: two instances never check one
 * transaction at the same moment), record a check's answer, and forget ended transactions.
 */
import { sql } from "drizzle-orm";
import { retryConflicts, rows, type Database } from "../metadata/db.ts";
import type { ReceiptSigner } from "../groups/receipts.ts";
import { commitIn, type TransactionCommitted } from "./commit.ts";
import { transactionLimits } from "./limits.ts";
import { endRolledBack, findTransaction, rowColumns, toTransaction, type TransactionRow } from "./transactions.ts";

/** Rolls back up to `limit` open transactions without a checkUrl whose timeout has passed. */
export async function expireUnchecked(db: Database, now: number, limit = 100): Promise<number> {
  return db.transaction(async (tx) => {
    const due = await rows<{ id: string }>(
      tx,
      sql`SELECT id FROM transactions WHERE state = 'open' AND check_url IS NULL AND expires_at <= ${now}
          ORDER BY expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`,
    );
    for (const { id } of due) await endRolledBack(tx, id, "timeout", now);
    return due.length;
  });
}

/**
 * Claims up to `limit` open transactions with a checkUrl that are due for a check: each is
 * leased to the caller until now + leaseMs (SKIP LOCKED: concurrent sweeps take different ones,
 * and a lease taken is not taken again until it ends or the check is recorded).
 */
export async function claimDueChecks(db: Database, now: number, leaseMs: number, limit = 20): Promise<TransactionRow[]> {
  const claimed = await rows<Parameters<typeof toTransaction>[0]>(
    db,
    sql`UPDATE transactions SET claimed_until = ${now + leaseMs}
        WHERE id IN (
          SELECT id FROM transactions
          WHERE state = 'open' AND check_url IS NOT NULL AND next_check_at <= ${now} AND claimed_until <= ${now}
          ORDER BY next_check_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING ${rowColumns}`,
  );
  return claimed.map(toTransaction);
}

export type CheckAnswer = "commit" | "rollback" | "unknown";

export interface CheckRecorded {
  state: "open" | "committed" | "rolled_back";
  committed?: TransactionCommitted;
}

/**
 * Records a check's answer, if the transaction is still open (its producer may have ended it
 * meanwhile): commit or roll back as told; an unknown (errors and timeouts included) counts,
 * and the last allowed one rolls it back; otherwise the next check is due after the interval.
 */
export async function recordCheck(
  db: Database,
  signer: ReceiptSigner,
  row: TransactionRow,
  answer: CheckAnswer,
  now: number,
): Promise<CheckRecorded> {
  return retryConflicts(() =>
    db.transaction(async (tx): Promise<CheckRecorded> => {
      const current = await findTransaction(tx, row.tenantId, row.id, true);
      if (current?.state !== "open") return { state: current?.state ?? "rolled_back" };
      await tx.execute(sql`UPDATE transactions SET checks = checks + 1 WHERE id = ${row.id}`);
      if (answer === "commit") {
        const committed = await commitIn(tx, signer, { tenantId: row.tenantId, id: row.id, acks: [], now, byCheck: true });
        return { state: "committed", committed };
      }
      if (answer === "rollback") {
        await endRolledBack(tx, row.id, "check_rollback", now);
        return { state: "rolled_back" };
      }
      if (current.unknowns + 1 >= transactionLimits.unknownsBeforeRollback) {
        await tx.execute(sql`UPDATE transactions SET unknowns = unknowns + 1 WHERE id = ${row.id}`);
        await endRolledBack(tx, row.id, "check_unknowns", now);
        return { state: "rolled_back" };
      }
      await tx.execute(sql`
        UPDATE transactions SET unknowns = unknowns + 1, next_check_at = ${now + current.checkIntervalMs}, claimed_until = 0
        WHERE id = ${row.id}`);
      return { state: "open" };
    }),
  );
}

/** Forgets transactions that ended more than transactionLimits.keepEndedMs ago. */
export async function pruneEnded(db: Database, now: number): Promise<void> {
  await db.execute(sql`DELETE FROM transactions WHERE state <> 'open' AND ended_at < ${now - transactionLimits.keepEndedMs}`);
}
