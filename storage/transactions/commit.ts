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
 * Usage (messagesIn, bytesIn) is counted by the statement that indexes the runs (step 4).
 */
import { sql } from "drizzle-orm";
import { ReservoirError } from "../errors.ts";
import { retryConflicts, rows, type Database, type Queryable } from "../metadata/db.ts";
import { findGroup } from "../groups/groups.ts";
import { settleIn } from "../groups/settle.ts";
import { receiptOf, type ReceiptRef, type ReceiptSigner } from "../groups/receipts.ts";
import { commitClaimingKeys } from "../log/commit.ts";
import { endRolledBack, findTransaction, notFound, notOpen, timedOut } from "./transactions.ts";

/** Acks carried by a commit: receipts of one group of one topic. */
export interface CarriedAck {
  topic: string;
  group: string;
  receipts: ReceiptRef[];
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
  await tx.execute(sql`
    WITH gone AS (DELETE FROM transaction_runs WHERE transaction_id = ${id} RETURNING 1)
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
      for (const ref of ack.receipts) failed.push({ receipt: receiptOf(ref), code: "receipt_unknown", topic: ack.topic, group: ack.group });
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

/**
 * Assigns offsets to the pending runs (in production order, per partition) and indexes them
 * where their bytes already are, by the produce commit's own statement (storage/log/commit.ts):
 * the same lock order, idempotency claims and usage count. Records whose idempotency key was
 * committed before get that commit's offsets instead.
 */
async function indexPending(tx: Queryable, tenantId: string, runs: Run[], now: number) {
  const committed = await commitClaimingKeys(tx, {
    tenantId,
    segmentId: "",
    objectKey: "",
    byteLength: 0,
    runs: runs.map((run) => ({
      topicId: run.topicId,
      partition: run.partition,
      byteOffset: run.byte_offset,
      byteLength: run.byte_length,
      timestamps: run.records.map((r) => r.t),
      idempotencyKeys: run.records.map((r) => r.k),
      deliverAt: run.records.map((r) => r.d),
      usageBytes: run.records.map((r) => r.b),
      segmentId: run.segment_id,
    })),
    now,
    deadline: Number.POSITIVE_INFINITY,
    clock: () => now,
  });
  const ordered = runs
    .flatMap((run, r) => run.records.map((record, i) => ({ p: record.p, topic: run.topic, at: committed.offsets[r][i] })))
    .filter((x) => x.at !== null)
    .sort((a, b) => a.p - b.p);
  // Per partition that got messages: its next offset, for this instance's long-polling readers.
  const next = new Map<string, { topicId: number; partition: number; next: number }>();
  runs.forEach((run, r) => {
    for (const at of committed.offsets[r]) {
      const key = `${run.topicId}:${run.partition}`;
      if (at && at.offset + 1 > (next.get(key)?.next ?? 0))
        next.set(key, { topicId: run.topicId, partition: run.partition, next: at.offset + 1 });
    }
  });
  return {
    indexed: committed.indexed,
    offsets: ordered.map((x) => ({ topic: x.topic, partition: x.at!.partition, offset: x.at!.offset })),
    subscribedTopicIds: committed.subscribedTopicIds,
    highWatermarks: [...next.values()],
  };
}
