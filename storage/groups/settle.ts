/**
 * Ack, nack and extend: one batch of receipts, one transaction. A receipt that is not this
 * deployment's for this tenant and group is `receipt_unknown`; one whose grant has ended (the
 * lease timed out, was nacked, or went to another receiver) is `receipt_expired`.
 */
import { retryConflicts, type Database, type Queryable } from "../metadata/db.ts";
import type { Group } from "./groups.ts";
import { reshape, type LeaseRow, type OffsetChange } from "./lease-rows.ts";
import { advanceCommitted, lockRowsHolding, writeRows } from "./lease-store.ts";
import { ackWholeRows, type WholeRow, wholeRowOf } from "./ack-fast.ts";
import { type DeferredKeyCheck, vouched, vouchFor, vouchIn } from "../tenancy/deferred-key-check.ts";
import { newGrantToken, receiptOf, type ReceiptClaims, type ReceiptRef, type ReceiptSigner } from "./receipts.ts";

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
  /** `offset` says which message of a lease receipt failed (a receipt naming one message needs none). */
  failed: { receipt: string; code: "receipt_expired" | "receipt_unknown"; offset?: number }[];
}

export async function settle(
  db: Database,
  signer: ReceiptSigner,
  tenantId: string,
  group: Group,
  receipts: ReceiptRef[],
  action: Settlement,
  now: number,
  check?: DeferredKeyCheck,
): Promise<SettleResult> {
  const { items, unknown } = verify(signer, tenantId, group, receipts, action);
  // `check`: the request's key check, left to the statements that change something (deferred-key-check.ts).
  const general = (claims: ClaimSettlement[]) =>
    retryConflicts(() =>
      db.transaction(async (tx) => {
        await vouchIn(tx, group.tenantId, vouchFor([check]));
        return settleClaims(tx, group, claims, now);
      }),
    ).then((settled) => {
      vouched(check, true);
      return answer(unknown, settled);
    });
  if (action.kind !== "ack") return general(items);
  // A call whose receipts all name whole lease rows, each still leased and untouched, goes the
  // fast way (ack-fast.ts); any other, whole, the general way: one call is one transaction's
  // worth of settles either way, never part of each.
  const whole = items.map((item) => wholeRowOf(item.claims));
  if (whole.length === 0 || whole.some((w) => w === null)) return general(items);
  const named = whole as WholeRow[];
  const acked = await ackWholeRows(group, db, named, now, check);
  if (acked.size === 0) return general(items);
  const done = named.reduce((n, w) => n + w[2] - w[1] + 1, 0);
  return answer(unknown, { done, failed: [] });
}

/** The same within a caller's transaction (a transaction commit applies acks this way). */
export async function settleIn(
  tx: Queryable,
  signer: ReceiptSigner,
  tenantId: string,
  group: Group,
  receipts: ReceiptRef[],
  action: Settlement,
  now: number,
): Promise<SettleResult> {
  const { items, unknown } = verify(signer, tenantId, group, receipts, action);
  return answer(unknown, await settleClaims(tx, group, items, now));
}

/** The receipts' claims, each checked once: this tenant's and group's, and the others as receipt_unknown. */
function verify(signer: ReceiptSigner, tenantId: string, group: Group, receipts: ReceiptRef[], action: Settlement) {
  const unknown: SettleResult["failed"] = [];
  const items: ClaimSettlement[] = [];
  for (const ref of receipts) {
    const c = signer.verifyRef(tenantId, ref);
    if (!c || c.groupId !== group.id) unknown.push({ receipt: receiptOf(ref), code: "receipt_unknown" });
    else items.push({ id: receiptOf(ref), claims: c, action });
  }
  return { items, unknown };
}

/** The answer: the unknown receipts first, then the claims that failed. */
function answer(unknown: SettleResult["failed"], settled: { done: number; failed: ClaimFailure[] }): SettleResult {
  const failed = [...unknown];
  for (const f of settled.failed)
    failed.push(f.offset === undefined ? { receipt: f.id, code: f.code } : { receipt: f.id, code: f.code, offset: f.offset });
  return { done: settled.done, failed };
}

/** A claim that failed; `offset` says which message of a lease claim. */
type ClaimFailure = { id: string; code: "receipt_expired"; offset?: number };

/** An ack's change: one object for every offset it settles. */
const SETTLE: OffsetChange = { settle: true };

/** A claim's failure at `offset`: a lease claim names the offset, a one-message claim needs none. */
function expired(id: string, c: ReceiptClaims, offset: number): ClaimFailure {
  return c.lastOffset === undefined ? { id, code: "receipt_expired" } : { id, code: "receipt_expired", offset };
}

