/**
 * Model-based test of transaction states (storage/transactions) on the log: random walks of
 * begin (timeouts, with or without a checkUrl), produce into a transaction (open, ended, timed
 * out, unknown), plain produce, commit, commit again, rollback, commit and rollback at once,
 * clock advances, and sweeps (timeouts rolled back; due check-backs answered commit, rollback
 * or unknown), against a real database with the clock injected. After every step the system is
 * compared with a small in-memory model of API.md's transactions:
 *
 * - state: open → committed | rolled_back, never back; `checks` counts check-backs made;
 * - produce: accepted (pending) only while open and before the timeout, else transaction_not_open
 *   (transaction_not_found for an id that never was);
 * - commit: offsets in production order, dense after whatever the partition held; a second
 *   commit answers the same; after rollback or timeout: transaction_not_open (a timed-out one
 *   without checkUrl is rolled back by it); rollback after commit: transaction_not_open;
 * - commit and rollback at once: exactly one wins, the other is refused, and the partitions
 *   show the winner's effect;
 * - sweep: open transactions without a checkUrl past their timeout are rolled back; those with
 *   one are checked when due (at the timeout, then every interval) and decided by the answer,
 *   the fifth unknown rolling back;
 * - high watermarks move only by plain produce and commits; at the end of each walk every
 *   partition reads back exactly the model's log (nothing of a rolled-back transaction).
 *
 * Runs on the local Postgres (or TEST_DATABASE_URL), else on PGlite over the wire. The walks are
 * fixed (SEEDS, printed); a failure names its seed and step:
 *   TX_MODEL_SEED=<seed> npx vitest run test/integration/transactions-model.test.ts
 */
import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rows, type Database } from "../../storage/metadata/db.ts";
import { migrate } from "../../storage/metadata/migrate.ts";
import { createTenant } from "../../storage/tenancy/tenants.ts";
import { ensureTopic, type Topic } from "../../storage/metadata/topics.ts";
import { Batcher, type ProduceEntry } from "../../storage/log/batcher.ts";
import { BatchCache } from "../../storage/log/batch-cache.ts";
import { readFrom } from "../../storage/log/reader.ts";
import { encodedRecordSize, type SegmentRecord } from "../../storage/segment/codec.ts";
import { ReceiptSigner } from "../../storage/groups/receipts.ts";
import { ReservoirError } from "../../storage/errors.ts";
import { commitTransaction } from "../../storage/transactions/commit.ts";
import { beginTransaction, findTransaction, rollbackTransaction } from "../../storage/transactions/transactions.ts";
import { claimDueChecks, expireUnchecked, recordCheck, type CheckAnswer } from "../../storage/transactions/sweep.ts";
import { MemoryObjectStore } from "../support/memory-store.ts";
import { postgresJsTypes } from "../../storage/metadata/pg-types.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { prng } from "../support/prng.ts";

const T0 = 1_800_000_000_000;
const SEEDS = [11, 12, 13, 14, 15, 16];
const STEPS_PER_WALK = 60;
const TIMEOUTS = [1_000, 3_000, 20_000];
const INTERVALS = [1_000, 2_000, 5_000];
const ADVANCES = [0, 400, 1_000, 2_500, 6_000];
const UNKNOWNS_BEFORE_ROLLBACK = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type State = "open" | "committed" | "rolled_back";

interface MTx {
  id: string;
  state: State;
  expiresAt: number;
  checkIntervalMs: number | null;
  nextCheckAt: number;
  checks: number;
  unknowns: number;
  /** Pending messages in production order. */
  pending: { topic: number; partition: number; value: string }[];
  offsets?: { topic: string; partition: number; offset: number }[];
}

interface Model {
  now: number;
  txs: MTx[];
  /** Per topic index, per partition: the committed values in offset order. */
  logs: string[][][];
}

