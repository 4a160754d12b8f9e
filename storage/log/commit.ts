/**
 * The one Postgres transaction of a flush (DESIGN.md, write path step 4): claim idempotency
 * keys, lock the partitions in a fixed order, assign dense offsets, index the runs, record
 * the segment. Offsets exist only once this commits.
 */
import { sql } from "drizzle-orm";
import type { Database, Queryable } from "../metadata/db.ts";
import { rows } from "../metadata/db.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import type { ReservoirError } from "../errors.ts";
import { appendPending } from "../transactions/pending.ts";
import { usageInsert } from "../usage/meter.ts";
import { KeyCheckRefused, type Vouch, vouchIn, vouchingCtes } from "../tenancy/deferred-key-check.ts";

export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** One batch of the segment: the records of one (topic, partition), in arrival order. */
export interface CommitRun {
  topicId: number;
  partition: number;
  byteOffset: number;
  byteLength: number;
  timestamps: number[];
  /** Per record; undefined where the message carries no idempotency key. */
  idempotencyKeys: (string | undefined)[];
  /** Per record; set for delayed messages, which get index rows of their own. */
  deliverAt?: (number | undefined)[];
  /** Per record: its metered bytes (UTF-8 key + value + UTF-8 header names and values). */
  usageBytes: number[];
  /** Produced into this transaction: recorded as pending, no offsets (storage/transactions/). */
  transactionId?: string;
  /**
   * Bytes already stored in this segment (a transaction's pending run, indexed at its commit);
   * absent: in the segment of this commit, whose row it inserts.
   */
  segmentId?: string;
  /** With transactionId: per record, its place in the transaction's part of this flush. */
  positions?: number[];
}

export interface SegmentCommit {
  tenantId: string;
  segmentId: string;
  objectKey: string;
  byteLength: number;
  runs: CommitRun[];
  now: number;
  /** The commit is abandoned (rolled back) rather than finished after this time. */
  deadline: number;
  clock: () => number;
  /**
   * Produces of this flush whose key check was left to it (storage/tenancy/deferred-key-check.ts):
   * the commit stores nothing unless every key still holds (KeyCheckRefused), and counts them.
   */
  vouch?: Vouch;
}

export interface AssignedOffset {
  partition: number;
  offset: number;
}

/** Per run, per record: its offset (the original one for a repeated idempotency key), or null if its topic is gone. */
export type CommitResult = (AssignedOffset | null)[][];

export interface Committed {
  offsets: CommitResult;
  /** Topics of the flush with active webhook subscriptions (their dispatchers were notified). */
  subscribedTopicIds: number[];
  /** Transactions of the flush that took none of their runs, and why (their requests fail so). */
  refusedTransactions?: Map<string, ReservoirError>;
  /** The messages this commit indexed and their metered bytes (what usage counted as messagesIn, bytesIn). */
  indexed: { messages: number; bytes: number };
}

export class CommitDeadlineError extends Error {
  constructor() {
    super("commit did not finish before its deadline");
  }
}

/**
 * Without idempotency keys a flush commits in ONE statement (its own transaction): partition
 * row locks are then held only while Postgres executes and syncs it, never across a round
 * trip to this process. With keys, the claims come first in the same transaction.
 */
export async function commitSegment(db: Database, commit: SegmentCommit): Promise<Committed> {
  if (commit.runs.some((run) => run.transactionId !== undefined)) {
    // Only transactional runs: their one statement is the flush's transaction.
    if (commit.runs.every((run) => run.transactionId !== undefined) && !commit.vouch) return commitWithTransactions(db, commit);
    return db.transaction((tx) => commitWithTransactions(tx, commit));
  }
  const hasKeys = commit.runs.some((run) => run.idempotencyKeys.some((k) => k !== undefined));
  if (!hasKeys) return indexSurvivors(db, commit, noClaims());
  return db.transaction(async (tx) => {
    const committed = await commitClaimingKeys(tx, commit);
    if (commit.clock() > commit.deadline) throw new CommitDeadlineError();
    return committed;
  });
}

