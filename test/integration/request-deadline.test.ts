// Every request has a server-side deadline (functions/deadline.ts): a request stuck on a
// dependency that stopped answering is answered with a retryable 503 problem (code
// deadline_exceeded, Retry-After) and logged with its route, its tenant and what it was waiting
// on; long-polls get their waitMs on top of the bound. The dependency here is real: s3rver
// behind a loopback proxy that stops answering segment PUTs, as a hung object store would, or
// Postgres with a lock another session holds. On the Node server and on the Worker (wrangler dev).

import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.ts";
import { api, type Api } from "../support/http.ts";
import { startNodeServer } from "../support/node-server.ts";
import type { FreshDatabase } from "../support/postgres.ts";
import type { StallingProxy } from "../support/stalling-proxy.ts";
import { stallingStack, type StallingStack } from "../support/stalling-stack.ts";
import { startWorker } from "../support/wrangler.ts";

interface Target {
  baseUrl: string;
  adminToken: string;
  logs(): string;
  stop(): Promise<void>;
}

/** The bound of this server's requests: small, so that the test waits little for it. */
const BOUND_MS = 2_000;
/** A long-poll longer than the bound: answered 200 at its end, not 503 at the bound. */
const WAIT_MS = 3_000;

function logLine(server: Target, route: string): Promise<string> {
  return eventually(
    `the timeout's log line for ${route}`,
    () =>
      server
        .logs()
        .split("\n")
        .find((l) => l.includes("deadline_exceeded") && l.includes(route)),
    10_000,
  );
}

const targets: [string, (env: Record<string, string>) => Promise<Target>][] = [
  ["the Node server", (env) => startNodeServer({ label: "deadline", env })],
  ["the Worker (wrangler dev)", (env) => startWorker({ env })],
];

