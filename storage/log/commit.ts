/**
 * The one Postgres transaction of a flush (DESIGN.md, write path step 4): claim idempotency
 * keys, lock the partitions in a fixed order, assign dense offsets, index the runs, record
 * the segment. Offsets exist only once this commits.
 */
import { sql, type SQL } from "drizzle-orm";
import type { Database, Queryable } from "../metadata/db.ts";
import { rows } from "../metadata/db.ts";
import { segmentIndex, segments } from "../metadata/schema.ts";

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
}

export interface AssignedOffset {
  partition: number;
  offset: number;
}

/** Per run, per record: its offset (the original one for a repeated idempotency key), or null if its topic is gone. */
export type CommitResult = (AssignedOffset | null)[][];

export class CommitDeadlineError extends Error {
  constructor() {
    super("commit did not finish before its deadline");
  }
}

const values = (tuples: SQL[]) => sql.join(tuples, sql`, `);

export async function commitSegment(db: Database, commit: SegmentCommit): Promise<CommitResult> {
  return db.transaction(async (tx) => {
    const result: CommitResult = commit.runs.map((run) => run.timestamps.map(() => null));
    const claims = await claimIdempotencyKeys(tx, commit);

    // Which records survive deduplication, per run.
    const survivors = commit.runs.map((run, r) =>
      run.timestamps.map((_, i) => !claims.alias.has(`${r}:${i}`) && !claims.previous.has(`${r}:${i}`)),
    );
    const counts = new Map<string, number>();
    commit.runs.forEach((run, r) => {
      const n = survivors[r].filter(Boolean).length;
      if (n === 0) return;
      const k = `${run.topicId}:${run.partition}`;
      counts.set(k, (counts.get(k) ?? 0) + n);
    });

    const next = await advancePartitions(tx, counts);
    const rowsToIndex: (typeof segmentIndex.$inferInsert)[] = [];
    commit.runs.forEach((run, r) => {
      const k = `${run.topicId}:${run.partition}`;
      if (!counts.has(k)) return;
      let offset = next.get(k);
      if (offset === undefined) return; // topic deleted meanwhile: its records stay unindexed garbage
      let start = -1;
      const close = (end: number, base: number) => {
        const ts = run.timestamps.slice(start, end);
        rowsToIndex.push({
          topicId: run.topicId,
          partition: run.partition,
          baseOffset: base,
          lastOffset: base + (end - start) - 1,
          tenantId: commit.tenantId,
          segmentId: commit.segmentId,
          byteOffset: run.byteOffset,
          byteLength: run.byteLength,
          recordSkip: start,
          minTimestamp: Math.min(...ts),
          maxTimestamp: Math.max(...ts),
        });
      };
      let runBase = offset;
      for (let i = 0; i <= run.timestamps.length; i++) {
        const alive = i < run.timestamps.length && survivors[r][i];
        if (alive) {
          if (start < 0) {
            start = i;
            runBase = offset;
          }
          result[r][i] = { partition: run.partition, offset: offset++ };
        } else if (start >= 0) {
          close(i, runBase);
          start = -1;
        }
      }
      next.set(k, offset);
    });

    if (rowsToIndex.length > 0) {
      await tx.insert(segments).values({
        id: commit.segmentId,
        tenantId: commit.tenantId,
        objectKey: commit.objectKey,
        byteLength: commit.byteLength,
      });
      await tx.insert(segmentIndex).values(rowsToIndex);
    }

    // Repeated keys answer with the offsets they were first given.
    for (const [at, original] of claims.previous) {
      const [r, i] = at.split(":").map(Number);
      result[r][i] = original;
    }
    for (const [at, first] of claims.alias) {
      const [r, i] = at.split(":").map(Number);
      const [fr, fi] = first.split(":").map(Number);
      result[r][i] = result[fr][fi] ?? claims.previous.get(first) ?? null;
    }
    const recorded = [...claims.fresh]
      .map((at) => {
        const [r, i] = at.split(":").map(Number);
        const assigned = result[r][i];
        return assigned && sql`(${commit.runs[r].topicId}::bigint, ${commit.runs[r].idempotencyKeys[i]}::text, ${assigned.partition}::int, ${assigned.offset}::bigint)`;
      })
      .filter((t): t is SQL => Boolean(t));
    if (recorded.length > 0) {
      await tx.execute(sql`
        UPDATE idempotency_keys AS k SET partition = v.partition, "offset" = v."offset"
        FROM (VALUES ${values(recorded)}) AS v(topic_id, key, partition, "offset")
        WHERE k.topic_id = v.topic_id AND k.key = v.key`);
    }

    if (commit.clock() > commit.deadline) throw new CommitDeadlineError();
    return result;
  });
}

