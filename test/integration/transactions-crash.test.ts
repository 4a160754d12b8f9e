// Exactly-once consume → transform → produce through transactions, with a kill -9 of the Node
// server (Postgres + s3rver) between produce and commit, then a restart on the same database,
// bucket and data dir. What the crash left open must end as the contract says — timed out
// (no checkUrl: rolled back), or checked back (its checkUrl decides) — and nothing may be half
// applied: after the consumer has finished its work, every input message has exactly one
// transformed output message, the group has acked everything once, and a half message the check
// committed is there exactly once.

import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { readAll } from "../support/topics.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";

const INPUT = "xf-in";
const OUTPUT = "xf-out";
const GROUP = "xf";
const INPUT_MESSAGES = 30;
const BATCH = 4;
const VISIBILITY_S = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Msg = Record<string, any>;

describe("exactly-once consume → transform → produce across a kill -9 between produce and commit", () => {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  let sink: WebhookSink | undefined;
  let server: NodeServer | undefined;
  let client: Api;

  beforeAll(async () => {
    db = await freshDatabase();
    s3 = await startS3();
    sink = await startWebhookSink();
    server = await startNodeServer({
      env: { DATABASE_URL: db.url, ...s3.env, RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" },
      label: "tx-crash-server",
    });
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "tx-crash" });
    assertStatus(tenant, 201);
    client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put(`/v1/topics/${INPUT}`, { partitions: 1 }), 201);
    assertStatus(await client.put(`/v1/topics/${OUTPUT}`, { partitions: 2 }), 201);
    assertStatus(await client.put(`/v1/topics/${INPUT}/groups/${GROUP}`, { startAt: "earliest" }), 201);
    const messages = Array.from({ length: INPUT_MESSAGES }, (_, i) => ({ value: String(i), key: `k${i % 5}` }));
    assertStatus(await client.post(`/v1/topics/${INPUT}/messages`, { messages }), 200);
  }, 180_000);

  afterAll(async () => {
    await server?.stop().catch(() => {});
    await sink?.close().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  beforeEach(({ onTestFailed }) => {
    const mark = server?.logs().length ?? 0;
    onTestFailed(() =>
      console.error(`----- server output during the failed test -----\n${(server?.logs() ?? "").slice(mark).slice(-30_000)}`),
    );
  });

  const transform = (m: Msg) => ({ value: `x${Number(m.value) * 2}`, key: m.key, headers: { "x-src": String(m.offset) } });

  async function receiveBatch(): Promise<Msg[]> {
    const res = await client.post(`/v1/topics/${INPUT}/groups/${GROUP}/receive`, { max: BATCH, visibilityTimeoutSeconds: VISIBILITY_S });
    assertStatus(res, 200);
    return res.body.messages;
  }

  async function begin(body: Record<string, unknown>): Promise<{ transactionId: string; checkSecret?: string }> {
    const res = await client.post("/v1/transactions", body);
    assertStatus(res, 201);
    return res.body;
  }

  async function produceInto(id: string, topic: string, messages: Msg[]): Promise<void> {
    const res = await client.post(`/v1/topics/${topic}/messages`, { messages, transactionId: id });
    assertStatus(res, 202);
  }

  /** One exactly-once step: receive, transform, produce and ack in one transaction. Returns how many it processed. */
  async function step(): Promise<number> {
    const batch = await receiveBatch();
    if (batch.length === 0) return 0;
    const tx = await begin({ timeoutSeconds: 30 });
    await produceInto(tx.transactionId, OUTPUT, batch.map(transform));
    const res = await client.post(`/v1/transactions/${tx.transactionId}/commit`, {
      acks: [{ topic: INPUT, group: GROUP, receipts: batch.map((m) => m.receipt) }],
    });
    if (res.status === 409 && res.body.code === "receipt_expired") {
      // The leases ended first (a loaded machine): nothing took effect; give the transaction up.
      assertStatus(await client.post(`/v1/transactions/${tx.transactionId}/rollback`), 200);
      return 0;
    }
    assertStatus(res, 200);
    return batch.length;
  }

  async function state(id: string) {
    const res = await client.get(`/v1/transactions/${id}`);
    assertStatus(res, 200);
    return res.body as { state: string; checks: number };
  }

  it("ends what the crash left open as the contract says, and finishes with every input transformed exactly once", async () => {
    // Some work done before the crash.
    let processed = 0;
    for (let i = 0; i < 3; i++) processed += await step();
    expect(processed).toBeGreaterThan(0);

    // In flight at the kill: (A) a consume-transform transaction without checkUrl, (B) one whose
    // check answers rollback (the consumer did not finish), (C) a plain half message whose check
    // answers commit (its local transaction did).
    sink!.on("/check-b", { status: 200, headers: { "content-type": "application/json" }, body: '{"action":"rollback"}' });
    sink!.on("/check-c", { status: 200, headers: { "content-type": "application/json" }, body: '{"action":"commit"}' });
    const batchA = await receiveBatch();
    const txA = await begin({ timeoutSeconds: 2 });
    await produceInto(txA.transactionId, OUTPUT, batchA.map(transform));
    const batchB = await receiveBatch();
    const txB = await begin({ timeoutSeconds: 2, checkUrl: sink!.url("/check-b"), checkIntervalSeconds: 1 });
    await produceInto(txB.transactionId, OUTPUT, batchB.map(transform));
    const txC = await begin({ timeoutSeconds: 2, checkUrl: sink!.url("/check-c"), checkIntervalSeconds: 1 });
    await produceInto(txC.transactionId, OUTPUT, [{ value: "half", headers: { "x-src": "half" } }]);
    expect(batchA.length + batchB.length).toBeGreaterThan(0);

    await server!.kill("SIGKILL");
    await server!.restart();

    // After the restart the sweep ends them: A times out, B and C are checked back.
    for (const [tx, expected] of [
      [txA, "rolled_back"],
      [txB, "rolled_back"],
      [txC, "committed"],
    ] as const) {
      const deadline = Date.now() + 30_000;
      let s = await state(tx.transactionId);
      while (s.state === "open" && Date.now() < deadline) {
        await sleep(100);
        s = await state(tx.transactionId);
      }
      expect(s.state, `${tx.transactionId}: ${JSON.stringify(s)}`).toBe(expected);
    }
    for (const [path, tx] of [
      ["/check-b", txB],
      ["/check-c", txC],
    ] as const) {
      const [req] = sink!.requests(path);
      expect(req?.json).toEqual({ transactionId: tx.transactionId });
      expect(() => new Webhook(tx.checkSecret!).verify(req.body, req.headers)).not.toThrow();
    }
    // The rolled-back transactions' acks were never applied: their messages come back.
    assertProblem(await client.post(`/v1/transactions/${txA.transactionId}/commit`), 409, "transaction_not_open");

    // The consumer finishes its work (leases of A and B end after VISIBILITY_S and redeliver).
    const deadline = Date.now() + 60_000;
    for (;;) {
      processed += await step();
      const view = await client.get(`/v1/topics/${INPUT}/groups/${GROUP}`);
      assertStatus(view, 200);
      const p = view.body.partitions[0];
      if (p.committedOffset === INPUT_MESSAGES && p.inFlight === 0) break;
      if (Date.now() > deadline) throw new Error(`the consumer did not finish: ${describeResponse(view)}`);
      if (p.inFlight > 0) await sleep(200);
    }

    const output = [...(await readAll(client, OUTPUT, 0)), ...(await readAll(client, OUTPUT, 1))];
    const bySource = new Map<string, Msg[]>();
    for (const m of output) bySource.set(m.headers["x-src"], [...(bySource.get(m.headers["x-src"]) ?? []), m]);
    const duplicated = [...bySource].filter(([, ms]) => ms.length > 1).map(([src]) => src);
    expect(duplicated, "input messages transformed more than once").toEqual([]);
    const missing = Array.from({ length: INPUT_MESSAGES }, (_, i) => String(i)).filter((src) => !bySource.has(src));
    expect(missing, "input messages never transformed").toEqual([]);
    expect(bySource.get("half")?.map((m) => m.value)).toEqual(["half"]);
    expect(output).toHaveLength(INPUT_MESSAGES + 1);
    for (let i = 0; i < INPUT_MESSAGES; i++) expect(bySource.get(String(i))![0].value).toBe(`x${i * 2}`);
    expect(processed).toBe(INPUT_MESSAGES);
  }, 240_000);
});
