// The Node server reads produce bodies into arrays it reuses (storage/buffer-pool.ts):
// a body goes back to the pool once the batcher has copied its values into a segment. These tests
// check, through HTTP, that a reused array never changes what an earlier request stored: under
// concurrent produces mixed with requests refused after their body was read, and when a
// request's deadline answers it while its messages still wait in the batcher (the object store
// hung, every flush slot taken) and other requests of the same size arrive meanwhile.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.ts";
import { api, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import type { StallingProxy } from "../support/stalling-proxy.ts";
import { stallingStack, type StallingStack } from "../support/stalling-stack.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

/** A value of `bytes` printable ASCII bytes (the byte scan's path: the value is a view of the body), told apart by its tag. */
function taggedValue(tag: string, bytes: number): string {
  const filler = "abcdefghijklmnopqrstuvwxyz0123456789";
  return `${tag}:`.padEnd(bytes, filler[tag.length % filler.length]);
}

async function readAll(client: Api, topic: string, count: number): Promise<string[]> {
  const values: string[] = [];
  while (values.length < count) {
    const res = await client.get(`/v1/topics/${topic}/partitions/0/messages?offset=${values.length}&limit=10&waitMs=5000`);
    expect(res.status).toBe(200);
    expect(res.body.messages.length).toBeGreaterThan(0);
    for (const m of res.body.messages) values.push(m.value);
  }
  return values;
}

describe("produce bodies in reused arrays, concurrent requests", () => {
  let t: TenantServer;

  beforeAll(async () => {
    t = await serverWithTenant({ label: "body-pool" });
  }, 60_000);
  afterAll(() => t?.stop());

  it("stores every value as sent, with requests refused after their body was read in between", async () => {
    // Four sizes, two per array size (sizeClass rounds to a quarter of the power of two), all pooled.
    const sizes = [70_000, 72_000, 150_000, 155_000];
    const rounds = 3;
    const requests = 12;
    const sent: string[] = [];
    for (let round = 0; round < rounds; round++) {
      const calls: Promise<unknown>[] = [];
      for (let r = 0; r < requests; r++) {
        const size = sizes[(round + r) % sizes.length];
        const messages = [0, 1].map((m) => ({ value: taggedValue(`${round}-${r}-${m}`, size) }));
        sent.push(...messages.map((m) => m.value));
        calls.push(
          t.client.post("/v1/topics/t/messages", { messages }).then((res) => {
            expect(res.status).toBe(200);
            expect(res.body.offsets).toHaveLength(2);
          }),
        );
        // Refused once the body was read and parsed: no such topic, and a body that is not JSON.
        calls.push(
          t.client.post("/v1/topics/missing/messages", { messages: [{ value: taggedValue(`gone-${round}-${r}`, size) }] }).then((res) => {
            expect(res.status).toBe(404);
            expect(res.body.code).toBe("topic_not_found");
          }),
        );
        calls.push(
          t.client
            .post("/v1/topics/t/messages", `{"messages":[{"value":"${taggedValue(`bad-${round}-${r}`, size)}"}`, {
              headers: { "content-type": "application/json" },
            })
            .then((res) => {
              expect(res.status).toBe(400);
              expect(res.body.code).toBe("invalid_request");
            }),
        );
      }
      await Promise.all(calls);
    }
    const stored = await readAll(t.client, "t", sent.length);
    expect(stored.length).toBe(sent.length);
    expect([...stored].sort()).toEqual([...sent].sort());
  }, 120_000);
});

describe("produce bodies in reused arrays, a request answered by its deadline", () => {
  const BOUND_MS = 1_500;
  const SIZE = 100_000;
  let stack: StallingStack<NodeServer>;
  let proxy: StallingProxy;
  let a: Api;
  let b: Api;

  beforeAll(async () => {
    stack = await stallingStack((env) => startNodeServer({ label: "body-pool-deadline", env }), {
      RESERVOIR_REQUEST_TIMEOUT_MS: String(BOUND_MS),
    });
    proxy = stack.proxy;
    const admin = api(stack.server.baseUrl, stack.server.adminToken);
    a = api(stack.server.baseUrl, (await admin.post("/v1/admin/tenants", { name: "a" })).body.apiKey);
    b = api(stack.server.baseUrl, (await admin.post("/v1/admin/tenants", { name: "b" })).body.apiKey);
    expect((await a.put("/v1/topics/a", { partitions: 1 })).status).toBe(201);
    expect((await b.put("/v1/topics/b", { partitions: 1 })).status).toBe(201);
  }, 120_000);

  afterAll(() => stack?.stop());

  it("keeps a body answered 503 out of reuse until its messages are in a segment", async () => {
    proxy.stall((method, path) => method === "PUT" && path.includes("/segments/"));
    const produce = (client: Api, topic: string, value: string) =>
      client.post(`/v1/topics/${topic}/messages`, { messages: [{ value }] }, { allow5xx: true });
    const sentA = Array.from({ length: 8 }, (_, i) => taggedValue(`a-${i}`, SIZE));
    // Four flushes of tenant A, one at a time, each held in its PUT: every flush slot (4) taken.
    const answersA: Promise<{ status: number }>[] = [];
    for (let i = 0; i < 4; i++) {
      answersA.push(produce(a, "a", sentA[i]));
      await eventually(`PUT ${i + 1} held`, () => proxy.held() === i + 1);
    }
    // Four more wait in the batcher, not yet copied into any segment: their values are views of their bodies.
    for (let i = 4; i < 8; i++) answersA.push(produce(a, "a", sentA[i]));
    for (const answer of await Promise.all(answersA)) expect(answer.status).toBe(503);
    // Bodies of the same size from another tenant: they would land in A's arrays had those gone back at the 503.
    const sentB = Array.from({ length: 8 }, (_, i) => taggedValue(`b-${i}`, SIZE));
    const answersB = await Promise.all(sentB.map((value) => produce(b, "b", value)));
    for (const answer of answersB) expect(answer.status).toBe(503);

    proxy.release();
    await eventually("tenant A's eight messages committed", async () => (await a.get("/v1/topics/a")).body.highWatermarks[0] === 8);
    expect([...(await readAll(a, "a", 8))].sort()).toEqual([...sentA].sort());
    await eventually("tenant B's eight messages committed", async () => (await b.get("/v1/topics/b")).body.highWatermarks[0] === 8);
    expect([...(await readAll(b, "b", 8))].sort()).toEqual([...sentB].sort());
  }, 60_000);
});
