/**
 * The soak (long mode only; CI runs its rule's tests, test/reliability/flatness.test.ts, not a
 * soak): one Node server, embedded (PGlite + folder) or on Postgres + s3rver, under a steady mixed
 * load — keyed produces, a consumer group receiving and acking, reads by offset, transactions
 * committed and rolled back, a webhook subscription to a local sink, and a topic created, filled
 * and deleted every minute — for `minutes`, while the server's process is sampled from outside
 * (/proc/<pid>/status: VmRSS, VmData, Threads; /proc/<pid>/fd: open descriptors). Nothing in the
 * server exposes its internals for this; its read cache's size is read from GET /metrics beside
 * them, to tell that cache filling to its bound from a leak. Verdict: ./flatness.ts.
 *   npm run reliability -- --soak [--target embedded|postgres] [--minutes 30]
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { api, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { prng } from "../support/prng.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { startWebhookSink } from "../support/webhook-sink.ts";
import { judgeFlat, RULES, type FlatVerdict } from "./flatness.ts";

export interface SoakOptions {
  target: "embedded" | "postgres";
  minutes: number;
  /**
   * The server's read cache bound, MiB (RESERVOIR_READ_CACHE_BYTES; the soak's default 8, the
   * server's 256). The rule judges what comes after warm-up (the first 20 %), so a bounded
   * structure must reach its bound within it: at the soak's 35-65 requests/s on the shared
   * machine, the read cache fills at 2.6-4.8 MiB a minute (decoded), so 64 MiB takes 13-25
   * minutes of a 30-minute soak (anomaly 6) and 8 MiB under 4. The bound itself is proven by
   * test/unit/batch-cache.test.ts and test/integration/read-cache-bound.test.ts.
   */
  readCacheMiB: number;
  seed: number;
  samplesPath: string;
  log: (line: string) => void;
}

export interface Sample {
  atS: number;
  rssMiB: number;
  dataMiB: number;
  threads: number;
  fds: number;
  requests: number;
  /**
   * The server's read cache, MiB (GET /metrics, reservoir_read_cache_bytes): not judged — a
   * bounded structure, logged so that a rise of RSS can be set against it filling to its bound.
   */
  readCacheMiB: number;
  /**
   * GET requests the server has made to the object store (reservoir_object_store_gets_total):
   * not judged — reads that miss the read cache, whose concurrency the store's keep-alive
   * sockets (and so the descriptors) follow.
   */
  storeGets: number;
}

