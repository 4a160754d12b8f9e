/**
 * One campaign run: two (or more) Node servers on one Postgres and one s3rver, each reached
 * through a fault proxy, under a mixed load — keyed produces with idempotency keys and retries,
 * reads by offset, a key-ordered consumer group, transactions that commit or roll back and a
 * group reading their topic, a key-ordered webhook subscription to a local sink — while the
 * seeded schedule (./schedule.ts) breaks S3 requests, cuts, stalls and kills Postgres
 * connections and kill -9s servers. Then the faults stop, every client finishes what it had in
 * flight, the groups and the subscription drain, every partition is read, and the history goes
 * to the checker (./checker.ts).
 */
import { createHash } from "node:crypto";
import { api, type ApiResponse } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { prng } from "../support/prng.ts";
import { freshDatabase } from "../support/postgres.ts";
import { startS3 } from "../support/s3.ts";
import { startWebhookSink, type SinkRequest } from "../support/webhook-sink.ts";
import { check, type CheckedGroup, type CheckedSubscription, type CheckResult } from "./checker.ts";
import { fixedAddress, type FixedAddress } from "./faults/fixed-address.ts";
import { startPgFaultProxy, terminateBackends } from "./faults/pg-fault-proxy.ts";
import { startS3FaultProxy } from "./faults/s3-fault-proxy.ts";
import { writeHistory, type At, type HistoryEvent, type LogEntry } from "./history.ts";
import { faultSchedule, s3FaultPicker, type ScheduledFault } from "./schedule.ts";

export interface CampaignOptions {
  seed: number;
  mode: "short" | "long";
  /** How long the faulted load runs (ms). */
  durationMs: number;
  servers: number;
  producers: number;
  /**
   * A producer's pause after each of its requests (ms). The long mode's load is paced so that
   * its consumers keep up: the key-ordered group and subscription deliver some 20–30 messages a
   * second on this machine under faults, and six unpaced producers stored about 70 a second
   * (session 8's first long run: 41,786 messages, and the subscription was 8,804 short when the
   * drain's 30 minutes ran out, still delivering). Outrun, "missing" would mean "not yet".
   */
  produceGapMs: number;
  s3FaultRate: number;
  pgEveryMs: number;
  killEveryMs: number;
  historyPath: string;
  log: (line: string) => void;
}

/** The seed of the CI run (test/reliability/campaign.test.ts) and of `npm run reliability` without --seed. */
export const CI_SEED = 20261203;

export const SHORT: Omit<CampaignOptions, "seed" | "historyPath" | "log"> = {
  mode: "short",
  durationMs: 35_000,
  servers: 2,
  producers: 3,
  produceGapMs: 0,
  s3FaultRate: 0.15,
  pgEveryMs: 5_000,
  killEveryMs: 12_000,
};
export const LONG: Omit<CampaignOptions, "seed" | "historyPath" | "log"> = {
  mode: "long",
  durationMs: 10 * 60_000,
  servers: 3,
  producers: 6,
  produceGapMs: 750,
  s3FaultRate: 0.1,
  pgEveryMs: 8_000,
  killEveryMs: 30_000,
};

export interface CampaignResult extends CheckResult {
  historyPath: string;
  injected: Record<string, number>;
  /** The servers' output, for a failure message. */
  logs: string;
}

const LOG = "log";
const TX = "tx";
const LOG_PARTITIONS = 3;
const TX_PARTITIONS = 2;
const GROUPS: CheckedGroup[] = [
  { topic: LOG, group: "g", ordering: "key" },
  { topic: TX, group: "gt", ordering: "none" },
];
const SUBS: CheckedSubscription[] = [{ topic: LOG, sub: "s", ordering: "key" }];
const HOOK = "/hook";
const SETTLE_MS = 120_000;
/**
 * After the faults, the groups and the subscription drain for as long as they make progress:
 * they give up after this long without a new delivery (a stall, which the checker then reports),
 * or at DRAIN_CAP_MS. A fixed deadline measured throughput instead: in the long mode six
 * producers outrun the two consumers of the key-ordered group several times over, and the
 * backlog alone (tens of thousands of messages) outlasted any fixed wait (docs/reliability.md,
 * anomaly 7).
 */
