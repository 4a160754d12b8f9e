/**
 * Receive: lease the next messages of a group. Ordering "none" leases whole ranges from each
 * partition's frontier plus rows that are due again; ordering "key" scans each partition from
 * its committed offset so that no key has two messages in flight and each key goes in offset
 * order. Messages nobody has received cost no rows. Exhausted messages are dead-lettered here.
 */
import { sql, type SQL } from "drizzle-orm";
import type { Queryable } from "../metadata/db.ts";
import { rows } from "../metadata/db.ts";
import type { Topic } from "../metadata/topics.ts";
import { type IndexRow, type NextSegment, readAhead, readChunks, readFrom, type ReadIo, type StoredChunk } from "../log/reader.ts";
import type { SegmentRecord } from "../segment/codec.ts";
import type { Group } from "./groups.ts";
import type { DeferredKeyCheck } from "../tenancy/deferred-key-check.ts";
import { deadLetter, type Exhausted } from "./dead-letter.ts";
import { liveOffsets, reshape, type LeaseRow, type LeaseState, type OffsetChange } from "./lease-rows.ts";
import {
  advanceCommitted,
  choosePartitions,
  lockDuePartitionRows,
  lockDueRows,
  lockPositions,
  partitionOrder,
  partitionRows,
  rotation,
  writeRows,
  type PartitionChoice,
  type Position,
  type RowChanges,
} from "./lease-store.ts";
import { newGrantToken } from "./receipts.ts";

export interface ReceiveOptions {
  max: number;
  visibilityMs: number;
  receiver: string;
  now: number;
  /**
   * At most how many partitions the first pass locks (default: as many as the budget needs by
   * their counts, plus one, so that concurrent receivers find others free). Later passes, while
   * the receive falls short, take more whatever this says.
   */
  maxPartitions?: number;
  /** The request's key check, left to the lease's statements (storage/tenancy/deferred-key-check.ts). */
  check?: DeferredKeyCheck;
}

export interface Delivery {
  partition: number;
  offset: number;
  attempt: number;
  record: SegmentRecord;
  /** Lease row and grant the receipt names. */
  firstOffset: number;
  token: number;
  /** When the message was first received (ms): now, on its first delivery. */
  firstReceivedAt: number;
}

/** A key-ordered receive reads messages in windows of this many... */
export const KEY_SCAN_WINDOW = 1000;
/** ...and looks at most this far past its committed offset for deliverable ones. */
export const KEY_SCAN_LIMIT = 10_000;

interface Grant {
  partition: number;
  offset: number;
  attempt: number;
}

export interface Plan {
  changes: RowChanges;
  grants: Grant[];
  exhausted: Exhausted[];
  touched: Set<number>;
  records?: RecordsByPosition;
  /** The index rows of what it leased, per partition, where the lease read them (lease-fast.ts): the read reads none. */
  index?: Map<number, IndexRow[]>;
  /** The segments holding what follows the leased ranges, where the lease read them (lease-fast.ts): read ahead once these are read. */
  next?: NextSegment[];
}

/** Leases planned and written by a receive's transaction; its messages are read after it commits. */
export interface Lease {
  plan: Plan;
  token: number;
  /** Nothing leased while messages wait in partitions other transactions hold (known to the one-statement lease only). */
  blocked?: boolean;
  /**
   * Nothing to lease at all in the statement's snapshot: no partition had messages past the
   * group's frontier and no lease was due again (known to the one-statement lease only).
   */
  idle?: boolean;
  /**
   * It took every message there was to take (or found none), with none due again, delayed or in
   * partitions others held, in the statement's snapshot (known to the one-statement lease only).
   */
  drained?: boolean;
}

/**
 * Within the caller's transaction: leases up to `options.max` messages, and dead-letters the
 * exhausted ones it meets. (The dispatcher calls this under its subscription's lock.)
 */
