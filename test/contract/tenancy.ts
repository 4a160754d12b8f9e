// Tenants, keys, usage (API.md "Tenants, keys, usage"), through HTTP only, on every target:
// key scopes, GET/PATCH of a tenant, usage counted to the byte against what the test produced
// and consumed (idempotent repeats and refused requests adding nothing), the JSON and CSV
// exports, the four quotas, and a walk of every tenant route of the OpenAPI document with a
// second tenant's key aimed at the first tenant's resources.

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { fetchBatches } from "../support/batches.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";
import { type ContractTarget, showServerOutputOnFailure } from "./contract.ts";

interface Tenant {
  tenantId: string;
  apiKey: string;
  client: Api;
}

const FIELDS = ["tenantId", "hour", "messagesIn", "bytesIn", "messagesOut", "bytesOut", "deliveries", "requests", "storageByteHours"];

type Totals = Record<string, number>;

/** Sums the counters of usage rows (every hour of the range). */
function totals(rows: Record<string, unknown>[]): Totals {
  const sum: Totals = {};
  for (const field of FIELDS.slice(2)) sum[field] = rows.reduce((n, r) => n + Number(r[field]), 0);
  return sum;
}

const utf8 = (s: string) => Buffer.byteLength(s, "utf8");

/** Polls `probe` until `done` holds of its result, for at most `ms`; returns the last result. */
async function pollUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function tenancySuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`tenants, keys, usage (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let sink: WebhookSink;
    let seq = 0;
    const runId = randomBytes(3).toString("hex");
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      sink = await startWebhookSink();
    }, 180_000);

    afterAll(async () => {
      await sink?.close();
      await target?.stop();
    }, 60_000);

    showServerOutputOnFailure(name, () => target);

    async function newTenant(quotas?: Record<string, number>): Promise<Tenant> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq("tenant"), ...(quotas && { quotas }) });
      assertStatus(res, 201);
      return { tenantId: res.body.tenantId, apiKey: res.body.apiKey, client: api(target!.baseUrl, res.body.apiKey) };
    }

    async function newKey(t: Tenant, scopes?: string[]): Promise<{ keyId: string; client: Api; scopes: string[] }> {
      const res = await admin.post(`/v1/admin/tenants/${t.tenantId}/keys`, scopes ? { scopes } : undefined);
      assertStatus(res, 201);
      return { keyId: res.body.keyId, client: api(target!.baseUrl, res.body.apiKey), scopes: res.body.scopes };
    }

    /** The operator's view of one tenant's usage (operator calls are not the tenant's requests). */
    async function adminUsage(t: Tenant, query: Record<string, string | number> = {}): Promise<Record<string, unknown>[]> {
      const res = await admin.get("/v1/admin/usage", { query: { tenant: t.tenantId, ...query } });
      assertStatus(res, 200);
      return res.body.usage;
    }

    describe("keys and scopes", () => {
      it("a key gets all three scopes by default and the scopes asked for otherwise", async () => {
        const t = await newTenant();
        expect((await newKey(t)).scopes.sort()).toEqual(["consume", "manage", "produce"]);
        expect((await newKey(t, ["consume"])).scopes).toEqual(["consume"]);
      });

      it("refuses unknown or empty scope lists (400) and creates no key", async () => {
        const t = await newTenant();
        assertProblem(await admin.post(`/v1/admin/tenants/${t.tenantId}/keys`, { scopes: ["admin"] }), 400, "invalid_request");
        assertProblem(await admin.post(`/v1/admin/tenants/${t.tenantId}/keys`, { scopes: [] }), 400, "invalid_request");
      });

      it("a key used outside its scopes answers 403 insufficient_scope and changes nothing", async () => {
        const t = await newTenant();
        const topic = uniq("scoped");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        assertStatus(await t.client.put(`/v1/topics/${topic}/groups/g`, {}), 201);
        const consumer = (await newKey(t, ["consume"])).client;
        const producer = (await newKey(t, ["produce"])).client;
        const manager = (await newKey(t, ["manage"])).client;

        assertProblem(await consumer.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x" }] }), 403, "insufficient_scope");
        assertProblem(await consumer.put(`/v1/topics/${uniq("nope")}`, {}), 403, "insufficient_scope");
        assertProblem(await consumer.delete(`/v1/topics/${topic}`), 403, "insufficient_scope");
        assertProblem(await consumer.get("/v1/usage"), 403, "insufficient_scope");
        assertProblem(await producer.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0 } }), 403, "insufficient_scope");
        assertProblem(await producer.post(`/v1/topics/${topic}/groups/g/receive`, {}), 403, "insufficient_scope");
        assertProblem(await producer.put(`/v1/topics/${topic}/groups/g2`, {}), 403, "insufficient_scope");
        assertProblem(await manager.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x" }] }), 403, "insufficient_scope");
        assertProblem(await manager.post(`/v1/topics/${topic}/groups/g/receive`, {}), 403, "insufficient_scope");

        // Nothing changed; each key does what its scope covers.
        const hw = await t.client.get(`/v1/topics/${topic}`);
        expect(hw.body.highWatermarks).toEqual([0]);
        assertStatus(await producer.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x" }] }), 200);
        assertStatus(await consumer.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0 } }), 200);
        assertStatus(await manager.get("/v1/usage"), 200);
        assertStatus(await manager.put(`/v1/topics/${uniq("managed")}`, {}), 201);
      });

      it("a revoked key answers 401 on its very next request; the tenant's other keys keep working", async () => {
        const t = await newTenant();
        const doomed = await newKey(t, ["consume"]);
        assertStatus(await doomed.client.get("/v1/topics"), 200);
        // Another tenant's key is unknown under this tenant: 404, and the key keeps working.
        const other = await newTenant();
        assertProblem(await admin.delete(`/v1/admin/tenants/${other.tenantId}/keys/${doomed.keyId}`), 404, "key_not_found");
        assertStatus(await doomed.client.get("/v1/topics"), 200);
        assertStatus(await admin.delete(`/v1/admin/tenants/${t.tenantId}/keys/${doomed.keyId}`), 204);
        assertProblem(await doomed.client.get("/v1/topics"), 401, "unauthorized");
        assertStatus(await t.client.get("/v1/topics"), 200);
        // A second revocation finds no key.
        assertProblem(await admin.delete(`/v1/admin/tenants/${t.tenantId}/keys/${doomed.keyId}`), 404, "key_not_found");
      });

      it("a produce key revoked after use: its next produce answers 401, whatever the request, and stores nothing", async () => {
        // The key check comes first: a key that produced a moment ago learns nothing else (not
        // 404 for a topic, not 400 for a body), and nothing it sends is stored or counted.
        const t = await newTenant();
        const topic = uniq("revoked");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        const doomed = await newKey(t, ["produce"]);
        for (let i = 0; i < 3; i++)
          assertStatus(await doomed.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: `ok ${i}` }] }), 200);
        assertStatus(await admin.delete(`/v1/admin/tenants/${t.tenantId}/keys/${doomed.keyId}`), 204);
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "after" }] }), 401, "unauthorized");
        // Not 404 (no such topic) nor 400 (a bad body): unauthenticated, it learns nothing else.
        assertProblem(await doomed.client.post(`/v1/topics/${uniq("nope")}/messages`, { messages: [{ value: "x" }] }), 401, "unauthorized");
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/messages`, { messages: "not a list" }), 401, "unauthorized");
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([3]);
        // Counted: the three produces, the PUT and the GET; no refused request.
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 3, requests: 5 });
      });

      it("a consume key revoked after use: its next receive and ack answer 401 and change nothing", async () => {
        // Receives and acks by a key the server has seen pass leave the key check to their lease
        // and ack statements (README, "Tenants, keys, usage"): revoked, they lease and settle nothing.
        const t = await newTenant();
        const topic = uniq("revoked-consumer");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        assertStatus(await t.client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" }), 201);
        assertStatus(
          await t.client.post(`/v1/topics/${topic}/messages`, { messages: ["a", "b", "c", "d"].map((value) => ({ value })) }),
          200,
        );
        const doomed = await newKey(t, ["consume"]);
        const first = await doomed.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 1 });
        assertStatus(first, 200);
        const second = await doomed.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 1 });
        assertStatus(second, 200);
        const acked = await doomed.client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [first.body.messages[0].receipt] });
        assertStatus(acked, 200);
        expect(acked.body.acked).toBe(1);
        const view = async () => (await t.client.get(`/v1/topics/${topic}/groups/g`)).body.partitions[0];
        expect(await view()).toMatchObject({ committedOffset: 1, inFlight: 1 });

        assertStatus(await admin.delete(`/v1/admin/tenants/${t.tenantId}/keys/${doomed.keyId}`), 204);
        const receipt = second.body.messages[0].receipt;
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [receipt] }), 401, "unauthorized");
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 2 }), 401, "unauthorized");
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 2, ack: [receipt] }), 401, "unauthorized");
        // Not 404 for a group or a topic that is not there: unauthenticated, it learns nothing else.
        assertProblem(await doomed.client.post(`/v1/topics/${topic}/groups/${uniq("new")}/receive`, {}), 401, "unauthorized");
        assertProblem(await doomed.client.post(`/v1/topics/${uniq("nope")}/groups/g/ack`, { receipts: [receipt] }), 401, "unauthorized");
        // Nothing acked, leased or made since the revocation.
        expect(await view()).toMatchObject({ committedOffset: 1, inFlight: 1 });
        expect((await t.client.get(`/v1/topics/${topic}/groups`)).body.groups.map((g: { name: string }) => g.name)).toEqual(["g"]);
        // The tenant's other key acks what the revoked one could not.
        const byOwner = await t.client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [receipt] });
        expect(byOwner.body.acked).toBe(1);
        // Counted: the topic's and the group's PUTs, the produce, three GETs and the last ack by the
        // tenant's key, and the other key's two receives and ack; none of it after its revocation.
        expect(totals(await adminUsage(t))).toMatchObject({ requests: 10 });
      });

      it("a quota given after a key produced holds on that key's very next produce; a failed produce is counted as a request", async () => {
        // A produce by a key the server has seen pass leaves its key check to the commit of its
        // messages (README, "Tenants and keys"): a quota given meanwhile, a topic that is not
        // there or a bad body must still come out as if the key had been checked first.
        const t = await newTenant();
        const topic = uniq("quota-later");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        for (let i = 0; i < 3; i++)
          assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: `m${i}` }] }), 200);
        assertProblem(await t.client.post(`/v1/topics/${uniq("nope")}/messages`, { messages: [{ value: "x" }] }), 404, "topic_not_found");
        assertProblem(await t.client.post(`/v1/topics/${topic}/messages`, { messages: "not a list" }), 400, "invalid_request");
        // Five produces and the PUT: each counted once, whichever way its key was checked.
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 3, requests: 6 });
        // A storage quota the tenant's stored messages already exceed: the next produce is refused.
        assertStatus(await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas: { storageBytes: 1 } }), 200);
        assertProblem(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "over" }] }), 429, "quota_exceeded");
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([3]);
        // Lifted again: the key produces as before.
        assertStatus(await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas: { storageBytes: null } }), 200);
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "m3" }] }), 200);
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([4]);
        // Since: two GETs and a produce; the produce refused by the quota was not counted.
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 4, requests: 9 });
      });
    });

    describe("GET and PATCH /v1/admin/tenants/{id}", () => {
      it("shows name, quotas and createdAt; PATCH changes quotas and null removes one", async () => {
        const before = Date.now();
        const t = await newTenant({ requestsPerSecond: 1000, topics: 50 });
        const got = await admin.get(`/v1/admin/tenants/${t.tenantId}`);
        assertStatus(got, 200);
        expect(got.body).toMatchObject({ tenantId: t.tenantId, quotas: { requestsPerSecond: 1000, topics: 50 } });
        expect(typeof got.body.name).toBe("string");
        expect(got.body.createdAt).toBeGreaterThanOrEqual(before - 60_000);

        const patched = await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas: { topics: null, bytesPerSecond: 1e9 } });
        assertStatus(patched, 200);
        expect(patched.body.quotas).toEqual({ requestsPerSecond: 1000, bytesPerSecond: 1e9 });
        expect((await admin.get(`/v1/admin/tenants/${t.tenantId}`)).body.quotas).toEqual({ requestsPerSecond: 1000, bytesPerSecond: 1e9 });
      });

      it("answers 404 tenant_not_found for an unknown tenant and 400 for bad quotas, changing nothing", async () => {
        assertProblem(await admin.get(`/v1/admin/tenants/no-such-${runId}`), 404, "tenant_not_found");
        assertProblem(await admin.patch(`/v1/admin/tenants/no-such-${runId}`, { quotas: { topics: 1 } }), 404, "tenant_not_found");
        const t = await newTenant({ topics: 5 });
        for (const quotas of [{ topics: 0 }, { topics: 1.5 }, { requestsPerSecond: -1 }, { unknown: 1 }, { topics: "5" }]) {
          assertProblem(await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas }), 400, "invalid_request");
        }
        assertProblem(await admin.post("/v1/admin/tenants", { name: uniq("bad"), quotas: { storageBytes: 0 } }), 400, "invalid_request");
        expect((await admin.get(`/v1/admin/tenants/${t.tenantId}`)).body.quotas).toEqual({ topics: 5 });
      });
    });

    describe("usage", () => {
      it("counts to the byte what was committed and returned; idempotent repeats and refused requests add nothing", async () => {
        const t = await newTenant();
        let requests = 0;
        const call = <T>(promise: Promise<ApiResponse<T>>) => {
          requests++;
          return promise;
        };
        const topic = uniq("metered");
        assertStatus(await call(t.client.put(`/v1/topics/${topic}`, { partitions: 2 })), 201);

        const messages = [
          { key: "clé", value: "héllo wörld", headers: { "trace-id": "abc", "x-émoji": "🎉" }, partition: 0 },
          { valueBase64: Buffer.from([0, 1, 2, 255]).toString("base64"), idempotencyKey: `idem-${runId}`, partition: 1 },
          { value: "", partition: 0 },
          { key: "k", value: "plain", partition: 1 },
        ];
        const bytesOf = (m: (typeof messages)[number]) =>
          (m.key !== undefined ? utf8(m.key) : 0) +
          ("valueBase64" in m && m.valueBase64 !== undefined ? Buffer.from(m.valueBase64, "base64").length : utf8(m.value ?? "")) +
          Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + utf8(k) + utf8(v), 0);
        const sentBytes = messages.reduce((n, m) => n + bytesOf(m), 0);
        assertStatus(await call(t.client.post(`/v1/topics/${topic}/messages`, { messages })), 200);
        // An idempotent repeat (same key) stores nothing and adds no message or byte.
        assertStatus(await call(t.client.post(`/v1/topics/${topic}/messages`, { messages: [messages[1]] })), 200);
        // Refused requests: counted as requests (authenticated), but no message or byte.
        assertProblem(
          await call(t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x", partition: 9 }] })),
          400,
          "partition_out_of_range",
        );
        assertProblem(
          await call(t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x".repeat(1024 * 1024 + 1) }] })),
          413,
          "message_too_large",
        );
        assertProblem(await call(t.client.post(`/v1/topics/${uniq("none")}/messages`, { messages: [{ value: "x" }] })), 404);

        // Reads: every message returned counts, twice when read twice.
        let outMessages = 0;
        let outBytes = 0;
        for (const p of [0, 1, 0]) {
          const read = await call(t.client.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset: 0 } }));
          assertStatus(read, 200);
          outMessages += read.body.messages.length;
          outBytes += messages.filter((m) => m.partition === p).reduce((n, m) => n + bytesOf(m), 0);
        }
        expect(outMessages).toBe(6);
        // A read past the end returns nothing and adds only a request.
        assertStatus(await call(t.client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 99 } })), 200);

        // Receives, redeliveries included.
        assertStatus(await call(t.client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" })), 201);
        const first = await call(t.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 10, visibilityTimeoutSeconds: 60 }));
        assertStatus(first, 200);
        expect(first.body.messages).toHaveLength(4);
        const nacked = await call(
          t.client.post(`/v1/topics/${topic}/groups/g/nack`, { receipts: first.body.messages.map((m: { receipt: string }) => m.receipt) }),
        );
        assertStatus(nacked, 200);
        const again = await call(t.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 10, visibilityTimeoutSeconds: 60 }));
        assertStatus(again, 200);
        expect(again.body.messages).toHaveLength(4);
        outMessages += 8;
        outBytes += 2 * sentBytes;
        // An answer in batches weighs its leased messages the same, read from the stored lengths.
        const receipts = again.body.messages.map((m: { receipt: string }) => m.receipt);
        assertStatus(await call(t.client.post(`/v1/topics/${topic}/groups/g/nack`, { receipts })), 200);
        requests++; // the receive below, sent without `call`
        const batches = await fetchBatches(`${target!.baseUrl}/v1/topics/${topic}/groups/g/receive`, t.apiKey, { max: 10 }, topic);
        expect(batches.messages).toHaveLength(4);
        outMessages += 4;
        outBytes += sentBytes;

        const mine = await call(t.client.get("/v1/usage", { query: { from: 0, to: Date.now() + 3_600_000 } }));
        assertStatus(mine, 200);
        expect(totals(mine.body.usage), describeResponse(mine)).toEqual({
          messagesIn: 4,
          bytesIn: sentBytes,
          messagesOut: outMessages,
          bytesOut: outBytes,
          deliveries: 0,
          requests,
          storageByteHours: totals(mine.body.usage).storageByteHours,
        });
        for (const row of mine.body.usage) {
          expect(row.tenantId).toBe(t.tenantId);
          expect(row.hour % 3_600_000).toBe(0);
        }
        // The operator sees the same rows.
        expect(totals(await adminUsage(t))).toEqual(totals(mine.body.usage));
      });

      it("counts a transaction's messages when it commits, once, and nothing of one rolled back or timed out", async () => {
        const t = await newTenant();
        const topic = uniq("tx-metered");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, { partitions: 2 }), 201);
        const usageIn = async () => {
          const res = await t.client.get("/v1/usage", { query: { from: 0, to: Date.now() + 3_600_000 } });
          assertStatus(res, 200);
          const sum = totals(res.body.usage);
          return { messagesIn: sum.messagesIn, bytesIn: sum.bytesIn };
        };
        const produceInto = async (transactionId: string, messages: { key?: string; value: string; headers?: Record<string, string> }[]) =>
          assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { transactionId, messages }), 202);

        const rolledBack = (await t.client.post("/v1/transactions", {})).body.transactionId as string;
        await produceInto(rolledBack, [{ value: "never" }, { key: "k", value: "never either" }]);
        assertStatus(await t.client.post(`/v1/transactions/${rolledBack}/rollback`, {}), 200);
        const timedOut = (await t.client.post("/v1/transactions", { timeoutSeconds: 1 })).body.transactionId as string;
        await produceInto(timedOut, [{ value: "too late" }]);
        expect(await usageIn()).toEqual({ messagesIn: 0, bytesIn: 0 });

        const committed = (await t.client.post("/v1/transactions", {})).body.transactionId as string;
        const messages = [{ key: "clé", value: "één", headers: { "x-h": "ü" } }, { value: "plain" }];
        await produceInto(committed, messages);
        expect(await usageIn(), "pending messages are not counted").toEqual({ messagesIn: 0, bytesIn: 0 });
        assertStatus(await t.client.post(`/v1/transactions/${committed}/commit`, {}), 200);
        const bytes = utf8("clé") + utf8("één") + utf8("x-h") + utf8("ü") + utf8("plain");
        expect(await usageIn()).toEqual({ messagesIn: 2, bytesIn: bytes });
        // Committing again answers the same offsets and counts nothing more.
        assertStatus(await t.client.post(`/v1/transactions/${committed}/commit`, {}), 200);
        // The timed-out one: once its timeout has passed (time itself is waited for), a commit is
        // refused and it is rolled back; it still counts nothing.
        const { expiresAt } = (await t.client.get(`/v1/transactions/${timedOut}`)).body as { expiresAt: number };
        await pollUntil(
          async () => Date.now(),
          (now) => now > expiresAt + 50,
          15_000,
          "the 1 s transaction's timeout to pass",
        );
        assertProblem(await t.client.post(`/v1/transactions/${timedOut}/commit`, {}), 409, "transaction_not_open");
        expect(await usageIn()).toEqual({ messagesIn: 2, bytesIn: bytes });
      });

      it("counts webhook attempts as deliveries and successful ones as messagesOut and bytesOut", async () => {
        const t = await newTenant();
        const topic = uniq("hooked");
        const path = `/hook-${runId}-${seq}`;
        // The first attempt succeeds; the second is answered 410 (an attempt, not a success; no retry).
        sink.on(path, (request) => ({ status: request.index === 0 ? 200 : 410 }));
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        assertStatus(await t.client.put(`/v1/topics/${topic}/subscriptions/s`, { url: sink.url(path) }), 201);
        const messages = [
          { key: "k1", value: "délivered" },
          { key: "k2", value: "délivered" },
        ];
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages }), 200);
        await sink.waitForCount(path, 2, 30_000);
        const rows = await pollUntil(
          () => adminUsage(t),
          (r) => totals(r).deliveries === 2,
          10_000,
          "two delivery attempts counted",
        );
        expect(totals(rows)).toMatchObject({ messagesIn: 2, deliveries: 2, messagesOut: 1, bytesOut: utf8("k1") + utf8("délivered") });
      });

      it("exports CSV with a header row and the same rows as JSON; from is inclusive and to exclusive", async () => {
        const t = await newTenant();
        const topic = uniq("csv");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "abc" }] }), 200);
        const json = await adminUsage(t);
        expect(json.length).toBeGreaterThan(0);
        const csv = await admin.get("/v1/admin/usage", { query: { tenant: t.tenantId, format: "csv" } });
        assertStatus(csv, 200);
        expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
        const lines = csv.text.trimEnd().split("\n");
        expect(lines[0]).toBe(FIELDS.join(","));
        const parsed = lines
          .slice(1)
          .map((line) => Object.fromEntries(line.split(",").map((v, i) => [FIELDS[i], i === 0 ? v : Number(v)])));
        expect(parsed).toEqual(json);
        // The tenant's own export in CSV too.
        const own = await t.client.get("/v1/usage", { query: { format: "csv" } });
        assertStatus(own, 200);
        expect(own.text.split("\n")[0]).toBe(FIELDS.join(","));

        const now = await adminUsage(t); // with the tenant's own export counted
        const hour = Number(now[0].hour);
        expect(await adminUsage(t, { from: hour, to: hour + 3_600_000 })).toEqual(now.filter((r) => r.hour === hour));
        expect(await adminUsage(t, { from: hour + 3_600_000, to: hour + 7_200_000 })).toEqual([]);
        expect(await adminUsage(t, { from: hour - 3_600_000, to: hour })).toEqual([]);
        // Every tenant's rows without `tenant`: this one's among them.
        const all = await admin.get("/v1/admin/usage", { query: { from: hour, to: hour + 3_600_000 } });
        assertStatus(all, 200);
        expect(all.body.usage.some((r: { tenantId: string }) => r.tenantId === t.tenantId)).toBe(true);
        // Bad ranges and formats: 400.
        assertProblem(await admin.get("/v1/admin/usage", { query: { from: "yesterday" } }), 400, "invalid_request");
        assertProblem(await admin.get("/v1/admin/usage", { query: { format: "xml" } }), 400, "invalid_request");
        assertProblem(await t.client.get("/v1/usage", { query: { to: -1 } }), 400, "invalid_request");
      });
    });

    describe("quotas", () => {
      it("requestsPerSecond: over the bucket 429 quota_exceeded with Retry-After; refused requests are not counted; other tenants unaffected", async () => {
        const t = await newTenant({ requestsPerSecond: 2 });
        const other = await newTenant();
        const started = Date.now();
        const answers = await Promise.all(Array.from({ length: 12 }, () => t.client.get("/v1/topics")));
        const elapsedS = (Date.now() - started) / 1000;
        const granted = answers.filter((r) => r.status === 200).length;
        const refused = answers.filter((r) => r.status === 429);
        expect(granted + refused.length).toBe(12);
        // A burst of 2, then 2 per second.
        expect(granted).toBeGreaterThanOrEqual(1);
        expect(granted).toBeLessThanOrEqual(2 + Math.ceil(2 * elapsedS));
        expect(refused.length).toBeGreaterThan(0);
        for (const r of refused) {
          assertProblem(r, 429, "quota_exceeded");
          expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        }
        const others = await Promise.all(Array.from({ length: 12 }, () => other.client.get("/v1/topics")));
        for (const r of others) assertStatus(r, 200);
        expect(totals(await adminUsage(t)).requests).toBe(granted);

        // Removing the quota lifts it at once.
        assertStatus(await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas: { requestsPerSecond: null } }), 200);
        for (const r of await Promise.all(Array.from({ length: 6 }, () => t.client.get("/v1/topics")))) assertStatus(r, 200);
      });

      it("bytesPerSecond: a produce past the bucket is refused, stores nothing and counts nothing", async () => {
        const t = await newTenant({ bytesPerSecond: 10 });
        const topic = uniq("bytes");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        // 40 bytes against a burst of 10: admitted on a full bucket, which it leaves 30 in debt.
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "x".repeat(40) }] }), 200);
        const refused = await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "y".repeat(5) }] });
        assertProblem(refused, 429, "quota_exceeded");
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([1]);
        // The produce of 40 bytes counted; the refused one neither as bytes nor as a request (PUT, produce, GET topic).
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 1, bytesIn: 40, requests: 3 });
      });

      it("bytesPerSecond: a chunked produce (no Content-Length) is charged its messages' bytes", async () => {
        const t = await newTenant({ bytesPerSecond: 10 });
        const topic = uniq("chunked");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        const chunked = (value: string) => {
          const bytes = new TextEncoder().encode(JSON.stringify({ messages: [{ value }] }));
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(bytes);
              controller.close();
            },
          });
          const init = {
            method: "POST",
            body,
            duplex: "half",
            headers: { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" },
          };
          return fetch(`${target!.baseUrl}/v1/topics/${topic}/messages`, init as RequestInit);
        };
        const first = await chunked("x".repeat(40));
        expect(first.status, await first.clone().text()).toBe(200);
        const second = await chunked("y".repeat(5));
        expect(second.status, await second.clone().text()).toBe(429);
        expect((await second.json()).code).toBe("quota_exceeded");
        expect(Number(second.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([1]);
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 1, bytesIn: 40, requests: 3 });
      });

      it("storageBytes: a produce that would store more than the quota is refused", async () => {
        const t = await newTenant({ storageBytes: 2000 });
        const topic = uniq("stored");
        assertStatus(await t.client.put(`/v1/topics/${topic}`, {}), 201);
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "a".repeat(1200) }] }), 200);
        assertProblem(
          await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "b".repeat(1200) }] }),
          429,
          "quota_exceeded",
        );
        expect((await t.client.get(`/v1/topics/${topic}`)).body.highWatermarks).toEqual([1]);
        expect(totals(await adminUsage(t))).toMatchObject({ messagesIn: 1, bytesIn: 1200 });
        // Raising the quota admits it.
        assertStatus(await admin.patch(`/v1/admin/tenants/${t.tenantId}`, { quotas: { storageBytes: 100_000 } }), 200);
        assertStatus(await t.client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "b".repeat(1200) }] }), 200);
      });

      it("topics: creating one past the count is refused; an existing one is still answered 200", async () => {
        const t = await newTenant({ topics: 2 });
        const [a, b] = [uniq("q"), uniq("q")];
        assertStatus(await t.client.put(`/v1/topics/${a}`, {}), 201);
        assertStatus(await t.client.put(`/v1/topics/${b}`, {}), 201);
        assertProblem(await t.client.put(`/v1/topics/${uniq("q")}`, {}), 429, "quota_exceeded");
        assertStatus(await t.client.put(`/v1/topics/${a}`, {}), 200);
        expect((await t.client.get("/v1/topics")).body.topics).toHaveLength(2);
        assertStatus(await t.client.delete(`/v1/topics/${b}`), 204);
        assertStatus(await t.client.put(`/v1/topics/${uniq("q")}`, {}), 201);
      });
    });

    describe("isolation", () => {
      it("every tenant route of the OpenAPI document, with another tenant's key on this tenant's resources, answers 404 and changes nothing", async () => {
        const a = await newTenant();
        const b = await newTenant();
        const topic = uniq("private");
        const secret = `secret-of-a-${runId}`;
        assertStatus(await a.client.put(`/v1/topics/${topic}`, { partitions: 2 }), 201);
        assertStatus(await a.client.post(`/v1/topics/${topic}/messages`, { messages: [{ key: "k", value: secret }] }), 200);
        assertStatus(await a.client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" }), 201);
        const received = await a.client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 1, visibilityTimeoutSeconds: 600 });
        assertStatus(received, 200);
        const receipt = received.body.messages[0].receipt as string;
        assertStatus(await a.client.put(`/v1/topics/${topic}/subscriptions/s`, { url: sink.url(`/never-${runId}`) }), 201);
        assertStatus(await a.client.post(`/v1/topics/${topic}/subscriptions/s/pause`, {}), 200);
        const begun = await a.client.post("/v1/transactions", { timeoutSeconds: 600 });
        assertStatus(begun, 201);
        const transactionId = begun.body.transactionId as string;
        const pending = await a.client.post(`/v1/topics/${topic}/messages`, { transactionId, messages: [{ value: secret }] });
        assertStatus(pending, 202);

        const snapshot = async () =>
          JSON.stringify(
            await Promise.all(
              [
                `/v1/topics/${topic}`,
                `/v1/topics/${topic}/groups/g`,
                `/v1/topics/${topic}/subscriptions/s`,
                `/v1/topics/${topic}/subscriptions/s/deliveries`,
                `/v1/topics/${topic}/partitions/0/messages?offset=0`,
                `/v1/topics/${topic}/partitions/1/messages?offset=0`,
                "/v1/topics",
                `/v1/transactions/${transactionId}`,
              ].map(async (path) => {
                const res = await a.client.get(path);
                assertStatus(res, 200);
                return res.body;
              }),
            ),
          );
        const before = await snapshot();

        const doc = (await api(target!.baseUrl, null).get("/openapi.json")).body;
        const values: Record<string, string> = { topic, group: "g", name: "s", p: "0", id: transactionId };
        // A valid body per route, so that validation never answers before the lookup would.
        const bodies: Record<string, unknown> = {
          "post /v1/topics/{topic}/messages": { messages: [{ value: "from b" }] },
          "patch /v1/topics/{topic}": { retentionHours: 1 },
          "post /v1/topics/{topic}/groups/{group}/ack": { receipts: [receipt] },
          "post /v1/topics/{topic}/groups/{group}/nack": { receipts: [receipt] },
          "post /v1/topics/{topic}/groups/{group}/extend": { receipts: [receipt], visibilityTimeoutSeconds: 1 },
          "post /v1/topics/{topic}/groups/{group}/seek": { to: "latest" },
          "post /v1/topics/{topic}/subscriptions/{name}/replay": { to: "earliest" },
          "put /v1/topics/{topic}/subscriptions/{name}": { url: sink.url(`/b-${runId}`) },
        };
        const queries: Record<string, Record<string, string>> = {
          "get /v1/topics/{topic}/partitions/{p}/messages": { offset: "0" },
          "get /v1/topics/{topic}/offsets": { timestamp: "0" },
        };
        const walked: string[] = [];
        const routes = Object.entries(doc.paths as Record<string, Record<string, { security?: Record<string, unknown>[] }>>)
          .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))
          .filter(({ op }) => (op.security ?? []).some((s) => "apiKey" in s))
          // Creating a topic of the same name makes one of B's own: walked last, the rest must not find it.
          .sort(
            (x, y) =>
              Number(x.method === "put" && x.path === "/v1/topics/{topic}") - Number(y.method === "put" && y.path === "/v1/topics/{topic}"),
          );
        for (const { path, method } of routes) {
          const route = `${method} ${path}`;
          const url = path.replace(/\{(\w+)\}/g, (_, param: string) => {
            if (!(param in values)) throw new Error(`${route}: the isolation walk has no value for {${param}}; add one`);
            return encodeURIComponent(values[param]);
          });
          const res = await b.client.request(method.toUpperCase(), url, {
            ...(method !== "get" && method !== "delete" ? { json: bodies[route] ?? {} } : {}),
            query: queries[route],
          });
          walked.push(`${route} → ${res.status}`);
          const what = `${route} with another tenant's key: ${describeResponse(res)}`;
          expect(res.text, what).not.toContain(secret);
          expect(res.text, what).not.toContain(a.tenantId);
          if (!path.includes("{")) {
            // Routes without a resource answer with B's own (empty) view, or make B's own (a transaction).
            expect(res.status, what).toBe(route === "post /v1/transactions" ? 201 : 200);
          } else if (route === "put /v1/topics/{topic}") {
            expect(res.status, what).toBe(201); // B's own topic of the same name
          } else {
            expect(res.status, what).toBe(404);
          }
        }
        expect(walked.length).toBeGreaterThanOrEqual(20);
        expect(await snapshot()).toBe(before);

        // In B's own topic and group of the same names, A's receipt is unknown.
        assertStatus(await b.client.put(`/v1/topics/${topic}/groups/g`, {}), 201);
        const acked = await b.client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [receipt] });
        assertStatus(acked, 200);
        expect(acked.body).toEqual({ acked: 0, failed: [{ receipt, code: "receipt_unknown" }] });
        // B's usage holds none of A's.
        const usageOfB = await b.client.get("/v1/usage");
        expect(totals(usageOfB.body.usage)).toMatchObject({ messagesIn: 0, messagesOut: 0 });
        expect(await snapshot()).toBe(before);
        // A's receipt still works for A.
        const ackedByA = await a.client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [receipt] });
        expect(ackedByA.body).toMatchObject({ acked: 1, failed: [] });
      });
    });
  });
}