describe("transactions against a model", () => {
  let database: FreshDatabase | undefined;
  let client: ReturnType<typeof postgres> | undefined;
  let db: Database;
  const signer = new ReceiptSigner(encoder.encode("transactions-model-test-key-0001"));

  beforeAll(async () => {
    database = await freshDatabase();
    const urlMax = new URL(database.url).searchParams.get("max");
    client = postgres(database.url, { max: urlMax ? Number(urlMax) : 4, types: postgresJsTypes, onnotice: () => {} });
    db = drizzle(client) as unknown as Database;
    await migrate(db);
  });

  afterAll(async () => {
    await client?.end({ timeout: 5 });
    await database?.drop();
  });

  async function walk(seed: number): Promise<void> {
    const rand = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
    const model: Model = { now: T0, txs: [], logs: [[[], []], [[]]] };
    const { tenantId } = await createTenant(db, `model-${seed}`, {});
    const topics: Topic[] = [];
    for (const [i, partitions] of [2, 1].entries()) {
      topics.push((await ensureTopic(db, tenantId, `t${i}`, { partitions, retentionHours: 168, retentionBytes: null })).topic);
    }
    const store = new MemoryObjectStore();
    const batcher = new Batcher({ now: () => model.now, lingerMs: 0 });
    const io = { db, store };
    let serial = 0;
    const trace: string[] = [];
    const where = () => `seed ${seed}, step ${trace.length}:\n${trace.slice(-12).join("\n")}`;

    const entry = (topic: number, partition: number, value: string, transactionId?: string): ProduceEntry => {
      const record: SegmentRecord = { value: encoder.encode(value), binary: false, timestamp: model.now };
      return { ...record, topicId: topics[topic].id, partition, bytes: encodedRecordSize(record), ...(transactionId && { transactionId }) };
    };
    const codeOf = async (work: Promise<unknown>): Promise<string> => {
      try {
        await work;
        return "ok";
      } catch (error) {
        if (error instanceof ReservoirError) return error.code;
        throw error;
      }
    };
    const assignOffsets = (tx: MTx) => {
      tx.offsets = tx.pending.map((m) => {
        const log = model.logs[m.topic][m.partition];
        log.push(m.value);
        return { topic: topics[m.topic].name, partition: m.partition, offset: log.length - 1 };
      });
      tx.pending = [];
      tx.state = "committed";
    };
    const rollBack = (tx: MTx) => {
      tx.pending = [];
      tx.state = "rolled_back";
    };
    /** Whether the producer's commit finds it timed out (no checkUrl, past its timeout). */
    const timedOut = (tx: MTx) => tx.state === "open" && tx.checkIntervalMs === null && tx.expiresAt <= model.now;

    for (let step = 0; step < STEPS_PER_WALK; step++) {
      const open = model.txs.filter((t) => t.state === "open");
      const any = model.txs.length > 0 ? pick(model.txs) : undefined;
      const anyOpen = open.length > 0 ? pick(open) : any;
      const r = rand();
      if (r < 0.15 || !any) {
        const checked = rand() < 0.4;
        const timeoutMs = pick(TIMEOUTS);
        const interval = pick(INTERVALS);
        const begun = await beginTransaction(db, {
          tenantId,
          timeoutMs,
          checkUrl: checked ? "http://127.0.0.1:9/check" : undefined,
          checkSecret: checked ? "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" : undefined,
          checkIntervalMs: interval,
          now: model.now,
        });
        model.txs.push({
          id: begun.id,
          state: "open",
          expiresAt: model.now + timeoutMs,
          checkIntervalMs: checked ? interval : null,
          nextCheckAt: model.now + timeoutMs,
          checks: 0,
          unknowns: 0,
          pending: [],
        });
        expect(begun.expiresAt, where()).toBe(model.now + timeoutMs);
        trace.push(`begin ${begun.id.slice(-6)} timeout ${timeoutMs}${checked ? ` check every ${interval}` : ""}`);
      } else if (r < 0.45) {
        const tx = rand() < 0.1 ? undefined : anyOpen!;
        const topic = rand() < 0.6 ? 0 : 1;
        const n = 1 + Math.floor(rand() * 3);
        const messages = Array.from({ length: n }, () => ({
          partition: Math.floor(rand() * (topic === 0 ? 2 : 1)),
          value: `v${++serial}`,
        }));
        const id = tx?.id ?? `tx_never_${serial}`;
        const code = await codeOf(
          batcher.submit(
            tenantId,
            messages.map((m) => entry(topic, m.partition, m.value, id)),
            io,
          ),
        );
        const expected = !tx ? "transaction_not_found" : tx.state === "open" && tx.expiresAt > model.now ? "ok" : "transaction_not_open";
        trace.push(`produce ${n} into ${id.slice(-6)} → ${code}`);
        expect(code, where()).toBe(expected);
        if (code === "ok") tx!.pending.push(...messages.map((m) => ({ topic, ...m })));
      } else if (r < 0.55) {
        const partition = Math.floor(rand() * 2);
        const value = `p${++serial}`;
        await batcher.submit(tenantId, [entry(0, partition, value)], io);
        model.logs[0][partition].push(value);
        trace.push(`plain produce ${value} to t0/${partition}`);
      } else if (r < 0.7) {
        const tx = anyOpen!;
        const before = tx.state;
        let got: { offsets: MTx["offsets"]; indexed: { messages: number; bytes: number } } | string;
        try {
          got = await commitTransaction(db, signer, { tenantId, id: tx.id, acks: [], now: model.now });
        } catch (error) {
          if (!(error instanceof ReservoirError)) throw error;
          got = error.code;
        }
        trace.push(`commit ${tx.id.slice(-6)} (${before}) → ${typeof got === "string" ? got : JSON.stringify(got.offsets)}`);
        if (before === "rolled_back" || timedOut(tx)) {
          expect(got, where()).toBe("transaction_not_open");
          if (timedOut(tx)) rollBack(tx);
        } else {
          const pendingBytes = tx.pending.reduce((n, m) => n + encoder.encode(m.value).length, 0);
          if (before === "open") assignOffsets(tx);
          expect(typeof got === "string" ? got : got.offsets, where()).toEqual(tx.offsets);
          // What usage will count: the messages made visible and their bytes (none again on a repeat).
          const counted = before === "open" ? { messages: tx.offsets!.length, bytes: pendingBytes } : { messages: 0, bytes: 0 };
          expect(typeof got === "string" ? got : got.indexed, where()).toEqual(counted);
        }
      } else if (r < 0.78) {
        const tx = anyOpen!;
        const code = await codeOf(rollbackTransaction(db, tenantId, tx.id, model.now));
        trace.push(`rollback ${tx.id.slice(-6)} (${tx.state}) → ${code}`);
        expect(code, where()).toBe(tx.state === "committed" ? "transaction_not_open" : "ok");
        if (tx.state === "open") rollBack(tx);
      } else if (r < 0.83 && open.length > 0) {
        const tx = pick(open);
        const [c, rb] = await Promise.all([
          codeOf(commitTransaction(db, signer, { tenantId, id: tx.id, acks: [], now: model.now })),
          codeOf(rollbackTransaction(db, tenantId, tx.id, model.now)),
        ]);
        trace.push(`commit ∥ rollback ${tx.id.slice(-6)} → ${c} / ${rb}`);
        if (timedOut(tx)) {
          // Both see it timed out: whichever runs first rolls it back; neither commits.
          expect(c, where()).toBe("transaction_not_open");
          expect(rb, where()).toBe("ok");
          rollBack(tx);
        } else {
          expect([`${c}/${rb}`], where()).toSatisfy((x: string[]) => ["ok/transaction_not_open", "transaction_not_open/ok"].includes(x[0]));
          if (c === "ok") assignOffsets(tx);
          else rollBack(tx);
        }
      } else if (r < 0.93) {
        const advance = pick(ADVANCES);
        model.now += advance;
        trace.push(`clock +${advance}`);
      } else {
        // A sweep: timeouts without checkUrl, then the due checks (in id order), each answered.
        const expired = await expireUnchecked(db, model.now, 1000);
        const due = model.txs.filter((t) => t.state === "open" && t.checkIntervalMs === null && t.expiresAt <= model.now);
        expect(expired, where()).toBe(due.length);
        for (const t of due) rollBack(t);
        const claimed = (await claimDueChecks(db, model.now, 30_000, 1000)).sort((a, b) => (a.id < b.id ? -1 : 1));
        const dueChecks = model.txs
          .filter((t) => t.state === "open" && t.checkIntervalMs !== null && t.nextCheckAt <= model.now)
          .sort((a, b) => (a.id < b.id ? -1 : 1));
        expect(
          claimed.map((c) => c.id),
          where(),
        ).toEqual(dueChecks.map((t) => t.id));
        // A second claim at the same moment finds them leased.
        expect(await claimDueChecks(db, model.now, 30_000, 1000), where()).toEqual([]);
        const answers: string[] = [];
        for (const row of claimed) {
          const tx = dueChecks.find((t) => t.id === row.id)!;
          const answer: CheckAnswer = pick(["commit", "rollback", "unknown", "unknown", "unknown"] as const);
          answers.push(`${row.id.slice(-6)}:${answer}`);
          const recorded = await recordCheck(db, signer, row, answer, model.now);
          tx.checks++;
          if (answer === "commit") assignOffsets(tx);
          else if (answer === "rollback") rollBack(tx);
          else if (++tx.unknowns >= UNKNOWNS_BEFORE_ROLLBACK) rollBack(tx);
          else tx.nextCheckAt = model.now + tx.checkIntervalMs!;
          expect(recorded.state, where()).toBe(tx.state);
          if (answer === "commit") expect(recorded.committed?.offsets, where()).toEqual(tx.offsets);
        }
        trace.push(`sweep: expired ${expired}, checked ${answers.join(" ") || "none"}`);
      }

      // Every transaction's state and checks, and every partition's high watermark.
      for (const tx of model.txs) {
        const row = await findTransaction(db, tenantId, tx.id);
        expect({ id: tx.id, state: row?.state, checks: row?.checks }, where()).toEqual({ id: tx.id, state: tx.state, checks: tx.checks });
      }
      const hw = await rows<{ topic_id: string | number; partition: number; next_offset: string | number }>(
        db,
        sql`SELECT topic_id, partition, next_offset FROM partitions WHERE topic_id = ANY(${sql.param(topics.map((t) => t.id))}::bigint[]) ORDER BY topic_id, partition`,
      );
      expect(
        hw.map((h) => Number(h.next_offset)),
        where(),
      ).toEqual(model.logs.flatMap((t) => t.map((p) => p.length)));
      const pendingRows = await rows<{ n: string | number }>(
        db,
        sql`SELECT count(*) AS n FROM transaction_runs WHERE tenant_id = ${tenantId}`,
      );
      if (model.txs.every((t) => t.state !== "open" || t.pending.length === 0)) expect(Number(pendingRows[0].n), where()).toBe(0);
    }

    // The sweep is for every tenant: what this walk leaves open would be swept by the next one.
    for (const tx of model.txs) if (tx.state === "open") await rollbackTransaction(db, tenantId, tx.id, model.now);

    // Every partition reads back exactly the model's log.
    const cache = new BatchCache();
    for (const [t, topic] of topics.entries()) {
      for (let p = 0; p < topic.partitions; p++) {
        const read = await readFrom({ db, store, cache }, topic.id, p, 0, 10_000);
        expect(
          read.map((m) => decoder.decode(m.record.value)),
          where(),
        ).toEqual(model.logs[t][p]);
      }
    }
  }

  const only = process.env.TX_MODEL_SEED;
  for (const seed of only ? [Number(only)] : SEEDS) {
    it(`walk with seed ${seed}`, async () => {
      console.log(`transactions model: seed ${seed}, ${STEPS_PER_WALK} steps`);
      await walk(seed);
    }, 120_000);
  }
});