export async function leaseIn(txIo: ReadIo, group: Group, topic: Topic, options: ReceiveOptions, token = newGrantToken()): Promise<Lease> {
  const tx = txIo.db;
  const plan =
    group.ordering === "key" ? await planByKey(txIo, group, topic, options, token) : await planRanges(tx, group, topic, options, token);
  await writeRows(tx, group.id, plan.changes);
  if (plan.exhausted.length > 0) {
    await advanceCommitted(tx, group.id, [...plan.touched]);
    // Last: the dead-letter topic's rows (created on demand, then its partitions) are locked
    // only once this receive needs no position another receive may hold; the other order
    // deadlocks two receives that both dead-letter.
    await deadLetter(tx, group, topic, plan.exhausted, options.now);
  }
  return { plan, token };
}

/** The messages of a committed lease, each with the row and grant its receipt names. */
export async function leasedMessages(io: ReadIo, topic: Topic, { plan, token }: Lease): Promise<Delivery[]> {
  if (plan.grants.length === 0) return [];
  const records = plan.records ?? (await readGranted(io, topic, plan.grants, plan.index));
  if (plan.next) readAhead(io, plan.next);
  const rowsByPartition = new Map<number, LeaseRow[]>();
  for (const row of plan.changes.insert) {
    if (row.token !== token) continue;
    const list = rowsByPartition.get(row.partition) ?? [];
    list.push(row);
    rowsByPartition.set(row.partition, list);
  }
  return plan.grants.flatMap((g) => {
    const record = records.get(g.partition)?.get(g.offset);
    const row = rowsByPartition.get(g.partition)?.find((r) => r.firstOffset <= g.offset && g.offset <= r.lastOffset);
    // A message removed by retention since it was indexed cannot be delivered; its lease lapses.
    // (A grant's rows always carry their first receive's time: grantState sets it.)
    return record && row ? [{ ...g, record, firstOffset: row.firstOffset, token, firstReceivedAt: row.firstReceivedAt ?? 0 }] : [];
  });
}

/** A grant's state; `firstReceivedAt` is the row's own for a redelivery, now for a first delivery. */
function grantState(attempt: number, options: ReceiveOptions, token: number, firstReceivedAt?: number | null): LeaseState {
  return {
    attempt,
    visibleAt: options.now + options.visibilityMs,
    token,
    receiver: options.receiver,
    lastError: null,
    firstReceivedAt: firstReceivedAt ?? options.now,
  };
}

/**
 * Rows due again first (oldest first), then fresh ranges from the partitions' frontiers. The
 * budget is spent in full while any partition this receive can lock has deliverable messages.
 */
async function planRanges(tx: Queryable, group: Group, topic: Topic, options: ReceiveOptions, token: number): Promise<Plan> {
  const plan: Plan = { changes: { remove: [], insert: [], frontiers: new Map() }, grants: [], exhausted: [], touched: new Set() };
  let budget = options.max;
  // LIMIT max rows serves the budget (each due row holds a live offset) unless exhausted rows,
  // dead-lettered without spending it, took places: then ask again, past the rows already taken.
  const taken: [number, number][] = [];
  for (let full = true; full && budget > 0; ) {
    const due = await lockDueRows(tx, group.id, options.now, options.max, taken);
    full = due.length === options.max && due.some((row) => row.attempt >= group.maxAttempts);
    for (const row of due) {
      taken.push([row.partition, row.firstOffset]);
      const live = liveOffsets(row);
      if (row.attempt >= group.maxAttempts) {
        settleExhausted(plan, row, live);
        continue;
      }
      if (budget <= 0 || live.length === 0) continue;
      const take = live.slice(0, budget);
      budget -= take.length;
      const state = grantState(row.attempt + 1, options, token, row.firstReceivedAt);
      const changes = new Map<number, OffsetChange>(take.map((o) => [o, { state }]));
      plan.changes.remove.push([row.partition, row.firstOffset]);
      plan.changes.insert.push(...reshape(row, changes));
      for (const offset of take) plan.grants.push({ partition: row.partition, offset, attempt: row.attempt + 1 });
    }
  }

  // The partitions the budget needs by their counts (plus a spare); when delayed messages or
  // leases past the frontier made those counts too high, another pass takes more, until the
  // budget is spent or no partition this receive can lock has messages left.
  const start = rotation(topic.partitions);
  const locked: number[] = [];
  for (let pass = 0; budget > 0; pass++) {
    const choice = { budget, exclude: locked, limit: pass === 0 ? options.maxPartitions : undefined };
    const positions = await lockFreshPositions(tx, group.id, topic, options.now, budget, start, choice);
    if (positions.length === 0) break;
    for (const pos of positions) {
      locked.push(pos.partition);
      if (budget > 0) budget = await leaseFresh(tx, group.id, topic, pos, plan, options, token, budget);
    }
  }
  return plan;
}

