/**
 * The common ack in two statements, no transaction: receipts that each name a whole lease row
 * (a lease receipt of a receive, acked as it came), still leased under that grant and with
 * nothing settled yet. The first statement settles those rows; the second moves the committed
 * cursors of their partitions. The general way (settle.ts) takes five round trips (BEGIN, the
 * rows, the writes with the position locks, the cursors, COMMIT) and holds the positions for
 * the last three; receives of the partition skip it meanwhile. Here the position is locked by
 * the second statement alone.
 *
 * The second statement computes each cursor from its own snapshot and writes it (even unchanged)
 * only where the position's `cursor_version` is still the snapshot's, counting itself there.
 * Every other cursor move counts itself there first (lease-store.ts, positionLock), as do seeks
 * and retention: where one did after the snapshot, the cursor may have been computed without
 * its settles, so the statement leaves it and runs again with a new snapshot. Two acks at once
 * each missing the other's settle thus never both keep their cursor (the reason the general way
 * locks before it computes). A lease moving the frontier meanwhile cannot make the cursor wrong
 * (its new rows start at the old frontier, unsettled), so leases do not count: with one
 * partition, counting every change of the row (its xmin) made more than half of these
 * statements run twice. A settle committed in
 * the first statement and not yet followed by the second (a crash between) leaves the cursor
 * behind until the next ack of the partition moves it; nothing is redelivered meanwhile (a
 * settled row is never due).
 */
import { sql } from "drizzle-orm";
import { type Database, retryConflicts, rows } from "../metadata/db.ts";
import { advanceCommitted, committedOf } from "./lease-store.ts";
import { sqlArray } from "../metadata/sql-array.ts";
import type { ReceiptClaims } from "./receipts.ts";
import type { Group } from "./groups.ts";
import { type DeferredKeyCheck, vouched, vouchFor, vouchingCtes } from "../tenancy/deferred-key-check.ts";

/** A receipt naming a whole row from its first offset: [partition, first offset, last offset, token]. */
export type WholeRow = [number, number, number, number];

/** A named row's key: its partition, first offset and grant (an older grant's receipt names the same row). */
export function wholeRowKey(w: WholeRow): string {
  return `${w[0]}:${w[1]}:${w[3]}`;
}

/** The whole row a receipt names from its start, if it does (the row's end is checked by the statement). */
export function wholeRowOf(c: ReceiptClaims): WholeRow | null {
  return c.offset === c.firstOffset ? [c.partition, c.firstOffset, c.lastOffset ?? c.offset, c.token] : null;
}

/**
 * Settles the rows named if each is still leased under that grant with nothing settled, else
 * none; returns the keys (wholeRowKey) of those it settled (all or none: the general way then
 * takes the whole call), after moving their partitions' committed cursors. `check`: the
 * request's key check, left to this statement (storage/tenancy/deferred-key-check.ts).
 */
export async function ackWholeRows(
  group: Group,
  db: Database,
  named: WholeRow[],
  now: number,
  check?: DeferredKeyCheck,
): Promise<Set<string>> {
  const groupId = group.id;
  // All or nothing: the rows are locked first, and settled only if every one named qualifies.
  // Settling some here and leaving the others to the general way's transaction split one ack
  // call in two, and a receive between them could re-lease a message of the second part after
  // the first was acked: no order of the two calls explained that (the groups model found it).
  // Each row once: a receipt named twice must not count for two rows.
  const rowsNamed = [...new Map(named.map((w) => [wholeRowKey(w), w])).values()];
  const [answer] = await retryConflicts(() =>
    rows<{ ok: boolean; settled: [number, number, number][] | null }>(
      db,
      sql`WITH ${vouchingCtes(group.tenantId, vouchFor([check]))},
          qualifying AS (
            SELECT l.partition, l.first_offset FROM group_leases l
            JOIN unnest(${sqlArray(
              rowsNamed.map((n) => n[0]),
              "int",
            )}, ${sqlArray(
              rowsNamed.map((n) => n[1]),
              "bigint",
            )}, ${sqlArray(
              rowsNamed.map((n) => n[2]),
              "bigint",
            )}, ${sqlArray(
              rowsNamed.map((n) => n[3]),
              "bigint",
            )}) AS k(p, f, t, tok)
              ON l.partition = k.p AND l.first_offset = k.f AND l.last_offset = k.t AND l.token = k.tok
            WHERE l.group_id = ${groupId} AND l.visible_at > ${now} AND cardinality(l.settled) = 0 AND (SELECT ok FROM vouched)
            ORDER BY l.partition, l.first_offset
            FOR UPDATE OF l),
          acked AS (
            UPDATE group_leases l SET settled = ARRAY(SELECT generate_series(0, (l.last_offset - l.first_offset)::int))
            FROM qualifying q
            WHERE l.group_id = ${groupId} AND l.partition = q.partition AND l.first_offset = q.first_offset
              AND (SELECT count(*) FROM qualifying) = ${rowsNamed.length}
            RETURNING l.partition, l.first_offset, l.token)
          SELECT (SELECT ok FROM vouched) AS ok, (SELECT count(*) FROM vouch_counted) AS counted,
                 (SELECT json_agg(json_build_array(partition, first_offset, token)) FROM acked) AS settled`,
    ),
  );
  vouched(check, answer.ok);
  const settled = (answer.settled ?? []).map(([partition, first_offset, token]) => ({ partition, first_offset, token }));
  if (settled.length > 0)
    await cursorMoves(
      db,
      groupId,
      settled.map((r) => r.partition),
    );
  return new Set(settled.map((r) => wholeRowKey([r.partition, r.first_offset, 0, Number(r.token)])));
}

