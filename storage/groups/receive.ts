/**
 * Receive: lease the next messages of a group. Ordering "none" leases whole ranges from each
 * partition's frontier plus rows that are due again; ordering "key" scans each partition from
 * its committed offset so that no key has two messages in flight and each key goes in offset
 * order. Messages nobody has received cost no rows. Exhausted messages are dead-lettered here.
 */
import { sql } from "drizzle-orm";
import type { Database, Queryable } from "../metadata/db.ts";
import { rows } from "../metadata/db.ts";
import type { Topic } from "../metadata/topics.ts";
import { readFrom, type ReadIo } from "../log/reader.ts";
import type { SegmentRecord } from "../segment/codec.ts";
import type { Group } from "./groups.ts";
import { deadLetter, type Exhausted } from "./dead-letter.ts";
import { liveOffsets, reshape, type LeaseRow, type LeaseState, type OffsetChange } from "./lease-rows.ts";
import { advanceCommitted, lockDueRows, lockPositions, partitionRows, writeRows, type RowChanges } from "./lease-store.ts";
import { newGrantToken } from "./receipts.ts";

export interface ReceiveOptions {
  max: number;
  visibilityMs: number;
  receiver: string;
  now: number;
}

export interface Delivery {
  partition: number;
  offset: number;
  attempt: number;
  record: SegmentRecord;
  /** Lease row and grant the receipt names. */
  firstOffset: number;
  token: number;
}

/** How far past its committed offset a key-ordered receive looks for deliverable messages. */
export const KEY_SCAN_WINDOW = 1000;

interface Grant {
  partition: number;
  offset: number;
  attempt: number;
}

interface Plan {
  changes: RowChanges;
  grants: Grant[];
  exhausted: Exhausted[];
  touched: Set<number>;
  records?: Map<string, SegmentRecord>;
}

export async function receive(io: ReadIo & { db: Database }, group: Group, topic: Topic, options: ReceiveOptions): Promise<Delivery[]> {
  const token = newGrantToken();
  const plan = await io.db.transaction(async (tx) => {
    const txIo = { ...io, db: tx };
    const plan = group.ordering === "key" ? await planByKey(txIo, group, topic, options, token) : await planRanges(tx, group, topic, options, token);
    if (plan.exhausted.length > 0) await deadLetter(tx, group, topic, plan.exhausted, options.now);
    await writeRows(tx, group.id, plan.changes);
    if (plan.exhausted.length > 0) await advanceCommitted(tx, group.id, [...plan.touched]);
    return plan;
  });
  if (plan.grants.length === 0) return [];
  const records = plan.records ?? (await readGranted(io, topic, plan.grants));
  const rowsByPartition = new Map<number, LeaseRow[]>();
  for (const row of plan.changes.insert) {
    if (row.token !== token) continue;
    const list = rowsByPartition.get(row.partition) ?? [];
    list.push(row);
    rowsByPartition.set(row.partition, list);
  }
  return plan.grants.flatMap((g) => {
    const record = records.get(`${g.partition}:${g.offset}`);
    const row = rowsByPartition.get(g.partition)?.find((r) => r.firstOffset <= g.offset && g.offset <= r.lastOffset);
    // A message removed by retention since it was indexed cannot be delivered; its lease lapses.
    return record && row ? [{ ...g, record, firstOffset: row.firstOffset, token }] : [];
  });
}

function grantState(attempt: number, options: ReceiveOptions, token: number): LeaseState {
  return { attempt, visibleAt: options.now + options.visibilityMs, token, receiver: options.receiver, lastError: null };
}

