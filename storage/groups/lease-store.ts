/** Reading and writing lease rows and group positions; every statement takes a whole batch. */
import { sql, type SQL } from "drizzle-orm";
import { rows, type Queryable } from "../metadata/db.ts";
import { arrayLiteral, sqlArray } from "../metadata/sql-array.ts";
import type { LeaseRow } from "./lease-rows.ts";

interface RawRow {
  partition: number;
  first_offset: number;
  last_offset: number;
  settled: number[];
  attempt: number;
  visible_at: number;
  token: number;
  receiver: string | null;
  last_error: string | null;
  first_received_at: number | null;
}

const rowColumns = sql`partition, first_offset, last_offset, to_json(settled) AS settled, attempt, visible_at, token, receiver, last_error, first_received_at`;

function toRow(r: RawRow): LeaseRow {
  return {
    partition: r.partition,
    firstOffset: r.first_offset,
    lastOffset: r.last_offset,
    settled: r.settled,
    attempt: r.attempt,
    visibleAt: r.visible_at,
    token: r.token,
    receiver: r.receiver,
    lastError: r.last_error,
    firstReceivedAt: r.first_received_at,
  };
}

/**
 * Rows due for (re)delivery, oldest first, skipping rows another receiver holds and the rows
 * in `skip` (this transaction's own locks do not skip them: a receive that asks again names
 * those it has). Rows whose offsets are all settled (acked, waiting for the committed offset to
 * pass them) are not due: they would take the LIMIT's places, and, their old leases ending
 * first, for good.
 */
export async function lockDueRows(
  db: Queryable,
  groupId: number,
  now: number,
  limit: number,
  skip: [number, number][] = [],
): Promise<LeaseRow[]> {
  const skipped =
    skip.length === 0
      ? sql``
      : sql`AND (partition, first_offset) NOT IN (SELECT * FROM unnest(${sqlArray(
          skip.map((k) => k[0]),
          "int",
        )}, ${sqlArray(
          skip.map((k) => k[1]),
          "bigint",
        )}))`;
  const found = await rows<RawRow>(
    db,
    sql`SELECT ${rowColumns} FROM group_leases
        WHERE group_id = ${groupId} AND visible_at <= ${now} AND cardinality(settled) < last_offset - first_offset + 1 ${skipped}
        ORDER BY visible_at, partition, first_offset LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`,
  );
  return found.map(toRow);
}

/** Offsets `from`..`to` (inclusive) of one partition. */
export type Span = [partition: number, from: number, to: number];

/** Sorted by (partition, from), overlapping and adjacent spans merged. */
export function mergeSpans(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Span[] = [];
  for (const [p, from, to] of sorted) {
    const last = out.at(-1);
    if (last && last[0] === p && from <= last[2] + 1) last[2] = Math.max(last[2], to);
    else out.push([p, from, to]);
  }
  return out;
}

/** What of `spans` (merged) the rows do not cover. */
function uncovered(spans: Span[], held: LeaseRow[]): Span[] {
  const out: Span[] = [];
  for (const [p, from, to] of spans) {
    let o = from;
    for (const r of held
      .filter((r) => r.partition === p && r.lastOffset >= from && r.firstOffset <= to)
      .sort((a, b) => a.firstOffset - b.firstOffset)) {
      if (r.firstOffset > o) out.push([p, o, r.firstOffset - 1]);
      o = Math.max(o, r.lastOffset + 1);
    }
    if (o <= to) out.push([p, o, to]);
  }
  return out;
}

/**
 * The rows holding any offset of the given spans, locked, each once. By offset, not by the
 * first offset a receipt names: a nack or extend of some offsets of a row cuts it, and the
 * others, still under the same grant, then live in rows that start elsewhere. One statement
 * asks for whole spans (the receipts of one receive make one span per partition), so a
 * thousand receipts lock and return their few rows, not a row per receipt.
 */