/**
 * Leases up to `budget` messages of one locked partition from its frontier, and gives the
 * delayed messages it passes rows of their own (due later, attempt 0). Returns what is left of
 * the budget.
 */
async function leaseFresh(
  tx: Queryable,
  groupId: number,
  topic: Topic,
  pos: FreshPosition,
  plan: Plan,
  options: ReceiveOptions,
  token: number,
  budget: number,
): Promise<number> {
  let { delayed, covered, windowEnd } = pos;
  let o = pos.frontier;
  let run: LeaseRow | null = null;
  const flush = () => {
    if (run) plan.changes.insert.push(run);
    run = null;
  };
  for (; o < pos.highWatermark && budget > 0; o++) {
    // Not past the window the delayed runs were read for: beyond it a delayed message would
    // pass for one due now. The next window is read when the walk gets there.
    if (o >= windowEnd) ({ delayed, covered, windowEnd } = await freshWindow(tx, groupId, topic.id, pos.partition, o, budget, options.now));
    // Leased already: key order, before the group switched to "none", leases past its frontier.
    if (covered.some((c) => c.first <= o && o <= c.last)) {
      flush();
      continue;
    }
    const due = delayed.find((d) => d.first <= o && o <= d.last)?.deliverAt;
    const state: LeaseState = due
      ? { attempt: 0, visibleAt: due, token: 0, receiver: null, lastError: null, firstReceivedAt: null }
      : grantState(1, options, token);
    if (!run || (run as LeaseRow).token !== state.token || (run as LeaseRow).visibleAt !== state.visibleAt) {
      flush();
      run = { partition: pos.partition, firstOffset: o, lastOffset: o, settled: [], ...state };
    }
    run.lastOffset = o;
    if (!due) {
      plan.grants.push({ partition: pos.partition, offset: o, attempt: 1 });
      budget--;
    }
  }
  flush();
  // The frontier is the lowest offset no row covers: past rows key order left just after it.
  for (let c = covered.find((c) => c.first === o); c; c = covered.find((c) => c.first === o)) o = c.last + 1;
  plan.changes.frontiers.set(pos.partition, o);
  return budget;
}

/** How far past its frontier (plus its budget) a receive in ranges reads the delayed messages at once. */
export const FRESH_SCAN_WINDOW = 1000;

interface Window {
  delayed: { first: number; last: number; deliverAt: number }[];
  /** Lease rows past the frontier (left by key order). */
  covered: { first: number; last: number }[];
  /** The window's end: what lies at or past it is not known yet. */
  windowEnd: number;
}

interface FreshPosition extends Window {
  partition: number;
  frontier: number;
  highWatermark: number;
}

/** JSON arrays of numbers, as `json_agg` gives them (null when nothing matched). */
type Listed = number[][] | null;

/**
 * The delayed runs (index rows due after `now`) and lease rows from `from` to the window's end.
 * Delayed runs come from segment_index_delayed_idx (a message without a due time is not in it),
 * from the last one starting at or before `from` on: runs do not overlap, so no run starting
 * earlier reaches `from`. Without that bound the scan read every run behind the frontier.
 */
export function windowColumns(groupId: number, topicId: number, partition: SQL, from: SQL, end: SQL, now: number): SQL {
  return sql`
    (SELECT json_agg(json_build_array(i.base_offset, i.last_offset, i.deliver_at) ORDER BY i.base_offset)
     FROM segment_index i
     WHERE i.topic_id = ${topicId} AND i.partition = ${partition} AND i.deliver_at > ${now}
       AND i.last_offset >= ${from} AND i.base_offset < ${end}
       AND i.base_offset >= COALESCE((
         SELECT d.base_offset FROM segment_index d
         WHERE d.topic_id = ${topicId} AND d.partition = ${partition} AND d.deliver_at IS NOT NULL AND d.base_offset <= ${from}
         ORDER BY d.base_offset DESC LIMIT 1), ${from})) AS delayed,
    (SELECT json_agg(json_build_array(l.first_offset, l.last_offset) ORDER BY l.first_offset)
     FROM group_leases l
     WHERE l.group_id = ${groupId} AND l.partition = ${partition} AND l.first_offset >= ${from} AND l.first_offset < ${end}) AS covered`;
}

