/**
 * Lease rows as plain data, and the one piece of surgery every state change is made of: give
 * some offsets of a row a new state, then cut the row into the fewest rows in which all live
 * (unsettled) offsets share one state. Pure, so the model test can check it directly.
 */
export interface LeaseState {
  attempt: number;
  visibleAt: number;
  token: number;
  receiver: string | null;
  lastError: string | null;
  /** When the row's messages were first received (ms; SQS's ApproximateFirstReceiveTimestamp); null before. */
  firstReceivedAt: number | null;
}

export interface LeaseRow extends LeaseState {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  /** Settled positions, relative to firstOffset. */
  settled: number[];
}

/** What happens to one offset: settle it, or give it a new state. */
export type OffsetChange = { settle: true } | { state: LeaseState };

export function size(row: LeaseRow): number {
  return row.lastOffset - row.firstOffset + 1;
}

export function isSettled(row: LeaseRow, offset: number): boolean {
  return row.settled.includes(offset - row.firstOffset);
}

export function liveOffsets(row: LeaseRow): number[] {
  const settled = new Set(row.settled);
  const live: number[] = [];
  for (let i = 0; i < size(row); i++) if (!settled.has(i)) live.push(row.firstOffset + i);
  return live;
}

export function isDone(row: LeaseRow): boolean {
  return new Set(row.settled).size >= size(row);
}

const sameState = (a: LeaseState, b: LeaseState) =>
  a.attempt === b.attempt &&
  a.visibleAt === b.visibleAt &&
  a.token === b.token &&
  a.receiver === b.receiver &&
  a.lastError === b.lastError &&
  a.firstReceivedAt === b.firstReceivedAt;

/**
 * Applies `changes` (offset → change) to `row` and returns the rows that replace it, covering
 * exactly the same offsets. Settled offsets join whichever row they fall in.
 */
export function reshape(row: LeaseRow, changes: Map<number, OffsetChange>): LeaseRow[] {
  const settled = new Set(row.settled);
  const base: LeaseState = {
    attempt: row.attempt,
    visibleAt: row.visibleAt,
    token: row.token,
    receiver: row.receiver,
    lastError: row.lastError,
    firstReceivedAt: row.firstReceivedAt,
  };
  const out: LeaseRow[] = [];
  let current: { first: number; last: number; settled: number[]; state: LeaseState | null } | null = null;
  const close = () => {
    if (!current) return;
    const state = current.state ?? base;
    out.push({ partition: row.partition, firstOffset: current.first, lastOffset: current.last, settled: current.settled, ...state });
    current = null;
  };
  for (let o = row.firstOffset; o <= row.lastOffset; o++) {
    const change = changes.get(o);
    const wasSettled = settled.has(o - row.firstOffset);
    const nowSettled = wasSettled || (change !== undefined && "settle" in change);
    const state = nowSettled ? null : change && "state" in change ? change.state : base;
    if (current && state && current.state && !sameState(current.state, state)) close();
    if (!current) current = { first: o, last: o, settled: [], state: null };
    current.last = o;
    if (nowSettled) current.settled.push(o - current.first);
    else current.state ??= state;
  }
  close();
  return out;
}