export async function lockRowsHolding(db: Queryable, groupId: number, spans: Span[]): Promise<LeaseRow[]> {
  const held = new Map<string, LeaseRow>();
  // In (partition, offset) order, which is row order: concurrent calls lock rows in one order.
  let wanted = mergeSpans(spans);
  while (wanted.length > 0) {
    // Each span's rows: from the one holding its first offset (in this statement's snapshot)
    // to the last to start within it. Not filtered by what they hold: a row another transaction
    // cut while this one waited for its lock comes back as cut (its key stays), and the offsets
    // it no longer holds are looked for again below.
    const found = await rows<RawRow>(
      db,
      sql`SELECT l.* FROM unnest(${sqlArray(
        wanted.map((k) => k[0]),
        "int",
      )}, ${sqlArray(
        wanted.map((k) => k[1]),
        "bigint",
      )}, ${sqlArray(
        wanted.map((k) => k[2]),
        "bigint",
      )}) AS k(p, f, t)
          CROSS JOIN LATERAL (
            SELECT ${rowColumns} FROM group_leases
            WHERE group_id = ${groupId} AND partition = k.p AND first_offset <= k.t
              AND first_offset >= COALESCE(
                (SELECT CASE WHEN h.last_offset >= k.f THEN h.first_offset END FROM (
                   SELECT first_offset, last_offset FROM group_leases
                   WHERE group_id = ${groupId} AND partition = k.p AND first_offset <= k.f
                   ORDER BY first_offset DESC LIMIT 1) h), k.f)
            ORDER BY first_offset
            FOR UPDATE) l`,
    );
    const fresh = found.map(toRow).filter((r) => !held.has(`${r.partition}:${r.firstOffset}`));
    if (fresh.length === 0) break;
    for (const r of fresh) held.set(`${r.partition}:${r.firstOffset}`, r);
    // A row that no longer holds an offset was cut by a transaction this one waited for: the
    // rest went to rows it inserted, which this statement's snapshot predates. Look again.
    wanted = uncovered(wanted, [...held.values()]);
  }
  return [...held.values()];
}

/** The due rows of one partition, locked, skipping rows another transaction holds. */
export async function lockDuePartitionRows(db: Queryable, groupId: number, partition: number, now: number): Promise<LeaseRow[]> {
  const found = await rows<RawRow>(
    db,
    sql`SELECT ${rowColumns} FROM group_leases
        WHERE group_id = ${groupId} AND partition = ${partition} AND visible_at <= ${now}
        FOR UPDATE SKIP LOCKED`,
  );
  return found.map(toRow);
}

/** Every row of one partition, in offset order (the caller holds the partition's position lock). */
export async function partitionRows(db: Queryable, groupId: number, partition: number): Promise<LeaseRow[]> {
  const found = await rows<RawRow>(
    db,
    sql`SELECT ${rowColumns} FROM group_leases WHERE group_id = ${groupId} AND partition = ${partition} ORDER BY first_offset`,
  );
  return found.map(toRow);
}

export interface Position {
  partition: number;
  committed: number;
  frontier: number;
  highWatermark: number;
}

/** Which partitions a receive locks: those of `candidates` it needs, or all of them. */
export interface PartitionChoice {
  /**
   * The messages wanted: only as many partitions as hold that many (counted from the position
   * to the high watermark), plus SPARE_PARTITIONS.
   */
  budget?: number;
  /** Partitions this receive has locked already (a later pass takes the others). */
  exclude?: number[];
  /** At most this many. */
  limit?: number;
}

/** Partitions a receive locks beyond those its budget needs, in case others hold those. */
export const SPARE_PARTITIONS = 1;

/**
 * The condition choosing a receive's partitions among the group's positions `gp` (joined with
 * their `partitions` row `p`) that have messages past `from`, counted in `partitionOrder`.
 * Counting by offsets overestimates (delayed messages, leases in flight), so a receive that
 * falls short takes another pass over the rest; the count only leaves concurrent receivers
 * (SKIP LOCKED) partitions they can use.
 */
