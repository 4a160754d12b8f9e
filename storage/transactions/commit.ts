/**
 * The commit of a transaction: ONE Postgres transaction that
 *   1. locks the transaction row (a concurrent commit, rollback, check or flush into it waits),
 *   2. applies the consumer-group acks it carries (any expired or unknown receipt: 409, and
 *      nothing of the commit takes effect; the transaction stays open),
 *   3. claims the idempotency keys of its messages (a key committed before keeps its offsets),
 *   4. locks the partitions of its pending runs in (topic, partition) order — the produce
 *      commit's order, so the two queue and never deadlock — assigns dense offsets and indexes
 *      the runs where their bytes already are (no copy),
 *   5. drops the pending rows and marks the transaction committed with its offsets.
 * Usage (messagesIn, bytesIn) is counted in the statement that marks it committed (step 5).
 */
import { sql } from "drizzle-orm";
import { ReservoirError } from "../errors.ts";
import { retryConflicts, rows, type Database, type Queryable } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import { findGroup } from "../groups/groups.ts";
import { settleIn } from "../groups/settle.ts";
import type { ReceiptSigner } from "../groups/receipts.ts";
import { claimIdempotencyKeys, type AssignedOffset, type CommitRun } from "../log/commit.ts";
import { usageInsert } from "../usage/meter.ts";
import { endRolledBack, findTransaction, notFound, notOpen, timedOut } from "./transactions.ts";

/** Acks carried by a commit: receipts of one group of one topic. */
export interface CarriedAck {
  topic: string;
  group: string;
  receipts: string[];
}

export interface TransactionOffset {
  topic: string;
  partition: number;
  offset: number;
}

export interface TransactionCommitted {
  offsets: TransactionOffset[];
  /** Topics that got messages and have active webhook subscriptions (notified on COMMIT). */
  subscribedTopicIds: number[];
  /**
   * Messages this commit made visible and their key + value + header bytes (idempotent repeats
   * excluded): what per-tenant usage counts as messagesIn / bytesIn, inside commitIn.
   */
  indexed: { messages: number; bytes: number };
  /** Per partition that got messages: its next offset (for this instance's long-polling readers). */
  highWatermarks: { topicId: number; partition: number; next: number }[];
}

export interface CommitRequest {
  tenantId: string;
  id: string;
  acks: CarriedAck[];
  now: number;
  /** A check-back's commit: the transaction's timeout has passed and that is expected. */
  byCheck?: boolean;
}

class TimedOut extends Error {}

export async function commitTransaction(db: Database, signer: ReceiptSigner, request: CommitRequest): Promise<TransactionCommitted> {
  try {
    return await retryConflicts(() => db.transaction((tx) => commitIn(tx, signer, request)));
  } catch (error) {
    if (!(error instanceof TimedOut)) throw error;
    // Past its timeout without a checkUrl: it is rolled back (what the sweep would do), then refused.
    await db.transaction(async (tx) => {
      const row = await findTransaction(tx, request.tenantId, request.id, true);
      if (row && timedOut(row, request.now)) await endRolledBack(tx, row.id, "timeout", request.now);
    });
    throw new ReservoirError("transaction_not_open", `transaction '${request.id}' timed out and was rolled back`, { state: "rolled_back" });
  }
}

interface PendingRow {
  topic_id: number;
  topic: string;
  partition: number;
  segment_id: string;
  byte_offset: number;
  byte_length: number;
  first_position: number;
  records: { p: number; t: number; b: number; k?: string; d?: number }[];
}

