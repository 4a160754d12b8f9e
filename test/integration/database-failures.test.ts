// The error boundary of the database adapter (storage/metadata/db.ts): a failure of the
// database itself becomes `unavailable` (503, retryable) where it happens, while a statement
// that is wrong stays an error of its own (a bug: 500). On a real Postgres: the adapter alone,
// then the Node server reaching its database through a TCP proxy that cuts every connection and
// refuses new ones on demand — a real outage as the driver sees it.
import { createServer, connect, type Server, type Socket } from "node:net";
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReservoirError } from "../../storage/errors.ts";
import { retryConflicts, translateFailures, type Database } from "../../storage/metadata/db.ts";
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

describe("the database adapter's error boundary (translateFailures)", () => {
  let database: FreshDatabase;
  let client: ReturnType<typeof postgres>;
  let db: Database;

  beforeAll(async () => {
    database = await freshDatabase();
    client = postgres(database.url, { max: 2, onnotice: () => {} });
    db = translateFailures(drizzle(client) as unknown as Database);
    await db.execute(sql`CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (parent int REFERENCES parent(id))`);
  }, 60_000);

  afterAll(async () => {
    await client?.end({ timeout: 1 });
    await database?.drop();
  }, 60_000);

  const failure = (work: Promise<unknown>) =>
    work.then(
      () => expect.fail("the statement succeeded"),
      (error: unknown) => error,
    );

  it("a wrong statement (syntax, division by zero, a foreign key) is not turned into unavailable", async () => {
    for (const statement of [sql`SELEC 1`, sql`SELECT 1 / 0`, sql`INSERT INTO child VALUES (42)`]) {
      const error = await failure(db.execute(statement));
      expect(error).not.toBeInstanceOf(ReservoirError);
    }
    const inTransaction = await failure(db.transaction((tx) => tx.execute(sql`INSERT INTO child VALUES (7)`)));
    expect(inTransaction).not.toBeInstanceOf(ReservoirError);
  });

  it("a serialization failure is retried by retryConflicts, and unavailable once the retries are spent", async () => {
    let attempts = 0;
    const error = await failure(
      retryConflicts(() =>
        db.transaction(async (tx) => {
          attempts++;
          await tx.execute(sql`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`);
        }),
      ),
    );
    expect(attempts).toBe(4);
    expect(error).toMatchObject({ code: "service_unavailable" });
  });

  // (Inside a transaction the same holds, by the same code path as the serialization failure
  // below; terminating a connection postgres.js reserved for a transaction upsets its client.)
  it("a statement whose connection the server terminates is service_unavailable", async () => {
    const admin = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      /** Runs pg_sleep on the adapter and terminates its backend from another connection once it sleeps. */
      const terminated = async (run: (statement: ReturnType<typeof sql>) => Promise<unknown>, marker: string) => {
        const sleeping = failure(run(sql.raw(`SELECT pg_sleep(30) AS ${marker}`)));
        const deadline = Date.now() + 15_000;
        for (;;) {
          const [row] =
            await admin`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE query LIKE ${`%AS ${marker}%`} AND pid <> pg_backend_pid()`;
          if (row?.done) break;
          if (Date.now() > deadline) throw new Error("the statement never started");
        }
        return sleeping;
      };
      expect(await terminated((s) => db.execute(s), "terminated_here")).toMatchObject({ code: "service_unavailable" });
    } finally {
      await admin.end();
    }
  });
});

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

  // A seek gives up on a busy position after ten rounds of its lock timeout (storage/groups/position.ts):
  // the database is the bottleneck, not the request, so the answer is a retryable 503, never a 500.
  it("answers a seek whose group positions another session keeps locked 503 service_unavailable", async () => {
    assertStatus(await client.put("/v1/topics/t/groups/busy", { startAt: "earliest" }), 201);
    const other = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const release = await new Promise<() => void>((ready, fail) => {
        other
          .begin(async (tx) => {
            await tx`SELECT 1 FROM group_partitions FOR UPDATE`;
            await new Promise<void>((done) => ready(done));
          })
          .catch(fail);
      });
      const busy = await client.post("/v1/topics/t/groups/busy/seek", { to: "latest" }, { allow5xx: true });
      assertProblem(busy, 503, "service_unavailable");
      expect(busy.headers.get("retry-after")).toBe("1");
      release();
      assertStatus(await client.post("/v1/topics/t/groups/busy/seek", { to: "latest" }), 200);
    } finally {
      await other.end();
    }
    expect(server.logs()).not.toMatch(/internal_error|Internal Server Error/);
  }, 60_000);
});
