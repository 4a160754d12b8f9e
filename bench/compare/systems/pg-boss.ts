/**
 * pg-boss (v10, the newest major that runs on Node 20) on the same Postgres server as
 * reservoir-s3, in a fresh database per setup. Its fastest honest path: `insert()` (one
 * multi-row INSERT per call, one commit) of `batch` jobs with `window` inserts in flight; a
 * job's publish latency is its batch's insert → commit time. Consume: `consumers` loops of
 * `fetch(batchSize)` (SELECT … FOR UPDATE SKIP LOCKED) → `complete(ids)` per batch.
 *
 * pg-boss has no partitions: a workload of P partitions gets P queues (each a partition of
 * pg-boss's job table), filled batch by batch round-robin, and the consumers spread over them.
 * A payload travels as a JSON string (`data.v`): pg-boss stores job data as jsonb, and the
 * harness payloads are UTF-8 text (Reservoir's adapter sends them as text too).
 */
import PgBoss from "pg-boss";
import { freshDatabase, type FreshDatabase } from "../../../test/support/postgres.ts";
import { Unavailable, type CostCounters, type PublishOutcome, type SystemUnderTest, type Workload } from "../system.ts";
import { publishInBatches } from "../batched-publish.ts";

export interface PgBossOptions {
  /** Jobs per insert() (one INSERT statement, one commit). */
  batch?: number;
  /** insert() calls in flight. */
  window?: number;
  /** fetch → complete loops. */
  consumers?: number;
  /** Jobs per fetch(). */
  fetchBatch?: number;
}

const LINGER_MS = 5; // fixed-rate mode: a batch waits at most this long for company (Reservoir's default)
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function pgBoss(options: PgBossOptions = {}): SystemUnderTest {
  const batch = options.batch ?? 1000;
  const window = options.window ?? 8;
  const consumers = options.consumers ?? 4;
  const fetchBatch = options.fetchBatch ?? 1000;
  let db: FreshDatabase | undefined;
  let boss: PgBoss | undefined;
  let queues: string[] = [];
  let inserts = 0; // publish-side commits (one per insert), comparable with Reservoir's produce commits

  return {
    name: "pg-boss",
    settings: {
      version: "pg-boss 10.4.2",
      durability: "Postgres defaults: synchronous_commit on, fsync on (a job exists once its INSERT committed)",
      partitions: "none in pg-boss: P queues (partitions of its job table), batches round-robin",
      jobsPerInsert: batch,
      insertsInFlight: window,
      lingerMs: LINGER_MS,
      consumers,
      fetchBatch,
      completion: "complete(ids) per fetched batch",
      poolMax: 20,
    },

    async setup(workload: Workload) {
      try {
        db = await freshDatabase();
      } catch (err) {
        throw new Unavailable(`Postgres: ${(err as Error).message}`);
      }
      if (db.kind !== "postgres") {
        await db.drop();
        throw new Unavailable("pg-boss needs a real Postgres server (only the PGlite fallback answered)");
      }
      // Pool as large as Reservoir's (DATABASE_POOL_MAX 20); no cron scheduler (unused here).
      boss = new PgBoss({ connectionString: db.url, max: 20, schedule: false });
      boss.on("error", (err) => console.error("pg-boss:", err));
      await boss.start();
      queues = Array.from({ length: workload.partitions }, (_, p) => `${workload.name}-p${p}`);
      for (const q of queues) await boss.createQueue(q);
      inserts = 0;
    },

    async publish(count, payload, { ratePerSec, onAck } = {}): Promise<PublishOutcome> {
      const b = boss!;
      let batches = 0;
      return publishInBatches({
        count,
        batch,
        window,
        lingerMs: LINGER_MS,
        ratePerSec,
        onAck,
        send: async (first, n) => {
          const name = queues[batches++ % queues.length];
          await b.insert(Array.from({ length: n }, (_, j) => ({ name, data: { v: decoder.decode(payload(first + j)) } })));
          inserts++;
        },
      });
    },

    async consume(count, onMessage) {
      const b = boss!;
      let received = 0;
      const loop = async (c: number) => {
        // Consumer c starts on queue c and moves on round-robin, so every queue gets drained.
        for (let k = c; received < count; k++) {
          const name = queues[k % queues.length];
          const jobs = await b.fetch<{ v: string }>(name, { batchSize: fetchBatch });
          if (jobs.length === 0) {
            if (k % queues.length === queues.length - 1) await sleep(5); // all empty: messages still on their way
            continue;
          }
          received += jobs.length;
          if (onMessage) for (const job of jobs) onMessage(job.data.v); // the text as stored, not re-encoded
          await b.complete(
            name,
            jobs.map((job) => job.id),
          );
          k--; // stay on a queue while it has jobs
        }
      };
      await Promise.all(Array.from({ length: consumers }, (_, c) => loop(c)));
    },

    async cost(): Promise<CostCounters> {
      // No object store. A "flush" is one insert() = one commit; consume transactions (fetch and
      // complete, two per batch) are not in `commits`, as Reservoir's counters are produce-side too.
      return { commits: inserts, flushes: inserts };
    },

    async teardown() {
      await boss?.stop({ graceful: false, wait: true }).catch(() => {});
      boss = undefined;
      await db?.drop();
      db = undefined;
    },
  };
}