/**
 * A flush holding runs of transactions: the plain runs commit as usual, the transactional ones
 * become pending rows (storage/transactions/pending.ts), in the caller's transaction. A
 * transactional record's result is a placeholder (offset -1): it has no offset until its
 * transaction commits.
 */
async function commitWithTransactions(tx: Queryable, commit: SegmentCommit): Promise<Committed> {
  const plainAt: number[] = [];
  const pendingAt: number[] = [];
  commit.runs.forEach((run, r) => {
    (run.transactionId === undefined ? plainAt : pendingAt).push(r);
  });
  const plain = plainAt.length > 0 ? await commitClaimingKeys(tx, { ...commit, runs: plainAt.map((r) => commit.runs[r]) }) : null;
  if (!plain) await vouchIn(tx, commit.tenantId, commit.vouch);
  const pendingRuns = pendingAt.map((r) => {
    const run = commit.runs[r];
    return { ...run, transactionId: run.transactionId!, positions: run.positions ?? run.timestamps.map((_, i) => i) };
  });
  const pending = await appendPending(tx, commit, pendingRuns);
  if (pending.late || commit.clock() > commit.deadline) throw new CommitDeadlineError();
  const offsets: CommitResult = commit.runs.map((run) => run.timestamps.map(() => ({ partition: run.partition, offset: -1 })));
  plainAt.forEach((r, i) => {
    offsets[r] = plain!.offsets[i];
  });
  return {
    offsets,
    subscribedTopicIds: plain?.subscribedTopicIds ?? [],
    refusedTransactions: pending.refused,
    indexed: plain?.indexed ?? { messages: 0, bytes: 0 },
  };
}

/**
 * Claims the idempotency keys of the runs, then indexes what survives, in the caller's
 * transaction: a flush's runs, or a transaction's pending runs at its commit (storage/transactions/).
 */
