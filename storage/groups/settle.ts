/**
 * Ack, nack and extend: one batch of receipts, one transaction. A receipt that is not this
 * deployment's for this tenant and group is `receipt_unknown`; one whose grant has ended (the
 * lease timed out, was nacked, or went to another receiver) is `receipt_expired`.
 */
import { retryConflicts, type Database, type Queryable } from "../metadata/db.ts";
import type { Group } from "./groups.ts";
import { isSettled, reshape, type LeaseRow, type OffsetChange } from "./lease-rows.ts";
import { advanceCommitted, lockRowsHolding, writeRows } from "./lease-store.ts";
import { newGrantToken, type ReceiptClaims, type ReceiptSigner } from "./receipts.ts";

export type Settlement =
  | { kind: "ack" }
  /** `error`, when given, is what a dead letter's x-reservoir-error will say if this was the last attempt. */
  | { kind: "nack"; delayMs: number; error?: string }
  | { kind: "extend"; visibilityMs: number };

/** One message to settle, by its lease claims; `id` names it in the result. */
export interface ClaimSettlement {
  id: string;
  claims: ReceiptClaims;
  action: Settlement;
}

export interface SettleResult {
  done: number;
  failed: { receipt: string; code: "receipt_expired" | "receipt_unknown" }[];
}

export async function settle(
  db: Database,
  signer: ReceiptSigner,
  tenantId: string,
  group: Group,
  receipts: string[],
  action: Settlement,
  now: number,
): Promise<SettleResult> {
  return retryConflicts(() => db.transaction((tx) => settleIn(tx, signer, tenantId, group, receipts, action, now)));
}

/** The same within a caller's transaction (a transaction commit applies acks this way). */
export async function settleIn(
  tx: Queryable,
  signer: ReceiptSigner,
  tenantId: string,
  group: Group,
  receipts: string[],
  action: Settlement,
  now: number,
): Promise<SettleResult> {
  const result: SettleResult = { done: 0, failed: [] };
  const items: ClaimSettlement[] = [];
  for (const receipt of receipts) {
    const c = signer.verify(tenantId, receipt);
    if (!c || c.groupId !== group.id) result.failed.push({ receipt, code: "receipt_unknown" });
    else items.push({ id: receipt, claims: c, action });
  }
  const settled = await settleClaims(tx, group, items, now);
  return { done: result.done + settled.done, failed: [...result.failed, ...settled.failed.map((f) => ({ receipt: f.id, code: f.code }))] };
}

/**
 * Settles messages by their claims, each with its own action, in the caller's transaction.
 * A claim whose grant has ended is `receipt_expired`.
 */
export async function settleClaims(
  tx: Queryable,
  group: Group,
  items: ClaimSettlement[],
  now: number,
): Promise<{ done: number; failed: { id: string; code: "receipt_expired" }[] }> {
  const result = { done: 0, failed: [] as { id: string; code: "receipt_expired" }[] };
  if (items.length === 0) return result;
  const offsets = [
    ...new Map(items.map(({ claims: c }) => [`${c.partition}:${c.offset}`, [c.partition, c.offset] as [number, number]])).values(),
  ];
  const found = await lockRowsHolding(tx, group.id, offsets);
  const changes = new Map<LeaseRow, Map<number, OffsetChange>>();
  // Nacks due at the same time share a grant token, so their offsets stay in one row.
  const nackTokens = new Map<number, number>();
  const nackToken = (visibleAt: number) => {
    const t = nackTokens.get(visibleAt) ?? newGrantToken();
    nackTokens.set(visibleAt, t);
    return t;
  };
  let acked = false;
  for (const { id, claims: c, action } of items) {
    const row = found.find((r) => r.partition === c.partition && r.firstOffset <= c.offset && c.offset <= r.lastOffset);
    const current = row && row.token === c.token;
    // The lease first: a dead-lettered message is settled in a row that keeps its last grant,
    // and a late ack of that grant must not pass for a repeated one.
    if (!row || !current || row.visibleAt <= now) {
      result.failed.push({ id, code: "receipt_expired" });
      continue;
    }
    const pending = changes.get(row)?.get(c.offset);
    if (isSettled(row, c.offset) || (pending && "settle" in pending)) {
      // Repeating an ack is harmless; anything else on a settled message is too late.
      if (action.kind === "ack") result.done++;
      else result.failed.push({ id, code: "receipt_expired" });
      continue;
    }
    if (pending) {
      // The same receipt twice in one call: extending again is harmless (the lease is still
      // this grant's), but a nack has already ended the grant.
      if (action.kind === "extend") result.done++;
      else result.failed.push({ id, code: "receipt_expired" });
      continue;
    }
    const change: OffsetChange =
      action.kind === "ack"
        ? { settle: true }
        : action.kind === "nack"
          ? {
              state: {
                attempt: row.attempt,
                visibleAt: now + action.delayMs,
                token: nackToken(now + action.delayMs),
                receiver: null,
                lastError: action.error ?? row.lastError,
              },
            }
          : {
              state: {
                attempt: row.attempt,
                visibleAt: now + action.visibilityMs,
                token: row.token,
                receiver: row.receiver,
                lastError: row.lastError,
              },
            };
    if (action.kind === "ack") acked = true;
    const perRow = changes.get(row) ?? new Map<number, OffsetChange>();
    perRow.set(c.offset, change);
    changes.set(row, perRow);
    result.done++;
  }
  if (changes.size === 0) return result;
  await writeRows(tx, group.id, {
    remove: [...changes.keys()].map((r) => [r.partition, r.firstOffset]),
    insert: [...changes].flatMap(([row, change]) => reshape(row, change)),
    frontiers: new Map(),
  });
  if (acked) await advanceCommitted(tx, group.id, [...new Set([...changes.keys()].map((r) => r.partition))]);
  return result;
}
