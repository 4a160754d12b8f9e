// Two Node server processes on one Postgres database serving one tenant: a key revoked through
// one server fails on the very next request at the other (a key check's answer is never reused;
// a produce that left its check to its flush commit is checked there), a quota
// holds across both (the token bucket lives in Postgres, not in either process), and the
// tenant's usage counts the requests both granted, and only those.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, type Api } from "../support/http.ts";
import { printOutputOnFailure, startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, requireMultipleClients, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";

describe("two Node servers sharing one tenant's keys and quotas", () => {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  const servers: NodeServer[] = [];
  let admins: Api[] = [];

  beforeAll(async () => {
    db = await freshDatabase();
    requireMultipleClients(db, "two servers on one database");
    s3 = await startS3();
    const env = { DATABASE_URL: db.url, ...s3.env, RESERVOIR_ADMIN_TOKEN: `rsv_admin_tenancy_${Date.now()}` };
    // One after the other, so that the second start finds the schema migrated.
    servers.push(await startNodeServer({ env, label: "server-A" }));
    servers.push(await startNodeServer({ env, label: "server-B" }));
    admins = servers.map((s) => api(s.baseUrl, s.adminToken));
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  beforeEach(({ onTestFailed }) => printOutputOnFailure(onTestFailed, servers));

  async function newTenant(name: string, quotas?: Record<string, number>) {
    const res = await admins[0].post("/v1/admin/tenants", { name, ...(quotas && { quotas }) });
    assertStatus(res, 201);
    return { tenantId: res.body.tenantId as string, clients: servers.map((s) => api(s.baseUrl, res.body.apiKey)) };
  }

  it("a key revoked through one server answers 401 at the other on its very next request", async () => {
    const t = await newTenant("revocation");
    const key = await admins[0].post(`/v1/admin/tenants/${t.tenantId}/keys`, { scopes: ["consume"] });
    assertStatus(key, 201);
    const [atA, atB] = servers.map((s) => api(s.baseUrl, key.body.apiKey));
    // Both servers have just served the key.
    assertStatus(await atA.get("/v1/topics"), 200);
    assertStatus(await atB.get("/v1/topics"), 200);
    assertStatus(await admins[0].delete(`/v1/admin/tenants/${t.tenantId}/keys/${key.body.keyId}`), 204);
    assertProblem(await atB.get("/v1/topics"), 401, "unauthorized");
    assertProblem(await atA.get("/v1/topics"), 401, "unauthorized");
    // The tenant's first key still works at both.
    for (const client of t.clients) assertStatus(await client.get("/v1/topics"), 200);
  });

  it("a produce key revoked through one server stores nothing at the other, whose produces had left their key check to the commit", async () => {
    const t = await newTenant("produce-revocation");
    const topic = "revoked";
    assertStatus(await t.clients[0].put(`/v1/topics/${topic}`, {}), 201);
    const key = await admins[0].post(`/v1/admin/tenants/${t.tenantId}/keys`, { scopes: ["produce"] });
    assertStatus(key, 201);
    const [atA, atB] = servers.map((s) => api(s.baseUrl, key.body.apiKey));
    // Each server has checked the key and then produced with it on the commit's check alone.
    for (const client of [atA, atB, atA, atB])
      assertStatus(await client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "ok" }] }), 200);
    assertStatus(await admins[0].delete(`/v1/admin/tenants/${t.tenantId}/keys/${key.body.keyId}`), 204);
    assertProblem(await atB.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "after" }] }), 401, "unauthorized");
    assertProblem(await atA.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "after" }] }), 401, "unauthorized");
    expect((await t.clients[1].get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([4]);
    const usage = await admins[1].get("/v1/admin/usage", { query: { tenant: t.tenantId } });
    const sum = (field: string) => usage.body.usage.reduce((n: number, r: Record<string, number>) => n + r[field], 0);
    // The topic's PUT, four produces and the GET; the refused produces are not counted.
    expect([sum("messagesIn"), sum("requests")]).toEqual([4, 6]);
  });

  it("a requestsPerSecond quota holds across both servers: together they grant at most the burst plus the refill", async () => {
    const RATE = 5;
    const t = await newTenant("shared-quota", { requestsPerSecond: RATE });
    // Four clients per server send back to back for about two seconds (the loop's length only;
    // the bound below is computed from the time actually taken).
    const granted = [0, 0];
    let refused = 0;
    const started = Date.now();
    const runClient = async (server: number) => {
      while (Date.now() - started < 2_000) {
        const res = await t.clients[server].get("/v1/topics");
        if (res.status === 200) granted[server]++;
        else {
          assertProblem(res, 429, "quota_exceeded");
          expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
          refused++;
        }
      }
    };
    await Promise.all([0, 0, 0, 0, 1, 1, 1, 1].map(runClient));
    const elapsedS = (Date.now() - started) / 1000;
    const total = granted[0] + granted[1];
    // One bucket: the burst (RATE) plus RATE per second elapsed. Two instance-local buckets would
    // each grant that much, twice the bound.
    const bound = RATE + Math.ceil(RATE * elapsedS);
    console.log(`granted A=${granted[0]} B=${granted[1]} (bound ${bound} in ${elapsedS.toFixed(2)} s), refused ${refused}`);
    expect(total).toBeLessThanOrEqual(bound);
    expect(total).toBeGreaterThanOrEqual(RATE);
    expect(granted[0]).toBeGreaterThan(0);
    expect(granted[1]).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    // Usage counts exactly the granted requests, wherever they were served.
    const usage = await admins[1].get("/v1/admin/usage", { query: { tenant: t.tenantId } });
    assertStatus(usage, 200);
    expect(usage.body.usage.reduce((n: number, r: { requests: number }) => n + r.requests, 0)).toBe(total);
  });
});