export function choosePartitions(
  groupId: number,
  topicId: number,
  partitions: number,
  from: "frontier" | "committed",
  choice: PartitionChoice,
  start: number,
): SQL {
  const column = sql.raw(from === "frontier" ? "gp.frontier" : "gp.committed");
  const inner = sql.raw(from === "frontier" ? "g2.frontier" : "g2.committed");
  const exclude = choice.exclude?.length ? sql`AND gp.partition <> ALL(${sqlArray(choice.exclude, "int")})` : sql``;
  const innerExclude = choice.exclude?.length ? sql`AND g2.partition <> ALL(${sqlArray(choice.exclude, "int")})` : sql``;
  const innerTurn = sql`${positionAge(topicId, sql.raw("g2.partition"), inner)} NULLS FIRST, (g2.partition + ${start}) % ${Math.max(1, partitions)}`;
  const needed =
    choice.budget === undefined
      ? sql``
      : sql`AND gp.partition IN (
            SELECT partition FROM (
              SELECT partition, nth, count(*) FILTER (WHERE before < ${choice.budget}) OVER () AS needed FROM (
                SELECT g2.partition, row_number() OVER w AS nth,
                       coalesce(sum(p2.next_offset - ${inner}) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                FROM group_partitions g2 JOIN partitions p2 ON p2.topic_id = ${topicId} AND p2.partition = g2.partition
                WHERE g2.group_id = ${groupId} AND ${inner} < p2.next_offset ${innerExclude}
                WINDOW w AS (ORDER BY ${innerTurn})) ahead) counted
            WHERE nth <= needed + ${SPARE_PARTITIONS})`;
  return sql`gp.group_id = ${groupId} AND ${column} < p.next_offset ${exclude} ${needed}`;
}

/**
 * The order a receive takes partitions in: the one whose next message is oldest first (by when
 * the segment holding it was written: the server's clock, not a producer's timestamp), then in
 * rotation from `start`. Oldest first, no partition waits behind others for ever, however busy
 * they are; and partitions drained together stay together, so a segment read whole for one
 * serves the others from the read cache (a drain in rotation alone let them drift apart, and
 * read each segment 2.5 times).
 */
export function partitionOrder(topicId: number, partitions: number, from: "frontier" | "committed", start: number): SQL {
  const offset = sql.raw(from === "frontier" ? "gp.frontier" : "gp.committed");
  return sql`${positionAge(topicId, sql.raw("gp.partition"), offset)} NULLS FIRST, (gp.partition + ${start}) % ${Math.max(1, partitions)}`;
}

/**
 * When the segment holding a partition's message at `offset` was written (null: none; ordered
 * first): its id, which begins with its flush time (segment-ids.ts), so no join to `segments`.
 */
export function positionAge(topicId: number, partition: SQL, offset: SQL): SQL {
  return sql`(SELECT i.segment_id FROM segment_index i
              WHERE i.topic_id = ${topicId} AND i.partition = ${partition} AND i.base_offset <= ${offset}
              ORDER BY i.base_offset DESC LIMIT 1)`;
}

/**
 * Positions of partitions that may have messages for the group, locked, skipping those
 * another receiver holds, in `partitionOrder`.
 */
export async function lockPositions(
  db: Queryable,
  groupId: number,
  topicId: number,
  options: { from: "frontier" | "committed"; partitions: number; start: number } & PartitionChoice,
): Promise<Position[]> {
  const found = await rows<{ partition: number; committed: number; frontier: number; next_offset: number }>(
    db,
    sql`SELECT gp.partition, gp.committed, gp.frontier, p.next_offset FROM group_partitions gp
        JOIN partitions p ON p.topic_id = ${topicId} AND p.partition = gp.partition
        WHERE ${choosePartitions(groupId, topicId, options.partitions, options.from, options, options.start)}
        ORDER BY ${partitionOrder(topicId, options.partitions, options.from, options.start)}
        ${options.limit === undefined ? sql`` : sql`LIMIT ${options.limit}`}
        FOR UPDATE OF gp SKIP LOCKED`,
  );
  return found.map((r) => ({
    partition: r.partition,
    committed: r.committed,
    frontier: r.frontier,
    highWatermark: r.next_offset,
  }));
}

