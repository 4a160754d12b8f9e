// Regression (found by the reliability campaign, docs/reliability.md): a Postgres connection that
// dies while a transaction is in flight killed the Node server. postgres.js 3.4.9 answers the
// failed statement with CONNECTION_CLOSED, then its `begin()` writes a ROLLBACK on the closed
// connection; the write is deferred to a setImmediate that dereferences the nulled socket
// (porsager/postgres#1066, #1154, #1208) and throws outside any promise: the process exits.
// The server now patches that write path when it loads the driver
// (functions/runtime/node/postgres-write-guard.ts). Here: transactions held in flight by a stalled
// link, then every connection cut, then backends terminated; the server keeps running and serves.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertStatus, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { type PgFaultProxy, startPgFaultProxy, terminateBackends } from "./faults/pg-fault-proxy.ts";
import { startServerBehindPgProxy, type ServerBehindPgProxy } from "./faults/server-behind-pg-proxy.ts";

describe("a Postgres connection dying under an open transaction does not kill the Node server", () => {
  let fx: ServerBehindPgProxy | undefined;
  let client: Api;

  beforeAll(async () => {
    fx = await startServerBehindPgProxy({ label: "pg-drop", topic: { partitions: 2 } });
    client = fx.client;
    assertStatus(await client.post("/v1/topics/t/messages", { messages: [{ value: "warm" }] }), 200);
  }, 180_000);

  afterAll(async () => {
    await fx?.close();
  }, 60_000);

  /** Produces until one is acknowledged (the pool reconnects); every answer is 200 or a retryable 503. */
  async function produceOnce(value: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const res = await client.post("/v1/topics/t/messages", { messages: [{ value }] }, { allow5xx: true, timeoutMs: 30_000 });
      expect([200, 503], res.text).toContain(res.status);
      if (res.status === 200) return;
    }
    throw new Error(`no produce of ${value} was acknowledged in 20 attempts`);
  }

  it("survives every connection cut while produces are inside their transactions", async () => {
    for (let round = 0; round < 3; round++) {
      // Held by the stalled link: the produces' statements are sent and unanswered when the cut comes.
      fx!.proxy.stall(60_000);
      const inFlight = Array.from({ length: 6 }, (_, i) =>
        client
          .post("/v1/topics/t/messages", { messages: [{ value: `r${round}-${i}` }] }, { allow5xx: true, timeoutMs: 30_000 })
          .catch((e: Error) => e),
      );
      // The server has sent the transaction's statements into the stalled link.
      await fx!.proxy.whenHoldingServerBytes();
      fx!.proxy.dropAll();
      fx!.proxy.stall(0);
      for (const res of await Promise.all(inFlight)) {
        expect(
          res instanceof Error ? res.message : [200, 503].includes(res.status),
          String(res instanceof Error ? res.message : res.text),
        ).toBe(true);
      }
      expect(fx!.server.running(), fx!.server.logs().slice(-3000)).toBe(true);
      await produceOnce(`after-cut-${round}`);
    }
    expect(fx!.server.logs()).not.toMatch(/reading 'write'/);
  }, 120_000);

  it("survives connections cut while they start up (their first query)", async () => {
    for (let round = 0; round < 3; round++) {
      fx!.proxy.dropAll();
      fx!.proxy.cutNewConnectionsAtFirstQuery(4);
      const load = Array.from({ length: 8 }, (_, i) =>
        client
          .post("/v1/topics/t/messages", { messages: [{ value: `s${round}-${i}` }] }, { allow5xx: true, timeoutMs: 30_000 })
          .catch((e: Error) => e),
      );
      await Promise.all(load);
      expect(fx!.server.running(), fx!.server.logs().slice(-3000)).toBe(true);
      await produceOnce(`after-startup-cut-${round}`);
      fx!.proxy.cutNewConnectionsAtFirstQuery(0);
    }
    expect(fx!.server.running(), fx!.server.logs().slice(-3000)).toBe(true);
  }, 120_000);

  it("survives pg_terminate_backend of every backend under load", async () => {
    for (let round = 0; round < 3; round++) {
      const load = Array.from({ length: 8 }, (_, i) =>
        client
          .post("/v1/topics/t/messages", { messages: [{ value: `k${round}-${i}` }] }, { allow5xx: true, timeoutMs: 30_000 })
          .catch((e: Error) => e),
      );
      await terminateBackends(fx!.db.url);
      await Promise.all(load);
      expect(fx!.server.running(), fx!.server.logs().slice(-3000)).toBe(true);
      await produceOnce(`after-terminate-${round}`);
    }
    expect(fx!.server.logs()).not.toMatch(/reading 'write'/);
  }, 120_000);
});

// Regression (the campaign's long mode, seed 11: docs/reliability.md, anomaly 5): an instance
// restarted while Postgres refused connections exited at start-up (its migration failed with
// service_unavailable); now start-up waits for the database, within a bound.
describe("a Node server started while Postgres refuses connections waits for it", () => {
  let db: FreshDatabase | undefined;
  let proxy: PgFaultProxy | undefined;
  let server: NodeServer | undefined;

  afterAll(async () => {
    await server?.stop().catch(() => {});
    await proxy?.close().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  it("comes up once the database answers, and serves", async () => {
    db = await freshDatabase({ migrated: false });
    proxy = await startPgFaultProxy(db.url);
    // Refused until the server says it met the refusal (however long its start-up takes), then let through.
    proxy.refuse(Number.POSITIVE_INFINITY);
    let told!: () => void;
    const waiting = new Promise<void>((resolve) => (told = resolve));
    const starting = startNodeServer({
      env: { DATABASE_URL: proxy.url },
      label: "pg-refused-at-start",
      onOutput: (text) => /the database did not answer/.test(text) && told(),
    });
    await waiting;
    proxy.refuse(0);
    server = await starting;
    const tenant = await api(server.baseUrl, server.adminToken).post("/v1/admin/tenants", { name: "late-db" });
    assertStatus(tenant, 201);
    const client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put("/v1/topics/t", {}), 201);
    assertStatus(await client.post("/v1/topics/t/messages", { messages: [{ value: "after" }] }), 200);
  }, 180_000);
});
