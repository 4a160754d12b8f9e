/**
 * Reservoir itself, on Postgres + s3rver ("reservoir-s3") or on the embedded default
 * ("reservoir-embedded"): the Node server as `npm start` runs it, over HTTP on keep-alive
 * sockets. Publish: requests of up to `batch` messages with `window` requests in flight (the
 * server coalesces them into one segment PUT + one commit per flush), each body written
 * straight from the payload bytes (reservoir-body.ts). Consume: a consumer group drained by
 * `consumers` loops of receive(max 1,000, answered in batches) → ack with the lease receipts:
 * in the next receive once the loop has caught up, else in a call of its own in flight while
 * the next receive is (`ackWith`); values are handed over as bytes.
 * The server's metrics give the PUT, commit and produce-wait histograms (produce overhead).
 */
import { Agent } from "node:http";
import { BATCHES_TYPE, RAW_MESSAGES_TYPE, requestJson } from "../../lib/http-json.ts";
import { CallTimeout } from "../../lib/timeout.ts";
import { startStack, type Stack } from "../../lib/stack.ts";
import type { CostCounters, PublishOutcome, ServerLatency, SystemUnderTest, Workload } from "../system.ts";
import { publishInBatches } from "../batched-publish.ts";
import { produceBatchesBody, produceBody } from "./reservoir-body.ts";

export interface ReservoirOptions {
  stack: "postgres-s3" | "embedded";
  /** Messages per produce request. */
  batch?: number;
  /** Produce requests in flight. */
  window?: number;
  consumers?: number;
  /**
   * How a consumer loop acks a receive's messages:
   * - "short-next-receive" (the default): in the `ack` field of its next receive when the receive
   *   came back short of its max (the loop has caught up: its next receive waits for messages
   *   anyway, and carrying the acks saves a request and its key check per receive), in a call of
   *   its own when it came back full (a backlog: the ack in flight beside the next receive keeps
   *   the throughput, see "next-receive");
   * - "own-call": always in an ack call of its own, in flight while the next receive is;
   * - "next-receive": in the `ack` field of the next receive while receives come back full (less
   *   CPU per message, but at max rate a quarter to half less throughput, since the receive's
   *   answer then waits for the acks; docs/benchmarks.md, session 8);
   * - "every-receive": in the next receive always.
   */
  ackWith?: AckWith;
  /** Extra environment for the server (a benchmark's variant). */
  env?: Record<string, string>;
  /** Run the server from this source tree (a same-run comparison with another commit). */
  root?: string;
  /** Extra Node flags for the server (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /**
   * How produce bodies go: in batches (the default: record batches the server stores as they
   * are, docs/batches.md) or as JSON (`{"messages":[{"value":…}]}`).
   */
  produceFormat?: "batches" | "json";
  /**
   * How receives are answered: in batches (the default), or raw (one record per message, as
   * before batches existed: for a same-run comparison with a tree that has no batches).
   */
  format?: "batches" | "raw";
}

/** The ways a consumer loop can ack (ReservoirOptions.ackWith). */
export const ACK_WITH = ["short-next-receive", "own-call", "next-receive", "every-receive"] as const;
export type AckWith = (typeof ACK_WITH)[number];

/** At a fixed rate, how long the client gathers due messages into one request. */
const CLIENT_LINGER_MS = 5;