describe.each(targets)("request deadline on %s", (name, start) => {
  let stack: StallingStack<Target>;
  let db: FreshDatabase;
  let proxy: StallingProxy;
  let server: Target;
  let client: Api;
  let tenantId: string;

  beforeAll(async () => {
    // No read cache: every read of a segment is a GET, which the proxy can hold.
    stack = await stallingStack(start, { RESERVOIR_REQUEST_TIMEOUT_MS: String(BOUND_MS), RESERVOIR_READ_CACHE_BYTES: "0" });
    ({ db, proxy, server } = stack);
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "deadline" });
    expect(tenant.status).toBe(201);
    tenantId = tenant.body.tenantId;
    client = api(server.baseUrl, tenant.body.apiKey);
    expect((await client.put("/v1/topics/orders", { partitions: 1 })).status).toBe(201);
    expect((await client.put("/v1/topics/quiet", { partitions: 1 })).status).toBe(201);
    expect((await client.put("/v1/topics/held-reads", { partitions: 1 })).status).toBe(201);
  }, 180_000);

  afterAll(() => stack?.stop());

  it("answers a produce stuck on a hung object store 503 deadline_exceeded, and logs where it waited", async () => {
    expect((await client.post("/v1/topics/orders/messages", { messages: [{ value: "before" }] })).status).toBe(200);

    proxy.stall((method, path) => method === "PUT" && path.includes("/segments/"));
    const stuck = await client.post("/v1/topics/orders/messages", { messages: [{ value: "stuck" }] }, { allow5xx: true });
    expect(stuck.status).toBe(503);
    expect(stuck.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(stuck.headers.get("retry-after")).toBe("1");
    expect(stuck.body).toMatchObject({ status: 503, code: "deadline_exceeded", timeoutMs: BOUND_MS });
    expect(proxy.held()).toBe(1);

    const line = await logLine(server, "POST /v1/topics/orders/messages");
    expect(line).toContain(`(tenant ${tenantId})`);
    expect(line).toMatch(/Waiting on: .*batcher: waiting for the flush/);
    expect(line).toContain(`object store: PUT tenants/${tenantId}/segments/`);
    console.log(`the server logged: ${line}`);

    // The dependency answers again: the held PUT goes through, and so do new produces. On the
    // Node server the held flush then commits after all (as a deadline_exceeded warns); a
    // message produced before that commit could take the offset before it, so it is waited for
    // (the receive below checks the order there).
    proxy.release();
    if (name === "the Node server")
      await eventually("the held produce's commit", async () => (await client.get("/v1/topics/orders")).body.highWatermarks[0] === 2);
    const after = await client.post("/v1/topics/orders/messages", { messages: [{ value: "after" }] });
    expect(after.status).toBe(200);
  }, 30_000);

  it("answers a receive stuck behind a database lock 503 deadline_exceeded, and logs the database call it waited in", async () => {
    expect((await client.put("/v1/topics/orders/groups/locked", { startAt: "earliest" })).status).toBe(201);
    // Another session holds the group positions, as a stuck transaction of another instance would.
    const other = postgres(db.url, { max: 1, onnotice: () => {} });
    let release = () => {};
    try {
      release = await new Promise<() => void>((ready, fail) => {
        other
          .begin(async (tx) => {
            await tx`LOCK TABLE group_partitions IN ACCESS EXCLUSIVE MODE`;
            await new Promise<void>((done) => ready(done));
          })
          .catch(fail);
      });
      const stuck = await client.post("/v1/topics/orders/groups/locked/receive", { max: 10 }, { allow5xx: true });
      expect(stuck.status).toBe(503);
      expect(stuck.body).toMatchObject({ code: "deadline_exceeded" });
      const line = await logLine(server, "POST /v1/topics/orders/groups/locked/receive");
      expect(line).toContain(`(tenant ${tenantId})`);
      // The lease's one statement (lease-fast.ts), or the general way's transaction.
      expect(line).toMatch(/Waiting on: database: (query|in a transaction)/);
      release();
      // The abandoned receive leased the messages once the lock went, and gave them back (on
      // the Node server; the Worker closes the request's connection once it has answered, which
      // rolls the abandoned transaction back, or its lease lapses after the visibility timeout).
      const received = await client.post("/v1/topics/orders/groups/locked/receive", { max: 10, waitMs: WAIT_MS });
      expect(received.status).toBe(200);
      if (name === "the Node server")
        expect(received.body.messages.map((m: { value: string }) => m.value)).toEqual(["before", "stuck", "after"]);
    } finally {
      // Released however the test ended: a lock left held fails the tests after it.
      release();
      await other.end();
    }
  }, 30_000);

  it("answers reads stuck on a segment's GET 503, each logged as waiting on the read cache's load of it", async () => {
    const produced = await client.post("/v1/topics/held-reads/messages", { messages: [{ value: "to read" }] });
    expect(produced.status).toBe(200);
    const route = "GET /v1/topics/held-reads/partitions/0/messages";
    proxy.stall((method, path) => method === "GET" && path.includes("/segments/"));
    // Two at once: on the Node server the second shares the first's GET (BatchCache.once), and
    // was logged as waiting on nothing before the cache's loads were labelled too.
    const reads = await Promise.all(
      [0, 1].map(() => client.get("/v1/topics/held-reads/partitions/0/messages", { query: { offset: 0 }, allow5xx: true })),
    );
    for (const read of reads) expect(read.body).toMatchObject({ status: 503, code: "deadline_exceeded" });
    const lines = await eventually(
      `two log lines for ${route}`,
      () => {
        const found = server
          .logs()
          .split("\n")
          .filter((l) => l.includes("deadline_exceeded") && l.includes(route));
        return found.length >= 2 ? found : undefined;
      },
      10_000,
    );
    for (const line of lines) expect(line).toMatch(/Waiting on: .*read cache: loading [\w-]+/);
    expect(lines.some((l) => l.includes(`object store: GET tenants/${tenantId}/segments/`))).toBe(true);
    console.log(`the server logged:\n${lines.join("\n")}`);

    proxy.release();
    const after = await client.get("/v1/topics/held-reads/partitions/0/messages", { query: { offset: 0 } });
    expect(after.body.messages.map((m: { value: string }) => m.value)).toEqual(["to read"]);
  }, 30_000);

  it("gives a receive long-poll its waitMs on top of the bound", async () => {
    const polled = await client.post("/v1/topics/quiet/groups/idle/receive", { waitMs: WAIT_MS });
    expect(polled.status).toBe(200);
    expect(polled.body.messages).toEqual([]);
  }, 30_000);

  it("gives a read long-poll its waitMs on top of the bound", async () => {
    const hw = (await client.get("/v1/topics/orders")).body.highWatermarks[0] as number;
    const polled = await client.get("/v1/topics/orders/partitions/0/messages", { query: { offset: hw, waitMs: WAIT_MS } });
    expect(polled.status).toBe(200);
    expect(polled.body.messages).toEqual([]);
  }, 30_000);
});

describe("RESERVOIR_REQUEST_TIMEOUT_MS", () => {
  it("that is not a positive number of milliseconds stops the Node server at start, naming it", async () => {
    await expect(startNodeServer({ label: "bad-deadline", env: { RESERVOIR_REQUEST_TIMEOUT_MS: "soon" } })).rejects.toThrow(
      /RESERVOIR_REQUEST_TIMEOUT_MS="soon": must be a whole number/,
    );
  }, 60_000);
});