function toWindow(r: { delayed: Listed; covered: Listed }, windowEnd: number): Window {
  return {
    delayed: (r.delayed ?? []).map(([first, last, deliverAt]) => ({ first, last, deliverAt })),
    covered: (r.covered ?? []).map(([first, last]) => ({ first, last })),
    windowEnd,
  };
}

/** The next window of a partition this receive holds, from `from`. */
async function freshWindow(
  tx: Queryable,
  groupId: number,
  topicId: number,
  partition: number,
  from: number,
  budget: number,
  now: number,
): Promise<Window> {
  const end = from + budget + FRESH_SCAN_WINDOW;
  const [r] = await rows<{ delayed: Listed; covered: Listed }>(
    tx,
    sql`SELECT ${windowColumns(groupId, topicId, sql`${partition}`, sql`${from}`, sql`${end}`, now)}`,
  );
  return toWindow(r, end);
}

/**
 * Positions with undelivered messages, locked (those another receiver holds are skipped), each
 * with its first window: the delayed runs and the lease rows just past its frontier.
 */
async function lockFreshPositions(
  tx: Queryable,
  groupId: number,
  topic: Topic,
  now: number,
  budget: number,
  start: number,
  choice: PartitionChoice,
): Promise<FreshPosition[]> {
  const topicId = topic.id;
  const end = sql`gp.frontier + ${budget + FRESH_SCAN_WINDOW}`;
  type Found = {
    partition: number;
    frontier: number;
    next_offset: number;
    delayed: Listed;
    covered: Listed;
    version: string;
    seen: string | null;
  };
  // `version` is the row locked, `seen` the one of the statement's snapshot. They differ when a
  // transaction (a seek, say) changed the position after the snapshot and committed before the
  // lock: the lock then gives its new row, but the window's subqueries read the old snapshot
  // (leases the seek dropped would pass for covered, and their messages be skipped for good).
  const found = await rows<Found>(
    tx,
    sql`SELECT gp.partition, gp.frontier, p.next_offset, ${windowColumns(groupId, topicId, sql`gp.partition`, sql`gp.frontier`, end, now)},
          gp.xmin::text AS version,
          (SELECT g.xmin::text FROM group_partitions g WHERE g.group_id = gp.group_id AND g.partition = gp.partition) AS seen
        FROM group_partitions gp
        JOIN partitions p ON p.topic_id = ${topicId} AND p.partition = gp.partition
        WHERE ${choosePartitions(groupId, topicId, topic.partitions, "frontier", choice, start)}
        ORDER BY ${partitionOrder(topicId, topic.partitions, "frontier", start)}
        ${choice.limit === undefined ? sql`` : sql`LIMIT ${choice.limit}`}
        FOR UPDATE OF gp SKIP LOCKED`,
  );
  const positions: FreshPosition[] = [];
  for (const r of found) {
    const frontier = r.frontier;
    // Changed since the snapshot: the window again, in a statement of its own (it sees every commit before the lock).
    const window =
      r.version === r.seen
        ? toWindow(r, frontier + budget + FRESH_SCAN_WINDOW)
        : await freshWindow(tx, groupId, topicId, r.partition, frontier, budget, now);
    positions.push({ partition: r.partition, frontier, highWatermark: r.next_offset, ...window });
  }
  return positions;
}

function settleExhausted(plan: Plan, row: LeaseRow, offsets: number[]) {
  if (offsets.length === 0) return;
  for (const offset of offsets) {
    plan.exhausted.push({ partition: row.partition, offset, attempts: row.attempt, lastError: row.lastError });
  }
  plan.changes.remove.push([row.partition, row.firstOffset]);
  plan.changes.insert.push(...deadLettered(row, offsets));
  plan.touched.add(row.partition);
}

