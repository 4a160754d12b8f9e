// The checker names each anomaly it hunts, and none in a clean history: small hand-made histories,
// one per anomaly (a checker that cannot fail proves nothing about the campaign's runs).
import { describe, expect, it } from "vitest";
import { check, type AnomalyKind } from "./checker.ts";
import type { HistoryEvent, LogEntry } from "./history.ts";

const header: HistoryEvent = {
  type: "run",
  seed: 1,
  mode: "test",
  startedAt: "2026-12-03T00:00:00.000Z",
  config: { groups: [{ topic: "log", group: "g", ordering: "key" }], subscriptions: [{ topic: "log", sub: "s", ordering: "key" }] },
};
const m = (offset: number, id: string, key = "k"): LogEntry => ({ partition: 0, offset, id, key });
const produce = (ids: string[], offsets: number[] | null, t = 0): HistoryEvent => ({
  type: "produce",
  t,
  client: 0,
  server: 0,
  attempt: 0,
  topic: "log",
  ids,
  keys: ids.map(() => "k"),
  status: offsets ? 200 : "error",
  ...(offsets ? { offsets: offsets.map((offset) => ({ partition: 0, offset })) } : {}),
});
const final = (topic: string, messages: LogEntry[], highWatermark = messages.length): HistoryEvent => ({
  type: "final",
  topic,
  partition: 0,
  earliest: 0,
  highWatermark,
  messages,
});
const receive = (messages: LogEntry[], t = 0): HistoryEvent => ({
  type: "receive",
  t,
  topic: "log",
  group: "g",
  consumer: 0,
  status: 200,
  messages: messages.map((x) => ({ ...x, receipt: `r-${x.id}`, attempt: 1 })),
});
const hook = (x: LogEntry, status: number, arrivedAt: number): HistoryEvent => ({
  type: "webhook",
  sub: "s",
  webhookId: `w-${x.id}`,
  id: x.id,
  key: x.key,
  partition: x.partition,
  offset: x.offset,
  attempt: 1,
  status,
  arrivedAt,
  respondedAt: arrivedAt + 1,
});

/** A clean history: a, b acknowledged and stored, received in order, delivered in order. */
function clean(): HistoryEvent[] {
  const a = m(0, "a");
  const b = m(1, "b");
  return [header, produce(["a", "b"], [0, 1]), receive([a]), receive([b]), final("log", [a, b]), hook(a, 200, 10), hook(b, 200, 20)];
}
const kinds = (events: HistoryEvent[]): AnomalyKind[] => [...new Set(check(events).anomalies.map((a) => a.kind))];

