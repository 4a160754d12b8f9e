/**
 * The transactional part of a produce flush: runs produced into a transaction are recorded as
 * pending (transaction_runs) instead of indexed. They hold no offsets and no reader, group or
 * subscription sees them; the transaction's commit indexes them (commit.ts). Called inside the
 * flush's Postgres transaction, after the segment row exists.
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";
import { ReservoirError } from "../errors.ts";
import { transactionLimits } from "./limits.ts";

/** A run of the flush that belongs to a transaction (positions: within this flush, per transaction). */
export interface PendingRun {
  transactionId: string;
  topicId: number;
  partition: number;
  byteOffset: number;
  byteLength: number;
  timestamps: number[];
  idempotencyKeys: (string | undefined)[];
  deliverAt?: (number | undefined)[];
  positions: number[];
}

const array = (items: (number | string)[], type: "bigint" | "int" | "text") => sql`${sql.param(items)}::${sql.raw(type)}[]`;

/**
 * Adds the runs to their transactions. Each transaction row is locked (in id order: concurrent
 * flushes never deadlock on them, and a commit or rollback of the transaction waits for this
 * flush, or this flush for it). A transaction that is not this tenant's, no longer open, past its
 * timeout or would pass its limits takes none of them: its requests fail with the error returned.
 */
export async function appendPending(
  tx: Queryable,
  tenantId: string,
  segmentId: string,
  runs: PendingRun[],
  now: number,
): Promise<Map<string, ReservoirError>> {
  const refused = new Map<string, ReservoirError>();
  const totals = new Map<string, { n: number; bytes: number }>();
  for (const run of runs) {
    const t = totals.get(run.transactionId) ?? { n: 0, bytes: 0 };
    t.n += run.timestamps.length;
    t.bytes += run.byteLength;
    totals.set(run.transactionId, t);
  }
  const ids = [...totals.keys()].sort();
  const found = await rows<{ id: string; state: string; expires_at: string | number; messages: number; bytes: string | number }>(
    tx,
    sql`SELECT id, state, expires_at, messages, bytes FROM transactions
        WHERE id = ANY(${array(ids, "text")}) AND tenant_id = ${tenantId} ORDER BY id FOR UPDATE`,
  );
  const byId = new Map(found.map((r) => [r.id, r]));
  const bases = new Map<string, number>();
  for (const id of ids) {
    const row = byId.get(id);
    const { n, bytes } = totals.get(id)!;
    if (!row) refused.set(id, new ReservoirError("transaction_not_found", `transaction '${id}' does not exist`));
    else if (row.state !== "open" || Number(row.expires_at) <= now) {
      const state = row.state === "open" ? "timed out" : row.state.replace("_", " ");
      refused.set(id, new ReservoirError("transaction_not_open", `transaction '${id}' is ${state}`, { state: row.state }));
    } else if (row.messages + n > transactionLimits.messages) {
      refused.set(id, tooLarge(id, "messages", transactionLimits.messages, row.messages));
    } else if (Number(row.bytes) + bytes > transactionLimits.bytes) {
      refused.set(id, tooLarge(id, "bytes", transactionLimits.bytes, Number(row.bytes)));
    } else bases.set(id, row.messages);
  }
  const accepted = runs.filter((r) => bases.has(r.transactionId));
  if (accepted.length === 0) return refused;
  const grown = [...bases.keys()];
  await tx.execute(sql`
    UPDATE transactions t SET messages = t.messages + v.n, bytes = t.bytes + v.b
    FROM unnest(${array(grown, "text")}, ${array(
      grown.map((id) => totals.get(id)!.n),
      "int",
    )}, ${array(
      grown.map((id) => totals.get(id)!.bytes),
      "bigint",
    )}) AS v(id, n, b)
    WHERE t.id = v.id`);
  const records = accepted.map((run) =>
    JSON.stringify(
      run.timestamps.map((t, i) => {
        const record: { p: number; t: number; k?: string; d?: number } = { p: bases.get(run.transactionId)! + run.positions[i], t };
        if (run.idempotencyKeys[i] !== undefined) record.k = run.idempotencyKeys[i];
        if (run.deliverAt?.[i] !== undefined) record.d = run.deliverAt[i];
        return record;
      }),
    ),
  );
  // Runs of a topic deleted meanwhile are dropped (the key-share lock keeps the rest's topics).
  await tx.execute(sql`
    WITH live AS MATERIALIZED (
      SELECT id FROM topics WHERE id = ANY(${array([...new Set(accepted.map((r) => r.topicId))], "bigint")}) FOR KEY SHARE)
    INSERT INTO transaction_runs (transaction_id, segment_id, byte_offset, tenant_id, topic_id, partition, byte_length, records)
    SELECT r.x, ${segmentId}, r.o, ${tenantId}, r.t, r.p, r.l, r.j::jsonb
    FROM unnest(${array(
      accepted.map((r) => r.transactionId),
      "text",
    )}, ${array(
      accepted.map((r) => r.byteOffset),
      "int",
    )}, ${array(
      accepted.map((r) => r.topicId),
      "bigint",
    )}, ${array(
      accepted.map((r) => r.partition),
      "int",
    )}, ${array(
      accepted.map((r) => r.byteLength),
      "int",
    )}, ${array(records, "text")}) AS r(x, o, t, p, l, j)
    JOIN live ON live.id = r.t`);
  return refused;
}

function tooLarge(id: string, what: "messages" | "bytes", limit: number, held: number): ReservoirError {
  const unit = what === "messages" ? "messages" : "bytes of records (64 MiB)";
  return new ReservoirError(
    "transaction_too_large",
    `transaction '${id}' holds ${held} ${what === "messages" ? "messages" : "bytes"}; this request would take it past the limit of ${limit} ${unit}`,
    { limit, what },
  );
}