/**
 * One cursor move of a group in flight per instance (per database handle), and at most one more
 * queued, which every ack arriving meanwhile joins: each ack's move still starts after its
 * settle committed, and acks in a burst share one statement. Every such statement locks the
 * position row that the group's leases lock too, and two at once made each other run again
 * (cursor_version): with one partition, 12–19 reruns a second (docs/benchmarks.md, session 10).
 */
interface CursorFlight {
  /** The move to run once the one in flight ends, and the acks waiting for it. */
  queued: { partitions: Set<number>; start: () => void; done: Promise<void> } | null;
}
const flights = new WeakMap<Database, Map<number, CursorFlight>>();

function cursorMoves(db: Database, groupId: number, partitions: number[]): Promise<void> {
  let groups = flights.get(db);
  if (!groups) {
    groups = new Map();
    flights.set(db, groups);
  }
  const flight = groups.get(groupId);
  if (!flight) {
    const mine: CursorFlight = { queued: null };
    groups.set(groupId, mine);
    return fly(db, groupId, groups, mine, new Set(partitions));
  }
  if (!flight.queued) {
    const queued = new Set<number>();
    let start!: () => void;
    const gate = new Promise<void>((resolve) => (start = resolve));
    flight.queued = { partitions: queued, start, done: gate.then(() => fly(db, groupId, groups, flight, queued)) };
  }
  for (const p of partitions) flight.queued.partitions.add(p);
  return flight.queued.done;
}

/** One move; then the flight passes to the move queued meanwhile, or ends. */
async function fly(db: Database, groupId: number, groups: Map<number, CursorFlight>, flight: CursorFlight, partitions: Set<number>) {
  try {
    await moveCursors(db, groupId, [...partitions]);
  } finally {
    const next = flight.queued;
    flight.queued = null;
    if (next) next.start();
    else groups.delete(groupId);
  }
}

/** Statements that find a position changed since their snapshot before the cursors move the locking way. */
const CURSOR_ATTEMPTS = 4;

/** Moves the committed cursors of `partitions` (see the file's comment), again until none was read stale. */
async function moveCursors(db: Database, groupId: number, partitions: number[]): Promise<void> {
  let left = partitions;
  for (let attempt = 1; left.length > 0; attempt++) {
    if (attempt > CURSOR_ATTEMPTS) {
      // Positions busier than that: lock them, then compute (advanceCommitted, in a transaction).
      const stale = left;
      return retryConflicts(() => db.transaction((tx) => advanceCommitted(tx, groupId, stale)));
    }
    const stale = await retryConflicts(() =>
      rows<{ partition: number }>(
        db,
        sql`WITH c AS (
              SELECT gp.partition, gp.cursor_version AS seen, ${committedOf} AS committed
              FROM group_partitions gp
              WHERE gp.group_id = ${groupId} AND gp.partition = ANY(${sqlArray(left, "int")})),
            moved AS (
              UPDATE group_partitions gp SET committed = c.committed, cursor_version = gp.cursor_version + 1 FROM c
              WHERE gp.group_id = ${groupId} AND gp.partition = c.partition AND gp.cursor_version = c.seen
              RETURNING gp.partition, gp.committed),
            below AS (
              SELECT l.partition, l.first_offset FROM group_leases l JOIN moved m ON l.partition = m.partition
              WHERE l.group_id = ${groupId} AND l.last_offset < m.committed
              FOR UPDATE OF l SKIP LOCKED),
            dropped AS (
              DELETE FROM group_leases l USING below b
              WHERE l.group_id = ${groupId} AND l.partition = b.partition AND l.first_offset = b.first_offset
              RETURNING 1)
            SELECT c.partition FROM c WHERE c.partition NOT IN (SELECT partition FROM moved)`,
      ),
    );
    left = stale.map((r) => r.partition);
  }
}