describe("the reliability checker", () => {
  it("finds nothing in a clean history", () => {
    expect(check(clean()).anomalies).toEqual([]);
  });

  it("a message acknowledged and then missing is lost", () => {
    const events = clean().map((e) => (e.type === "final" ? final("log", [m(0, "a")], 1) : e));
    expect(kinds(events)).toContain("lost");
  });

  it("one idempotency key at two offsets, or acknowledged at two offsets, is a duplicate", () => {
    const a = m(0, "a");
    expect(kinds([header, produce(["a"], [0]), final("log", [a, m(1, "a")])])).toContain("duplicate");
    expect(kinds([header, produce(["a"], [0]), produce(["a"], [1]), final("log", [a, m(1, "x")])])).toContain("duplicate");
  });

  it("a stored message nobody sent is a phantom", () => {
    expect(kinds([header, final("log", [m(0, "ghost")])])).toContain("phantom");
  });

  it("a key's messages stored in another order than sent is an order violation", () => {
    const events: HistoryEvent[] = [header, produce(["a"], null, 1), produce(["b"], [0], 2), final("log", [m(0, "b"), m(1, "a")])];
    expect(kinds(events)).toContain("order");
  });

  it("a gap below the high watermark is not dense", () => {
    expect(kinds([header, produce(["a", "b"], [0, 2]), final("log", [m(0, "a"), m(2, "b")], 3)])).toContain("not-dense");
  });

  it("part of a committed transaction, or anything of a rolled-back one, visible is torn", () => {
    const txn = (outcome: "committed" | "rolled_back" | "unknown"): HistoryEvent => ({
      type: "txn",
      t: 0,
      txn: "t0",
      topic: "tx",
      ids: ["t0.0", "t0.1"],
      keys: ["x", "x"],
      intent: "commit",
      outcome,
    });
    const partial = final("tx", [m(0, "t0.0", "x")]);
    expect(kinds([header, txn("committed"), partial])).toContain("torn-transaction");
    expect(kinds([header, txn("rolled_back"), partial])).toContain("torn-transaction");
    expect(kinds([header, txn("unknown"), partial])).toContain("torn-transaction");
    expect(kinds([header, txn("unknown"), final("tx", [])])).toEqual([]);
  });

  it("a committed transaction whose retried produce repeats offsets is whole; an offset holding another message is lost", () => {
    const committed = (offsets: number[]): HistoryEvent => ({
      type: "txn",
      t: 0,
      txn: "t0",
      topic: "tx",
      ids: ["t0.0", "t0.1"],
      keys: ["x", "x"],
      intent: "commit",
      outcome: "committed",
      offsets: offsets.map((offset) => ({ partition: 0, offset })),
    });
    const log = final("tx", [m(0, "t0.0", "x"), m(1, "t0.1", "x"), m(2, "other", "y")]);
    const other = { ...produce(["other"], [2]), topic: "tx" } as HistoryEvent;
    expect(check([header, other, committed([0, 1, 0, 1]), log]).anomalies).toEqual([]);
    expect(kinds([header, other, committed([0, 2]), log])).toContain("lost");
  });

  it("a read or receive of what never committed is an uncommitted read", () => {
    const rolledBack: HistoryEvent = {
      type: "txn",
      t: 0,
      txn: "t1",
      topic: "log",
      ids: ["t1.0"],
      keys: ["k"],
      intent: "rollback",
      outcome: "rolled_back",
    };
    const events = [...clean(), rolledBack, receive([m(2, "t1.0")])];
    expect(kinds(events)).toContain("uncommitted-read");
    const read: HistoryEvent = { type: "read", t: 0, topic: "log", partition: 0, from: 0, status: 200, messages: [m(0, "other")] };
    expect(kinds([...clean(), read])).toContain("uncommitted-read");
  });

  it("a group that never delivers a stored message missed it; a key delivered out of order is a group-order violation", () => {
    expect(kinds(clean().filter((e) => !(e.type === "receive" && e.messages[0]?.id === "b")))).toContain("group-missed");
    const swapped: HistoryEvent[] = clean().filter((e) => e.type !== "receive");
    swapped.push(receive([m(1, "b")]), receive([m(0, "a")]));
    expect(kinds(swapped)).toContain("group-order");
  });

  it("a valid request answered 4xx (not 429) was refused", () => {
    expect(kinds([...clean(), { ...produce(["c"], null), status: 409 } as HistoryEvent])).toContain("refused");
    expect(kinds([...clean(), { ...produce(["c"], null), status: 429 } as HistoryEvent])).not.toContain("refused");
  });

  it("a server that exited on its own crashed", () => {
    expect(kinds([...clean(), { type: "crash", server: 1, exit: "pid 7, code 1", output: "TypeError" }])).toEqual(["crash"]);
  });

  it("a stored message never answered 2xx is a missing delivery; a key posted before its predecessor's 2xx is out of order", () => {
    expect(kinds(clean().map((e) => (e.type === "webhook" && e.id === "b" ? { ...e, status: 500 } : e)))).toContain("webhook-missing");
    expect(kinds(clean().map((e) => (e.type === "webhook" && e.id === "b" ? { ...e, arrivedAt: 5, respondedAt: 6 } : e)))).toContain(
      "webhook-order",
    );
  });
});
