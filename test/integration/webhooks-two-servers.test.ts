// Two Node servers on one Postgres database and one S3 bucket both dispatch the same webhook
// subscription (each LISTENs for the other's commits and sweeps). Leases decide who delivers:
// every message must reach the endpoint exactly once (it always answers 200 well within the
// timeout), both instances must have competed for it (claimed), and maxConcurrency holds
// across both. (Which one delivers is not fixed: an instance that keeps up keeps the slots.)

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertStatus, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, requireMultipleClients, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { startWebhookSink, type SinkRequest, type WebhookSink } from "../support/webhook-sink.ts";

const MESSAGES = 300;
const MAX_CONCURRENCY = 4;

/** The most requests the sink had open at one moment. */
function peakConcurrency(requests: SinkRequest[]): number {
  const events = requests.flatMap((r) => [
    [r.arrivedAt, 1],
    [r.respondedAt ?? Number.POSITIVE_INFINITY, -1],
  ]);
  // At equal times an end comes before a start: the sender saw the answer first.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of events) {
    open += d;
    peak = Math.max(peak, open);
  }
  return peak;
}

describe("two Node servers dispatching one subscription", () => {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  let sink: WebhookSink | undefined;
  const servers: NodeServer[] = [];
  let clients: Api[] = [];
  let admins: Api[] = [];

  beforeAll(async () => {
    db = await freshDatabase();
    requireMultipleClients(db, "two servers on one database");
    s3 = await startS3();
    sink = await startWebhookSink();
    const env = {
      DATABASE_URL: db.url,
      ...s3.env,
      RESERVOIR_ADMIN_TOKEN: `rsv_admin_two_${Date.now()}`,
      RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
      RESERVOIR_DISPATCH_INTERVAL_MS: "200",
    };
    servers.push(await startNodeServer({ env, label: "server-A" }));
    servers.push(await startNodeServer({ env, label: "server-B" }));
    admins = servers.map((s) => api(s.baseUrl, s.adminToken));
    const tenant = await admins[0].post("/v1/admin/tenants", { name: "two-dispatchers" });
    assertStatus(tenant, 201);
    clients = servers.map((s) => api(s.baseUrl, tenant.body.apiKey));
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
    await sink?.close().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  it("delivers every message exactly once while both instances claim, within maxConcurrency", async () => {
    assertStatus(await clients[0].put("/v1/topics/events", { partitions: 4 }), 201);
    // Slow enough answers that both instances have claims open at once.
    sink!.on("/hook", { status: 200, delayMs: 20 });
    const created = await clients[0].put("/v1/topics/events/subscriptions/hook", {
      url: sink!.url("/hook"),
      maxConcurrency: MAX_CONCURRENCY,
    });
    assertStatus(created, 201);

    // Produced through both servers, a few requests at a time.
    for (let i = 0; i < MESSAGES; i += 20) {
      await Promise.all(
        [0, 1].map((s) =>
          clients[s].post("/v1/topics/events/messages", {
            messages: Array.from({ length: 10 }, (_, j) => ({ value: `m${i + s * 10 + j}` })),
          }),
        ),
      ).then((answers) => {
        for (const a of answers) assertStatus(a, 200);
      });
    }

    const delivered = await sink!.waitFor("/hook", (rs) => new Set(rs.map((r) => r.headers["webhook-id"])).size >= MESSAGES, 60_000);
    // No wait for stragglers: once the subscription is drained (lag 0, inFlight 0) both
    // instances have settled every attempt they made, each answered by the sink, so the sink's
    // record below is complete; a duplicate would have been an attempt of its own.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const view = await clients[0].get("/v1/topics/events/subscriptions/hook");
      assertStatus(view, 200);
      if (view.body.lag === 0 && view.body.inFlight === 0) break;
      if (Date.now() > deadline) throw new Error(`the subscription did not drain: ${JSON.stringify(view.body)}`);
      await new Promise((r) => setTimeout(r, 100)); // the poll's interval
    }
    const all = sink!.requests("/hook");
    const ids = all.map((r) => r.headers["webhook-id"]);
    expect(new Set(ids).size).toBe(MESSAGES);
    expect(all.length, "no message delivered twice").toBe(MESSAGES);
    expect(new Set(all.map((r) => r.json.value)).size).toBe(MESSAGES);
    expect(delivered.every((r) => r.json.attempt === 1)).toBe(true);
    expect(peakConcurrency(all)).toBeLessThanOrEqual(MAX_CONCURRENCY);

    const counters = await Promise.all(admins.map(async (a) => (await a.get("/v1/admin/metrics")).body.webhooks as Record<string, number>));
    expect(counters[0].attempts + counters[1].attempts).toBe(MESSAGES);
    expect(counters[0].claims, "server A claimed").toBeGreaterThan(0);
    expect(counters[1].claims, "server B claimed").toBeGreaterThan(0);

    const view = await clients[1].get("/v1/topics/events/subscriptions/hook");
    assertStatus(view, 200);
    expect(view.body).toMatchObject({ lag: 0, inFlight: 0, deadLettered: 0 });
  }, 120_000);
});
