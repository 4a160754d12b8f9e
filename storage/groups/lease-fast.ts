/**
 * A receive's lease, the common case in one statement. A group in ordering "none" with nothing
 * due again leases fresh ranges from its partitions' frontiers; where no delayed message and no
 * lease row lie just past a frontier, that is a range [frontier, frontier + n) per partition and
 * a frontier moved. One statement locks the positions (skipping those another receive holds),
 * checks that, writes the rows and moves the frontiers, and commits on its own: one round trip
 * instead of five (BEGIN, the due rows, the positions, the writes, COMMIT), and a partition's
 * position is locked for the statement alone. With one partition, receivers take turns on that
 * lock, and how long each holds it bounds the whole group's rate (docs/benchmarks.md).
 *
 * Everything else goes the general way (receive.ts, in a transaction): rows due again, delayed
 * messages or lease rows just past a frontier, a position changed since the statement's
 * snapshot, and a budget the statement could not spend while other messages remain. Then the
 * statement writes nothing and the general way leases the whole receive: a receive is one
 * transaction, never two.
 */
import { sql } from "drizzle-orm";
import { type Database, retryConflicts, rows } from "../metadata/db.ts";
import type { Topic } from "../metadata/topics.ts";
import {
  type IndexRowJson,
  indexRowsFromJson,
  indexRowsOfRanges,
  type NextSegmentJson,
  nextSegmentsFromJson,
  nextSegmentsOfRanges,
  type ReadIo,
} from "../log/reader.ts";
import type { Group } from "./groups.ts";
import type { LeaseRow } from "./lease-rows.ts";
import { choosePartitions, partitionOrder, positionAge, rotation } from "./lease-store.ts";
import { FRESH_SCAN_WINDOW, type Lease, leaseIn, type ReceiveOptions, windowColumns } from "./receive.ts";
import { newGrantToken } from "./receipts.ts";
import { vouched, vouchFor, vouchIn, vouchingCtes } from "../tenancy/deferred-key-check.ts";

interface FastResult {
  /** The request's key still holds (vouchingCtes): else the statement wrote nothing. */
  ok: boolean;
  /** Rows due again exist: the general way leases, from the start. */
  due: boolean;
  /** Positions locked but left alone (delayed messages, lease rows, changed since the snapshot). */
  unclean: number;
  /** Messages past the frontiers of all partitions, in the statement's snapshot (before its own lease). */
  available: string | number;
  /** [partition, first offset, last offset] of each range the statement would lease... */
  taken: [number, number, number][] | null;
  /**
   * ...and whether it did: when they are the whole receive (the budget spent, or nothing else
   * to lease). Otherwise it wrote nothing, and the general way leases it all.
   */
  wrote: boolean;
  /**
   * Where it wrote: the index rows holding what it leased (reader.ts, indexRowsOfRanges). Read
   * here, in the lease's own snapshot, the read of the messages makes no statement of its own:
   * one round trip less per receive.
   */
  index: IndexRowJson[] | null;
  /** The segments holding what follows each leased range (reader.ts, nextSegmentsOfRanges): read ahead. */
  next: NextSegmentJson[] | null;
}

/**
 * Leases up to `options.max` messages: in one statement where that is the whole receive, else
 * the general way. Either is one transaction, so a receive stays one step beside a seek or
 * another receive (a receive split in two, the second after a seek, returned a message twice).
 * Not within a caller's transaction: the statement commits on its own.
 */
export async function leaseNow(io: ReadIo & { db: Database }, group: Group, topic: Topic, options: ReceiveOptions): Promise<Lease> {
  const token = newGrantToken();
  if (group.ordering === "none" && options.maxPartitions === undefined) {
    const fast = await retryConflicts(() => leaseFromFrontiers(io.db, group, topic, options, token));
    vouched(options.check, fast.ok);
    if (fast.wrote) {
      const lease = fastLease(fast.taken ?? [], options, token, fast.index ?? [], fast.next ?? []);
      const everything = !fast.due && fast.unclean === 0 && lease.plan.grants.length === Number(fast.available);
      return everything ? { ...lease, drained: true } : lease;
    }
    if (!fast.due && fast.unclean === 0) {
      const nothing = fastLease([], options, token);
      if (Number(fast.available) === 0) return { ...nothing, idle: true, drained: true };
      // Every partition with messages is held by others: the general way would skip them too.
      if (!fast.taken?.length) return { ...nothing, blocked: true };
    }
  }
  const lease = await retryConflicts(() =>
    io.db.transaction(async (tx) => {
      await vouchIn(tx, group.tenantId, vouchFor([options.check]));
      return leaseIn({ ...io, db: tx }, group, topic, options, token);
    }),
  );
  vouched(options.check, true);
  return lease;
}