/**
 * A random start among `partitions` partitions: ordering partitions of the same age by
 * (partition + start) % partitions makes concurrent receivers begin at different ones.
 */
export function rotation(partitions: number): number {
  return Math.floor(Math.random() * Math.max(1, partitions));
}

export interface RowChanges {
  /** Rows to delete, by (partition, first offset). */
  remove: [number, number][];
  /** Rows to insert (after the deletes). */
  insert: LeaseRow[];
  /** New frontier per partition. */
  frontiers: Map<number, number>;
}

/**
 * Applies a batch of row replacements and frontier moves in one statement. `lock`: positions to
 * lock in the same statement (in partition order), for an advanceCommitted that follows: an ack
 * then makes one statement fewer, and holds the positions for one round trip less.
 */
export async function writeRows(db: Queryable, groupId: number, changes: RowChanges, lock: number[] = []): Promise<void> {
  const { insert, frontiers } = changes;
  // A key both removed and inserted is upserted: one statement must not touch a row twice.
  const reinserted = new Set(insert.map((r) => `${r.partition}:${r.firstOffset}`));
  const remove = changes.remove.filter(([p, f]) => !reinserted.has(`${p}:${f}`));
  if (remove.length === 0 && insert.length === 0 && frontiers.size === 0) {
    if (lock.length > 0) await lockPositionRows(db, groupId, lock);
    return;
  }
  const f = [...frontiers];
  // A SELECT in WITH runs only if the statement reads it: the INSERT's WHERE does.
  const locked = lock.length === 0 ? sql`` : sql`locked AS (${positionLock(groupId, lock)} RETURNING 1),`;
  await db.execute(sql`
    WITH ${locked} removed AS (
      DELETE FROM group_leases l
      USING unnest(${sqlArray(
        remove.map((k) => k[0]),
        "int",
      )}, ${sqlArray(
        remove.map((k) => k[1]),
        "bigint",
      )}) AS k(p, f)
      WHERE l.group_id = ${groupId} AND l.partition = k.p AND l.first_offset = k.f
      RETURNING 1),
    moved AS (
      UPDATE group_partitions gp SET frontier = v.f
      FROM unnest(${sqlArray(
        f.map((x) => x[0]),
        "int",
      )}, ${sqlArray(
        f.map((x) => x[1]),
        "bigint",
      )}) AS v(p, f)
      WHERE gp.group_id = ${groupId} AND gp.partition = v.p
      RETURNING 1)
    INSERT INTO group_leases (group_id, partition, first_offset, last_offset, settled, attempt, visible_at, token, receiver, last_error, first_received_at)
    SELECT ${groupId}, r.p, r.f, r.l, r.s::int[], r.a, r.v, r.t, r.rc, r.e, r.fr
    FROM unnest(${sqlArray(
      insert.map((r) => r.partition),
      "int",
    )}, ${sqlArray(
      insert.map((r) => r.firstOffset),
      "bigint",
    )},
                ${sqlArray(
                  insert.map((r) => r.lastOffset),
                  "bigint",
                )}, ${sqlArray(
                  insert.map((r) => arrayLiteral(r.settled)),
                  "text",
                )},
                ${sqlArray(
                  insert.map((r) => r.attempt),
                  "int",
                )}, ${sqlArray(
                  insert.map((r) => r.visibleAt),
                  "bigint",
                )},
                ${sqlArray(
                  insert.map((r) => r.token),
                  "bigint",
                )}, ${sqlArray(
                  insert.map((r) => r.receiver),
                  "text",
                )},
                ${sqlArray(
                  insert.map((r) => r.lastError),
                  "text",
                )}, ${sqlArray(
                  insert.map((r) => r.firstReceivedAt ?? null),
                  "bigint",
                )})
      AS r(p, f, l, s, a, v, t, rc, e, fr)
    ON CONFLICT (group_id, partition, first_offset) DO UPDATE SET
      last_offset = excluded.last_offset, settled = excluded.settled, attempt = excluded.attempt,
      visible_at = excluded.visible_at, token = excluded.token, receiver = excluded.receiver, last_error = excluded.last_error,
      first_received_at = excluded.first_received_at`);
}

