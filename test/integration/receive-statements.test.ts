// A receive of fresh messages by a key the server knows is two statements: the one-statement
// lease (which also checks the key, counts the request and reads the index rows of what it
// leased) and the usage it adds. The read of the messages makes none of its own, and the key
// check none either (storage/tenancy/deferred-key-check.ts). An ack of a receive's lease
// receipts is two: the ack (which checks the key) and the cursor move.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCHES_TYPE, fetchBatches } from "../support/batches.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

describe("a receive of fresh messages", () => {
  let t: TenantServer;
  const statements = async () => (await t.admin.get("/v1/admin/metrics")).body.db.statements as number;

  beforeAll(async () => {
    t = await serverWithTenant({ label: "receive-statements", partitions: 4 });
    expect((await t.client.put("/v1/topics/t/groups/g", { startAt: "earliest" })).status).toBe(201);
  }, 60_000);
  afterAll(() => t?.stop());

  it("reads the messages it leased without a statement of its own, in JSON and in batches", async () => {
    const values = Array.from({ length: 120 }, (_, i) => `m${i}`);
    for (let i = 0; i < values.length; i += 30) {
      const produced = await t.client.post("/v1/topics/t/messages", {
        messages: values.slice(i, i + 30).map((value, j) => ({ key: `k${(i + j) % 8}`, value })),
      });
      expect(produced.status).toBe(200);
    }
    // The first receive loads the group and the topic into the instance's caches.
    const first = await t.client.post("/v1/topics/t/groups/g/receive", { max: 5, waitMs: 0 });
    expect(first.status).toBe(200);
    const seen: string[] = first.body.messages.map((m: { value: string }) => m.value);

    const before = await statements();
    const receives = 20;
    for (let r = 0; r < receives; r++) {
      if (r % 2 === 0) {
        const got = await t.client.post("/v1/topics/t/groups/g/receive", { max: 5, waitMs: 0 });
        expect(got.status).toBe(200);
        seen.push(...got.body.messages.map((m: { value: string }) => m.value));
      } else {
        const got = await fetchBatches(`${t.server.baseUrl}/v1/topics/t/groups/g/receive`, t.apiKey, { max: 5, waitMs: 0 }, "t");
        expect(got.contentType).toContain(BATCHES_TYPE);
        seen.push(...got.messages.map((m) => m.value as string));
      }
    }
    const used = (await statements()) - before;
    // Two per receive (three with a key check of its own, four when the read looked its index
    // rows up again); the instance's group and topic caches (a second each) may load again on a
    // slow machine: a few more.
    expect(used).toBeGreaterThanOrEqual(2 * receives);
    expect(used).toBeLessThan(2.5 * receives);
    // Every message was leased once, whichever answer it came in.
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(5 * (receives + 1));
  }, 60_000);

  it("acks a receive's lease receipts in two statements, and counts every receive and ack once", async () => {
    const tenantId = (await t.admin.get("/v1/admin/tenants")).body.tenants[0].tenantId as string;
    const requests = async () =>
      (await t.admin.get("/v1/admin/usage", { query: { tenant: tenantId } })).body.usage.reduce(
        (n: number, r: { requests: number }) => n + r.requests,
        0,
      );
    const produced = await t.client.post("/v1/topics/t/messages", { messages: Array.from({ length: 40 }, (_, i) => ({ value: `a${i}` })) });
    expect(produced.status).toBe(200);
    const countedBefore = await requests();
    const received = [];
    for (let r = 0; r < 20; r++) {
      const got = await t.client.post("/v1/topics/t/groups/g/receive", { max: 2, waitMs: 0 });
      expect(got.status).toBe(200);
      expect(got.body.leases.length).toBeGreaterThan(0);
      received.push(got.body.leases.map((l: { receipt: string }) => l.receipt));
    }
    const before = await statements();
    for (const receipts of received) {
      const acked = await t.client.post("/v1/topics/t/groups/g/ack", { receipts });
      expect(acked.status).toBe(200);
      expect(acked.body.failed).toEqual([]);
    }
    const used = (await statements()) - before;
    expect(used).toBeGreaterThanOrEqual(2 * received.length);
    expect(used).toBeLessThan(2.5 * received.length);
    expect((await requests()) - countedBefore).toBe(2 * received.length);
  }, 60_000);
});