function rowHolding(rows: LeaseRow[], offset: number): LeaseRow | undefined {
  for (const r of rows) if (r.firstOffset <= offset && offset <= r.lastOffset) return r;
  return undefined;
}

/**
 * Settles messages by their claims, each with its own action, in the caller's transaction.
 * A claim whose grant has ended is `receipt_expired`; a lease claim (a range) settles each of
 * its offsets as if named one by one, and its failures say which offset failed.
 */
export async function settleClaims(
  tx: Queryable,
  group: Group,
  items: ClaimSettlement[],
  now: number,
): Promise<{ done: number; failed: ClaimFailure[] }> {
  const result = { done: 0, failed: [] as ClaimFailure[] };
  if (items.length === 0) return result;
  const found = await lockRowsHolding(
    tx,
    group.id,
    items.map(({ claims: c }) => [c.partition, c.offset, c.lastOffset ?? c.offset]),
  );
  const rowsByPartition = new Map<number, LeaseRow[]>();
  for (const r of found) {
    const list = rowsByPartition.get(r.partition);
    if (list) list.push(r);
    else rowsByPartition.set(r.partition, [r]);
  }
  const changes = new Map<LeaseRow, Map<number, OffsetChange>>();
  // Nacks due at the same time share a grant token, so their offsets stay in one row.
  const nackTokens = new Map<number, number>();
  const nackToken = (visibleAt: number) => {
    const t = nackTokens.get(visibleAt) ?? newGrantToken();
    nackTokens.set(visibleAt, t);
    return t;
  };
  let acked = false;
  // Settled positions of each row met, as a set: a lease claim walks a thousand offsets of one row.
  const settledOf = new Map<LeaseRow, Set<number>>();
  const isSettledIn = (row: LeaseRow, offset: number) => {
    let set = settledOf.get(row);
    if (!set) {
      set = new Set(row.settled);
      settledOf.set(row, set);
    }
    return set.has(offset - row.firstOffset);
  };
  const settleOne = (id: string, c: ReceiptClaims, offset: number, row: LeaseRow | undefined, action: Settlement) => {
    const current = row && row.token === c.token;
    // The lease first: a dead-lettered message is settled in a row that keeps its last grant,
    // and a late ack of that grant must not pass for a repeated one.
    if (!row || !current || row.visibleAt <= now) {
      result.failed.push(expired(id, c, offset));
      return;
    }
    const perRow = changes.get(row);
    const pending = perRow?.get(offset);
    if (isSettledIn(row, offset) || (pending && "settle" in pending)) {
      // Repeating an ack is harmless; anything else on a settled message is too late.
      if (action.kind === "ack") result.done++;
      else result.failed.push(expired(id, c, offset));
      return;
    }
    if (pending) {
      // The same receipt twice in one call: extending again is harmless (the lease is still
      // this grant's), but a nack has already ended the grant.
      if (action.kind === "extend") result.done++;
      else result.failed.push(expired(id, c, offset));
      return;
    }
    const change: OffsetChange =
      action.kind === "ack"
        ? SETTLE
        : action.kind === "nack"
          ? {
              state: {
                attempt: row.attempt,
                visibleAt: now + action.delayMs,
                token: nackToken(now + action.delayMs),
                receiver: null,
                lastError: action.error ?? row.lastError,
                firstReceivedAt: row.firstReceivedAt,
              },
            }
          : {
              state: {
                attempt: row.attempt,
                visibleAt: now + action.visibilityMs,
                token: row.token,
                receiver: row.receiver,
                lastError: row.lastError,
                firstReceivedAt: row.firstReceivedAt,
              },
            };
    if (action.kind === "ack") acked = true;
    if (perRow) perRow.set(offset, change);
    else changes.set(row, new Map([[offset, change]]));
    result.done++;
  };
  for (const { id, claims: c, action } of items) {
    // The row holding each offset, looked up again only once the walk leaves it.
    const inPartition = rowsByPartition.get(c.partition) ?? [];
    let row: LeaseRow | undefined;
    for (let offset = c.offset; offset <= (c.lastOffset ?? c.offset); offset++) {
      if (!row || offset > row.lastOffset) row = rowHolding(inPartition, offset);
      settleOne(id, c, offset, row, action);
    }
  }
  if (changes.size === 0) return result;
  const partitions = acked ? [...new Set([...changes.keys()].map((r) => r.partition))] : [];
  await writeRows(
    tx,
    group.id,
    {
      remove: [...changes.keys()].map((r) => [r.partition, r.firstOffset]),
      insert: [...changes].flatMap(([row, change]) => reshape(row, change)),
      frontiers: new Map(),
    },
    partitions,
  );
  if (acked) await advanceCommitted(tx, group.id, partitions, { locked: true });
  return result;
}
