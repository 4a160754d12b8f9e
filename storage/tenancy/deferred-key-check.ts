/**
 * A key check left to the statements that do a request's work. A produce, a receive or an ack by
 * a key this instance has seen pass (known-keys.ts), of a tenant with no quota checked first,
 * skips the key check's statement (functions/auth.ts): the first statement that would change
 * something for it (the flush commit, the lease, the ack, or a transaction's first statement)
 * checks that the key still exists and the tenant still has no such quota, changes nothing if
 * not, and counts the request in usage if so. A refused statement ends in KeyCheckRefused, and
 * the request takes the key check after all. A revoked key therefore changes nothing once its
 * revocation has committed, at every instance, as with a key check of its own.
 */
import { type SQL, sql } from "drizzle-orm";
import { type Queryable, rows } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import { usageInsert } from "../usage/meter.ts";
import type { Quotas } from "../usage/quota.ts";

export interface DeferredKeyCheck {
  keyId: string;
  /**
   * How the request's key was checked in the end: "vouched" by a statement of its work,
   * "checked" by the key check after all (both count the request), or "refused" by that check
   * (401, 429: nothing counted). Unset while neither has happened.
   */
  outcome?: "vouched" | "checked" | "refused";
}

/** What one statement vouches for: the keys of the requests whose checks it takes, and how many requests to count. */
export interface Vouch {
  keyIds: string[];
  requests: number;
}

/** A key a statement was to vouch for no longer holds: the statement changed nothing. */
export class KeyCheckRefused extends Error {
  constructor() {
    super("a key a statement was to vouch for was revoked, or its tenant gained a quota checked first");
  }
}

/** The quotas a request is checked against before its work: a tenant with any of them is checked first. */
const checkedFirst = ["requestsPerSecond", "bytesPerSecond", "storageBytes"] as const;

/** Whether a request of a tenant with these quotas may leave its key check to its statements. */
export function mayDeferKeyCheck(quotas: Quotas): boolean {
  return checkedFirst.every((q) => quotas[q] === undefined);
}

/** The vouch these requests' checks still need (those not settled yet), or none. */
export function vouchFor(checks: readonly (DeferredKeyCheck | undefined)[]): Vouch | undefined {
  const keyIds = new Set<string>();
  let requests = 0;
  for (const check of checks) {
    if (check === undefined || check.outcome !== undefined) continue;
    keyIds.add(check.keyId);
    requests++;
  }
  return requests > 0 ? { keyIds: [...keyIds], requests } : undefined;
}

/**
 * The CTEs with which a statement vouches: `vouched` (its `ok`: every key still exists under the
 * tenant, whose quotas hold none that is checked first) and the requests counted in usage when it
 * does. The statement must change nothing unless `(SELECT ok FROM vouched)`, and report `ok`.
 * Without a vouch, ok is true and nothing is counted, under the same statement text.
 */
export function vouchingCtes(tenantId: string, vouch: Vouch | undefined): SQL {
  const keyIds = sqlArray(vouch?.keyIds ?? [], "text");
  const requests = sql`${vouch?.requests ?? 0}::bigint`;
  return sql`vouched AS MATERIALIZED (
      SELECT (SELECT count(*) FROM api_keys a JOIN tenants t ON t.id = a.tenant_id
              WHERE a.id = ANY(${keyIds}) AND a.tenant_id = ${tenantId}
                AND NOT (t.quotas ?| ${sqlArray([...checkedFirst], "text")})) = cardinality(${keyIds}) AS ok),
    vouch_counted AS (${usageInsert(tenantId, { requests }, undefined, sql`${requests} > 0 AND (SELECT ok FROM vouched)`)} RETURNING 1)`;
}

/** After a statement with vouchingCtes for this check alone: the check settled as vouched, or KeyCheckRefused. */
export function vouched(check: DeferredKeyCheck | undefined, ok: boolean): void {
  if (check === undefined || check.outcome !== undefined) return;
  if (!ok) throw new KeyCheckRefused();
  check.outcome = "vouched";
}

/**
 * The same as a statement of its own, first in a transaction whose other statements change
 * things: KeyCheckRefused if a key no longer holds. The caller settles the checks as vouched once
 * the transaction committed (a rolled-back one counted nothing).
 */
export async function vouchIn(tx: Queryable, tenantId: string, vouch: Vouch | undefined): Promise<void> {
  if (vouch === undefined) return;
  const [found] = await rows<{ ok: boolean }>(
    tx,
    sql`WITH ${vouchingCtes(tenantId, vouch)} SELECT ok, (SELECT count(*) FROM vouch_counted) AS counted FROM vouched`,
  );
  if (found?.ok !== true) throw new KeyCheckRefused();
}