export function reservoir(options: ReservoirOptions): SystemUnderTest {
  const batch = options.batch ?? 1000;
  const window = options.window ?? 32;
  const consumers = options.consumers ?? 4;
  const ackWith = options.ackWith ?? "short-next-receive";
  const produceFormat = options.produceFormat ?? "batches";
  // Idle sockets are dropped after 30 s (or 1 s before the server's Keep-Alive hint), before the
  // server closes them: reusing one the server is closing fails a request (ECONNRESET, EPIPE).
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(window, consumers) + 4, timeout: 30_000 });
  let stack: Stack | undefined;
  let base = "";
  let auth: Record<string, string> = {};
  let admin: Record<string, string> = {};
  let topic = "";
  let topics = 0;

  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await requestJson(agent, method, new URL(path, base), headers, body).catch((error: unknown) => {
      if (error instanceof CallTimeout) serverSays(`${method} ${path} hung`);
      throw error;
    });
    if (res.status >= 300) {
      if (res.status >= 500) serverSays(`${method} ${path} answered ${res.status}`);
      throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    return res;
  };
  /** What the server logged lately (a request past its deadline logs what it was waiting on). */
  const serverSays = (what: string) => {
    const logs = stack?.server.logs().trim().split("\n").slice(-20).join("\n");
    if (logs) process.stderr.write(`  reservoir: ${what}; the server's last log lines:\n${logs}\n`);
  };

  return {
    name: options.stack === "embedded" ? "reservoir-embedded" : "reservoir-s3",
    settings: {
      durability:
        options.stack === "embedded"
          ? "PGlite commit + folder store (fsync of file and directory)"
          : "Postgres commit (synchronous_commit on) after the segment PUT",
      produceFormat:
        produceFormat === "json"
          ? 'JSON ({"messages":[{"value":…}]})'
          : "batches (Content-Type: application/vnd.reservoir.batches, one record batch per request)",
      messagesPerRequest: batch,
      requestsInFlight: window,
      lingerMs: 5,
      clientLingerMs: CLIENT_LINGER_MS,
      consumers,
      consumeBatch: 1000,
      consumeFormat:
        options.format === "raw"
          ? "raw (Accept: application/vnd.reservoir.messages), acked by lease receipts"
          : "batches (Accept: application/vnd.reservoir.batches), acked by lease receipts",
      ackWith,
    },

    async setup(workload: Workload) {
      stack ??= await startStack(options.stack, options.env, options.nodeArgs, options.root);
      base = stack.server.baseUrl;
      admin = { authorization: `Bearer ${stack.server.adminToken}`, "content-type": "application/json" };
      const tenant = await call("POST", "/v1/admin/tenants", admin, { name: `bench-${Date.now()}` });
      auth = { authorization: `Bearer ${tenant.body.apiKey}`, "content-type": "application/json" };
      topic = `${workload.name}-${++topics}`;
      await call("PUT", `/v1/topics/${topic}`, auth, { partitions: workload.partitions });
      await call("PUT", `/v1/topics/${topic}/groups/bench`, auth, { startAt: "earliest" });
    },

    async publish(count, payload, { ratePerSec, onAck } = {}): Promise<PublishOutcome> {
      // This run's topic and key, whatever setup comes next (see consume).
      const [mine, myAuth] = [topic, auth];
      const batchesIn = { ...myAuth, "content-type": BATCHES_TYPE };
      // At a fixed rate, requests leave as messages come due (no window to wait for).
      return publishInBatches({
        count,
        batch,
        window: ratePerSec ? 64 : window,
        lingerMs: CLIENT_LINGER_MS,
        ratePerSec,
        onAck,
        send: async (first, n) => {
          if (produceFormat === "json") {
            const res = await call("POST", `/v1/topics/${mine}/messages`, myAuth, produceBody(payload, first, n));
            if (res.body?.offsets?.length !== n)
              throw new Error(`produce of ${n} messages answered ${JSON.stringify(res.body).slice(0, 300)}`);
            return;
          }
          const res = await call("POST", `/v1/topics/${mine}/messages`, batchesIn, produceBatchesBody(payload, first, n));
          if (res.body?.batches?.[0]?.count !== n)
            throw new Error(`produce of ${n} messages in batches answered ${JSON.stringify(res.body).slice(0, 300)}`);
        },
      });
    },

    async consume(count, onMessage) {
      let received = 0;
      let acked = 0;
      let allAcked!: () => void;
      const done = new Promise<void>((resolve) => (allAcked = resolve));
      // This consume's topic and keys: loops still polling after it ended (a long poll, or a
      // failed run) never touch the next run's topic, and stop once the next setup began.
      const [mine, myAuth, generation] = [topic, auth, topics];
      const batchesAuth = { ...myAuth, accept: options.format === "raw" ? RAW_MESSAGES_TYPE : BATCHES_TYPE };
      const loop = async () => {
        // A receive's lease receipts go in the `ack` field of the next receive or in an ack call
        // of their own (at most one in flight per loop, while the next receive is out, as the
        // other systems' consumers ack without waiting for an answer), as `ackWith` says.
        let acking: Promise<void> = Promise.resolve();
        let pending: { receipts: string[]; messages: number } | null = null;
        const ackAlone = (batch: { receipts: string[]; messages: number }) =>
          call("POST", `/v1/topics/${mine}/groups/bench/ack`, myAuth, { receipts: batch.receipts }).then((res) =>
            countAcked(res.body, batch.messages),
          );
        while (received < count && generation === topics) {
          const piggyback = pending;
          pending = null;
          const body = piggyback ? { max: 1000, waitMs: 1000, ack: piggyback.receipts } : { max: 1000, waitMs: 1000 };
          // The answer in batches (the stored batches, decoded here by the SDK's decoder): payloads
          // arrive as bytes, as the byte-oriented clients of the other systems get theirs.
          const got = await call("POST", `/v1/topics/${mine}/groups/bench/receive`, batchesAuth, body);
          if (piggyback) countAcked(got.body.ack, piggyback.messages);
          // In batches a message's bytes are `value` (the SDK's decoder); raw, `valueBytes`.
          const messages = got.body.messages as { value?: Uint8Array; valueBytes?: Uint8Array }[];
          if (messages.length === 0) continue;
          received += messages.length;
          if (onMessage) for (const m of messages) onMessage((m.valueBytes ?? m.value)!);
          // One lease receipt per run of offsets the receive leased (a few per receive).
          const batch = { receipts: (got.body.leases ?? []).map((l: { receipt: string }) => l.receipt), messages: messages.length };
          const full = messages.length === 1000;
          const withNext =
            ackWith === "every-receive" || (ackWith === "next-receive" && full) || (ackWith === "short-next-receive" && !full);
          if (withNext && received < count) {
            pending = batch;
            continue;
          }
          await acking;
          acking = ackAlone(batch);
        }
        if (pending) await ackAlone(pending);
        await acking;
      };
      const countAcked = (answer: { acked: number; failed: unknown[] } | undefined, messages: number) => {
        if (!answer || answer.failed.length > 0 || answer.acked !== messages)
          throw new Error(`ack of ${messages} messages answered ${JSON.stringify(answer).slice(0, 300)}`);
        acked += messages;
        if (acked >= count) allAcked();
      };
      const loops = Promise.all(Array.from({ length: consumers }, loop));
      // Done once the last message is acked: the other loops may sit in a long poll (waitMs)
      // for messages that will not come, which is not the consumer's work.
      await Promise.race([loops, done]);
      loops.catch(() => {}); // such a poll may end after close() destroyed the agent
    },

    async cost(): Promise<CostCounters> {
      const res = await call("GET", "/v1/admin/metrics", admin);
      const p = res.body.produce;
      return { puts: p.puts, gets: res.body.store.gets, commits: p.commits, flushes: p.flushes, statements: res.body.db?.statements };
    },

    async serverLatency(): Promise<ServerLatency> {
      if (process.env.DUMP_METRICS) {
        const r = await fetch(`${base}/metrics`, { headers: { authorization: admin.authorization } });
        const t = await r.text();
        console.error(
          t
            .split("\n")
            .filter((l) =>
              /^reservoir_(http_requests_total|receives_empty|receive_leases_skipped|flushes_total|flush_requests_(sum|count))/.test(l),
            )
            .join("\n"),
        );
      }
      return (await call("GET", "/v1/admin/metrics", admin)).body.latency;
    },

    serverPid: () => stack?.server.pid,

    async teardown() {
      // One server serves every workload of a run (each gets its own tenant and topic).
    },

    async close() {
      agent.destroy();
      await stack?.stop();
      stack = undefined;
    },
  };
}