interface Claims {
  /** "run:record" of first occurrences this commit claimed. */
  fresh: Set<string>;
  /** "run:record" → offsets of an earlier commit with the same key. */
  previous: Map<string, AssignedOffset>;
  /** "run:record" of a repeat within this commit → "run:record" of its first occurrence. */
  alias: Map<string, string>;
}

/**
 * Claims each key with a placeholder row. A concurrent commit claiming the same key waits on
 * the unique index until the first one ends, so a key is never committed twice.
 */
async function claimIdempotencyKeys(tx: Queryable, commit: SegmentCommit): Promise<Claims> {
  const claims: Claims = { fresh: new Set(), previous: new Map(), alias: new Map() };
  const first = new Map<string, string>();
  commit.runs.forEach((run, r) =>
    run.idempotencyKeys.forEach((key, i) => {
      if (key === undefined) return;
      const id = `${run.topicId}\u0000${key}`;
      const seen = first.get(id);
      if (seen) claims.alias.set(`${r}:${i}`, seen);
      else first.set(id, `${r}:${i}`);
    }),
  );
  if (first.size === 0) return claims;

  const expiresAt = new Date(commit.now + IDEMPOTENCY_WINDOW_MS).toISOString();
  const tuples = [...first.keys()].map((id) => {
    const [topicId, key] = id.split("\u0000");
    return sql`(${Number(topicId)}::bigint, ${key}::text, ${expiresAt}::timestamptz)`;
  });
  const claimed = await rows<{ topic_id: string | number; key: string }>(
    tx,
    sql`INSERT INTO idempotency_keys (topic_id, key, expires_at) VALUES ${values(tuples)}
        ON CONFLICT (topic_id, key) DO UPDATE SET expires_at = excluded.expires_at, partition = NULL, "offset" = NULL
        WHERE idempotency_keys.expires_at <= now()
        RETURNING topic_id, key`,
  );
  const claimedIds = new Set(claimed.map((c) => `${Number(c.topic_id)}\u0000${c.key}`));
  const taken: SQL[] = [];
  for (const [id, at] of first) {
    if (claimedIds.has(id)) {
      claims.fresh.add(at);
    } else {
      const [topicId, key] = id.split("\u0000");
      taken.push(sql`(${Number(topicId)}::bigint, ${key}::text)`);
    }
  }
  if (taken.length > 0) {
    const existing = await rows<{ topic_id: string | number; key: string; partition: number; offset: string | number }>(
      tx,
      sql`SELECT topic_id, key, partition, "offset" FROM idempotency_keys WHERE (topic_id, key) IN (${values(taken)})`,
    );
    for (const row of existing) {
      const at = first.get(`${Number(row.topic_id)}\u0000${row.key}`);
      if (at && row.partition !== null) claims.previous.set(at, { partition: row.partition, offset: Number(row.offset) });
    }
  }
  return claims;
}

/**
 * Locks the partition rows in (topic, partition) order, so concurrent flushes from any
 * number of instances queue instead of deadlocking, then advances next_offset.
 * Returns each partition's first assigned offset; partitions of deleted topics are absent.
 */
async function advancePartitions(tx: Queryable, counts: Map<string, number>): Promise<Map<string, number>> {
  const bases = new Map<string, number>();
  if (counts.size === 0) return bases;
  const keys = [...counts.keys()]
    .map((k) => k.split(":").map(Number) as [number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const pairs = keys.map(([t, p]) => sql`(${t}::bigint, ${p}::int)`);
  await tx.execute(
    sql`SELECT 1 FROM partitions WHERE (topic_id, partition) IN (${values(pairs)}) ORDER BY topic_id, partition FOR UPDATE`,
  );
  const increments = keys.map(([t, p]) => sql`(${t}::bigint, ${p}::int, ${counts.get(`${t}:${p}`)}::bigint)`);
  const updated = await rows<{ topic_id: string | number; partition: number; base: string | number }>(
    tx,
    sql`UPDATE partitions AS p SET next_offset = p.next_offset + v.n
        FROM (VALUES ${values(increments)}) AS v(topic_id, partition, n)
        WHERE p.topic_id = v.topic_id AND p.partition = v.partition
        RETURNING p.topic_id, p.partition, p.next_offset - v.n AS base`,
  );
  for (const u of updated) bases.set(`${Number(u.topic_id)}:${u.partition}`, Number(u.base));
  return bases;
}
