/**
 * The fallback for machines without a Postgres server: PGlite served over the wire by
 * pglite-socket (one connection) still runs the real server end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";

describe("the Node server on PGlite over the wire (the fallback when no Postgres answers)", () => {
  let db: FreshDatabase;
  let server: NodeServer;

  beforeAll(async () => {
    db = await freshDatabase({ forcePglite: true });
    server = await startNodeServer({ label: "pglite-socket", env: { DATABASE_URL: db.url } });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it("is the pglite-socket fallback, limited to one connection", () => {
    expect(db.kind).toBe("pglite-socket");
    expect(db.maxConnections).toBe(1);
  });

  it("migrates, produces concurrently and reads back", async () => {
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = (await admin.post("/v1/admin/tenants", { name: "fallback" })).body;
    const client = api(server.baseUrl, tenant.apiKey);
    expect((await client.put("/v1/topics/t", { partitions: 2 })).status).toBe(201);
    const produced = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.post("/v1/topics/t/messages", { messages: [{ value: `m${i}`, partition: i % 2 }] })),
    );
    for (const r of produced) expect(r.status).toBe(200);
    const offsets = await client.get("/v1/topics/t/offsets", { query: { timestamp: 0 } });
    expect(offsets.body.offsets).toEqual([
      { partition: 0, offset: 0 },
      { partition: 1, offset: 0 },
    ]);
    const read = await client.get("/v1/topics/t/partitions/0/messages", { query: { offset: 0 } });
    expect(read.body.messages.map((m: { value: string }) => m.value).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `m${i * 2}`).sort(),
    );
    expect(read.body.highWatermark).toBe(10);
  });
});