/**
 * A position `gp`'s committed cursor as its lease rows say: its first unsettled offset, or its
 * frontier (nothing below it is undelivered).
 */
export const committedOf: SQL = sql`LEAST(gp.frontier, COALESCE((
        SELECT min(l.first_offset + (SELECT min(x) FROM generate_series(0, (l.last_offset - l.first_offset)::int) x WHERE x <> ALL(l.settled)))
        FROM group_leases l
        WHERE l.group_id = gp.group_id AND l.partition = gp.partition
          AND cardinality(l.settled) < l.last_offset - l.first_offset + 1), gp.frontier))`;

async function lockPositionRows(db: Queryable, groupId: number, partitions: number[]): Promise<void> {
  await db.execute(positionLock(groupId, partitions));
}

/**
 * Locks positions (in partition order) to move their cursors, counting it in `cursor_version`:
 * the two-statement ack (ack-fast.ts), whose cursor statement checks that no cursor move began
 * since its snapshot, then sees this one. A lock alone leaves the row as it was, and two cursors
 * each computed without the other's settle were lost.
 */
function positionLock(groupId: number, partitions: number[]): SQL {
  return sql`UPDATE group_partitions gp SET cursor_version = gp.cursor_version + 1
    FROM (SELECT partition FROM group_partitions
          WHERE group_id = ${groupId} AND partition = ANY(${sqlArray(partitions, "int")}) ORDER BY partition FOR UPDATE) o
    WHERE gp.group_id = ${groupId} AND gp.partition = o.partition`;
}

/**
 * Moves each partition's committed cursor to its first unsettled offset (or its frontier:
 * nothing below it is undelivered) and drops the rows wholly below it. A row another transaction
 * holds (a repeated ack, say) is left to a later call: all settled, it is garbage, and waiting
 * for it while holding the position would deadlock with that transaction's own advance.
 */
export async function advanceCommitted(db: Queryable, groupId: number, partitions: number[], { locked = false } = {}): Promise<void> {
  if (partitions.length === 0) return;
  // Positions first, in a statement of their own (or the caller's writeRows, `locked`): the next
  // one's snapshot then sees the settles of every transaction that held them before. (In one
  // statement, two acks at once each miss the other's, and the later one leaves the cursor behind.)
  if (!locked) await lockPositionRows(db, groupId, partitions);
  await db.execute(sql`
    WITH c AS (
      SELECT gp.partition, ${committedOf} AS committed
      FROM group_partitions gp
      WHERE gp.group_id = ${groupId} AND gp.partition = ANY(${sqlArray(partitions, "int")})),
    moved AS (
      UPDATE group_partitions gp SET committed = c.committed FROM c
      WHERE gp.group_id = ${groupId} AND gp.partition = c.partition AND gp.committed <> c.committed
      RETURNING 1),
    below AS (
      SELECT l.partition, l.first_offset FROM group_leases l JOIN c ON l.partition = c.partition
      WHERE l.group_id = ${groupId} AND l.last_offset < c.committed
      FOR UPDATE OF l SKIP LOCKED)
    DELETE FROM group_leases l USING below b
    WHERE l.group_id = ${groupId} AND l.partition = b.partition AND l.first_offset = b.first_offset`);
}