/**
 * The rows replacing `row` once `offsets` are dead-lettered: settled under a grant of their own.
 * Under their last grant, an ack that waited on this receive (its clock a little behind) would
 * find them settled and pass for a repeated ack; it must be receipt_expired.
 */
function deadLettered(row: LeaseRow, offsets: number[]): LeaseRow[] {
  const dead: LeaseState = {
    attempt: row.attempt,
    visibleAt: row.visibleAt,
    token: newGrantToken(),
    receiver: null,
    lastError: row.lastError,
    firstReceivedAt: row.firstReceivedAt,
  };
  return reshape(row, new Map(offsets.map((o) => [o, { state: dead } as OffsetChange]))).flatMap((r) =>
    r.token === dead.token ? reshape(r, new Map(liveOffsets(r).map((o) => [o, { settle: true } as OffsetChange]))) : [r],
  );
}

/**
 * Key order: per locked partition, walk from the committed offset. A key is blocked by its
 * first unsettled message: one in flight, or a delayed one not yet due (it holds back the later
 * messages of its key until it is delivered and settled); a due message past its last attempt
 * is dead-lettered and so stops blocking. Keyless messages are not ordered.
 */
async function planByKey(io: ReadIo, group: Group, topic: Topic, options: ReceiveOptions, token: number): Promise<Plan> {
  const plan: Plan = {
    changes: { remove: [], insert: [], frontiers: new Map() },
    grants: [],
    exhausted: [],
    touched: new Set(),
    records: new Map(),
  };
  let budget = options.max;
  // As in planRanges: the partitions the budget needs by their counts, and more, pass by pass,
  // while it falls short. Every partition is considered before a receive answers under-full.
  const start = rotation(topic.partitions);
  const locked: number[] = [];
  for (let pass = 0; budget > 0; pass++) {
    const choice = { budget, exclude: locked, limit: pass === 0 ? options.maxPartitions : undefined };
    const positions = await lockPositions(io.db, group.id, topic.id, { from: "committed", partitions: topic.partitions, start, ...choice });
    if (positions.length === 0) break;
    for (const pos of positions) {
      locked.push(pos.partition);
      if (budget > 0) budget = await leaseByKey(io, group, topic, pos, plan, options, token, budget);
    }
  }
  return plan;
}