/** Rows due again first (oldest first), then fresh ranges from the partitions' frontiers. */
async function planRanges(tx: Queryable, group: Group, topic: Topic, options: ReceiveOptions, token: number): Promise<Plan> {
  const plan: Plan = { changes: { remove: [], insert: [], frontiers: new Map() }, grants: [], exhausted: [], touched: new Set() };
  let budget = options.max;
  for (const row of await lockDueRows(tx, group.id, options.now, options.max)) {
    const live = liveOffsets(row);
    if (row.attempt >= group.maxAttempts) {
      settleExhausted(plan, row, live);
      continue;
    }
    if (budget <= 0 || live.length === 0) continue;
    const take = live.slice(0, budget);
    budget -= take.length;
    const state = grantState(row.attempt + 1, options, token);
    const changes = new Map<number, OffsetChange>(take.map((o) => [o, { state }]));
    plan.changes.remove.push([row.partition, row.firstOffset]);
    plan.changes.insert.push(...reshape(row, changes));
    for (const offset of take) plan.grants.push({ partition: row.partition, offset, attempt: row.attempt + 1 });
  }
  if (budget <= 0) return plan;

  const positions = await lockFreshPositions(tx, group.id, topic.id, options.now, budget);
  for (const pos of positions) {
    if (budget <= 0) break;
    const end = Math.min(pos.highWatermark, pos.frontier + budget + pos.delayedCount);
    let o = pos.frontier;
    let run: LeaseRow | null = null;
    const flush = () => {
      if (run) plan.changes.insert.push(run);
      run = null;
    };
    for (; o < end && budget > 0; o++) {
      const due = pos.delayed.find((d) => d.first <= o && o <= d.last)?.deliverAt;
      const state: LeaseState = due
        ? { attempt: 0, visibleAt: due, token: 0, receiver: null, lastError: null }
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
    plan.changes.frontiers.set(pos.partition, o);
  }
  return plan;
}

interface FreshPosition {
  partition: number;
  frontier: number;
  highWatermark: number;
  delayed: { first: number; last: number; deliverAt: number }[];
  delayedCount: number;
}

/** Positions with undelivered messages, locked, with the delayed runs just past their frontier. */
async function lockFreshPositions(tx: Queryable, groupId: number, topicId: number, now: number, budget: number): Promise<FreshPosition[]> {
  const found = await rows<{ partition: number; frontier: string | number; next_offset: string | number; delayed: string[] | string | null }>(
    tx,
    sql`SELECT gp.partition, gp.frontier, p.next_offset, d.delayed FROM group_partitions gp
        JOIN partitions p ON p.topic_id = ${topicId} AND p.partition = gp.partition
        LEFT JOIN LATERAL (
          SELECT array_agg(i.base_offset || ':' || i.last_offset || ':' || i.deliver_at ORDER BY i.base_offset) AS delayed
          FROM segment_index i
          WHERE i.topic_id = ${topicId} AND i.partition = gp.partition AND i.deliver_at > ${now}
            AND i.last_offset >= gp.frontier AND i.base_offset < gp.frontier + ${budget} + 1000) d ON true
        WHERE gp.group_id = ${groupId} AND gp.frontier < p.next_offset
        ORDER BY (gp.partition + ${Math.floor(Math.random() * 1024)}) % 1024
        LIMIT 64
        FOR UPDATE OF gp SKIP LOCKED`,
  );
  return found.map((r) => {
    const list = r.delayed === null ? [] : typeof r.delayed === "string" ? r.delayed.replace(/^\{|\}$/g, "").split(",").filter(Boolean) : r.delayed;
    const delayed = list.map((d) => {
      const [first, last, deliverAt] = d.replaceAll('"', "").split(":").map(Number);
      return { first, last, deliverAt };
    });
    const frontier = Number(r.frontier);
    const delayedCount = delayed.reduce((n, d) => n + Math.min(d.last, frontier + budget + 1000) - Math.max(d.first, frontier) + 1, 0);
    return { partition: r.partition, frontier, highWatermark: Number(r.next_offset), delayed, delayedCount };
  });
}

function settleExhausted(plan: Plan, row: LeaseRow, offsets: number[]) {
  if (offsets.length === 0) return;
  for (const offset of offsets) {
    plan.exhausted.push({ partition: row.partition, offset, attempts: row.attempt, lastError: row.lastError });
  }
  plan.changes.remove.push([row.partition, row.firstOffset]);
  plan.changes.insert.push(...reshape(row, new Map(offsets.map((o) => [o, { settle: true } as OffsetChange]))));
  plan.touched.add(row.partition);
}

/**
 * Key order: per locked partition, walk from the committed offset. A key is blocked by its
 * first unsettled message; a due message past its last attempt is dead-lettered and so stops
 * blocking. Keyless messages are not ordered. Delayed messages not yet due block nothing.
 */
async function planByKey(io: ReadIo, group: Group, topic: Topic, options: ReceiveOptions, token: number): Promise<Plan> {
  const plan: Plan = { changes: { remove: [], insert: [], frontiers: new Map() }, grants: [], exhausted: [], touched: new Set(), records: new Map() };
  let budget = options.max;
  const positions = await lockPositions(io.db, group.id, topic.id, { from: "committed", rotation: Math.floor(Math.random() * 1024), limit: 4 });
  for (const pos of positions) {
    if (budget <= 0) break;
    const existing = await partitionRows(io.db, group.id, pos.partition);
    const end = Math.min(pos.highWatermark, pos.committed + KEY_SCAN_WINDOW);
    const messages = await readFrom(io, topic.id, pos.partition, pos.committed, end - pos.committed);
    const rowOf = (o: number) => existing.find((r) => r.firstOffset <= o && o <= r.lastOffset);
    // A key with a message in flight is blocked before that message too: a delayed message of
    // the key, skipped when that one was delivered, may have come due since.
    const blocked = new Set<string>();
    for (const m of messages) {
      const row = rowOf(m.offset);
      if (m.record.key !== undefined && row && row.visibleAt > options.now && !row.settled.includes(m.offset - row.firstOffset)) {
        blocked.add(m.record.key);
      }
    }
    const changesByRow = new Map<LeaseRow, Map<number, OffsetChange>>();
    const fresh: number[] = [];
    const grantStateNew = grantState(1, options, token);
    for (const m of messages) {
      if (budget <= 0) break;
      const key = m.record.key;
      const row = rowOf(m.offset);
      const settled = row ? row.settled.includes(m.offset - row.firstOffset) : false;
      if (settled) continue;
      if (!row && m.deliverAt !== undefined && m.deliverAt > options.now) continue;
      if (key !== undefined && blocked.has(key)) continue;
      if (row && row.visibleAt > options.now) {
        if (key !== undefined) blocked.add(key);
        continue;
      }
      if (row && row.attempt >= group.maxAttempts) {
        const change = changesByRow.get(row) ?? new Map<number, OffsetChange>();
        change.set(m.offset, { settle: true });
        changesByRow.set(row, change);
        plan.exhausted.push({ partition: pos.partition, offset: m.offset, attempts: row.attempt, lastError: row.lastError });
        plan.touched.add(pos.partition);
        continue;
      }
      if (key !== undefined) blocked.add(key);
      const attempt = row ? row.attempt + 1 : 1;
      if (row) {
        const change = changesByRow.get(row) ?? new Map<number, OffsetChange>();
        change.set(m.offset, { state: grantState(attempt, options, token) });
        changesByRow.set(row, change);
      } else {
        fresh.push(m.offset);
      }
      plan.grants.push({ partition: pos.partition, offset: m.offset, attempt });
      plan.records!.set(`${pos.partition}:${m.offset}`, m.record);
      budget--;
    }
    for (const [row, change] of changesByRow) {
      plan.changes.remove.push([row.partition, row.firstOffset]);
      plan.changes.insert.push(...reshape(row, change));
    }
    for (const run of runs(fresh)) {
      plan.changes.insert.push({ partition: pos.partition, firstOffset: run[0], lastOffset: run[1], settled: [], ...grantStateNew });
    }
    const covered = [...existing, ...plan.changes.insert.filter((r) => r.partition === pos.partition)];
    plan.changes.frontiers.set(pos.partition, lowestUncovered(covered, pos.committed));
  }
  return plan;
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

/** Messages of the granted offsets, read per partition over the span they cover. */
async function readGranted(io: ReadIo, topic: Topic, grants: Grant[]): Promise<Map<string, SegmentRecord>> {
  const spans = new Map<number, [number, number]>();
  for (const g of grants) {
    const span = spans.get(g.partition);
    spans.set(g.partition, span ? [Math.min(span[0], g.offset), Math.max(span[1], g.offset)] : [g.offset, g.offset]);
  }
  const out = new Map<string, SegmentRecord>();
  await Promise.all(
    [...spans].map(async ([partition, [from, to]]) => {
      for (const m of await readFrom(io, topic.id, partition, from, to - from + 1)) out.set(`${partition}:${m.offset}`, m.record);
    }),
  );
  return out;
}
