// What the dashboard reads beyond API.md, on every target: the lists of a topic's groups and
// subscriptions, the operator's list of tenants, and the operator token reading a tenant's
// resources through the tenant routes with the Reservoir-Tenant header (GET only, unmetered).

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, type Api } from "../support/http.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";
import { type ContractTarget, showServerOutputOnFailure } from "./contract.ts";

export function listingsSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`listings and the operator's reads (dashboard) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let sink: WebhookSink;
    let tenantId: string;
    let client: Api;
    const runId = randomBytes(3).toString("hex");

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      sink = await startWebhookSink();
      const created = await admin.post("/v1/admin/tenants", { name: `listings-${runId}` });
      assertStatus(created, 201);
      tenantId = created.body.tenantId;
      client = api(target.baseUrl, created.body.apiKey);
      assertStatus(await client.put("/v1/topics/orders", { partitions: 2 }), 201);
      assertStatus(await client.put("/v1/topics/orders/groups/billing", { startAt: "earliest" }), 201);
      assertStatus(await client.put("/v1/topics/orders/groups/audit", { maxAttempts: 3 }), 201);
      // Paused at once: the list shows it, nothing is delivered meanwhile.
      assertStatus(await client.put("/v1/topics/orders/subscriptions/hook", { url: sink.url(`/l-${runId}`) }), 201);
      assertStatus(await client.post("/v1/topics/orders/subscriptions/hook/pause"), 200);
      assertStatus(await client.post("/v1/topics/orders/messages", { messages: [{ value: "a", partition: 0 }] }), 200);
    }, 180_000);
    afterAll(async () => {
      await sink?.close();
      await target?.stop();
    }, 60_000);
    showServerOutputOnFailure(name, () => target);

    it("lists a topic's groups by name, without the subscriptions' own groups", async () => {
      const res = await client.get("/v1/topics/orders/groups");
      assertStatus(res, 200);
      expect(res.body.groups.map((g: { name: string }) => g.name)).toEqual(["audit", "billing"]);
      expect(res.body.groups[0]).toMatchObject({ name: "audit", topic: "orders", maxAttempts: 3, deadLetterTopic: "orders.dlq" });
      assertProblem(await client.get("/v1/topics/nope/groups"), 404, "topic_not_found");
    });

    it("lists a topic's subscriptions with state and backlog, never their secrets", async () => {
      const res = await client.get("/v1/topics/orders/subscriptions");
      assertStatus(res, 200);
      expect(res.body.subscriptions).toHaveLength(1);
      expect(res.body.subscriptions[0]).toMatchObject({ name: "hook", state: "paused", lag: 1 });
      expect(res.body.subscriptions[0].secret).toBeUndefined();
    });

    it("lists tenants for the operator token only", async () => {
      const res = await admin.get("/v1/admin/tenants");
      assertStatus(res, 200);
      expect(res.body.tenants.find((t: { tenantId: string }) => t.tenantId === tenantId)).toMatchObject({ name: `listings-${runId}` });
      assertProblem(await client.get("/v1/admin/tenants"), 401, "unauthorized");
    });

    it("lets the operator token read a tenant's resources with Reservoir-Tenant: GET only, unmetered", async () => {
      const as = { headers: { "reservoir-tenant": tenantId } };
      // Without the header the operator token is no tenant key.
      assertProblem(await admin.get("/v1/topics"), 401, "unauthorized");
      const topics = await admin.get("/v1/topics", as);
      assertStatus(topics, 200);
      expect(topics.body.topics.map((t: { name: string }) => t.name)).toEqual(["orders"]);
      assertStatus(await admin.get("/v1/topics/orders/groups/billing", as), 200);
      const usageBefore = await admin.get("/v1/admin/usage", { query: { tenant: tenantId } });
      const read = await admin.get("/v1/topics/orders/partitions/0/messages", { ...as, query: { offset: 0 } });
      assertStatus(read, 200);
      expect(read.body.messages.map((m: { value: string }) => m.value)).toEqual(["a"]);
      // Changes take the tenant's key.
      assertProblem(await admin.put("/v1/topics/other", {}, as), 403, "insufficient_scope");
      assertProblem(await admin.post("/v1/topics/orders/groups/billing/redrive", {}, as), 403, "insufficient_scope");
      assertProblem(
        await admin.get("/v1/topics", { headers: { "reservoir-tenant": "00000000-0000-0000-0000-000000000000" } }),
        404,
        "tenant_not_found",
      );
      assertProblem(await admin.get("/v1/topics", { headers: { "reservoir-tenant": "not a tenant" } }), 404, "tenant_not_found");
      // A tenant's own key with the header reads its own resources as before (the header is the operator's).
      assertStatus(await client.get("/v1/topics", as), 200);
      // Nothing the operator read was counted as the tenant's.
      const usageAfter = await admin.get("/v1/admin/usage", { query: { tenant: tenantId } });
      const sum = (rows: Record<string, number>[], field: string) => rows.reduce((n, r) => n + r[field], 0);
      expect(sum(usageAfter.body.usage, "messagesOut")).toBe(sum(usageBefore.body.usage, "messagesOut"));
      expect(await admin.get("/v1/topics/other", as).then((r) => r.status)).toBe(404);
    });
  });
}