/** The walk of one locked partition in key order; returns what is left of the budget. */
async function leaseByKey(
  io: ReadIo,
  group: Group,
  topic: Topic,
  pos: Position,
  plan: Plan,
  options: ReceiveOptions,
  token: number,
  budget: number,
): Promise<number> {
  // The due rows this walk may change, locked; a row a settle holds (and may be cutting) is
  // skipped and counts as in flight. Waiting for it while holding the position could deadlock
  // with an ack, which holds its rows and then waits for the position.
  const mine = new Set((await lockDuePartitionRows(io.db, group.id, pos.partition, options.now)).map((r) => r.firstOffset));
  const existing = await partitionRows(io.db, group.id, pos.partition);
  const held = (row: LeaseRow) => row.visibleAt > options.now || !mine.has(row.firstOffset);
  // Read at least past every held lease (so each key in flight is known before the walk
  // starts), then on in windows while the budget lasts, up to KEY_SCAN_LIMIT past committed.
  const limit = Math.min(pos.highWatermark, pos.committed + KEY_SCAN_LIMIT);
  const heldEnd = existing.filter((r) => r.attempt > 0 && held(r)).reduce((end, r) => Math.max(end, r.lastOffset + 1), 0);
  let readTo = Math.min(limit, Math.max(pos.committed + KEY_SCAN_WINDOW, heldEnd));
  const messages = await readFrom(io, topic.id, pos.partition, pos.committed, readTo - pos.committed);
  const rowOf = (o: number) => existing.find((r) => r.firstOffset <= o && o <= r.lastOffset);
  // A key with a message in flight is blocked before that message too: a delayed message of
  // the key, skipped when that one was delivered, may have come due since.
  const blocked = new Set<string>();
  for (const m of messages) {
    const row = rowOf(m.offset);
    if (m.record.key !== undefined && row && row.attempt > 0 && held(row) && !row.settled.includes(m.offset - row.firstOffset)) {
      blocked.add(m.record.key);
    }
  }
  const changesByRow = new Map<LeaseRow, Map<number, OffsetChange>>();
  // Rows to dead-letter offsets of (all live offsets of a row share its attempt, so a row is
  // either here or in changesByRow).
  const deadByRow = new Map<LeaseRow, number[]>();
  const fresh: number[] = [];
  const grantStateNew = grantState(1, options, token);
  for (let i = 0; budget > 0; i++) {
    if (i >= messages.length) {
      if (readTo >= limit) break;
      const next = Math.min(limit, readTo + KEY_SCAN_WINDOW);
      messages.push(...(await readFrom(io, topic.id, pos.partition, readTo, next - readTo)));
      readTo = next;
      if (i >= messages.length) break;
    }
    const m = messages[i];
    const key = m.record.key;
    const row = rowOf(m.offset);
    const settled = row ? row.settled.includes(m.offset - row.firstOffset) : false;
    if (settled) continue;
    // Delayed, not yet due (a row of attempt 0 is one ordering "none" gave it before a switch):
    // the later messages of its key wait for it.
    const waiting = row ? row.attempt === 0 && row.visibleAt > options.now : m.deliverAt !== undefined && m.deliverAt > options.now;
    if (waiting) {
      if (key !== undefined) blocked.add(key);
      continue;
    }
    if (key !== undefined && blocked.has(key)) continue;
    if (row && held(row)) {
      if (key !== undefined) blocked.add(key);
      continue;
    }
    if (row && row.attempt >= group.maxAttempts) {
      deadByRow.set(row, [...(deadByRow.get(row) ?? []), m.offset]);
      plan.exhausted.push({ partition: pos.partition, offset: m.offset, attempts: row.attempt, lastError: row.lastError });
      plan.touched.add(pos.partition);
      continue;
    }
    if (key !== undefined) blocked.add(key);
    const attempt = row ? row.attempt + 1 : 1;
    if (row) {
      const change = changesByRow.get(row) ?? new Map<number, OffsetChange>();
      change.set(m.offset, { state: grantState(attempt, options, token, row.firstReceivedAt) });
      changesByRow.set(row, change);
    } else {
      fresh.push(m.offset);
    }
    plan.grants.push({ partition: pos.partition, offset: m.offset, attempt });
    recordAt(plan.records!, pos.partition).set(m.offset, m.record);
    budget--;
  }
  for (const [row, change] of changesByRow) {
    plan.changes.remove.push([row.partition, row.firstOffset]);
    plan.changes.insert.push(...reshape(row, change));
  }
  for (const [row, offsets] of deadByRow) {
    plan.changes.remove.push([row.partition, row.firstOffset]);
    plan.changes.insert.push(...deadLettered(row, offsets));
  }
  for (const run of runs(fresh)) {
    plan.changes.insert.push({ partition: pos.partition, firstOffset: run[0], lastOffset: run[1], settled: [], ...grantStateNew });
  }
  const covered = [...existing, ...plan.changes.insert.filter((r) => r.partition === pos.partition)];
  plan.changes.frontiers.set(pos.partition, lowestUncovered(covered, pos.committed));
  return budget;
}

function runs(sorted: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const o of sorted) {
    const last = out.at(-1);
    if (last && last[1] === o - 1) last[1] = o;
    else out.push([o, o]);
  }
  return out;
}

function lowestUncovered(covered: LeaseRow[], from: number): number {
  const sorted = [...covered].sort((a, b) => a.firstOffset - b.firstOffset);
  let o = from;
  for (const r of sorted) {
    if (r.lastOffset < o) continue;
    if (r.firstOffset > o) break;
    o = r.lastOffset + 1;
  }
  return o;
}

/** Records by partition, then offset (numbers: no key string built per message). */
type RecordsByPosition = Map<number, Map<number, SegmentRecord>>;

