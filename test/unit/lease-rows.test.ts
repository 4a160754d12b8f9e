import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isSettled, liveOffsets, reshape, type LeaseRow, type LeaseState, type OffsetChange } from "../../storage/groups/lease-rows.ts";

const state = (token: number, visibleAt = 1000, attempt = 1): LeaseState => ({
  attempt,
  visibleAt,
  token,
  receiver: "r",
  lastError: null,
  firstReceivedAt: null,
});
const row = (first: number, last: number, settled: number[] = [], s = state(1)): LeaseRow => ({
  partition: 0,
  firstOffset: first,
  lastOffset: last,
  settled,
  ...s,
});

describe("reshape", () => {
  it("keeps a row whole when every live offset keeps one state", () => {
    const r = row(10, 14);
    expect(reshape(r, new Map([[12, { settle: true }]]))).toEqual([{ ...r, settled: [2] }]);
  });

  it("cuts out a nacked offset with its own state", () => {
    const nacked = state(9, 5000);
    const rows = reshape(row(10, 14), new Map<number, OffsetChange>([[12, { state: nacked }]]));
    expect(rows.map((r) => [r.firstOffset, r.lastOffset, r.token])).toEqual([
      [10, 11, 1],
      [12, 12, 9],
      [13, 14, 1],
    ]);
  });

  it("property: covers the same offsets, settles what it should, and gives each offset its state", () => {
    const changeArb = fc.oneof(
      fc.constant<OffsetChange>({ settle: true }),
      fc.integer({ min: 1, max: 3 }).map<OffsetChange>((t) => ({ state: state(t, t * 100) })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.tuple(fc.nat(11), changeArb)),
        fc.array(fc.nat(11)),
        (first, n, changeList, settledList) => {
          const original = row(first, first + n - 1, [...new Set(settledList.filter((i) => i < n))]);
          const changes = new Map(changeList.filter(([i]) => i < n).map(([i, c]) => [first + i, c]));
          const rows = reshape(original, changes);
          const covered = rows.flatMap((r) => Array.from({ length: r.lastOffset - r.firstOffset + 1 }, (_, i) => r.firstOffset + i));
          expect(covered).toEqual(Array.from({ length: n }, (_, i) => first + i));
          for (let o = first; o < first + n; o++) {
            const holder = rows.find((r) => r.firstOffset <= o && o <= r.lastOffset)!;
            const change = changes.get(o);
            const shouldSettle = isSettled(original, o) || (change !== undefined && "settle" in change);
            expect(isSettled(holder, o)).toBe(shouldSettle);
            if (!shouldSettle) expect(holder.token).toBe(change && "state" in change ? change.state.token : 1);
          }
          for (const r of rows) expect(liveOffsets(r).length + r.settled.length).toBe(r.lastOffset - r.firstOffset + 1);
        },
      ),
    );
  });
});