const STALL_MS = 60_000;
const DRAIN_CAP_MS = 30 * 60_000;
/** The final reads' client timeout: past the server's request deadline (65 s by default). */
const FINAL_READ_TIMEOUT_MS = 90_000;

type Outcome = { status: number | "error"; body?: any; error?: string };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const events: HistoryEvent[] = [];
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const record = (e: HistoryEvent) => events.push(e);
  record({
    type: "run",
    seed: o.seed,
    mode: o.mode,
    startedAt: new Date().toISOString(),
    config: { ...o, log: undefined, groups: GROUPS, subscriptions: SUBS },
  });

  const db = await freshDatabase();
  const s3 = await startS3();
  const s3Proxy = await startS3FaultProxy(s3.env.S3_ENDPOINT!);
  const pgProxy = await startPgFaultProxy(db.url);
  const sink = await startWebhookSink();
  const servers: NodeServer[] = [];
  const timers: NodeJS.Timeout[] = [];
  const restarts: Promise<void>[] = [];
  const addresses: FixedAddress[] = [];
  try {
    const env = {
      DATABASE_URL: pgProxy.url,
      ...s3.env,
      S3_ENDPOINT: s3Proxy.url,
      RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
      RESERVOIR_DISPATCH_INTERVAL_MS: "200",
    };
    for (let i = 0; i < o.servers; i++) servers.push(await startNodeServer({ env, label: `campaign-${i}`, readyTimeoutMs: 60_000 }));
    // The clients reach each server at an address that outlives its restarts (fixed-address.ts).
    for (const s of servers) addresses.push(await fixedAddress(s.port));
    const admin = api(addresses[0]!.url, servers[0]!.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: `campaign-${o.seed}` });
    if (tenant.status !== 201) throw new Error(`tenant: ${tenant.status} ${tenant.text}`);
    const key: string = tenant.body.apiKey;
    const clients = addresses.map((a) => api(a.url, key));
    const setup = async (res: Promise<ApiResponse>) => {
      const r = await res;
      if (r.status >= 300) throw new Error(`setup: ${r.status} ${r.text}`);
    };
    await setup(clients[0]!.put(`/v1/topics/${LOG}`, { partitions: LOG_PARTITIONS }));
    await setup(clients[0]!.put(`/v1/topics/${TX}`, { partitions: TX_PARTITIONS }));
    for (const g of GROUPS)
      await setup(
        clients[0]!.put(`/v1/topics/${g.topic}/groups/${g.group}`, { startAt: "earliest", ordering: g.ordering, maxAttempts: 100 }),
      );
    // The sink fails a seeded share of attempts (about 6%) (500, or 429 with Retry-After) so retries and backoff run too.
    sink.on(HOOK, (r: SinkRequest) => {
      const h = createHash("sha256").update(`${o.seed}:${r.headers["webhook-id"]}:${r.json?.attempt}`).digest()[0]!;
      if (h < 10) return { status: 500 };
      if (h < 15) return { status: 429, headers: { "retry-after": "1" } };
      return { status: 200 };
    });
    for (const s of SUBS)
      await setup(
        clients[0]!.put(`/v1/topics/${s.topic}/subscriptions/${s.sub}`, {
          url: sink.url(HOOK),
          ordering: s.ordering,
          startAt: "earliest",
          maxAttempts: 100,
          backoff: { initialSeconds: 0.2, maxSeconds: 1 },
          timeoutMs: 3_000,
        }),
      );

    /** One request through server `i` (or the next running one); a network failure is an outcome, not a throw. */
    const call = async (i: number, method: string, path: string, body?: unknown): Promise<Outcome & { server: number }> => {
      let server = i % servers.length;
      for (let k = 0; k < servers.length && !servers[server]!.running(); k++) server = (server + 1) % servers.length;
      try {
        const res = await clients[server]!.request(method, path, {
          ...(body !== undefined ? { json: body } : {}),
          allow5xx: true,
          timeoutMs: 15_000,
        });
        return { status: res.status, body: res.body, server };
      } catch (err) {
        return { status: "error", error: (err as Error).message.slice(0, 300), server };
      }
    };
    const retryable = (r: Outcome) => r.status === "error" || r.status >= 500 || r.status === 429;
    const backoff = (attempt: number, rand: () => number) => sleep(Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + rand()));

    /** Producers and the transactor stop starting new work (they finish what they have in flight). */
    let stopping = false;
    /** Consumers stop once their group has nothing left (after every producer finished). */
    let draining = false;
    const settleBy = () => performance.now() + SETTLE_MS;

    // ---------------------------------------------------------------- producers
    const producer = async (c: number) => {
      const rand = prng(o.seed * 31 + c);
      const keys = Array.from({ length: 4 }, (_, k) => `c${c}-k${k}`);
      let seq = 0;
      while (!stopping) {
        const keyName = keys[Math.floor(rand() * keys.length)]!;
        const ids = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => `c${c}.${seq++}`);
        const messages = ids.map((id) => ({
          value: `v-${id}-${"x".repeat(Math.floor(rand() * 200))}`,
          key: keyName,
          idempotencyKey: id,
          headers: { "x-id": id },
        }));
        // Retried until acknowledged, after the faults stop if need be: the next request of the key waits for it.
        const until = settleBy();
        for (let attempt = 0; ; attempt++) {
          const r = await call(c + attempt, "POST", `/v1/topics/${LOG}/messages`, { messages });
          record({
            type: "produce",
            t: now(),
            client: c,
            server: r.server,
            attempt,
            topic: LOG,
            ids,
            keys: ids.map(() => keyName),
            status: r.status,
            ...(r.status === 200 ? { offsets: r.body.offsets as At[] } : {}),
            ...(r.error ? { error: r.error } : {}),
          });
          if (!retryable(r) || performance.now() > until) break;
          await backoff(attempt, rand);
        }
        if (o.produceGapMs > 0) await sleep(o.produceGapMs);
      }
    };

    // ---------------------------------------------------------------- readers by offset
    const reader = async () => {
      const rand = prng(o.seed * 37);
      const seen = new Map<string, number>();
      while (!stopping) {
        const topic = rand() < 0.7 ? LOG : TX;
        const partition = Math.floor(rand() * (topic === LOG ? LOG_PARTITIONS : TX_PARTITIONS));
        const from = Math.max(0, (seen.get(`${topic}/${partition}`) ?? 0) - Math.floor(rand() * 30));
        const r = await call(
          Math.floor(rand() * servers.length),
          "GET",
          `/v1/topics/${topic}/partitions/${partition}/messages?offset=${from}&limit=50`,
        );
        const messages = r.status === 200 ? toEntries(r.body.messages) : [];
        if (r.status === 200) seen.set(`${topic}/${partition}`, r.body.highWatermark);
        record({ type: "read", t: now(), topic, partition, from, status: r.status, ...(r.error ? { error: r.error } : {}), messages });
        await sleep(20 + rand() * 80);
      }
    };

    // ---------------------------------------------------------------- group consumers
    const consumer = async (g: CheckedGroup, n: number) => {
      const rand = prng(o.seed * 41 + n);
      const base = `/v1/topics/${g.topic}/groups/${g.group}`;
      let idle = 0;
      while (!draining || (performance.now() < drainUntil && performance.now() - (progress.get(g.group) ?? 0) < STALL_MS && idle < 3)) {
        const r = await call(n + Math.floor(rand() * servers.length), "POST", `${base}/receive`, {
          max: 10,
          visibilityTimeoutSeconds: 5,
          waitMs: 300,
        });
        const messages =
          r.status === 200
            ? (r.body.messages as any[]).map((m) => ({ ...toEntries([m])[0]!, receipt: m.receipt, attempt: m.attempt }))
            : [];
        record({
          type: "receive",
          t: now(),
          topic: g.topic,
          group: g.group,
          consumer: n,
          status: r.status,
          ...(r.error ? { error: r.error } : {}),
          messages,
        });
        if (r.status !== 200) {
          await backoff(1, rand);
          continue;
        }
        if (messages.length === 0) {
          if (draining) idle = (await groupDrained(g)) ? idle + 1 : 0;
          continue;
        }
        idle = 0;
        progress.set(g.group, performance.now());
        const receipts = messages.map((m) => m.receipt);
        for (let attempt = 0; attempt < 5; attempt++) {
          const a = await call(n + attempt, "POST", `${base}/ack`, { receipts });
          record({
            type: "ack",
            t: now(),
            topic: g.topic,
            group: g.group,
            receipts,
            status: a.status,
            ...(a.error ? { error: a.error } : {}),
            ...(a.status === 200 ? { failed: a.body.failed } : {}),
          });
          if (!retryable(a)) break;
          await backoff(attempt, rand);
        }
      }
    };
    let drainUntil = 0;
    /** When each group last delivered something (performance.now()). */
    const progress = new Map<string, number>();
    const groupDrained = async (g: CheckedGroup) => {
      const r = await call(0, "GET", `/v1/topics/${g.topic}/groups/${g.group}`);
      return r.status === 200 && (r.body.partitions as any[]).every((p) => p.committedOffset >= p.highWatermark && p.inFlight === 0);
    };

    // ---------------------------------------------------------------- transactions
    const transactor = async () => {
      const rand = prng(o.seed * 43);
      let n = 0;
      while (!stopping) {
        const txnName = `t${n++}`;
        const begin = await call(n, "POST", "/v1/transactions", { timeoutSeconds: 30 });
        if (begin.status !== 201) {
          await backoff(1, rand);
          continue;
        }
        const id: string = begin.body.transactionId;
        const ids = Array.from({ length: 1 + Math.floor(rand() * 4) }, (_, i) => `${txnName}.${i}`);
        const keyName = `tk${Math.floor(rand() * 5)}`;
        const messages = ids.map((mid) => ({ value: `tv-${mid}`, key: keyName, idempotencyKey: mid, headers: { "x-id": mid } }));
        let produced = false;
        for (let attempt = 0; attempt < 8; attempt++) {
          const p = await call(n + attempt, "POST", `/v1/topics/${TX}/messages`, { messages, transactionId: id });
          if (p.status === 202) {
            produced = true;
            break;
          }
          if (!retryable(p)) break;
          await backoff(attempt, rand);
        }
        const intent = produced && rand() < 0.75 ? "commit" : "rollback";
        let outcome: "committed" | "rolled_back" | "unknown" = "unknown";
        let offsets: At[] | undefined;
        for (let attempt = 0; attempt < 8; attempt++) {
          const r = await call(n + attempt, "POST", `/v1/transactions/${id}/${intent}`, intent === "commit" ? {} : undefined);
          if (r.status === 200) {
            outcome = intent === "commit" ? "committed" : "rolled_back";
            if (intent === "commit")
              offsets = (r.body.offsets as (At & { topic: string })[]).map(({ partition, offset }) => ({ partition, offset }));
            break;
          }
          if (!retryable(r)) break;
          await backoff(attempt, rand);
        }
        // Not answered: the transaction's own state says how it ended (an open one times out into a rollback).
        if (outcome === "unknown") {
          for (let attempt = 0; attempt < 8 && outcome === "unknown"; attempt++) {
            const s = await call(attempt, "GET", `/v1/transactions/${id}`);
            if (s.status === 200 && s.body.state !== "open") outcome = s.body.state;
            else await backoff(attempt, rand);
          }
        }
        record({
          type: "txn",
          t: now(),
          txn: txnName,
          topic: TX,
          ids,
          keys: ids.map(() => keyName),
          intent,
          outcome,
          ...(offsets ? { offsets } : {}),
        });
      }
    };

    // ---------------------------------------------------------------- faults
    const schedule = faultSchedule(o.seed, {
      durationMs: o.durationMs,
      servers: o.servers,
      pgEveryMs: o.pgEveryMs,
      killEveryMs: o.killEveryMs,
      s3FaultRate: o.s3FaultRate,
    });
    o.log(`campaign: ${o.servers} servers ready at ${now()} ms`);
    o.log(
      `campaign seed ${o.seed} (${o.mode}): ${schedule.length} scheduled faults, S3 fault rate ${o.s3FaultRate}, history ${o.historyPath}`,
    );
    s3Proxy.setPicker(s3FaultPicker(o.seed, o.s3FaultRate));
    const apply = async (f: ScheduledFault) => {
      const detail: Record<string, unknown> = { ...f };
      if (f.kind === "pg-drop") detail.dropped = pgProxy.dropAll();
      else if (f.kind === "pg-stall") pgProxy.stall(f.ms);
      else if (f.kind === "pg-refuse") {
        pgProxy.refuse(f.ms);
        detail.dropped = pgProxy.dropAll();
      } else if (f.kind === "pg-terminate")
        detail.terminated = await terminateBackends(db.url).catch((e) => `failed: ${(e as Error).message}`);
      else if (f.kind === "kill") {
        const s = servers[f.server]!;
        detail.pid = s.pid;
        await s.kill("SIGKILL");
        restarts.push(
          sleep(f.downMs).then(async () => {
            for (let attempt = 0; ; attempt++) {
              try {
                return await s.restart();
              } catch (err) {
                if (attempt >= 3) throw err;
              }
            }
          }),
        );
      }
      record({ type: "fault", t: now(), fault: detail });
    };
    for (const f of schedule) timers.push(setTimeout(() => void apply(f), f.atMs));

    const producing = [...Array.from({ length: o.producers }, (_, c) => producer(c)), reader(), transactor()];
    const consuming = [consumer(GROUPS[0]!, 0), consumer(GROUPS[0]!, 1), consumer(GROUPS[1]!, 2)];
    await sleep(o.durationMs);

    // ---------------------------------------------------------------- settle
    for (const t of timers) clearTimeout(t);
    s3Proxy.setPicker(undefined);
    record({ type: "fault", t: now(), fault: { kind: "faults-stopped", s3: s3Proxy.injected() } });
    await Promise.all(restarts);
    for (const s of servers) if (!s.running()) await s.restart();
    stopping = true;
    await Promise.all(producing);
    drainUntil = performance.now() + DRAIN_CAP_MS;
    for (const g of GROUPS) progress.set(g.group, performance.now());
    draining = true;
    await Promise.all(consuming);
    const since = GROUPS.map((g) => `${g.group} ${Math.round(performance.now() - (progress.get(g.group) ?? 0))} ms ago`).join(", ");
    o.log(`campaign: groups drained (or stopped making progress) at ${now()} ms (last received: ${since}); waiting for webhook deliveries`);

    // ---------------------------------------------------------------- final reads
    // Past the server's own deadline (65 s): a read stuck on something is then answered 503 and
    // logged with what it waited on (functions/deadline.ts), rather than cut off by this client.
    const final = { timeoutMs: FINAL_READ_TIMEOUT_MS };
    for (const [topic, partitions] of [
      [LOG, LOG_PARTITIONS],
      [TX, TX_PARTITIONS],
    ] as const) {
      const info = await clients[0]!.get(`/v1/topics/${topic}`, final);
      for (let p = 0; p < partitions; p++) {
        const messages: LogEntry[] = [];
        const earliest: number = info.body.earliestOffsets[p];
        const highWatermark: number = info.body.highWatermarks[p];
        for (let at = earliest; at < highWatermark; ) {
          const r = await clients[0]!.get(`/v1/topics/${topic}/partitions/${p}/messages`, { ...final, query: { offset: at, limit: 1000 } });
          const page = toEntries(r.body.messages);
          if (page.length === 0) break;
          messages.push(...page);
          at = r.body.nextOffset;
        }
        record({ type: "final", topic, partition: p, earliest, highWatermark, messages });
      }
    }
    const logStored = events
      .filter((e) => e.type === "final" && e.topic === LOG)
      .reduce((n, e) => n + (e as { messages: unknown[] }).messages.length, 0);
    // Every stored message of the subscription's topic answered 2xx; or none more for STALL_MS, or the cap.
    const delivered = (rs: SinkRequest[]) =>
      new Set(rs.filter((r) => r.status !== undefined && r.status < 300).map((r) => r.headers["webhook-id"])).size;
    for (let before = -1; ; ) {
      const count = delivered(sink.requests(HOOK));
      if (count >= logStored) break;
      if (count === before || performance.now() >= drainUntil) {
        o.log(`campaign: webhook deliveries stopped at ${count} of ${logStored} (none for ${STALL_MS} ms, or the cap)`);
        break;
      }
      before = count;
      await sink.waitFor(HOOK, (rs) => delivered(rs) >= logStored, STALL_MS, "every delivery").catch(() => {});
    }
    for (const r of sink.requests(HOOK)) {
      const b = r.json ?? {};
      record({
        type: "webhook",
        sub: "s",
        webhookId: r.headers["webhook-id"] ?? "",
        id: b.headers?.["x-id"] ?? "",
        ...(b.key !== undefined ? { key: b.key } : {}),
        partition: b.partition,
        offset: b.offset,
        attempt: b.attempt,
        status: r.abandoned || r.status === undefined ? "abandoned" : r.status,
        arrivedAt: r.arrivedAt,
        respondedAt: r.respondedAt ?? r.arrivedAt,
      });
    }
    for (const g of GROUPS) {
      const r = await clients[0]!.get(`/v1/topics/${g.topic}/groups/${g.group}`, final);
      record({
        type: "group-final",
        topic: g.topic,
        group: g.group,
        committed: (r.body.partitions as any[]).map((p) => p.committedOffset),
        inFlight: (r.body.partitions as any[]).map((p) => p.inFlight),
      });
    }
    // Only the schedule's kill -9 may end a server: any other exit is a crash.
    servers.forEach((s, i) => {
      const log = s.logs();
      for (const m of log.matchAll(/process (\d+) exited \((code \d+|signal (?!SIGKILL)\w+)\)/g))
        record({ type: "crash", server: i, exit: `pid ${m[1]}, ${m[2]}`, output: log.slice(Math.max(0, m.index - 3_000), m.index) });
    });
    o.log(`campaign: deliveries and final reads done at ${now()} ms`);
    writeHistory(o.historyPath, events);
    const result = check(events);
    return {
      ...result,
      historyPath: o.historyPath,
      injected: s3Proxy.injected(),
      logs: servers.map((s, i) => `----- server ${i}\n${s.logs().slice(-200_000)}`).join("\n"),
    };
  } catch (error) {
    // The run did not get as far as the checker: what the servers printed is the evidence.
    o.log(`campaign failed at ${now()} ms: ${(error as Error).message}`);
    for (const [i, s] of servers.entries()) o.log(`----- server ${i}\n${s.logs().slice(-100_000)}`);
    throw error;
  } finally {
    for (const t of timers) clearTimeout(t);
    await Promise.allSettled(restarts);
    for (const s of servers) await s.stop().catch(() => {});
    await sink.close().catch(() => {});
    for (const a of addresses) await a.close().catch(() => {});
    await pgProxy.close().catch(() => {});
    await s3Proxy.close().catch(() => {});
    await s3.stop().catch(() => {});
    await db.drop().catch(() => {});
  }
}

function toEntries(messages: any[] | undefined): LogEntry[] {
  return (messages ?? []).map((m) => ({
    partition: m.partition,
    offset: m.offset,
    id: m.headers?.["x-id"] ?? `?${m.offset}`,
    ...(m.key !== undefined ? { key: m.key } : {}),
  }));
}