function recordAt(records: RecordsByPosition, partition: number): Map<number, SegmentRecord> {
  let inPartition = records.get(partition);
  if (!inPartition) {
    inPartition = new Map();
    records.set(partition, inPartition);
  }
  return inPartition;
}

/** Messages of the granted offsets, read per partition over the span they cover. */
async function readGranted(io: ReadIo, topic: Topic, grants: Grant[], index?: Map<number, IndexRow[]>): Promise<RecordsByPosition> {
  const spans = new Map<number, [number, number]>();
  for (const g of grants) {
    const span = spans.get(g.partition);
    spans.set(g.partition, span ? [Math.min(span[0], g.offset), Math.max(span[1], g.offset)] : [g.offset, g.offset]);
  }
  const out: RecordsByPosition = new Map();
  await Promise.all(
    [...spans].map(async ([partition, [from, to]]) => {
      const inPartition = recordAt(out, partition);
      for (const m of await readFrom(io, topic.id, partition, from, to - from + 1, index?.get(partition)))
        inPartition.set(m.offset, m.record);
    }),
  );
  return out;
}

/** Offsets `from`..`to` of one partition leased under one grant in one row: what a lease receipt names. */
export interface LeaseRun {
  partition: number;
  /** The lease row's first offset, as a receipt names it. */
  rowFirstOffset: number;
  token: number;
  from: number;
  to: number;
}

/** The deliveries of one receive as runs of consecutive offsets, each within one lease row (so on one attempt). */
export function leaseRuns(deliveries: Delivery[]): AttemptRun[] {
  const sorted = [...deliveries].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  const out: AttemptRun[] = [];
  for (const d of sorted) {
    const last = out.at(-1);
    const continues = last && last.partition === d.partition && last.rowFirstOffset === d.firstOffset && last.to === d.offset - 1;
    if (continues) last.to = d.offset;
    else
      out.push({ partition: d.partition, rowFirstOffset: d.firstOffset, token: d.token, from: d.offset, to: d.offset, attempt: d.attempt });
  }
  return out;
}

/** A run of a receive's leases, with the attempt its messages are on. */
export interface AttemptRun extends LeaseRun {
  attempt: number;
}

/** A receive's leases and the stored chunks holding their messages: an answer in batches. */
export interface LeasedChunks {
  runs: AttemptRun[];
  chunks: StoredChunk[];
}

/**
 * The runs of a committed lease and the chunks of stored bytes they lie in, not decoded: the
 * messages are the chunks' records at the runs' offsets (a message removed by retention since
 * it was indexed is in no chunk, and its lease lapses).
 */
export async function leasedChunks(io: ReadIo, topic: Topic, { plan, token }: Lease): Promise<LeasedChunks> {
  const rows = plan.changes.insert.filter((r) => r.token === token);
  const grants = [...plan.grants].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  const runs: AttemptRun[] = [];
  for (const g of grants) {
    const last = runs.at(-1);
    if (
      last &&
      last.partition === g.partition &&
      last.to === g.offset - 1 &&
      last.attempt === g.attempt &&
      g.offset <= rowEnd(rows, last)
    ) {
      last.to = g.offset;
      continue;
    }
    const row = rows.find((r) => r.partition === g.partition && r.firstOffset <= g.offset && g.offset <= r.lastOffset);
    if (row)
      runs.push({ partition: g.partition, rowFirstOffset: row.firstOffset, token, from: g.offset, to: g.offset, attempt: g.attempt });
  }
  const spans = new Map<number, [number, number]>();
  for (const run of runs) {
    const span = spans.get(run.partition);
    spans.set(run.partition, span ? [span[0], run.to] : [run.from, run.to]);
  }
  const chunks = await Promise.all(
    [...spans].map(([partition, [from, to]]) => readChunks(io, topic.id, partition, from, to - from + 1, plan.index?.get(partition))),
  );
  if (plan.next) readAhead(io, plan.next);
  return { runs, chunks: chunks.flat() };
}

function rowEnd(rows: LeaseRow[], run: LeaseRun): number {
  return rows.find((r) => r.partition === run.partition && r.firstOffset === run.rowFirstOffset)?.lastOffset ?? run.to;
}