export async function commitIn(tx: Queryable, signer: ReceiptSigner, request: CommitRequest): Promise<TransactionCommitted> {
  const { tenantId, id, now } = request;
  const row = await findTransaction(tx, tenantId, id, true);
  if (!row) throw notFound(id);
  if (row.state === "committed") {
    const offsets = (row.offsets ?? []).map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset }));
    return { offsets, subscribedTopicIds: [], highWatermarks: [], indexed: { messages: 0, bytes: 0 } };
  }
  if (row.state === "rolled_back") throw notOpen(row, "be committed");
  if (!request.byCheck && timedOut(row, now)) throw new TimedOut();

  await applyAcks(tx, signer, tenantId, request.acks, now);

  const pending = await rows<PendingRow>(
    tx,
    sql`SELECT r.topic_id, t.name AS topic, r.partition, r.segment_id, r.byte_offset, r.byte_length, r.first_position, r.records
        FROM transaction_runs r JOIN topics t ON t.id = r.topic_id
        WHERE r.transaction_id = ${id}`,
  );
  const runs = pending
    .map((r) => {
      const records: Run["records"] = r.records;
      // Positions in the whole transaction's production order.
      return { ...r, topicId: r.topic_id, records: records.map((x) => ({ ...x, p: r.first_position + x.p })) };
    })
    .sort((a, b) => a.records[0].p - b.records[0].p);
  const indexed =
    runs.length > 0
      ? await indexPending(tx, tenantId, runs, now)
      : { offsets: [], subscribedTopicIds: [], highWatermarks: [], indexed: { messages: 0, bytes: 0 } };
  const { messages, bytes } = indexed.indexed;
  await tx.execute(sql`
    WITH gone AS (DELETE FROM transaction_runs WHERE transaction_id = ${id} RETURNING 1),
    counted AS (UPDATE open_transactions SET open = open - 1 WHERE tenant_id = ${tenantId} RETURNING 1),
    -- Usage (storage/usage/meter.ts): what this commit made visible, in the same transaction.
    metered AS (${usageInsert(tenantId, { messagesIn: sql`${messages}::bigint`, bytesIn: sql`${bytes}::bigint` }, undefined, sql`${messages}::bigint > 0`)})
    UPDATE transactions SET state = 'committed', offsets = ${JSON.stringify(indexed.offsets)}::jsonb, ended_at = ${now},
      end_reason = ${request.byCheck ? "check_commit" : "commit"}, claimed_until = 0
    WHERE id = ${id}`);
  return indexed;
}

async function applyAcks(tx: Queryable, signer: ReceiptSigner, tenantId: string, acks: CarriedAck[], now: number): Promise<void> {
  const failed: { receipt: string; code: "receipt_expired" | "receipt_unknown"; topic: string; group: string }[] = [];
  for (const ack of acks) {
    if (ack.receipts.length === 0) continue;
    const [topic] = await rows<{ id: number; name: string; partitions: number }>(
      tx,
      sql`SELECT id, name, partitions FROM topics WHERE tenant_id = ${tenantId} AND name = ${ack.topic}`,
    );
    const group = topic
      ? await findGroup(
          tx,
          { id: topic.id, name: topic.name, partitions: topic.partitions, retentionHours: 0, retentionBytes: null, createdAt: 0 },
          ack.group,
        )
      : null;
    if (!group) {
      for (const receipt of ack.receipts) failed.push({ receipt, code: "receipt_unknown", topic: ack.topic, group: ack.group });
      continue;
    }
    const result = await settleIn(tx, signer, tenantId, group, ack.receipts, { kind: "ack" }, now);
    for (const f of result.failed) failed.push({ ...f, topic: ack.topic, group: ack.group });
  }
  if (failed.length > 0) {
    // Unknown first: a receipt that never was is the more telling refusal.
    const code = failed.some((f) => f.code === "receipt_unknown") ? "receipt_unknown" : "receipt_expired";
    throw new ReservoirError(
      code,
      `${failed.length} receipt(s) of the commit's acks are expired or unknown; nothing was committed and the transaction is still open`,
      { failed: failed.slice(0, 100) },
    );
  }
}

interface Run {
  topicId: number;
  topic: string;
  partition: number;
  segment_id: string;
  byte_offset: number;
  byte_length: number;
  records: { p: number; t: number; b: number; k?: string; d?: number }[];
}

interface PlannedRow {
  run: number;
  relFirst: number;
  count: number;
  recordSkip: number;
  minTimestamp: number;
  maxTimestamp: number;
  deliverAt: number | null;
}

/**
 * Assigns offsets to the pending runs (in production order, per partition) and indexes them;
 * records whose idempotency key was committed before get that commit's offsets instead.
 */
