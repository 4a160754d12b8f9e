/**
 * The checker: reads a campaign's history (./history.ts) and names every anomaly in it, after
 * the anomalies Jepsen's queue and Kafka checkers hunt:
 * - lost: a produce acknowledged (200 with offsets) whose message is not at that offset at the end;
 * - duplicate: one idempotency key stored at two offsets; an idempotent retry answered other offsets;
 * - phantom: a stored message no client ever sent;
 * - order: within a key, messages stored in another order than their producer sent them
 *   (a producer sends a key's next message only after the previous one was acknowledged);
 * - not-dense: a partition whose offsets are not earliest..highWatermark-1 without a gap;
 * - torn-transaction: part of a transaction visible (or anything of one that was rolled back);
 * - uncommitted-read: a read or a receive returned a message that is not in the final log at that
 *   offset, or that belongs to a transaction that never committed;
 * - group-missed / group-order: a group never delivered a stored message; a key-ordered group
 *   delivered a key's message before the key's earlier ones;
 * - webhook-missing / webhook-order: a stored message never delivered with a 2xx; a key-ordered
 *   subscription posted a key's message before an earlier one of the key had been answered 2xx.
 * - crash: a server process exited on its own (only the schedule's kill -9 may end one);
 * - refused: a valid produce, read, receive or ack answered 4xx (other than 429): under faults
 *   the service may fail (5xx, retryable), never blame the client.
 * Pure: the same history always gives the same verdict.
 */
import type { HistoryEvent, LogEntry } from "./history.ts";

export type AnomalyKind =
  | "lost"
  | "duplicate"
  | "phantom"
  | "order"
  | "not-dense"
  | "torn-transaction"
  | "uncommitted-read"
  | "group-missed"
  | "group-order"
  | "webhook-missing"
  | "webhook-order"
  | "crash"
  | "refused";

export interface Anomaly {
  kind: AnomalyKind;
  detail: string;
}

export interface CheckResult {
  anomalies: Anomaly[];
  /** What the history holds, for the report. */
  stats: Record<string, number>;
}

export interface CheckedGroup {
  topic: string;
  group: string;
  ordering: "none" | "key";
}
export interface CheckedSubscription {
  topic: string;
  sub: string;
  ordering: "none" | "key";
}

const where = (topic: string, e: { partition: number; offset: number }) => `${topic}/${e.partition}@${e.offset}`;