export async function commitClaimingKeys(tx: Queryable, commit: SegmentCommit): Promise<Committed> {
  const claims = await claimIdempotencyKeys(tx, commit);
  const committed = await indexSurvivors(tx, commit, claims);
  const result = committed.offsets;
  for (const [at, original] of claims.previous) {
    const [r, i] = at.split(":").map(Number);
    result[r][i] = original;
  }
  for (const [at, first] of claims.alias) {
    const [r, i] = at.split(":").map(Number);
    const [fr, fi] = first.split(":").map(Number);
    result[r][i] = result[fr][fi] ?? claims.previous.get(first) ?? null;
  }
  const recorded = [...claims.fresh].flatMap((at) => {
    const [r, i] = at.split(":").map(Number);
    const assigned = result[r][i];
    return assigned ? [{ topicId: commit.runs[r].topicId, key: commit.runs[r].idempotencyKeys[i]!, ...assigned }] : [];
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
  return committed;
}

interface PlannedRow {
  run: number;
  partitionKey: string;
  relFirst: number;
  count: number;
  recordSkip: number;
  minTimestamp: number;
  maxTimestamp: number;
  deliverAt: number | null;
  usageBytes: number;
}

/**
 * Assigns offsets to the records that survive deduplication and indexes them, in one
 * statement: lock the partition rows in (topic, partition) order — so concurrent flushes of
 * any number of instances queue instead of deadlocking — advance next_offset, record the
 * segment, insert the index rows at base + relative offset.
 */
async function indexSurvivors(db: Queryable, commit: SegmentCommit, claims: Claims): Promise<Committed> {
  const result: CommitResult = commit.runs.map((run) => run.timestamps.map(() => null));
  const counts = new Map<string, number>();
  const planned: PlannedRow[] = [];
  // Most flushes carry no repeated key: then no record is looked up (a string per record).
  const anyRepeat = claims.alias.size > 0 || claims.previous.size > 0;
  const relative: (number | null)[][] = commit.runs.map((run, r) => {
    const key = `${run.topicId}:${run.partition}`;
    let next = counts.get(key) ?? 0;
    let open: PlannedRow | null = null;
    const rel = run.timestamps.map((ts, i) => {
      if (anyRepeat && (claims.alias.has(`${r}:${i}`) || claims.previous.has(`${r}:${i}`))) {
        open = null;
        return null;
      }
      const deliverAt = run.deliverAt?.[i] ?? null;
      if (open && open.deliverAt !== deliverAt) open = null;
      if (!open) {
        open = {
          run: r,
          partitionKey: key,
          relFirst: next,
          count: 0,
          recordSkip: i,
          minTimestamp: ts,
          maxTimestamp: ts,
          deliverAt,
          usageBytes: 0,
        };
        planned.push(open);
      }
      open.count++;
      open.usageBytes += run.usageBytes[i];
      open.minTimestamp = Math.min(open.minTimestamp, ts);
      open.maxTimestamp = Math.max(open.maxTimestamp, ts);
      return next++;
    });
    counts.set(key, next);
    return rel;
  });
  if (planned.length === 0) {
    // Every message a repeat: the keys are still vouched for, by a statement of its own.
    await vouchIn(db, commit.tenantId, commit.vouch);
    return { offsets: result, subscribedTopicIds: [], indexed: { messages: 0, bytes: 0 } };
  }

  const keys = [...counts.entries()].filter(([, n]) => n > 0).map(([k, n]) => [...k.split(":").map(Number), n] as [number, number, number]);
  const runOf = (row: PlannedRow) => commit.runs[row.run];
  // A flush must finish by its deadline (storage/lifecycle's grace period counts on it); a
  // transaction's commit indexes bytes stored long before, under no such deadline.
  const inTime = Number.isFinite(commit.deadline)
    ? sql`AND clock_timestamp() < statement_timestamp() + ${Math.max(0, commit.deadline - commit.clock())} * interval '1 millisecond'`
    : sql``;
  // A run whose bytes are in a segment of their own names it; the others are in this commit's, inserted here.
  const ownSegment = commit.runs.some((run) => run.segmentId === undefined);
  // Arrays, not VALUES lists: the statement text never changes, so it is prepared once per connection.
  const answer = await rows<{ vouched: boolean; topic_id: number | null; partition: number; base: number; subscribed: boolean }>(
    db,
    sql`WITH ${vouchingCtes(commit.tenantId, commit.vouch)},
      v AS (
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
        WHERE (SELECT ok FROM vouched)
        ORDER BY p.topic_id, p.partition FOR UPDATE OF p),
      adv AS (
        UPDATE partitions p SET next_offset = p.next_offset + v.n
        FROM locked l JOIN v USING (topic_id, partition)
        WHERE p.topic_id = l.topic_id AND p.partition = l.partition ${inTime}
        RETURNING p.topic_id, p.partition, p.next_offset - v.n AS base),
      seg AS (${
        ownSegment
          ? sql`INSERT INTO segments (id, tenant_id, object_key, byte_length)
                SELECT ${commit.segmentId}, ${commit.tenantId}, ${commit.objectKey}, ${commit.byteLength}
                WHERE EXISTS (SELECT 1 FROM adv)
                RETURNING id`
          : sql`SELECT NULL::text AS id`
      }),
      r AS (
        SELECT *
        FROM unnest(${sqlArray(
          planned.map((r) => runOf(r).topicId),
          "bigint",
        )}, ${sqlArray(
          planned.map((r) => runOf(r).partition),
          "int",
        )},
                    ${sqlArray(
                      planned.map((r) => r.relFirst),
                      "bigint",
                    )}, ${sqlArray(
                      planned.map((r) => r.count),
                      "bigint",
                    )},
                    ${sqlArray(
                      planned.map((r) => runOf(r).byteOffset),
                      "int",
                    )}, ${sqlArray(
                      planned.map((r) => runOf(r).byteLength),
                      "int",
                    )},
                    ${sqlArray(
                      planned.map((r) => r.recordSkip),
                      "int",
                    )}, ${sqlArray(
                      planned.map((r) => r.minTimestamp),
                      "bigint",
                    )},
                    ${sqlArray(
                      planned.map((r) => r.maxTimestamp),
                      "bigint",
                    )}, ${sqlArray(
                      planned.map((r) => r.deliverAt ?? 0),
                      "bigint",
                    )}, ${sqlArray(
                      planned.map((r) => r.usageBytes),
                      "bigint",
                    )}, ${sqlArray(
                      planned.map((r) => runOf(r).segmentId ?? null),
                      "text",
                    )})
             AS r(topic_id, partition, rel_first, n, byte_offset, byte_length, record_skip, min_ts, max_ts, deliver_at, usage_bytes, segment_id)),
      idx AS (
        INSERT INTO segment_index (topic_id, partition, base_offset, last_offset, tenant_id, segment_id,
                                   byte_offset, byte_length, record_skip, min_timestamp, max_timestamp, deliver_at)
        SELECT r.topic_id, r.partition, a.base + r.rel_first, a.base + r.rel_first + r.n - 1, ${commit.tenantId},
               coalesce(r.segment_id, seg.id),
               r.byte_offset, r.byte_length, r.record_skip, r.min_ts, r.max_ts, NULLIF(r.deliver_at, 0)
        FROM r
        JOIN adv a USING (topic_id, partition) CROSS JOIN seg
        RETURNING 1),
      -- Usage (storage/usage/meter.ts) counts what this statement indexed: survivors of topics that still exist.
      metered AS (${usageInsert(commit.tenantId, { messagesIn: sql`sum(r.n)`, bytesIn: sql`sum(r.usage_bytes)` }, sql`r JOIN adv a USING (topic_id, partition) HAVING count(*) > 0`)}),
      -- Dispatchers LISTEN: a commit to a subscribed topic wakes them at once (sent on COMMIT).
      subscribed AS MATERIALIZED (
        SELECT DISTINCT a.topic_id FROM adv a
        WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.topic_id = a.topic_id AND s.state = 'active')),
      notified AS (
        SELECT pg_notify('reservoir_commit', string_agg(topic_id::text, ',')) FROM subscribed HAVING count(*) > 0)
    SELECT vouched.ok AS vouched, x.*, (SELECT count(*) FROM notified) AS notified, (SELECT count(*) FROM vouch_counted) AS counted
    FROM vouched LEFT JOIN (
      SELECT a.topic_id, a.partition, a.base, s.topic_id IS NOT NULL AS subscribed FROM adv a LEFT JOIN subscribed s USING (topic_id)
    ) x ON true`,
  );
  if (answer[0]?.vouched === false) throw new KeyCheckRefused();
  const advanced = answer.filter((a) => a.topic_id !== null);
  if (advanced.length === 0 && keys.length > 0 && commit.clock() > commit.deadline) throw new CommitDeadlineError();
  const bases = new Map(advanced.map((a) => [`${a.topic_id}:${a.partition}`, a.base]));
  const indexed = { messages: 0, bytes: 0 };
  commit.runs.forEach((run, r) => {
    const base = bases.get(`${run.topicId}:${run.partition}`);
    if (base === undefined) return; // topic deleted meanwhile: its records stay unindexed garbage
    relative[r].forEach((rel, i) => {
      if (rel === null) return;
      result[r][i] = { partition: run.partition, offset: base + rel };
      indexed.messages++;
      indexed.bytes += run.usageBytes[i];
    });
  });
  const subscribedTopicIds = [...new Set(advanced.filter((a) => a.subscribed).map((a) => a.topic_id!))];
  return { offsets: result, subscribedTopicIds, indexed };
}

const noClaims = (): Claims => ({ fresh: new Set(), previous: new Map(), alias: new Map() });

export interface Claims {
  /** "run:record" of first occurrences this commit claimed. */
  fresh: Set<string>;
  /** "run:record" → offsets of an earlier commit with the same key. */
  previous: Map<string, AssignedOffset>;
  /** "run:record" of a repeat within this commit → "run:record" of its first occurrence. */
  alias: Map<string, string>;
}

/**
 * Claims each key with a placeholder row. A concurrent commit claiming the same key waits on
 * the unique index until the first one ends, so a key is never committed twice. Only keys of
 * topics that still exist are claimed, under a key-share lock on the topic row: a DELETE of
 * the topic then waits for this commit, or has already removed the row and the topic's
 * records find no partition (null: topic_not_found) — never a foreign-key violation.
 */
export async function claimIdempotencyKeys(tx: Queryable, commit: SegmentCommit): Promise<Claims> {
  const claims: Claims = { fresh: new Set(), previous: new Map(), alias: new Map() };
  /** "topicId:key" (unambiguous: a topic id holds no ':') → its first occurrence. */
  const first = new Map<string, { topicId: number; key: string; at: string }>();
  commit.runs.forEach((run, r) => {
    run.idempotencyKeys.forEach((key, i) => {
      if (key === undefined) return;
      const id = `${run.topicId}:${key}`;
      const seen = first.get(id);
      if (seen) claims.alias.set(`${r}:${i}`, seen.at);
      else first.set(id, { topicId: run.topicId, key, at: `${r}:${i}` });
    });
  });
  if (first.size === 0) return claims;

  const expiresAt = new Date(commit.now + IDEMPOTENCY_WINDOW_MS).toISOString();
  const wanted = [...first.values()];
  const claimed = await rows<{ topic_id: number; key: string }>(
    tx,
    sql`WITH live AS MATERIALIZED (
          SELECT id FROM topics WHERE id = ANY(${sqlArray([...new Set(wanted.map((w) => w.topicId))], "bigint")}) FOR KEY SHARE)
        INSERT INTO idempotency_keys (topic_id, key, expires_at)
        SELECT c.t, c.k, ${expiresAt}::timestamptz
        FROM unnest(${sqlArray(
          wanted.map((w) => w.topicId),
          "bigint",
        )}, ${sqlArray(
          wanted.map((w) => w.key),
          "text",
        )}) AS c(t, k)
        JOIN live ON live.id = c.t
        ON CONFLICT (topic_id, key) DO UPDATE SET expires_at = excluded.expires_at, partition = NULL, "offset" = NULL
        WHERE idempotency_keys.expires_at <= now()
        RETURNING topic_id, key`,
  );
  const claimedIds = new Set(claimed.map((c) => `${c.topic_id}:${c.key}`));
  const taken: { topicId: number; key: string }[] = [];
  for (const [id, w] of first) {
    if (claimedIds.has(id)) claims.fresh.add(w.at);
    else taken.push(w);
  }
  if (taken.length > 0) {
    const existing = await rows<{ topic_id: number; key: string; partition: number; offset: number }>(
      tx,
      sql`SELECT i.topic_id, i.key, i.partition, i."offset" FROM idempotency_keys i
          JOIN unnest(${sqlArray(
            taken.map((w) => w.topicId),
            "bigint",
          )}, ${sqlArray(
            taken.map((w) => w.key),
            "text",
          )}) AS c(t, k)
            ON i.topic_id = c.t AND i.key = c.k`,
    );
    for (const row of existing) {
      const at = first.get(`${row.topic_id}:${row.key}`)?.at;
      if (at && row.partition !== null) claims.previous.set(at, { partition: row.partition, offset: row.offset });
    }
  }
  return claims;
}