async function indexPending(tx: Queryable, tenantId: string, runs: Run[], now: number) {
  const commitRuns: CommitRun[] = runs.map((run) => ({
    topicId: run.topicId,
    partition: run.partition,
    byteOffset: run.byte_offset,
    byteLength: run.byte_length,
    timestamps: run.records.map((r) => r.t),
    idempotencyKeys: run.records.map((r) => r.k),
    deliverAt: run.records.map((r) => r.d),
    usageBytes: run.records.map((r) => r.b),
  }));
  const claims = await claimIdempotencyKeys(tx, {
    tenantId,
    segmentId: "",
    objectKey: "",
    byteLength: 0,
    runs: commitRuns,
    now,
    deadline: Infinity,
    clock: () => now,
  });

  const counts = new Map<string, number>();
  const planned: PlannedRow[] = [];
  const relative: (number | null)[][] = runs.map((run, r) => {
    const key = `${run.topicId}:${run.partition}`;
    let next = counts.get(key) ?? 0;
    let open: PlannedRow | null = null;
    const rel = run.records.map((record, i) => {
      if (claims.alias.has(`${r}:${i}`) || claims.previous.has(`${r}:${i}`)) {
        open = null;
        return null;
      }
      const deliverAt = record.d ?? null;
      if (open && open.deliverAt !== deliverAt) open = null;
      if (!open) {
        open = { run: r, relFirst: next, count: 0, recordSkip: i, minTimestamp: record.t, maxTimestamp: record.t, deliverAt };
        planned.push(open);
      }
      open.count++;
      open.minTimestamp = Math.min(open.minTimestamp, record.t);
      open.maxTimestamp = Math.max(open.maxTimestamp, record.t);
      return next++;
    });
    counts.set(key, next);
    return rel;
  });

  const keys = [...counts.entries()].filter(([, n]) => n > 0).map(([k, n]) => [...k.split(":").map(Number), n] as [number, number, number]);
  const bases = new Map<string, number>();
  const subscribed = new Set<number>();
  if (keys.length > 0) {
    const runOf = (p: PlannedRow) => runs[p.run];
    const advanced = await rows<{ topic_id: number; partition: number; base: number; subscribed: boolean }>(
      tx,
      sql`WITH v AS (
          SELECT * FROM unnest(${sqlArray(
            keys.map((k) => k[0]),
            "bigint",
          )}, ${sqlArray(
            keys.map((k) => k[1]),
            "int",
          )},
                               ${sqlArray(
                                 keys.map((k) => k[2]),
                                 "bigint",
                               )}) AS v(topic_id, partition, n)),
        locked AS MATERIALIZED (
          SELECT p.topic_id, p.partition FROM partitions p JOIN v USING (topic_id, partition)
          ORDER BY p.topic_id, p.partition FOR UPDATE OF p),
        adv AS (
          UPDATE partitions p SET next_offset = p.next_offset + v.n
          FROM locked l JOIN v USING (topic_id, partition)
          WHERE p.topic_id = l.topic_id AND p.partition = l.partition
          RETURNING p.topic_id, p.partition, p.next_offset - v.n AS base),
        idx AS (
          INSERT INTO segment_index (topic_id, partition, base_offset, last_offset, tenant_id, segment_id,
                                     byte_offset, byte_length, record_skip, min_timestamp, max_timestamp, deliver_at)
          SELECT r.topic_id, r.partition, a.base + r.rel_first, a.base + r.rel_first + r.n - 1, ${tenantId}, r.segment_id,
                 r.byte_offset, r.byte_length, r.record_skip, r.min_ts, r.max_ts, NULLIF(r.deliver_at, 0)
          FROM unnest(${sqlArray(
            planned.map((p) => runOf(p).topicId),
            "bigint",
          )}, ${sqlArray(
            planned.map((p) => runOf(p).partition),
            "int",
          )},
                      ${sqlArray(
                        planned.map((p) => p.relFirst),
                        "bigint",
                      )}, ${sqlArray(
                        planned.map((p) => p.count),
                        "bigint",
                      )},
                      ${sqlArray(
                        planned.map((p) => runOf(p).segment_id),
                        "text",
                      )},
                      ${sqlArray(
                        planned.map((p) => runOf(p).byte_offset),
                        "int",
                      )}, ${sqlArray(
                        planned.map((p) => runOf(p).byte_length),
                        "int",
                      )},
                      ${sqlArray(
                        planned.map((p) => p.recordSkip),
                        "int",
                      )}, ${sqlArray(
                        planned.map((p) => p.minTimestamp),
                        "bigint",
                      )},
                      ${sqlArray(
                        planned.map((p) => p.maxTimestamp),
                        "bigint",
                      )}, ${sqlArray(
                        planned.map((p) => p.deliverAt ?? 0),
                        "bigint",
                      )})
               AS r(topic_id, partition, rel_first, n, segment_id, byte_offset, byte_length, record_skip, min_ts, max_ts, deliver_at)
          JOIN adv a USING (topic_id, partition)
          RETURNING 1),
        subscribed AS MATERIALIZED (
          SELECT DISTINCT a.topic_id FROM adv a
          WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.topic_id = a.topic_id AND s.state = 'active')),
        notified AS (
          SELECT pg_notify('reservoir_commit', string_agg(topic_id::text, ',')) FROM subscribed HAVING count(*) > 0)
      SELECT a.topic_id, a.partition, a.base, s.topic_id IS NOT NULL AS subscribed,
             (SELECT count(*) FROM notified) AS notified, (SELECT count(*) FROM idx) AS indexed
      FROM adv a LEFT JOIN subscribed s USING (topic_id)`,
    );
    for (const a of advanced) {
      bases.set(`${a.topic_id}:${a.partition}`, a.base);
      if (a.subscribed) subscribed.add(a.topic_id);
    }
  }

  // Each record's result: its new offset, or the one its idempotency key was committed with.
  const result: (AssignedOffset | null)[][] = runs.map((run, r) =>
    run.records.map((_, i) => {
      const rel = relative[r][i];
      const base = bases.get(`${run.topicId}:${run.partition}`);
      return rel !== null && base !== undefined ? { partition: run.partition, offset: base + rel } : null;
    }),
  );
  const at = (key: string) => key.split(":").map(Number) as [number, number];
  for (const [key, original] of claims.previous) {
    const [r, i] = at(key);
    result[r][i] = original;
  }
  for (const [key, first] of claims.alias) {
    const [r, i] = at(key);
    const [fr, fi] = at(first);
    result[r][i] = result[fr][fi] ?? claims.previous.get(first) ?? null;
  }
  const recorded = [...claims.fresh].flatMap((key) => {
    const [r, i] = at(key);
    const assigned = result[r][i];
    return assigned ? [{ topicId: runs[r].topicId, key: runs[r].records[i].k!, ...assigned }] : [];
  });
  if (recorded.length > 0) {
    await tx.execute(sql`
      UPDATE idempotency_keys AS k SET partition = v.p, "offset" = v.o
      FROM unnest(${sqlArray(
        recorded.map((x) => x.topicId),
        "bigint",
      )}, ${sqlArray(
        recorded.map((x) => x.key),
        "text",
      )},
                  ${sqlArray(
                    recorded.map((x) => x.partition),
                    "int",
                  )}, ${sqlArray(
                    recorded.map((x) => x.offset),
                    "bigint",
                  )}) AS v(t, k, p, o)
      WHERE k.topic_id = v.t AND k.key = v.k`);
  }
  const ordered = runs
    .flatMap((run, r) => run.records.map((record, i) => ({ p: record.p, topic: run.topic, at: result[r][i] })))
    .filter((x) => x.at !== null)
    .sort((a, b) => a.p - b.p);
  const indexed = { messages: 0, bytes: 0 };
  runs.forEach((run, r) => {
    run.records.forEach((record, i) => {
      if (relative[r][i] !== null && result[r][i] !== null) {
        indexed.messages++;
        indexed.bytes += record.b;
      }
    });
  });
  return {
    indexed,
    offsets: ordered.map((x) => ({ topic: x.topic, partition: x.at!.partition, offset: x.at!.offset })),
    subscribedTopicIds: [...subscribed],
    highWatermarks: keys.flatMap(([topicId, partition, n]) => {
      const base = bases.get(`${topicId}:${partition}`);
      return base === undefined ? [] : [{ topicId, partition, next: base + n }];
    }),
  };
}
