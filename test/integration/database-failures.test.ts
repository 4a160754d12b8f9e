// The error boundary of the database adapter (storage/metadata/db.ts): when the database goes
// away, requests answer 503 service_unavailable with Retry-After (a failure of a dependency,
// retryable), not 500; when it comes back, they succeed again. The Node server reaches the
// database through a TCP proxy in this test, which cuts every connection and refuses new ones
// on demand: a real outage as the driver sees it.
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";

/** A TCP proxy to `target` that can refuse (cut) and accept connections again. */
async function cuttableProxy(target: URL): Promise<{ url: string; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) return client.destroy();
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      refusing = false;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("the Node server when its database fails", () => {
  let db: FreshDatabase;
  let proxy: Awaited<ReturnType<typeof cuttableProxy>>;
  let server: NodeServer;
  let client: Api;

  beforeAll(async () => {
    db = await freshDatabase();
    proxy = await cuttableProxy(new URL(db.url));
    server = await startNodeServer({ label: "db-failures", env: { DATABASE_URL: proxy.url } });
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "db-failures" });
    assertStatus(tenant, 201);
    client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put("/v1/topics/t", {}), 201);
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    await proxy?.close();
    await db?.drop();
  }, 60_000);

  it("answers 503 service_unavailable with Retry-After while the database is unreachable, and 2xx once it is back", async () => {
    proxy.cut();
    for (const res of [
      await client.get("/v1/topics/t", { allow5xx: true }),
      await client.post("/v1/topics/t/messages", { messages: [{ value: "v" }] }, { allow5xx: true }),
      await client.put("/v1/topics/u", {}, { allow5xx: true }),
    ]) {
      assertProblem(res, 503, "service_unavailable");
      expect(res.headers.get("retry-after")).toBe("1");
    }
    assertProblem(await client.get("/healthz", { allow5xx: true }), 503, "service_unavailable");
    proxy.restore();
    // The driver reconnects on the next query: poll until the service answers again.
    const deadline = Date.now() + 30_000;
    let res = await client.get("/v1/topics/t", { allow5xx: true });
    while (res.status !== 200 && Date.now() < deadline) res = await client.get("/v1/topics/t", { allow5xx: true });
    assertStatus(res, 200);
    assertStatus(await client.post("/v1/topics/t/messages", { messages: [{ value: "after" }] }), 200);
    expect(server.logs()).not.toMatch(/internal_error|Internal Server Error/);
  }, 120_000);
});