async function leaseFromFrontiers(db: Database, group: Group, topic: Topic, options: ReceiveOptions, token: number): Promise<FastResult> {
  const groupId = group.id;
  const topicId = topic.id;
  const start = rotation(topic.partitions);
  const end = sql`gp.frontier + ${options.max + FRESH_SCAN_WINDOW}`;
  const visibleAt = options.now + options.visibilityMs;
  // The ranges the statement leased, when it wrote them: where its index rows and read-ahead come from.
  const leased = sql`(SELECT * FROM taken WHERE (SELECT yes FROM whole))`;
  // A position locked after a commit that changed it is its new row, while the window's
  // subqueries read the statement's snapshot. Only state missing from the snapshot would be
  // unsafe, and none can be where this leases, [frontier, next_offset of the snapshot): a lease
  // writes rows below the frontier it moves to, a produce past that next_offset, a cursor move
  // below the committed offset. Rows a seek or retention dropped may still show: then the
  // window is not clean, and the general way reads it again (lockFreshPositions). A frontier
  // moved back since the snapshot (a seek) goes the general way too.
  // With one partition a lease waits for its lock rather than skipping it: there is no other
  // partition to take, and the holder (an ack's cursor move, mostly) holds it for one statement;
  // skipped, the receive came back empty and tried again (a quarter of the leases, one turn each).
  // With more, it skips, so that receivers spread over the partitions (and never deadlock).
  // Window functions cannot go with FOR UPDATE, so the order is kept as columns for the next step.
  const [r] = await rows<FastResult>(
    db,
    sql`WITH ${vouchingCtes(group.tenantId, vouchFor([options.check]))},
        due AS (
          SELECT EXISTS (SELECT 1 FROM group_leases
            WHERE group_id = ${groupId} AND visible_at <= ${options.now} AND cardinality(settled) < last_offset - first_offset + 1) AS found),
        locked AS (
          SELECT gp.partition, gp.frontier, p.next_offset,
                 ${windowColumns(groupId, topicId, sql`gp.partition`, sql`gp.frontier`, end, options.now)},
                 (SELECT g.frontier FROM group_partitions g WHERE g.group_id = gp.group_id AND g.partition = gp.partition) AS seen,
                 ${positionAge(topicId, sql.raw("gp.partition"), sql.raw("gp.frontier"))} AS age,
                 (gp.partition + ${start}) % ${Math.max(1, topic.partitions)} AS turn
          FROM group_partitions gp
          JOIN partitions p ON p.topic_id = ${topicId} AND p.partition = gp.partition
          WHERE NOT (SELECT found FROM due) AND ${choosePartitions(groupId, topicId, topic.partitions, "frontier", { budget: options.max }, start)}
          ORDER BY ${partitionOrder(topicId, topic.partitions, "frontier", start)}
          FOR UPDATE OF gp ${topic.partitions === 1 ? sql`` : sql`SKIP LOCKED`}),
        clean AS (
          SELECT partition, frontier, next_offset, row_number() OVER (ORDER BY age NULLS FIRST, turn) AS nth FROM locked
          WHERE frontier >= seen AND delayed IS NULL AND covered IS NULL),
        planned AS (
          SELECT partition, frontier AS first_offset,
                 frontier + LEAST(next_offset - frontier, GREATEST(0, ${options.max} - COALESCE(sum(next_offset - frontier)
                   OVER (ORDER BY nth ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS end_offset
          FROM clean),
        taken AS (SELECT partition, first_offset, end_offset FROM planned WHERE end_offset > first_offset),
        available AS (
          SELECT COALESCE(sum(p.next_offset - gp.frontier), 0) AS n FROM group_partitions gp
          JOIN partitions p ON p.topic_id = ${topicId} AND p.partition = gp.partition
          WHERE gp.group_id = ${groupId} AND gp.frontier < p.next_offset),
        whole AS (
          SELECT t.n > 0 AND (SELECT ok FROM vouched) AND (t.n >= ${options.max} OR ((SELECT count(*) FROM locked) = (SELECT count(*) FROM clean)
                 AND t.n >= (SELECT n FROM available))) AS yes
          FROM (SELECT COALESCE(sum(end_offset - first_offset), 0) AS n FROM taken) t),
        inserted AS (
          INSERT INTO group_leases (group_id, partition, first_offset, last_offset, settled, attempt, visible_at, token, receiver, last_error, first_received_at)
          SELECT ${groupId}, partition, first_offset, end_offset - 1, '{}'::int[], 1, ${visibleAt}, ${token}, ${options.receiver}, NULL, ${options.now}
          FROM taken WHERE (SELECT yes FROM whole)
          RETURNING 1),
        moved AS (
          UPDATE group_partitions gp SET frontier = t.end_offset FROM taken t
          WHERE gp.group_id = ${groupId} AND gp.partition = t.partition AND (SELECT yes FROM whole)
          RETURNING 1)
        SELECT (SELECT ok FROM vouched) AS ok, (SELECT count(*) FROM vouch_counted) AS counted,
               (SELECT found FROM due) AS due,
               (SELECT count(*)::int FROM locked) - (SELECT count(*)::int FROM clean) AS unclean,
               (SELECT n FROM available) AS available,
               (SELECT yes FROM whole) AS wrote,
               (SELECT json_agg(json_build_array(partition, first_offset, end_offset - 1) ORDER BY partition) FROM taken) AS taken,
               ${indexRowsOfRanges(topicId, leased)} AS index,
               ${nextSegmentsOfRanges(topicId, leased)} AS next`,
  );
  return r;
}

/** The lease the statement wrote, as the general way would have planned it. */
function fastLease(
  taken: [number, number, number][],
  options: ReceiveOptions,
  token: number,
  index: IndexRowJson[] = [],
  next: NextSegmentJson[] = [],
): Lease {
  const insert: LeaseRow[] = [];
  const grants: { partition: number; offset: number; attempt: number }[] = [];
  for (const [partition, first, last] of taken) {
    insert.push({
      partition,
      firstOffset: first,
      lastOffset: last,
      settled: [],
      attempt: 1,
      visibleAt: options.now + options.visibilityMs,
      token,
      receiver: options.receiver,
      lastError: null,
      firstReceivedAt: options.now,
    });
    for (let o = first; o <= last; o++) grants.push({ partition, offset: o, attempt: 1 });
  }
  return {
    token,
    plan: {
      changes: { remove: [], insert, frontiers: new Map() },
      grants,
      exhausted: [],
      touched: new Set(),
      index: indexRowsFromJson(index),
      next: nextSegmentsFromJson(next),
    },
  };
}