export interface SoakResult {
  samples: Sample[];
  verdicts: Record<keyof typeof RULES, FlatVerdict>;
  requests: number;
  serverErrors: number;
  delivered: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** VmRSS, VmData (MiB) and Threads of a process, read from /proc. */
function sampleProcess(pid: number): Omit<Sample, "atS" | "requests" | "readCacheMiB" | "storeGets"> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
  return {
    rssMiB: Math.round(field("VmRSS") / 102.4) / 10,
    dataMiB: Math.round(field("VmData") / 102.4) / 10,
    threads: field("Threads"),
    fds: readdirSync(`/proc/${pid}/fd`).length,
  };
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  let server: NodeServer | undefined;
  const sink = await startWebhookSink();
  try {
    const env: Record<string, string> = {
      RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
      RESERVOIR_DISPATCH_INTERVAL_MS: "500",
      RESERVOIR_READ_CACHE_BYTES: String(Math.round(o.readCacheMiB * 1024 * 1024)),
    };
    if (o.target === "postgres") {
      db = await freshDatabase();
      s3 = await startS3();
      Object.assign(env, { DATABASE_URL: db.url }, s3.env);
    }
    // RESERVOIR_SOAK_NODE_ARGS: extra Node flags for the server under soak, space-separated, to look
    // inside it when a resource does not level off (e.g. "--heapsnapshot-signal=SIGUSR2", or
    // "--import /path/to/probe.mjs"); the sampling from outside stays the verdict.
    const nodeArgs = (process.env.RESERVOIR_SOAK_NODE_ARGS ?? "").split(" ").filter(Boolean);
    server = await startNodeServer({ env, label: `soak-${o.target}`, readyTimeoutMs: 180_000, nodeArgs });
    const tenant = await api(server.baseUrl, server.adminToken).post("/v1/admin/tenants", { name: "soak" });
    const client: Api = api(server.baseUrl, tenant.body.apiKey);
    await client.put("/v1/topics/soak", { partitions: 4 });
    await client.put("/v1/topics/soak/groups/g", { startAt: "earliest" });
    await client.put("/v1/topics/soak/subscriptions/s", {
      url: sink.url("/hook"),
      startAt: "latest",
      backoff: { initialSeconds: 0.5, maxSeconds: 2 },
    });

    let requests = 0;
    let serverErrors = 0;
    const errors: string[] = [];
    const send = async (method: string, path: string, body?: unknown) => {
      requests++;
      try {
        const res = await client.request(method, path, {
          ...(body !== undefined ? { json: body } : {}),
          allow5xx: true,
          timeoutMs: 30_000,
        });
        if (res.status >= 500) {
          serverErrors++;
          if (errors.length < 20) errors.push(`${method} ${path}: ${res.status} ${res.text.slice(0, 200)}`);
        }
        return res;
      } catch (err) {
        serverErrors++;
        if (errors.length < 20) errors.push(`${method} ${path}: ${(err as Error).message}`);
        return undefined;
      }
    };

    const endAt = Date.now() + o.minutes * 60_000;
    const running = () => Date.now() < endAt;
    const producer = async (n: number) => {
      const rand = prng(o.seed * 13 + n);
      for (let i = 0; running(); i++) {
        const messages = Array.from({ length: 1 + Math.floor(rand() * 10) }, (_, j) => ({
          value: `m-${n}-${i}-${j}-${"x".repeat(Math.floor(rand() * 512))}`,
          key: `k${Math.floor(rand() * 20)}`,
          ...(rand() < 0.3 ? { idempotencyKey: `p${n}-${i}-${j}` } : {}),
        }));
        await send("POST", "/v1/topics/soak/messages", { messages });
        await sleep(20);
      }
    };
    const consumer = async () => {
      while (running()) {
        const r = await send("POST", "/v1/topics/soak/groups/g/receive", { max: 50, waitMs: 500 });
        const receipts = (r?.status === 200 ? (r.body.messages as { receipt: string }[]) : []).map((m) => m.receipt);
        if (receipts.length > 0) await send("POST", "/v1/topics/soak/groups/g/ack", { receipts });
      }
    };
    const reader = async () => {
      const rand = prng(o.seed * 17);
      while (running()) {
        const p = Math.floor(rand() * 4);
        const info = await send("GET", "/v1/topics/soak");
        const hw: number = info?.body?.highWatermarks?.[p] ?? 0;
        await send("GET", `/v1/topics/soak/partitions/${p}/messages?offset=${Math.floor(rand() * Math.max(1, hw))}&limit=100`);
        await sleep(50);
      }
    };
    const transactor = async () => {
      const rand = prng(o.seed * 19);
      for (let i = 0; running(); i++) {
        const t = await send("POST", "/v1/transactions", { timeoutSeconds: 30 });
        if (t?.status === 201) {
          await send("POST", "/v1/topics/soak/messages", {
            transactionId: t.body.transactionId,
            messages: [{ value: `t${i}`, key: "tx" }],
          });
          const commit = rand() < 0.7;
          await send("POST", `/v1/transactions/${t.body.transactionId}/${commit ? "commit" : "rollback"}`, commit ? {} : undefined);
        }
        await sleep(200);
      }
    };
    const churn = async () => {
      for (let i = 0; running(); i++) {
        await send("PUT", `/v1/topics/churn-${i}`, { partitions: 2 });
        await send("POST", `/v1/topics/churn-${i}/messages`, { messages: Array.from({ length: 50 }, (_, j) => ({ value: `c${j}` })) });
        await send("POST", `/v1/topics/churn-${i}/groups/g/receive`, { max: 10 });
        await send("DELETE", `/v1/topics/churn-${i}`);
        for (let s = 0; s < 60 && running(); s++) await sleep(1_000);
      }
    };

    const admin = api(server.baseUrl, server.adminToken);
    const scrape = async (): Promise<Pick<Sample, "readCacheMiB" | "storeGets">> => {
      const r = await admin
        .get("/metrics", { headers: { accept: "text/plain" }, allow5xx: true, timeoutMs: 10_000 })
        .catch(() => undefined);
      const value = (name: string) => {
        const v = r?.status === 200 ? new RegExp(`^${name} (\\S+)$`, "m").exec(r.text)?.[1] : undefined;
        return v === undefined ? Number.NaN : Number(v);
      };
      return {
        readCacheMiB: Math.round(value("reservoir_read_cache_bytes") / 104_857.6) / 10,
        storeGets: value("reservoir_object_store_gets_total"),
      };
    };
    const samples: Sample[] = [];
    const started = Date.now();
    const sampleEveryMs = o.minutes >= 10 ? 10_000 : 2_000;
    const sampler = async () => {
      while (running()) {
        const atS = Math.round((Date.now() - started) / 1000);
        samples.push({ atS, ...sampleProcess(server!.pid), requests, ...(await scrape()) });
        const last = samples[samples.length - 1]!;
        if (samples.length % 6 === 1)
          o.log(
            `soak ${o.target} t=${last.atS}s rss=${last.rssMiB}MiB data=${last.dataMiB}MiB fds=${last.fds} threads=${last.threads} readCache=${last.readCacheMiB}MiB storeGets=${last.storeGets} requests=${requests} 5xx=${serverErrors}`,
          );
        await sleep(sampleEveryMs);
      }
    };
    await Promise.all([producer(0), producer(1), producer(2), consumer(), consumer(), reader(), transactor(), churn(), sampler()]);
    writeFileSync(o.samplesPath, JSON.stringify({ options: { ...o, log: undefined }, samples, errors }, null, 1));
    const verdicts = Object.fromEntries(
      (Object.keys(RULES) as (keyof typeof RULES)[]).map((k) => [
        k,
        judgeFlat(
          samples.map((s) => s[k]),
          RULES[k],
        ),
      ]),
    ) as Record<keyof typeof RULES, FlatVerdict>;
    for (const e of errors) o.log(`soak error: ${e}`);
    return { samples, verdicts, requests, serverErrors, delivered: sink.requests("/hook").length };
  } finally {
    await server?.stop().catch(() => {});
    await sink.close().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }
}