export function check(events: HistoryEvent[]): CheckResult {
  const anomalies: Anomaly[] = [];
  const add = (kind: AnomalyKind, detail: string) => anomalies.push({ kind, detail });
  const header = events.find((e) => e.type === "run");
  const groups = (header?.config.groups ?? []) as CheckedGroup[];
  const subs = (header?.config.subscriptions ?? []) as CheckedSubscription[];

  // ---- the final log
  const finalAt = new Map<string, LogEntry>(); // "topic/p@o" -> entry
  const positions = new Map<string, string[]>(); // id -> where it is stored
  const finals = events.filter((e) => e.type === "final");
  const byTopic = new Map<string, LogEntry[]>();
  for (const f of finals) {
    const expected = Array.from({ length: f.highWatermark - f.earliest }, (_, i) => f.earliest + i);
    const got = f.messages.map((m) => m.offset);
    if (f.earliest !== 0 || got.length !== expected.length || got.some((o, i) => o !== expected[i]))
      add(
        "not-dense",
        `${f.topic}/${f.partition}: offsets [${got.slice(0, 20).join(",")}${got.length > 20 ? ",..." : ""}], earliest ${f.earliest}, high watermark ${f.highWatermark}`,
      );
    for (const m of f.messages) {
      finalAt.set(where(f.topic, m), m);
      push(positions, m.id, where(f.topic, m));
      push(byTopic, f.topic, m);
    }
  }
  for (const [id, at] of positions) if (at.length > 1) add("duplicate", `${id} stored ${at.length} times: ${at.join(", ")}`);

  // ---- produces
  const sent = new Set<string>();
  /** Per client, ids in the order the client first sent them. */
  const sendOrder = new Map<string, number>();
  const ackedAt = new Map<string, string>();
  let produces = 0;
  let acked = 0;
  for (const e of events) {
    if (e.type === "produce") {
      produces++;
      e.ids.forEach((id) => {
        if (!sent.has(id)) sendOrder.set(id, sendOrder.size);
        sent.add(id);
      });
      if (e.status === 200 && e.offsets) {
        e.ids.forEach((id, i) => {
          const at = where(e.topic, e.offsets![i]!);
          const before = ackedAt.get(id);
          if (before !== undefined && before !== at)
            add("duplicate", `${id} acknowledged at ${before} and, on a retry with its idempotency key, at ${at}`);
          if (before === undefined) acked++;
          ackedAt.set(id, at);
        });
      }
    }
    if (e.type === "txn") for (const id of e.ids) sent.add(id);
  }
  for (const [id, at] of ackedAt) {
    const stored = finalAt.get(at);
    if (stored?.id !== id)
      add(
        "lost",
        `${id} acknowledged at ${at}, which holds ${stored ? stored.id : "nothing"}; stored at [${(positions.get(id) ?? []).join(", ")}]`,
      );
  }
  for (const id of positions.keys()) if (!sent.has(id)) add("phantom", `${id} stored at ${positions.get(id)!.join(", ")} but never sent`);

  // ---- order within a key (producer order)
  const produced = new Set(events.filter((e) => e.type === "produce").map((e) => (e as { topic: string }).topic));
  for (const topic of produced) {
    const perKey = new Map<string, LogEntry[]>();
    for (const m of byTopic.get(topic) ?? []) if (m.key !== undefined && sendOrder.has(m.id)) push(perKey, m.key, m);
    for (const [key, ms] of perKey) {
      const partitions = new Set(ms.map((m) => m.partition));
      if (partitions.size > 1) add("order", `key ${key} in ${partitions.size} partitions of ${topic}`);
      ms.sort((a, b) => a.offset - b.offset);
      for (let i = 1; i < ms.length; i++)
        if (sendOrder.get(ms[i]!.id)! < sendOrder.get(ms[i - 1]!.id)!)
          add(
            "order",
            `key ${key}: ${ms[i]!.id} (sent earlier) at ${where(topic, ms[i]!)} after ${ms[i - 1]!.id} at ${where(topic, ms[i - 1]!)}`,
          );
    }
  }

  // ---- transactions
  const notCommitted = new Set<string>();
  let txns = 0;
  for (const e of events) {
    if (e.type !== "txn") continue;
    txns++;
    const visible = e.ids.filter((id) => positions.has(id));
    if (e.outcome === "rolled_back") {
      for (const id of e.ids) notCommitted.add(id);
      if (visible.length > 0) add("torn-transaction", `${e.txn} rolled back, yet ${visible.join(", ")} visible`);
    } else if (e.outcome === "committed") {
      if (visible.length !== e.ids.length)
        add("torn-transaction", `${e.txn} committed, ${visible.length} of ${e.ids.length} messages visible`);
      // A produce retried into the transaction lists its messages again; their idempotency keys
      // make the repeats answer the first copies' offsets. Every offset must hold one of its messages.
      for (const o of e.offsets ?? []) {
        const at = where(e.topic, o);
        const holds = finalAt.get(at)?.id;
        if (holds === undefined || !e.ids.includes(holds))
          add("lost", `${e.txn} committed a message at ${at}, which holds ${holds ?? "nothing"}`);
      }
    } else {
      if (visible.length !== 0 && visible.length !== e.ids.length)
        add("torn-transaction", `${e.txn} (outcome unknown): ${visible.length} of ${e.ids.length} messages visible`);
      if (visible.length === 0) for (const id of e.ids) notCommitted.add(id);
    }
  }

  // ---- what readers saw during the load
  const sawUncommitted = (what: string, topic: string, m: LogEntry) => {
    const stored = finalAt.get(where(topic, m));
    if (notCommitted.has(m.id))
      add("uncommitted-read", `${what} returned ${m.id} of a transaction that never committed, at ${where(topic, m)}`);
    else if (stored?.id !== m.id)
      add("uncommitted-read", `${what} returned ${m.id} at ${where(topic, m)}, where the final log holds ${stored?.id ?? "nothing"}`);
  };
  let reads = 0;
  let receives = 0;
  for (const e of events) {
    if (e.type === "read" && e.status === 200) {
      reads++;
      for (const m of e.messages) sawUncommitted(`a read of ${e.topic}/${e.partition} from ${e.from}`, e.topic, m);
    }
    if (e.type === "receive" && e.status === 200) {
      receives += e.messages.length;
      for (const m of e.messages) sawUncommitted(`a receive of group ${e.group}`, e.topic, m);
    }
  }

  // ---- groups: everything delivered; key order
  for (const g of groups) {
    const firstReceive = new Map<string, number>(); // "p@o" -> event index
    events.forEach((e, i) => {
      if (e.type === "receive" && e.status === 200 && e.group === g.group && e.topic === g.topic)
        for (const m of e.messages) if (!firstReceive.has(where(g.topic, m))) firstReceive.set(where(g.topic, m), i);
    });
    const log = byTopic.get(g.topic) ?? [];
    const missed = log.filter((m) => !firstReceive.has(where(g.topic, m)));
    if (missed.length > 0)
      add(
        "group-missed",
        `group ${g.group}: ${missed.length} stored messages never received, e.g. ${missed
          .slice(0, 5)
          .map((m) => `${m.id} at ${where(g.topic, m)}`)
          .join(", ")}`,
      );
    if (g.ordering === "key") {
      for (const [key, ms] of keyed(log)) {
        for (let i = 1; i < ms.length; i++) {
          const earlier = firstReceive.get(where(g.topic, ms[i - 1]!));
          const later = firstReceive.get(where(g.topic, ms[i]!));
          if (earlier !== undefined && later !== undefined && later < earlier)
            add(
              "group-order",
              `group ${g.group}, key ${key}: ${where(g.topic, ms[i]!)} first received before ${where(g.topic, ms[i - 1]!)}`,
            );
        }
      }
    }
  }

  // ---- webhooks
  let deliveries = 0;
  for (const s of subs) {
    const hooks = events.filter((e) => e.type === "webhook" && e.sub === s.sub) as Extract<HistoryEvent, { type: "webhook" }>[];
    deliveries += hooks.length;
    const succeeded = new Map<string, number>(); // "p@o" -> earliest 2xx answer time
    for (const h of hooks) {
      if (typeof h.status === "number" && h.status >= 200 && h.status < 300) {
        const k = where(s.topic, h);
        succeeded.set(k, Math.min(succeeded.get(k) ?? Number.POSITIVE_INFINITY, h.respondedAt));
      }
      const stored = finalAt.get(where(s.topic, h));
      if (stored?.id !== h.id)
        add(
          "uncommitted-read",
          `subscription ${s.sub} delivered ${h.id} at ${where(s.topic, h)}, where the final log holds ${stored?.id ?? "nothing"}`,
        );
    }
    const log = byTopic.get(s.topic) ?? [];
    const missing = log.filter((m) => !succeeded.has(where(s.topic, m)));
    if (missing.length > 0)
      add(
        "webhook-missing",
        `subscription ${s.sub}: ${missing.length} stored messages never delivered with a 2xx, e.g. ${missing
          .slice(0, 5)
          .map((m) => `${m.id} at ${where(s.topic, m)}`)
          .join(", ")}`,
      );
    if (s.ordering === "key") {
      const keyOf = new Map(log.map((m) => [where(s.topic, m), m]));
      const perKeyLog = keyed(log);
      for (const h of hooks) {
        const m = keyOf.get(where(s.topic, h));
        if (!m || m.key === undefined) continue;
        for (const earlier of perKeyLog.get(m.key) ?? []) {
          if (earlier.offset >= m.offset) break;
          const ok = succeeded.get(where(s.topic, earlier));
          if (ok === undefined || ok > h.arrivedAt) {
            add(
              "webhook-order",
              `subscription ${s.sub}, key ${m.key}: ${where(s.topic, m)} (attempt ${h.attempt}) posted before ${where(s.topic, earlier)} had a 2xx`,
            );
            break;
          }
        }
      }
    }
  }

  for (const e of events) {
    if ((e.type === "produce" || e.type === "read" || e.type === "receive" || e.type === "ack") && typeof e.status === "number")
      if (e.status >= 400 && e.status < 500 && e.status !== 429) add("refused", `a ${e.type} of ${e.topic} answered ${e.status}`);
  }
  for (const e of events) if (e.type === "crash") add("crash", `server ${e.server} exited (${e.exit}): ${e.output.slice(-600)}`);

  return {
    anomalies,
    stats: {
      stored: positions.size,
      produces,
      acked,
      txns,
      reads,
      received: receives,
      deliveries,
      faults: events.filter((e) => e.type === "fault").length,
    },
  };
}

/** Messages with a key, per key, in offset order (one key lives in one partition). */
function keyed(log: LogEntry[]): Map<string, LogEntry[]> {
  const out = new Map<string, LogEntry[]>();
  for (const m of log) if (m.key !== undefined) push(out, m.key, m);
  for (const ms of out.values()) ms.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  return out;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
