// A produce by a key this server has seen pass is one statement: its flush's commit, which checks
// the key in the same statement (storage/tenancy/deferred-key-check.ts). The first produce
// of a key takes the key check of its own, as every other request does.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

describe("a produce by a key the server knows", () => {
  let t: TenantServer;
  const statements = async () => (await t.admin.get("/v1/admin/metrics")).body.db.statements as number;

  beforeAll(async () => {
    t = await serverWithTenant({ label: "produce-statements" });
  }, 60_000);
  afterAll(() => t?.stop());

  it("sends one statement, the commit of its flush, and is counted in usage by it", async () => {
    // The first produce checks the key and loads the topic into the instance's cache.
    expect((await t.client.post("/v1/topics/t/messages", { messages: [{ value: "first" }] })).status).toBe(200);
    const before = await statements();
    const produces = 20;
    for (let i = 0; i < produces; i++) {
      const res = await t.client.post("/v1/topics/t/messages", { messages: [{ value: `m${i}` }] });
      expect(res.status).toBe(200);
    }
    const used = (await statements()) - before;
    // One per produce (two with a key check of its own); the topic cache (a second) may load
    // again on a slow machine: a few more.
    expect(used).toBeGreaterThanOrEqual(produces);
    expect(used).toBeLessThan(1.5 * produces);
    const tenantId = (await t.admin.get("/v1/admin/tenants")).body.tenants[0].tenantId as string;
    const usage = await t.admin.get("/v1/admin/usage", { query: { tenant: tenantId } });
    const sum = (field: string) => usage.body.usage.reduce((n: number, r: Record<string, number>) => n + r[field], 0);
    // The topic's PUT and every produce.
    expect(sum("requests")).toBe(2 + produces);
    expect(sum("messagesIn")).toBe(1 + produces);
  }, 60_000);
});
