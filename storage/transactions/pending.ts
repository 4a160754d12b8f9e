/**
 * The transactional part of a produce flush: runs produced into a transaction are recorded as
 * pending (transaction_runs) instead of indexed. They hold no offsets and no reader, group or
 * subscription sees them; the transaction's commit indexes them (commit.ts).
 */
import { sql } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import { ReservoirError } from "../errors.ts";
import type { CommitRun } from "../log/commit.ts";
import { transactionLimits } from "./limits.ts";

/**
 * A run of the flush that belongs to a transaction (positions: within this flush, per
 * transaction); its usageBytes are counted as bytesIn when the transaction commits.
 */
export type PendingRun = CommitRun & { transactionId: string; positions: number[] };

/** What of the flush the pending runs need: its segment, and when it must be done by. */
export interface PendingFlush {
  tenantId: string;
  segmentId: string;
  objectKey: string;
  byteLength: number;
  deadline: number;
  clock: () => number;
}

/**
 * Adds the runs to their transactions in ONE statement: lock the transaction rows (in id order,
 * so concurrent flushes never deadlock on them, and a commit or rollback waits for this flush or
 * this flush for it), accept those of this tenant that are open, before their timeout and within
 * their limits, count the accepted messages and bytes, record the segment (pending runs name it:
 * it is no orphan) and insert the runs, each with its transaction's message count before it as
 * `first_position` (the records' `p` are relative to it). A transaction that is not accepted
 * takes none of its runs: its requests fail with the error returned for it. `late`: the flush's
 * deadline passed before the statement could accept anything (nothing was written).
 */
export async function appendPending(
  tx: Queryable,
  flush: PendingFlush,
  runs: PendingRun[],
): Promise<{ refused: Map<string, ReservoirError>; late: boolean }> {
  const totals = new Map<string, { n: number; bytes: number }>();
  for (const run of runs) {
    const t = totals.get(run.transactionId) ?? { n: 0, bytes: 0 };
    t.n += run.timestamps.length;
    t.bytes += run.byteLength;
    totals.set(run.transactionId, t);
  }
  const ids = [...totals.keys()];
  const now = flush.clock();
  const remainingMs = Math.max(0, flush.deadline - now);
  const records = runs.map((run) =>
    JSON.stringify(
      run.timestamps.map((t, i) => {
        const record: { p: number; t: number; b: number; k?: string; d?: number } = {
          p: run.positions[i],
          t,
          b: run.usageBytes[i],
        };
        if (run.idempotencyKeys[i] !== undefined) record.k = run.idempotencyKeys[i];
        if (run.deliverAt?.[i] !== undefined) record.d = run.deliverAt[i];
        return record;
      }),
    ),
  );
  const found = await rows<{
    id: string;
    state: string;
    expires_at: number;
    messages: number;
    bytes: number;
    accepted: boolean;
    in_time: boolean;
  }>(
    tx,
    sql`WITH v AS (
          SELECT * FROM unnest(${sqlArray(ids, "text")}, ${sqlArray(
            ids.map((id) => totals.get(id)!.n),
            "int",
          )}, ${sqlArray(
            ids.map((id) => totals.get(id)!.bytes),
            "bigint",
          )}) AS v(id, n, b)),
        locked AS MATERIALIZED (
          SELECT t.id, t.state, t.expires_at, t.messages, t.bytes FROM transactions t JOIN v USING (id)
          WHERE t.tenant_id = ${flush.tenantId} ORDER BY t.id FOR UPDATE OF t),
        in_time AS MATERIALIZED (SELECT clock_timestamp() < statement_timestamp() + ${remainingMs} * interval '1 millisecond' AS ok),
        accepted AS MATERIALIZED (
          SELECT l.id, l.messages AS base, v.n, v.b FROM locked l JOIN v USING (id)
          WHERE l.state = 'open' AND l.expires_at > ${now} AND l.messages + v.n <= ${transactionLimits.messages}
            AND l.bytes + v.b <= ${transactionLimits.bytes} AND (SELECT ok FROM in_time)),
        grown AS (
          UPDATE transactions t SET messages = t.messages + a.n, bytes = t.bytes + a.b FROM accepted a WHERE t.id = a.id RETURNING 1),
        seg AS (
          INSERT INTO segments (id, tenant_id, object_key, byte_length)
          SELECT ${flush.segmentId}, ${flush.tenantId}, ${flush.objectKey}, ${flush.byteLength} WHERE EXISTS (SELECT 1 FROM accepted)
          ON CONFLICT (id) DO NOTHING RETURNING 1),
        -- Runs of a topic deleted meanwhile are dropped (the key-share lock keeps the rest's topics).
        live AS MATERIALIZED (
          SELECT id FROM topics WHERE id = ANY(${sqlArray([...new Set(runs.map((r) => r.topicId))], "bigint")}) FOR KEY SHARE),
        inserted AS (
          INSERT INTO transaction_runs (transaction_id, segment_id, byte_offset, tenant_id, topic_id, partition, byte_length,
                                        first_position, records)
          SELECT r.x, ${flush.segmentId}, r.o, ${flush.tenantId}, r.t, r.p, r.l, a.base, r.j::jsonb
          FROM unnest(${sqlArray(
            runs.map((r) => r.transactionId),
            "text",
          )}, ${sqlArray(
            runs.map((r) => r.byteOffset),
            "int",
          )}, ${sqlArray(
            runs.map((r) => r.topicId),
            "bigint",
          )}, ${sqlArray(
            runs.map((r) => r.partition),
            "int",
          )}, ${sqlArray(
            runs.map((r) => r.byteLength),
            "int",
          )}, ${sqlArray(records, "text")}) AS r(x, o, t, p, l, j)
          JOIN accepted a ON a.id = r.x JOIN live ON live.id = r.t
          RETURNING 1)
      SELECT l.id, l.state, l.expires_at, l.messages, l.bytes, a.id IS NOT NULL AS accepted, (SELECT ok FROM in_time) AS in_time,
             (SELECT count(*) FROM grown) + (SELECT count(*) FROM seg) + (SELECT count(*) FROM inserted) AS written
      FROM locked l LEFT JOIN accepted a USING (id)`,
  );
  const byId = new Map(found.map((r) => [r.id, r]));
  const refused = new Map<string, ReservoirError>();
  let late = false;
  for (const id of ids) {
    const row = byId.get(id);
    const { n, bytes } = totals.get(id)!;
    if (!row) refused.set(id, new ReservoirError("transaction_not_found", `transaction '${id}' does not exist`));
    else if (row.accepted) continue;
    else if (!row.in_time) late = true;
    else if (row.state !== "open" || row.expires_at <= now) {
      const state = row.state === "open" ? "timed out" : row.state.replace("_", " ");
      refused.set(id, new ReservoirError("transaction_not_open", `transaction '${id}' is ${state}`, { state: row.state }));
    } else if (row.messages + n > transactionLimits.messages) {
      refused.set(id, tooLarge(id, "messages", transactionLimits.messages, row.messages));
    } else if (row.bytes + bytes > transactionLimits.bytes) {
      refused.set(id, tooLarge(id, "bytes", transactionLimits.bytes, row.bytes));
    }
  }
  return { refused, late };
}

function tooLarge(id: string, what: "messages" | "bytes", limit: number, held: number): ReservoirError {
  const unit = what === "messages" ? "messages" : "bytes of records (64 MiB)";
  return new ReservoirError(
    "transaction_too_large",
    `transaction '${id}' holds ${held} ${what === "messages" ? "messages" : "bytes"}; this request would take it past the limit of ${limit} ${unit}`,
    { limit, what },
  );
}
