// The HTTP contract of shared/API.md (health, OpenAPI, tenants and keys, auth, topics, produce,
// read by offset, offsets by timestamp), exercised through HTTP only so that the same suite runs
// against every target: the Node server (embedded or on Postgres + S3) and the Worker.
//
// Every call goes through test/support/http.ts, which fails the test at once on any 5xx.

import { randomBytes } from "node:crypto";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { redoclyLint } from "../support/redocly.ts";
import { fetchRaw, RAW_MESSAGES_TYPE } from "../support/raw-messages.ts";
import { highWatermarks, expectNoChange } from "../support/topics.ts";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";

export interface ContractTarget {
  baseUrl: string;
  adminToken: string;
  stop(): Promise<void>;
  /** Optional: the target's captured output, shown for the span of a failing test. */
  logs?(): string;
}

const MiB = 1024 * 1024;
/** Resolves once `condition` holds, checking it on every turn of the event loop; fails after 10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface Tenant {
  tenantId: string;
  apiKey: string;
  client: Api;
}

interface Offset {
  partition: number;
  offset: number;
}

type Msg = Record<string, unknown>;

/** Prints what the target's server wrote during a test, when that test fails. */
export function showServerOutputOnFailure(name: string, target: () => ContractTarget | undefined): void {
  beforeEach(({ onTestFailed }) => {
    const mark = target()?.logs?.().length ?? 0;
    onTestFailed(() => {
      const out = target()?.logs?.().slice(mark) ?? "";
      if (out.trim()) console.error(`----- ${name}: server output during the failed test -----\n${out.slice(-20_000)}`);
    });
  });
}

export function contractSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`HTTP contract (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let anon: Api;
    let admin: Api;
    let tenant: Tenant;
    let seq = 0;
    const runId = randomBytes(3).toString("hex");

    /** A topic (or tenant) name unique within this run. */
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    beforeAll(async () => {
      target = await startTarget();
      anon = api(target.baseUrl, null);
      admin = api(target.baseUrl, target.adminToken);
      tenant = await newTenant("contract-main");
    }, 180_000);

    afterAll(async () => {
      await target?.stop();
    }, 60_000);

    showServerOutputOnFailure(name, () => target);

    // ---------------------------------------------------------------- helpers

    async function newTenant(prefix: string): Promise<Tenant> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq(prefix) });
      assertStatus(res, 201);
      expect(typeof res.body.tenantId, describeResponse(res)).toBe("string");
      expect(typeof res.body.apiKey, describeResponse(res)).toBe("string");
      return { tenantId: res.body.tenantId, apiKey: res.body.apiKey, client: api(target!.baseUrl, res.body.apiKey) };
    }

    const topicPath = (topic: string) => `/v1/topics/${encodeURIComponent(topic)}`;

    async function createTopic(client: Api, settings: { partitions?: number; retentionHours?: number } = {}, name = uniq("t")) {
      const res = await client.put(topicPath(name), settings);
      assertStatus(res, 201);
      return name;
    }

    async function produce(client: Api, topic: string, messages: Msg[]): Promise<Offset[]> {
      const res = await client.post(`${topicPath(topic)}/messages`, { messages });
      assertStatus(res, 200);
      const offsets = res.body.offsets as Offset[];
      expect(Array.isArray(offsets), describeResponse(res)).toBe(true);
      expect(offsets).toHaveLength(messages.length);
      return offsets.map((o) => ({ partition: o.partition, offset: o.offset }));
    }

    function ndjson(messages: Msg[], trailingNewline = true): string {
      return messages.map((m) => JSON.stringify(m)).join("\n") + (trailingNewline ? "\n" : "");
    }

    function readMessages(client: Api, topic: string, partition: number, query: Record<string, number | string | undefined> = {}) {
      return client.get(`${topicPath(topic)}/partitions/${partition}/messages`, { query });
    }

    /** Every message of a partition from `from` up to its high watermark, page by page. */
    async function readAll(client: Api, topic: string, partition: number, from = 0): Promise<Msg[]> {
      const out: Msg[] = [];
      let offset = from;
      for (let page = 0; page < 10_000; page++) {
        const res = await readMessages(client, topic, partition, { offset, limit: 1000 });
        assertStatus(res, 200);
        const msgs = res.body.messages as Msg[];
        out.push(...msgs);
        if (msgs.length === 0 || res.body.nextOffset >= res.body.highWatermark) break;
        expect(res.body.nextOffset).toBeGreaterThan(offset);
        offset = res.body.nextOffset;
      }
      return out;
    }

    function expectMessageShape(m: Msg, topic: string, partition: number, offset: number): void {
      expect(m.topic).toBe(topic);
      expect(m.partition).toBe(partition);
      expect(m.offset).toBe(offset);
      expect(Number.isInteger(m.timestamp), `timestamp ${String(m.timestamp)} is an integer`).toBe(true);
    }

    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

    // ---------------------------------------------------------------- health and OpenAPI

    describe("GET /healthz and GET /openapi.json", () => {
      it("GET /healthz answers 200 {ok: true} as JSON without credentials", async () => {
        const res = await anon.get("/healthz");
        assertStatus(res, 200);
        expect(res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
        expect(res.body).toMatchObject({ ok: true });
      });

      it("GET /openapi.json without credentials is an OpenAPI 3.1 document with info and paths", async () => {
        const res = await anon.get("/openapi.json");
        assertStatus(res, 200);
        const doc = res.body;
        expect(typeof doc, describeResponse(res)).toBe("object");
        expect(typeof doc.openapi).toBe("string");
        expect(doc.openapi.startsWith("3.1"), `openapi is ${doc.openapi}`).toBe(true);
        expect(typeof doc.info?.title).toBe("string");
        expect(typeof doc.info?.version).toBe("string");
        expect(typeof doc.paths).toBe("object");
        for (const p of Object.keys(doc.paths)) expect(p.startsWith("/"), `path ${p} starts with /`).toBe(true);
      });

      const documented: [string, string][] = [
        ["get", "/healthz"],
        ["post", "/v1/admin/tenants"],
        ["post", "/v1/admin/tenants/{}/keys"],
        ["delete", "/v1/admin/tenants/{}/keys/{}"],
        ["get", "/v1/topics"],
        ["put", "/v1/topics/{}"],
        ["get", "/v1/topics/{}"],
        ["patch", "/v1/topics/{}"],
        ["delete", "/v1/topics/{}"],
        ["post", "/v1/topics/{}/messages"],
        ["get", "/v1/topics/{}/partitions/{}/messages"],
        ["get", "/v1/topics/{}/offsets"],
      ];

      it("documents an operation for every health, admin, topic, produce and read route", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const byShape = new Map<string, { template: string; item: any }>();
        for (const [template, item] of Object.entries<any>(doc.paths)) {
          byShape.set(template.replace(/\{[^}]*\}/g, "{}"), { template, item });
        }
        const missing = documented.filter(([method, shape]) => !byShape.get(shape)?.item?.[method]);
        expect(
          missing.map(([m, s]) => `${m.toUpperCase()} ${s}`),
          `documented paths: ${[...byShape.values()].map((v) => v.template).join(", ")}`,
        ).toEqual([]);
      });

      it("validates against the OpenAPI 3.1 JSON schema", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const validator = new Validator();
        const result = await validator.validate(doc);
        expect(validator.version).toBe("3.1");
        expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
        expect(result.valid).toBe(true);
      });

      it("passes redocly lint's recommended rules without an error or a warning: operationIds, security, 4xx, servers, license", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const problems = await redoclyLint(doc);
        expect(problems, JSON.stringify(problems, null, 2)).toEqual([]);
        const operations = Object.values<any>(doc.paths).flatMap((item) =>
          ["get", "put", "post", "patch", "delete"].filter((m) => item[m]).map((m) => item[m]),
        );
        expect(operations.every((o) => typeof o.operationId === "string" && Array.isArray(o.security))).toBe(true);
        expect(doc.paths["/healthz"].get.security).toEqual([]);
        expect(doc.servers).toEqual([expect.objectContaining({ url: new URL(target!.baseUrl).origin })]);
        expect(typeof doc.info.license?.name).toBe("string");
      }, 60_000);

      it("is structurally sound: responses, path parameters, unique operationIds, resolvable $refs", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const problems: string[] = [];
        const resolve = (ref: string): unknown => {
          if (!ref.startsWith("#/")) return undefined;
          let node: any = doc;
          for (const raw of ref.slice(2).split("/")) {
            const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
            if (node === null || typeof node !== "object" || !(key in node)) return undefined;
            node = node[key];
          }
          return node;
        };
        const deref = (x: any) => (x && typeof x.$ref === "string" ? resolve(x.$ref) : x);
        // Every local $ref resolves.
        const walk = (node: unknown, at: string) => {
          if (Array.isArray(node)) {
            node.forEach((v, i) => {
              walk(v, `${at}/${i}`);
            });
          } else if (node && typeof node === "object") {
            for (const [k, v] of Object.entries(node)) {
              if (k === "$ref" && typeof v === "string" && v.startsWith("#") && resolve(v) === undefined)
                problems.push(`${at}: unresolvable $ref ${v}`);
              walk(v, `${at}/${k}`);
            }
          }
        };
        walk(doc, "#");
        const methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
        const operationIds = new Set<string>();
        for (const [template, rawItem] of Object.entries<any>(doc.paths ?? {})) {
          const item = deref(rawItem) ?? {};
          const pathParams = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
          for (const method of methods) {
            const op = item[method];
            if (!op) continue;
            const where = `${method.toUpperCase()} ${template}`;
            if (op.operationId !== undefined) {
              if (operationIds.has(op.operationId)) problems.push(`${where}: duplicate operationId ${op.operationId}`);
              operationIds.add(op.operationId);
            }
            const responses = op.responses;
            if (!responses || typeof responses !== "object" || Object.keys(responses).length === 0) {
              problems.push(`${where}: no responses`);
            } else {
              for (const code of Object.keys(responses)) {
                if (!/^([1-5](\d\d|XX)|default)$/.test(code)) problems.push(`${where}: bad response key ${code}`);
              }
            }
            const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref).filter(Boolean);
            for (const param of params) {
              if (typeof param.name !== "string" || !["query", "header", "path", "cookie"].includes(param.in)) {
                problems.push(`${where}: malformed parameter ${JSON.stringify(param)}`);
              }
            }
            for (const name of pathParams) {
              const p = params.find((x: any) => x.in === "path" && x.name === name);
              if (!p) problems.push(`${where}: path parameter {${name}} is not declared`);
              else if (p.required !== true) problems.push(`${where}: path parameter {${name}} is not required: true`);
            }
            for (const p of params.filter((x: any) => x.in === "path")) {
              if (!pathParams.includes(p.name)) problems.push(`${where}: path parameter ${p.name} is not in the path`);
            }
          }
        }
        expect(problems).toEqual([]);
      });

      it("documents bearer authentication for tenant routes and none for /healthz", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const schemes = doc.components?.securitySchemes ?? {};
        const bearer = Object.entries<any>(schemes)
          .filter(([, s]) => s?.type === "http" && String(s.scheme).toLowerCase() === "bearer")
          .map(([k]) => k);
        expect(bearer.length, `securitySchemes: ${JSON.stringify(schemes)}`).toBeGreaterThan(0);
        const find = (shape: string) => Object.entries<any>(doc.paths).find(([t]) => t.replace(/\{[^}]*\}/g, "{}") === shape)?.[1];
        const effective = (op: any) => (op?.security ?? doc.security ?? []) as Record<string, unknown>[];
        const topicsSec = effective(find("/v1/topics")?.get);
        expect(
          topicsSec.some((req) => Object.keys(req).some((k) => bearer.includes(k))),
          `GET /v1/topics security: ${JSON.stringify(topicsSec)}`,
        ).toBe(true);
        const healthSec = effective(find("/healthz")?.get);
        expect(
          healthSec.length === 0 || healthSec.some((req) => Object.keys(req).length === 0),
          `GET /healthz security: ${JSON.stringify(healthSec)}`,
        ).toBe(true);
      });

      it("documents the JSON, the application/x-ndjson and the application/vnd.reservoir.batches request bodies of produce", async () => {
        const doc = (await anon.get("/openapi.json")).body;
        const item = Object.entries<any>(doc.paths).find(([t]) => t.replace(/\{[^}]*\}/g, "{}") === "/v1/topics/{}/messages")?.[1];
        let body = item?.post?.requestBody;
        if (body?.$ref)
          body = body.$ref
            .split("/")
            .slice(1)
            .reduce((n: any, k: string) => n?.[k], doc);
        const types = Object.keys(body?.content ?? {});
        expect(types).toContain("application/json");
        expect(types).toContain("application/x-ndjson");
        expect(types).toContain("application/vnd.reservoir.batches");
      });
    });

    // ---------------------------------------------------------------- admin

    describe("admin: tenants and keys (operator token)", () => {
      it("POST /v1/admin/tenants answers 201 {tenantId, apiKey} and the key works on tenant routes", async () => {
        const res = await admin.post("/v1/admin/tenants", { name: uniq("tenant") });
        assertStatus(res, 201);
        expect(typeof res.body.tenantId).toBe("string");
        expect(typeof res.body.apiKey).toBe("string");
        expect(res.body.apiKey.length).toBeGreaterThan(0);
        const list = await api(target!.baseUrl, res.body.apiKey).get("/v1/topics");
        assertStatus(list, 200);
        expect(list.body).toEqual(expect.objectContaining({ topics: [] }));
      });

      it("two tenants get distinct ids and keys", async () => {
        const a = await newTenant("distinct");
        const b = await newTenant("distinct");
        expect(a.tenantId).not.toBe(b.tenantId);
        expect(a.apiKey).not.toBe(b.apiKey);
      });

      it("refuses tenant creation without credentials, with a wrong token, and with a tenant API key (401 unauthorized)", async () => {
        assertProblem(await anon.post("/v1/admin/tenants", { name: uniq("x") }), 401, "unauthorized");
        assertProblem(await anon.as("not-the-operator-token").post("/v1/admin/tenants", { name: uniq("x") }), 401, "unauthorized");
        assertProblem(await tenant.client.post("/v1/admin/tenants", { name: uniq("x") }), 401, "unauthorized");
        assertProblem(await tenant.client.post(`/v1/admin/tenants/${tenant.tenantId}/keys`), 401, "unauthorized");
      });

      it("refuses malformed JSON (400 malformed_json) and a missing name (400 invalid_request)", async () => {
        assertProblem(
          await admin.post("/v1/admin/tenants", undefined, { raw: '{"name": ', contentType: "application/json" }),
          400,
          "malformed_json",
        );
        assertProblem(await admin.post("/v1/admin/tenants", {}), 400, "invalid_request");
        assertProblem(await admin.post("/v1/admin/tenants", { name: 42 }), 400, "invalid_request");
      });

      it("POST /v1/admin/tenants/{id}/keys answers 201 {apiKey, keyId}; the new key reaches the same tenant", async () => {
        const t = await newTenant("keys");
        const topic = await createTopic(t.client);
        const res = await admin.post(`/v1/admin/tenants/${encodeURIComponent(t.tenantId)}/keys`);
        assertStatus(res, 201);
        expect(typeof res.body.apiKey).toBe("string");
        expect(typeof res.body.keyId).toBe("string");
        expect(res.body.apiKey).not.toBe(t.apiKey);
        const second = api(target!.baseUrl, res.body.apiKey);
        assertStatus(await second.get(topicPath(topic)), 200);
        const names = ((await second.get("/v1/topics")).body.topics as { name: string }[]).map((x) => x.name);
        expect(names).toContain(topic);
      });

      it("POST /v1/admin/tenants/{id}/keys for an unknown tenant answers 404 tenant_not_found", async () => {
        assertProblem(await admin.post(`/v1/admin/tenants/${encodeURIComponent("no-such-tenant-" + runId)}/keys`), 404, "tenant_not_found");
      });

      it("DELETE /v1/admin/tenants/{id}/keys/{keyId} answers 204 and the key answers 401 at once; other keys keep working", async () => {
        const t = await newTenant("revoke");
        const created = await admin.post(`/v1/admin/tenants/${encodeURIComponent(t.tenantId)}/keys`);
        assertStatus(created, 201);
        const doomed = api(target!.baseUrl, created.body.apiKey);
        assertStatus(await doomed.get("/v1/topics"), 200);
        const del = await admin.delete(
          `/v1/admin/tenants/${encodeURIComponent(t.tenantId)}/keys/${encodeURIComponent(created.body.keyId)}`,
        );
        assertStatus(del, 204);
        expect(del.text).toBe("");
        assertProblem(await doomed.get("/v1/topics"), 401, "unauthorized");
        assertProblem(await doomed.put(topicPath(uniq("t")), {}), 401, "unauthorized");
        assertStatus(await t.client.get("/v1/topics"), 200);
      });

      it("revoking a key through another tenant's id, or an unknown key id, answers 404 and revokes nothing", async () => {
        const a = await newTenant("owner");
        const b = await newTenant("other");
        const keyOfB = await admin.post(`/v1/admin/tenants/${encodeURIComponent(b.tenantId)}/keys`);
        assertStatus(keyOfB, 201);
        assertProblem(
          await admin.delete(`/v1/admin/tenants/${encodeURIComponent(a.tenantId)}/keys/${encodeURIComponent(keyOfB.body.keyId)}`),
          404,
        );
        assertProblem(await admin.delete(`/v1/admin/tenants/${encodeURIComponent(a.tenantId)}/keys/no-such-key-${runId}`), 404);
        assertStatus(await api(target!.baseUrl, keyOfB.body.apiKey).get("/v1/topics"), 200);
      });

      it("the operator token is refused on tenant routes (401 unauthorized)", async () => {
        assertProblem(await admin.get("/v1/topics"), 401, "unauthorized");
        assertProblem(await admin.put(topicPath(uniq("t")), {}), 401, "unauthorized");
      });
    });

    // ---------------------------------------------------------------- auth and isolation

    describe("auth and tenant isolation", () => {
      it("tenant routes without credentials, with an unknown key or a non-Bearer scheme answer 401 unauthorized with WWW-Authenticate", async () => {
        const topic = await createTopic(tenant.client);
        const calls: [string, () => Promise<ApiResponse>][] = [
          ["GET /v1/topics (no auth)", () => anon.get("/v1/topics")],
          ["GET topic (no auth)", () => anon.get(topicPath(topic))],
          ["PUT topic (no auth)", () => anon.put(topicPath(uniq("t")), {})],
          ["produce (no auth)", () => anon.post(`${topicPath(topic)}/messages`, { messages: [{ value: "x" }] })],
          ["read (no auth)", () => anon.get(`${topicPath(topic)}/partitions/0/messages`, { query: { offset: 0 } })],
          ["offsets (no auth)", () => anon.get(`${topicPath(topic)}/offsets`, { query: { timestamp: 0 } })],
          ["unknown key", () => anon.as("rsv_not_a_real_key_" + runId).get("/v1/topics")],
          ["Basic scheme", () => anon.get("/v1/topics", { headers: { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } })],
          ["Bearer without a key", () => anon.get("/v1/topics", { headers: { authorization: "Bearer " } })],
          ["the key without Bearer", () => anon.get("/v1/topics", { headers: { authorization: tenant.apiKey } })],
        ];
        for (const [what, call] of calls) {
          const res = await call();
          try {
            assertProblem(res, 401, "unauthorized");
          } catch (err) {
            throw new Error(`${what}: ${(err as Error).message}`);
          }
          expect(res.headers.get("www-authenticate") ?? "", `${what}: WWW-Authenticate`).toMatch(/bearer/i);
        }
        expect(await highWatermarks(tenant.client, topic)).toEqual([0]);
      });

      it("an unauthenticated request for a topic that does not exist is a 401, not a 404", async () => {
        assertProblem(await anon.get(topicPath(uniq("ghost"))), 401, "unauthorized");
      });

      it("another tenant's key sees 404 for a topic it does not own: get, patch, delete, produce, read, offsets; nothing changes", async () => {
        const owner = await newTenant("iso-owner");
        const intruder = await newTenant("iso-intruder");
        const topic = await createTopic(owner.client, { partitions: 2 });
        await produce(owner.client, topic, [{ value: "secret", partition: 0 }]);
        const p = topicPath(topic);
        assertProblem(await intruder.client.get(p), 404, "topic_not_found");
        assertProblem(await intruder.client.patch(p, { partitions: 4 }), 404, "topic_not_found");
        assertProblem(await intruder.client.post(`${p}/messages`, { messages: [{ value: "intrusion" }] }), 404, "topic_not_found");
        assertProblem(await readMessages(intruder.client, topic, 0, { offset: 0 }), 404, "topic_not_found");
        assertProblem(await intruder.client.get(`${p}/offsets`, { query: { timestamp: 0 } }), 404, "topic_not_found");
        assertProblem(await intruder.client.delete(p), 404, "topic_not_found");
        const listed = ((await intruder.client.get("/v1/topics")).body.topics as { name: string }[]).map((x) => x.name);
        expect(listed).not.toContain(topic);
        const after = await owner.client.get(p);
        assertStatus(after, 200);
        expect(after.body.partitions).toBe(2);
        expect(after.body.highWatermarks).toEqual([1, 0]);
        const read = await readMessages(owner.client, topic, 0, { offset: 0 });
        expect((read.body.messages as Msg[]).map((m) => m.value)).toEqual(["secret"]);
      });

      it("two tenants can each own a topic named `orders`, with separate settings and messages", async () => {
        const a = await newTenant("orders-a");
        const b = await newTenant("orders-b");
        assertStatus(await a.client.put(topicPath("orders"), { partitions: 2 }), 201);
        await produce(a.client, "orders", [
          { value: "a-0", partition: 0 },
          { value: "a-1", partition: 0 },
        ]);
        // Not 200 (same settings) nor 409 (different settings): B's `orders` is a new topic.
        assertStatus(await b.client.put(topicPath("orders"), { partitions: 3 }), 201);
        await produce(b.client, "orders", [{ value: "b-0", partition: 0 }]);
        const ga = (await a.client.get(topicPath("orders"))).body;
        const gb = (await b.client.get(topicPath("orders"))).body;
        expect(ga.partitions).toBe(2);
        expect(ga.highWatermarks).toEqual([2, 0]);
        expect(gb.partitions).toBe(3);
        expect(gb.highWatermarks).toEqual([1, 0, 0]);
        expect((await readAll(a.client, "orders", 0)).map((m) => m.value)).toEqual(["a-0", "a-1"]);
        expect((await readAll(b.client, "orders", 0)).map((m) => m.value)).toEqual(["b-0"]);
        assertStatus(await b.client.delete(topicPath("orders")), 204);
        assertStatus(await a.client.get(topicPath("orders")), 200);
      });
    });

    // ---------------------------------------------------------------- topics

    describe("topics", () => {
      it("PUT creates a topic (201) with the defaults: 1 partition, 168 retention hours, integer createdAt", async () => {
        const name = uniq("defaults");
        const before = Date.now();
        const res = await tenant.client.put(topicPath(name), {});
        assertStatus(res, 201);
        expect(res.body).toMatchObject({ name, partitions: 1, retentionHours: 168 });
        expect(Number.isInteger(res.body.createdAt)).toBe(true);
        expect(res.body.createdAt).toBeGreaterThanOrEqual(before - 5 * 60_000);
      });

      it("PUT with the same settings answers 200 with the same topic; explicit defaults equal omitted ones", async () => {
        const name = uniq("same");
        const created = await tenant.client.put(topicPath(name), { partitions: 3, retentionHours: 24 });
        assertStatus(created, 201);
        const again = await tenant.client.put(topicPath(name), { partitions: 3, retentionHours: 24 });
        assertStatus(again, 200);
        expect(again.body).toMatchObject({ name, partitions: 3, retentionHours: 24, createdAt: created.body.createdAt });
        const d = uniq("same-defaults");
        assertStatus(await tenant.client.put(topicPath(d), {}), 201);
        assertStatus(await tenant.client.put(topicPath(d), { partitions: 1, retentionHours: 168 }), 200);
      });

      it("PUT with different settings answers 409 topic_conflict and keeps the existing settings", async () => {
        const name = await createTopic(tenant.client, { partitions: 2, retentionHours: 48 });
        assertProblem(await tenant.client.put(topicPath(name), { partitions: 3, retentionHours: 48 }), 409, "topic_conflict");
        assertProblem(await tenant.client.put(topicPath(name), { partitions: 2, retentionHours: 49 }), 409, "topic_conflict");
        const got = await tenant.client.get(topicPath(name));
        expect(got.body).toMatchObject({ partitions: 2, retentionHours: 48 });
      });

      it("accepts 1 and 256 partitions and refuses 0, 257, fractions and strings (400 invalid_request) without creating anything", async () => {
        assertStatus(await tenant.client.put(topicPath(uniq("p1")), { partitions: 1 }), 201);
        const big = uniq("p256");
        assertStatus(await tenant.client.put(topicPath(big), { partitions: 256 }), 201);
        expect(await highWatermarks(tenant.client, big)).toHaveLength(256);
        for (const body of [
          { partitions: 0 },
          { partitions: 257 },
          { partitions: 1.5 },
          { partitions: "2" },
          { retentionHours: "x" },
          { retentionHours: 1.5 },
        ]) {
          const name = uniq("badsettings");
          const res = await tenant.client.put(topicPath(name), body);
          try {
            assertProblem(res, 400, "invalid_request");
          } catch (err) {
            throw new Error(`PUT ${JSON.stringify(body)}: ${(err as Error).message}`);
          }
          assertProblem(await tenant.client.get(topicPath(name)), 404, "topic_not_found");
        }
      });

      it("accepts names matching ^[A-Za-z0-9._-]{1,200}$ and refuses others with 400 invalid_name", async () => {
        for (const name of [`Az09._-${runId}`, "x".repeat(200 - runId.length) + runId]) {
          const res = await tenant.client.put(topicPath(name), {});
          assertStatus(res, 201);
          expect(res.body.name).toBe(name);
        }
        for (const name of ["y".repeat(201), `bad$name${runId}`, `bad name${runId}`, `café${runId}`, `a:b${runId}`, `a+b${runId}`]) {
          const res = await tenant.client.put(topicPath(name), {});
          try {
            assertProblem(res, 400, "invalid_name");
          } catch (err) {
            throw new Error(`PUT topic ${JSON.stringify(name)}: ${(err as Error).message}`);
          }
        }
      });

      it("PUT with malformed JSON (400 malformed_json) or a non-JSON content type (415) creates nothing", async () => {
        const name = uniq("badput");
        assertProblem(
          await tenant.client.put(topicPath(name), undefined, { raw: '{"partitions": 2', contentType: "application/json" }),
          400,
          "malformed_json",
        );
        assertProblem(
          await tenant.client.put(topicPath(name), undefined, { raw: '{"partitions": 2}', contentType: "text/plain" }),
          415,
          "unsupported_media_type",
        );
        assertProblem(await tenant.client.get(topicPath(name)), 404, "topic_not_found");
      });

      it("GET /v1/topics lists the tenant's topics with name, partitions, retentionHours and createdAt", async () => {
        const t = await newTenant("list");
        const a = await createTopic(t.client, { partitions: 2 });
        const b = await createTopic(t.client, { retentionHours: 12 });
        const res = await t.client.get("/v1/topics");
        assertStatus(res, 200);
        const topics = res.body.topics as Record<string, unknown>[];
        expect(topics).toHaveLength(2);
        const byName = new Map(topics.map((x) => [x.name, x]));
        expect(byName.get(a)).toMatchObject({ name: a, partitions: 2, retentionHours: 168 });
        expect(byName.get(b)).toMatchObject({ name: b, partitions: 1, retentionHours: 12 });
        for (const x of topics) expect(Number.isInteger(x.createdAt)).toBe(true);
      });

      it("GET /v1/topics/{topic} returns the settings and one high watermark (next offset) per partition", async () => {
        const name = await createTopic(tenant.client, { partitions: 3 });
        const fresh = await tenant.client.get(topicPath(name));
        assertStatus(fresh, 200);
        expect(fresh.body).toMatchObject({ name, partitions: 3, retentionHours: 168, highWatermarks: [0, 0, 0] });
        await produce(tenant.client, name, [
          { value: "a", partition: 1 },
          { value: "b", partition: 1 },
          { value: "c", partition: 2 },
        ]);
        expect(await highWatermarks(tenant.client, name)).toEqual([0, 2, 1]);
      });

      it("GET of an unknown topic answers 404 topic_not_found", async () => {
        assertProblem(await tenant.client.get(topicPath(uniq("missing"))), 404, "topic_not_found");
      });

      it("PATCH grows partitions (keeping existing high watermarks) and changes retentionHours", async () => {
        const name = await createTopic(tenant.client, { partitions: 2 });
        await produce(tenant.client, name, [{ value: "x", partition: 1 }]);
        assertStatus(await tenant.client.patch(topicPath(name), { partitions: 4 }), 200);
        let got = (await tenant.client.get(topicPath(name))).body;
        expect(got.partitions).toBe(4);
        expect(got.highWatermarks).toEqual([0, 1, 0, 0]);
        expect(await produce(tenant.client, name, [{ value: "new", partition: 3 }])).toEqual([{ partition: 3, offset: 0 }]);
        assertStatus(await tenant.client.patch(topicPath(name), { retentionHours: 72 }), 200);
        got = (await tenant.client.get(topicPath(name))).body;
        expect(got).toMatchObject({ partitions: 4, retentionHours: 72 });
        // PUT now compares against the patched settings.
        assertStatus(await tenant.client.put(topicPath(name), { partitions: 4, retentionHours: 72 }), 200);
        assertProblem(await tenant.client.put(topicPath(name), { partitions: 2 }), 409, "topic_conflict");
      });

      it("PATCH refuses to shrink partitions (400 partitions_cannot_shrink) and changes nothing", async () => {
        const name = await createTopic(tenant.client, { partitions: 3 });
        assertProblem(await tenant.client.patch(topicPath(name), { partitions: 2 }), 400, "partitions_cannot_shrink");
        expect((await tenant.client.get(topicPath(name))).body.partitions).toBe(3);
      });

      it("PATCH validates its body (400 invalid_request, malformed_json) and 404s for an unknown topic", async () => {
        const name = await createTopic(tenant.client, { partitions: 2 });
        assertProblem(await tenant.client.patch(topicPath(name), { partitions: "4" }), 400, "invalid_request");
        assertProblem(await tenant.client.patch(topicPath(name), { partitions: 257 }), 400, "invalid_request");
        assertProblem(
          await tenant.client.patch(topicPath(name), undefined, { raw: "{", contentType: "application/json" }),
          400,
          "malformed_json",
        );
        expect((await tenant.client.get(topicPath(name))).body.partitions).toBe(2);
        assertProblem(await tenant.client.patch(topicPath(uniq("missing")), { partitions: 4 }), 404, "topic_not_found");
      });

      it("DELETE answers 204; the topic then 404s everywhere, leaves the list, and a re-created topic starts empty", async () => {
        const name = await createTopic(tenant.client, { partitions: 2 });
        await produce(tenant.client, name, [
          { value: "old", partition: 0 },
          { value: "old", partition: 1 },
        ]);
        const del = await tenant.client.delete(topicPath(name));
        assertStatus(del, 204);
        expect(del.text).toBe("");
        assertProblem(await tenant.client.get(topicPath(name)), 404, "topic_not_found");
        assertProblem(await readMessages(tenant.client, name, 0, { offset: 0 }), 404, "topic_not_found");
        assertProblem(await tenant.client.post(`${topicPath(name)}/messages`, { messages: [{ value: "x" }] }), 404, "topic_not_found");
        assertProblem(await tenant.client.get(`${topicPath(name)}/offsets`, { query: { timestamp: 0 } }), 404, "topic_not_found");
        assertProblem(await tenant.client.delete(topicPath(name)), 404, "topic_not_found");
        const listed = ((await tenant.client.get("/v1/topics")).body.topics as { name: string }[]).map((x) => x.name);
        expect(listed).not.toContain(name);
        const again = await tenant.client.put(topicPath(name), { partitions: 2 });
        assertStatus(again, 201);
        expect(await highWatermarks(tenant.client, name)).toEqual([0, 0]);
        const read = await readMessages(tenant.client, name, 0, { offset: 0 });
        assertStatus(read, 200);
        expect(read.body.messages).toEqual([]);
      });
    });

    // ---------------------------------------------------------------- produce

    describe("produce: POST /v1/topics/{topic}/messages", () => {
      it("answers 200 with offsets in request order; reading returns topic, partition, offset, timestamp and the value", async () => {
        const topic = await createTopic(tenant.client);
        const before = Date.now();
        const offsets = await produce(tenant.client, topic, [{ value: "first" }, { value: "second" }, { value: "third" }]);
        const after = Date.now();
        expect(offsets).toEqual([0, 1, 2].map((offset) => ({ partition: 0, offset })));
        const read = await readMessages(tenant.client, topic, 0, { offset: 0 });
        assertStatus(read, 200);
        const msgs = read.body.messages as Msg[];
        expect(msgs.map((m) => m.value)).toEqual(["first", "second", "third"]);
        msgs.forEach((m, i) => {
          expectMessageShape(m, topic, 0, i);
          expect(m.valueBase64).toBeUndefined();
          expect(m.key ?? undefined).toBeUndefined();
          expect(m.timestamp as number).toBeGreaterThanOrEqual(before - 1_000);
          expect(m.timestamp as number).toBeLessThanOrEqual(after + 1_000);
        });
      });

      it("assigns dense offsets per partition across requests, in request order", async () => {
        const topic = await createTopic(tenant.client, { partitions: 3 });
        const first = await produce(
          tenant.client,
          topic,
          [0, 1, 0, 2, 1, 0].map((partition, i) => ({ value: `r1-${i}`, partition })),
        );
        expect(first).toEqual([
          { partition: 0, offset: 0 },
          { partition: 1, offset: 0 },
          { partition: 0, offset: 1 },
          { partition: 2, offset: 0 },
          { partition: 1, offset: 1 },
          { partition: 0, offset: 2 },
        ]);
        const second = await produce(
          tenant.client,
          topic,
          [2, 0, 2].map((partition, i) => ({ value: `r2-${i}`, partition })),
        );
        expect(second).toEqual([
          { partition: 2, offset: 1 },
          { partition: 0, offset: 3 },
          { partition: 2, offset: 2 },
        ]);
        expect(await highWatermarks(tenant.client, topic)).toEqual([4, 2, 3]);
        expect((await readAll(tenant.client, topic, 0)).map((m) => m.value)).toEqual(["r1-0", "r1-2", "r1-5", "r2-1"]);
        expect((await readAll(tenant.client, topic, 2)).map((m) => m.value)).toEqual(["r1-3", "r2-0", "r2-2"]);
      });

      it("puts all keyless messages of one request in one partition, and moves round-robin to the next partition per request", async () => {
        const topic = await createTopic(tenant.client, { partitions: 4 });
        const batch = await produce(
          tenant.client,
          topic,
          Array.from({ length: 10 }, (_, i) => ({ value: `k-less-${i}` })),
        );
        const p = batch[0].partition;
        expect(batch).toEqual(batch.map((_, i) => ({ partition: p, offset: i })));
        const used: number[] = [];
        for (let i = 0; i < 8; i++)
          used.push((await produce(tenant.client, topic, [{ value: `rr-${i}` }, { value: `rr-${i}b` }]))[0].partition);
        const counts = [0, 1, 2, 3].map((q) => used.filter((x) => x === q).length);
        expect(counts, `partitions of 8 consecutive keyless requests: ${used.join(",")}`).toEqual([2, 2, 2, 2]);
        for (let i = 1; i < used.length; i++) expect(used[i], `request ${i} moved to another partition`).not.toBe(used[i - 1]);
      });

      it("sends a key to the same partition in every request (stable hash) and spreads different keys", async () => {
        const topic = await createTopic(tenant.client, { partitions: 4 });
        const keys = Array.from({ length: 24 }, (_, i) => `user-${i}`);
        const first = await produce(
          tenant.client,
          topic,
          keys.map((key) => ({ key, value: `1-${key}` })),
        );
        const second = await produce(
          tenant.client,
          topic,
          [...keys].reverse().map((key) => ({ key, value: `2-${key}` })),
        );
        const partitionOf = new Map(keys.map((k, i) => [k, first[i].partition]));
        [...keys].reverse().forEach((k, i) => {
          expect(second[i].partition, `key ${k}`).toBe(partitionOf.get(k));
        });
        const third = await produce(tenant.client, topic, [
          { key: "user-3", value: "3a" },
          { key: "user-3", value: "3b" },
        ]);
        expect(third[0].partition).toBe(partitionOf.get("user-3"));
        expect(third[1]).toEqual({ partition: third[0].partition, offset: third[0].offset + 1 });
        expect(new Set(partitionOf.values()).size).toBeGreaterThan(1);
        // The key is returned with the message.
        const read = await readMessages(tenant.client, topic, third[0].partition, { offset: third[0].offset, limit: 2 });
        expect((read.body.messages as Msg[]).map((m) => [m.key, m.value])).toEqual([
          ["user-3", "3a"],
          ["user-3", "3b"],
        ]);
      });

      it("an explicit partition wins over the key", async () => {
        const topic = await createTopic(tenant.client, { partitions: 4 });
        const [natural] = await produce(tenant.client, topic, [{ key: "order-42", value: "natural" }]);
        const other = (natural.partition + 1) % 4;
        const [forced] = await produce(tenant.client, topic, [{ key: "order-42", value: "forced", partition: other }]);
        expect(forced.partition).toBe(other);
        const read = await readMessages(tenant.client, topic, other, { offset: forced.offset, limit: 1 });
        expect((read.body.messages as Msg[])[0]).toMatchObject({ key: "order-42", value: "forced", partition: other });
      });

      it("refuses a partition >= the count (400 partition_out_of_range) and negative or fractional ones (400), storing nothing", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        await expectNoChange(tenant.client, topic, async () => {
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, {
              messages: [
                { value: "ok", partition: 0 },
                { value: "x", partition: 2 },
              ],
            }),
            400,
            "partition_out_of_range",
          );
          assertProblem(await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "x", partition: -1 }] }), 400);
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "x", partition: 0.5 }] }),
            400,
            "invalid_request",
          );
        });
      });

      it("returns valueBase64 messages as valueBase64 with exactly the same bytes (all 256 byte values, invalid UTF-8, empty)", async () => {
        const topic = await createTopic(tenant.client);
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        const invalidUtf8 = Uint8Array.from([0xc3, 0x28, 0xff, 0xfe, 0x00, 0xed, 0xa0, 0x80, 0xf0, 0x9f]);
        const random = new Uint8Array(randomBytes(4096));
        const payloads = [all, invalidUtf8, random, new Uint8Array(0)];
        const offsets = await produce(
          tenant.client,
          topic,
          payloads.map((p) => ({ valueBase64: b64(p) })),
        );
        const msgs = (await readMessages(tenant.client, topic, 0, { offset: offsets[0].offset })).body.messages as Msg[];
        expect(msgs).toHaveLength(payloads.length);
        msgs.forEach((m, i) => {
          expect(m.value, "a binary message has no `value`").toBeUndefined();
          expect(typeof m.valueBase64).toBe("string");
          expect(Buffer.from(m.valueBase64 as string, "base64").equals(Buffer.from(payloads[i])), `payload ${i} bytes`).toBe(true);
        });
      });

      it("returns string values exactly (unicode, emoji, control characters, a leading U+FEFF, empty) in `value`", async () => {
        const topic = await createTopic(tenant.client);
        const values = [
          "",
          "\uFEFFstarts with a byte-order mark",
          "héllo wörld",
          "日本語テキスト",
          "emoji 🎉👍🏽 and surrogates 𝄞",
          'tab\tnewline\nquote"backslash\\',
          "\u0000nul\u0001",
          " ".repeat(3),
        ];
        const offsets = await produce(
          tenant.client,
          topic,
          values.map((value) => ({ value })),
        );
        const msgs = (await readMessages(tenant.client, topic, 0, { offset: offsets[0].offset })).body.messages as Msg[];
        expect(msgs.map((m) => m.value)).toEqual(values);
        for (const m of msgs) expect(m.valueBase64).toBeUndefined();
      });

      it("stores headers and returns them unchanged; refuses non-string header values (400 invalid_request)", async () => {
        const topic = await createTopic(tenant.client);
        const headers = { "content-type": "text/plain", "x-trace-id": "abc-123", "x-ünïcode": "✓ välue", "x-empty": "" };
        const [o] = await produce(tenant.client, topic, [{ value: "with headers", key: "k", headers }]);
        const m = ((await readMessages(tenant.client, topic, 0, { offset: o.offset, limit: 1 })).body.messages as Msg[])[0];
        expect(m.headers).toEqual(headers);
        expect(m.key).toBe("k");
        await expectNoChange(tenant.client, topic, async () => {
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "v", headers: { a: 1 } }] }),
            400,
            "invalid_request",
          );
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "v", headers: ["a"] }] }),
            400,
            "invalid_request",
          );
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "v", key: 7 }] }),
            400,
            "invalid_request",
          );
        });
      });

      it("accepts application/x-ndjson (one message per line, with or without a final newline) with the same result", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const msgs: Msg[] = [
          { value: "nd-0", partition: 1 },
          { valueBase64: b64(Uint8Array.from([0, 1, 2, 255])), partition: 1, headers: { h: "v" } },
          { value: "nd-2", key: "kk", partition: 0 },
        ];
        for (const trailing of [true, false]) {
          const res = await tenant.client.post(`${topicPath(topic)}/messages`, undefined, {
            raw: ndjson(msgs, trailing),
            contentType: "application/x-ndjson",
          });
          assertStatus(res, 200);
          const base = trailing ? 0 : 2;
          const base0 = trailing ? 0 : 1;
          expect(res.body.offsets).toEqual([
            { partition: 1, offset: base },
            { partition: 1, offset: base + 1 },
            { partition: 0, offset: base0 },
          ]);
        }
        const p1 = await readAll(tenant.client, topic, 1);
        const shown = (m: Msg) =>
          (m.value as string | undefined) ?? `hex:${Buffer.from(m.valueBase64 as string, "base64").toString("hex")}`;
        expect(p1.map(shown)).toEqual(["nd-0", "hex:000102ff", "nd-0", "hex:000102ff"]);
        expect(p1[1].headers).toEqual({ h: "v" });
        expect(p1[1].value).toBeUndefined();
        const p0 = await readAll(tenant.client, topic, 0);
        expect(p0.map((m) => [m.key, m.value])).toEqual([
          ["kk", "nd-2"],
          ["kk", "nd-2"],
        ]);
      });

      it("refuses malformed ndjson lines (400 malformed_json) and invalid ndjson messages (400 invalid_request), storing nothing", async () => {
        const topic = await createTopic(tenant.client);
        await expectNoChange(tenant.client, topic, async () => {
          const bad = '{"value":"ok"}\n{"value": oops}\n';
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw: bad, contentType: "application/x-ndjson" }),
            400,
            "malformed_json",
          );
          const both = ndjson([{ value: "ok" }, { value: "x", valueBase64: "eA==" }]);
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw: both, contentType: "application/x-ndjson" }),
            400,
            "invalid_request",
          );
        });
      });

      it("a repeated idempotencyKey returns the original offsets and stores nothing; new keys in the same request are stored", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const ik = `idem-${runId}`;
        const request = [
          { value: "a", partition: 1, idempotencyKey: `${ik}-a` },
          { value: "b", partition: 0, idempotencyKey: `${ik}-b` },
        ];
        const original = await produce(tenant.client, topic, request);
        expect(original).toEqual([
          { partition: 1, offset: 0 },
          { partition: 0, offset: 0 },
        ]);
        const hw = await highWatermarks(tenant.client, topic);
        expect(await produce(tenant.client, topic, request)).toEqual(original);
        expect(await highWatermarks(tenant.client, topic)).toEqual(hw);
        const mixed = await produce(tenant.client, topic, [
          { value: "a-changed", partition: 1, idempotencyKey: `${ik}-a` },
          { value: "c", partition: 1, idempotencyKey: `${ik}-c` },
        ]);
        expect(mixed).toEqual([
          { partition: 1, offset: 0 },
          { partition: 1, offset: 1 },
        ]);
        expect(await highWatermarks(tenant.client, topic)).toEqual([1, 2]);
        expect((await readAll(tenant.client, topic, 1)).map((m) => m.value)).toEqual(["a", "c"]);
        // Through ndjson too.
        const nd = await tenant.client.post(`${topicPath(topic)}/messages`, undefined, {
          raw: ndjson(request),
          contentType: "application/x-ndjson",
        });
        assertStatus(nd, 200);
        expect(nd.body.offsets).toEqual(original);
        expect(await highWatermarks(tenant.client, topic)).toEqual([1, 2]);
      });

      it("an idempotencyKey is scoped to its topic: the same key on another topic stores a new message", async () => {
        const a = await createTopic(tenant.client);
        const b = await createTopic(tenant.client);
        const key = `scoped-${runId}`;
        await produce(tenant.client, a, [{ value: "x" }, { value: "in a", idempotencyKey: key }]);
        expect(await produce(tenant.client, b, [{ value: "in b", idempotencyKey: key }])).toEqual([{ partition: 0, offset: 0 }]);
        expect((await readAll(tenant.client, b, 0)).map((m) => m.value)).toEqual(["in b"]);
      });

      it("accepts a message of exactly 1 MiB and refuses 1 MiB + 1 byte of value + key + headers (413 message_too_large), counting UTF-8 bytes", async () => {
        const topic = await createTopic(tenant.client);
        const [o] = await produce(tenant.client, topic, [{ value: "v".repeat(MiB) }]);
        const back = ((await readMessages(tenant.client, topic, 0, { offset: o.offset, limit: 1 })).body.messages as Msg[])[0];
        expect((back.value as string).length).toBe(MiB);
        // "é" is 2 bytes in UTF-8: MiB/2 of them are exactly 1 MiB.
        await produce(tenant.client, topic, [{ value: "é".repeat(MiB / 2) }]);
        await expectNoChange(tenant.client, topic, async () => {
          const tooLarge: Msg[][] = [
            [{ value: "v".repeat(MiB + 1) }],
            [{ value: "é".repeat(MiB / 2) + "x" }],
            [{ value: "v".repeat(MiB - 10), key: "kkkkkk", headers: { h: "abcd" } }], // 1 MiB - 10 + 6 + 5 bytes
            [{ valueBase64: b64(new Uint8Array(MiB + 1)) }],
            [{ value: "fine" }, { value: "v".repeat(MiB + 1) }],
          ];
          for (const messages of tooLarge) {
            const p = assertProblem(await tenant.client.post(`${topicPath(topic)}/messages`, { messages }), 413, "message_too_large");
            expect(p.detail).toMatch(/1\s?MiB|1,?048,?576/i);
          }
        });
        await produce(tenant.client, topic, [{ value: "v".repeat(MiB - 11), key: "kkkkkk", headers: { h: "abcd" } }]);
      });

      it("accepts 1,000 messages and refuses 1,001 (413 too_many_messages), in JSON and ndjson", async () => {
        const topic = await createTopic(tenant.client);
        const thousand = Array.from({ length: 1000 }, (_, i) => ({ value: `m${i}` }));
        const offsets = await produce(tenant.client, topic, thousand);
        expect(offsets.map((o) => o.offset)).toEqual(thousand.map((_, i) => i));
        const over = [...thousand, { value: "one too many" }];
        await expectNoChange(tenant.client, topic, async () => {
          const p = assertProblem(await tenant.client.post(`${topicPath(topic)}/messages`, { messages: over }), 413, "too_many_messages");
          expect(p.detail).toMatch(/1,?000/);
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw: ndjson(over), contentType: "application/x-ndjson" }),
            413,
            "too_many_messages",
          );
        });
      });

      it("accepts a body just under 8 MiB and refuses one over 8 MiB (413 body_too_large), in JSON and ndjson", async () => {
        const topic = await createTopic(tenant.client);
        const under = Array.from({ length: 8 }, (_, i) => ({ value: String(i).repeat(1_040_000) }));
        expect(JSON.stringify({ messages: under }).length).toBeLessThan(8 * MiB);
        const offsets = await produce(tenant.client, topic, under);
        expect(offsets.map((o) => o.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        const over = Array.from({ length: 9 }, (_, i) => ({ value: String(i).repeat(1_000_000) }));
        expect(JSON.stringify({ messages: over }).length).toBeGreaterThan(8 * MiB);
        await expectNoChange(tenant.client, topic, async () => {
          const p = assertProblem(await tenant.client.post(`${topicPath(topic)}/messages`, { messages: over }), 413, "body_too_large");
          expect(p.detail).toMatch(/8\s?MiB|8,?388,?608/i);
          assertProblem(
            await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw: ndjson(over), contentType: "application/x-ndjson" }),
            413,
            "body_too_large",
          );
        });
      });

      it("refuses malformed JSON with 400 malformed_json and stores nothing", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "before" }]);
        await expectNoChange(tenant.client, topic, async () => {
          for (const raw of ['{"messages": [{"value": "x"}', "not json", '{"messages": [{"value": "x"},]}', ""]) {
            const res = await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw, contentType: "application/json" });
            try {
              assertProblem(res, 400, "malformed_json");
            } catch (err) {
              throw new Error(`body ${JSON.stringify(raw)}: ${(err as Error).message}`);
            }
          }
        });
      });

      it("refuses schema violations with 400 invalid_request and stores nothing, not even the valid messages of the request", async () => {
        const topic = await createTopic(tenant.client);
        const bodies: unknown[] = [
          [],
          { messages: "x" },
          { messages: [{}] },
          { messages: [{ value: "ok" }, { value: "x", valueBase64: "eA==" }] },
          { messages: [{ value: 5 }] },
          { messages: [{ valueBase64: "***not base64***" }] },
          { messages: [{ value: "ok", idempotencyKey: 5 }] },
        ];
        await expectNoChange(tenant.client, topic, async () => {
          for (const body of bodies) {
            const res = await tenant.client.post(`${topicPath(topic)}/messages`, body);
            try {
              assertProblem(res, 400, "invalid_request");
            } catch (err) {
              throw new Error(`body ${JSON.stringify(body)}: ${(err as Error).message}`);
            }
          }
        });
      });

      it("refuses a non-JSON, non-ndjson content type, or a charset other than UTF-8, with 415 unsupported_media_type and stores nothing", async () => {
        const topic = await createTopic(tenant.client);
        const body = JSON.stringify({ messages: [{ value: "x" }] });
        await expectNoChange(tenant.client, topic, async () => {
          for (const contentType of [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "application/x-ndjson; charset=iso-8859-1",
          ]) {
            assertProblem(
              await tenant.client.post(`${topicPath(topic)}/messages`, undefined, { raw: body, contentType }),
              415,
              "unsupported_media_type",
            );
          }
        });
      });

      it("after rejected requests the next accepted message takes the next offset (no offset was consumed)", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "0" }, { value: "1" }]);
        assertProblem(await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "a" }, {}] }), 400, "invalid_request");
        assertProblem(
          await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "v".repeat(MiB + 1) }] }),
          413,
          "message_too_large",
        );
        expect(await produce(tenant.client, topic, [{ value: "2" }])).toEqual([{ partition: 0, offset: 2 }]);
        expect((await readAll(tenant.client, topic, 0)).map((m) => m.value)).toEqual(["0", "1", "2"]);
      });

      it("producing to an unknown topic answers 404 topic_not_found and does not create it", async () => {
        const name = uniq("nowhere");
        assertProblem(await tenant.client.post(`${topicPath(name)}/messages`, { messages: [{ value: "x" }] }), 404, "topic_not_found");
        assertProblem(await tenant.client.get(topicPath(name)), 404, "topic_not_found");
      });
    });

    // ---------------------------------------------------------------- read by offset

    describe("read by offset: GET /v1/topics/{topic}/partitions/{p}/messages", () => {
      it("returns `limit` messages from `offset` with nextOffset and highWatermark, across produce requests", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        for (let r = 0; r < 5; r++)
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 5 }, (_, i) => ({ value: `v${r * 5 + i}`, partition: 0 })),
          );
        let res = await readMessages(tenant.client, topic, 0, { offset: 0, limit: 10 });
        assertStatus(res, 200);
        expect(res.body.nextOffset).toBe(10);
        expect(res.body.highWatermark).toBe(25);
        expect((res.body.messages as Msg[]).map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        res = await readMessages(tenant.client, topic, 0, { offset: 3, limit: 15 });
        const msgs = res.body.messages as Msg[];
        expect(msgs.map((m) => m.value)).toEqual(Array.from({ length: 15 }, (_, i) => `v${i + 3}`));
        msgs.forEach((m, i) => {
          expectMessageShape(m, topic, 0, i + 3);
        });
        expect(res.body.nextOffset).toBe(18);
        res = await readMessages(tenant.client, topic, 0, { offset: 20, limit: 10 });
        expect((res.body.messages as Msg[]).map((m) => m.offset)).toEqual([20, 21, 22, 23, 24]);
        expect(res.body.nextOffset).toBe(25);
        expect(res.body.highWatermark).toBe(25);
        // The other partition is untouched.
        res = await readMessages(tenant.client, topic, 1, { offset: 0 });
        expect(res.body).toMatchObject({ messages: [], nextOffset: 0, highWatermark: 0 });
      });

      it("with Accept: application/vnd.reservoir.messages, answers the same messages raw: a JSON head, then the value bytes", async () => {
        const topic = await createTopic(tenant.client);
        const binary = new Uint8Array([0, 255, 10, 34, 92, 128]);
        await produce(tenant.client, topic, [
          { value: "plain" },
          { value: 'quote " backslash \\ newline \n é ✓ 𝄞', key: "k", headers: { h: "v" } },
          { valueBase64: Buffer.from(binary).toString("base64") },
          { value: "" },
          { valueBase64: "" },
        ]);
        const json = await readMessages(tenant.client, topic, 0, { offset: 1, limit: 10 });
        assertStatus(json, 200);
        const raw = await fetchRaw(`${target!.baseUrl}${topicPath(topic)}/partitions/0/messages?offset=1&limit=10`, tenant.apiKey);
        expect(raw.contentType).toBe(RAW_MESSAGES_TYPE);
        expect(raw.body).toEqual(json.body);
        expect(raw.body.messages).toHaveLength(4);
        // Asked for JSON (or for nothing in particular), JSON it is.
        expect(json.headers.get("content-type")).toMatch(/^application\/json/);
      });

      it("defaults limit to 100, accepts 1,000 and refuses 1,001 (400 invalid_request)", async () => {
        const topic = await createTopic(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 120 }, (_, i) => ({ value: `m${i}` })),
        );
        let res = await readMessages(tenant.client, topic, 0, { offset: 0 });
        expect(res.body.messages).toHaveLength(100);
        expect(res.body.nextOffset).toBe(100);
        res = await readMessages(tenant.client, topic, 0, { offset: 100 });
        expect((res.body.messages as Msg[]).map((m) => m.value)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i + 100}`));
        expect(res.body.nextOffset).toBe(120);
        res = await readMessages(tenant.client, topic, 0, { offset: 0, limit: 1000 });
        expect(res.body.messages).toHaveLength(120);
        expect(res.body.nextOffset).toBe(120);
        assertProblem(await readMessages(tenant.client, topic, 0, { offset: 0, limit: 1001 }), 400, "invalid_request");
      });

      it("at or beyond the high watermark returns no messages, nextOffset = offset and the highWatermark", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "a" }, { value: "b" }]);
        let res = await readMessages(tenant.client, topic, 0, { offset: 2 });
        assertStatus(res, 200);
        expect(res.body).toMatchObject({ messages: [], nextOffset: 2, highWatermark: 2 });
        res = await readMessages(tenant.client, topic, 0, { offset: 7 });
        assertStatus(res, 200);
        expect(res.body).toMatchObject({ messages: [], nextOffset: 7, highWatermark: 2 });
      });

      it("refuses bad query parameters (400 invalid_request): negative or non-numeric offset, waitMs over 30,000", async () => {
        const topic = await createTopic(tenant.client);
        for (const query of [
          { offset: -1 },
          { offset: "abc" },
          { offset: 0, limit: "many" },
          { offset: 0, waitMs: 30_001 },
          { offset: 0, waitMs: -5 },
        ]) {
          const res = await readMessages(tenant.client, topic, 0, query);
          try {
            assertProblem(res, 400, "invalid_request");
          } catch (err) {
            throw new Error(`query ${JSON.stringify(query)}: ${(err as Error).message}`);
          }
        }
      });

      it("a partition >= the count answers 404 partition_not_found; an unknown topic 404 topic_not_found", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        assertProblem(await readMessages(tenant.client, topic, 2, { offset: 0 }), 404, "partition_not_found");
        assertProblem(await readMessages(tenant.client, topic, 99, { offset: 0 }), 404, "partition_not_found");
        assertProblem(await readMessages(tenant.client, uniq("missing"), 0, { offset: 0 }), 404, "topic_not_found");
      });

      it("with waitMs, an existing message is returned at once", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "already here" }]);
        const res = await readMessages(tenant.client, topic, 0, { offset: 0, waitMs: 30_000 });
        assertStatus(res, 200);
        expect((res.body.messages as Msg[]).map((m) => m.value)).toEqual(["already here"]);
        expect(res.elapsedMs).toBeLessThan(25_000);
      });

      it("a long-poll read returns as soon as a message is produced concurrently, with that message", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [{ value: "old", partition: 1 }]);
        let settled = false;
        const poll = readMessages(tenant.client, topic, 1, { offset: 1, waitMs: 20_000 }).finally(() => {
          settled = true;
        });
        // The signal that the poll is waiting: a shorter poll at the same offset, sent after it,
        // came back empty while the first one still waits.
        const probe = await readMessages(tenant.client, topic, 1, { offset: 1, waitMs: 300 });
        assertStatus(probe, 200);
        expect(probe.body.messages).toEqual([]);
        expect(settled, "the read must wait while there is no message at the offset").toBe(false);
        const [o] = await produce(tenant.client, topic, [{ value: "wake up", partition: 1 }]);
        expect(o).toEqual({ partition: 1, offset: 1 });
        const res = await poll;
        assertStatus(res, 200);
        expect((res.body.messages as Msg[]).map((m) => [m.offset, m.value])).toEqual([[1, "wake up"]]);
        expect(res.body.nextOffset).toBe(2);
        expect(res.body.highWatermark).toBe(2);
        expect(res.elapsedMs, "returned because of the message, not because the wait ended").toBeLessThan(18_000);
      }, 40_000);

      it("a long-poll read with nothing produced returns an empty page after waitMs", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "only" }]);
        const res = await readMessages(tenant.client, topic, 0, { offset: 1, waitMs: 1_000 });
        assertStatus(res, 200);
        expect(res.body).toMatchObject({ messages: [], nextOffset: 1, highWatermark: 1 });
        expect(res.elapsedMs, "it waited").toBeGreaterThanOrEqual(900);
      });
    });

    // ---------------------------------------------------------------- offsets by timestamp

    describe("offsets by timestamp: GET /v1/topics/{topic}/offsets", () => {
      it("returns per partition the first offset whose timestamp >= T, and the high watermark when there is none", async () => {
        const topic = await createTopic(tenant.client, { partitions: 3 });
        // Each request after the clock has passed the previous one's timestamp (as stored), so
        // that the three get distinct timestamps.
        const clockPassed = async (partition: number) => {
          const stored = (await readAll(tenant.client, topic, partition)).at(-1)!.timestamp as number;
          await until(() => Date.now() > stored, "the clock passes the last stored timestamp");
        };
        await produce(
          tenant.client,
          topic,
          [0, 0, 0].map((partition, i) => ({ value: `a${i}`, partition })),
        );
        await clockPassed(0);
        await produce(
          tenant.client,
          topic,
          [0, 1, 0].map((partition, i) => ({ value: `b${i}`, partition })),
        );
        await clockPassed(1);
        await produce(
          tenant.client,
          topic,
          [1].map((partition, i) => ({ value: `c${i}`, partition })),
        );
        const parts = [
          await readAll(tenant.client, topic, 0),
          await readAll(tenant.client, topic, 1),
          await readAll(tenant.client, topic, 2),
        ];
        const hws = await highWatermarks(tenant.client, topic);
        expect(hws).toEqual([5, 2, 0]);
        const expected = (t: number) =>
          parts.map((msgs, partition) => ({
            partition,
            offset: (msgs.find((m) => (m.timestamp as number) >= t)?.offset as number | undefined) ?? hws[partition],
          }));
        const stamps = [...new Set(parts.flat().map((m) => m.timestamp as number))].sort((x, y) => x - y);
        expect(stamps.length, "the three produce requests got distinct timestamps").toBeGreaterThanOrEqual(2);
        const probes = [0, stamps[0] - 1, ...stamps, ...stamps.map((s) => s + 1), stamps[stamps.length - 1] + 60_000];
        for (const t of probes) {
          const res = await tenant.client.get(`${topicPath(topic)}/offsets`, { query: { timestamp: t } });
          assertStatus(res, 200);
          const got = [...(res.body.offsets as Offset[])]
            .sort((x, y) => x.partition - y.partition)
            .map((o) => ({ partition: o.partition, offset: o.offset }));
          expect(got, `timestamp=${t}`).toEqual(expected(t));
        }
      });

      it("refuses a missing or non-numeric timestamp (400 invalid_request) and 404s for an unknown topic", async () => {
        const topic = await createTopic(tenant.client);
        assertProblem(await tenant.client.get(`${topicPath(topic)}/offsets`), 400, "invalid_request");
        assertProblem(
          await tenant.client.get(`${topicPath(topic)}/offsets`, { query: { timestamp: "yesterday" } }),
          400,
          "invalid_request",
        );
        assertProblem(
          await tenant.client.get(`${topicPath(uniq("missing"))}/offsets`, { query: { timestamp: 0 } }),
          404,
          "topic_not_found",
        );
      });
    });

    // ---------------------------------------------------------------- refusals found by outside clients

    describe("refusals are 4xx problems, never 5xx (issue 10's examples)", () => {
      it("a body-less request may carry any Content-Type; a JSON media type with parameters is JSON; other charsets are 415", async () => {
        for (const type of ["text/plain", "application/x-ndjson", "application/octet-stream", "multipart/form-data"]) {
          const name = uniq("ct");
          const res = await tenant.client.request("PUT", topicPath(name), { raw: "", contentType: type });
          assertStatus(res, 201);
          expect(res.body).toMatchObject({ name, partitions: 1 });
        }
        const topic = await createTopic(tenant.client);
        for (const [i, type] of [
          "application/json;",
          "application/json; charset",
          "application/json;charset=utf-8;",
          "APPLICATION/JSON; Charset=UTF-8",
        ].entries()) {
          const res = await tenant.client.request("PATCH", topicPath(topic), {
            raw: JSON.stringify({ retentionHours: 10 + i }),
            contentType: type,
          });
          assertStatus(res, 200);
          expect(res.body.retentionHours).toBe(10 + i);
        }
        for (const type of ["application/json; charset=latin1", "text/plain", "application/x-ndjson"]) {
          assertProblem(
            await tenant.client.request("PATCH", topicPath(topic), { raw: '{"retentionHours":99}', contentType: type }),
            415,
            "unsupported_media_type",
          );
        }
        assertProblem(
          await tenant.client.request("PATCH", topicPath(topic), { raw: '{"retentionHours":99}', contentType: null }),
          415,
          "unsupported_media_type",
        );
        expect((await tenant.client.get(topicPath(topic))).body.retentionHours).toBe(13);
      });

      it("U+0000 and unpaired surrogates in strings that reach Postgres are 400 invalid_request, and nothing is stored", async () => {
        const before = await admin.post("/v1/admin/tenants", { name: uniq("nul-probe") });
        assertStatus(before, 201);
        for (const name of ["\u0000", "a\u0000b", "\ud800", "x\udfff"]) {
          assertProblem(await admin.post("/v1/admin/tenants", { name }), 400, "invalid_request");
        }
        assertProblem(await admin.post("/v1/admin/tenants/%00/keys", {}), 400, "invalid_request");
        assertProblem(await admin.request("POST", "/v1/admin/tenants/%00/keys"), 400, "invalid_request");
        assertProblem(await admin.delete("/v1/admin/tenants/%00/keys/x"), 400, "invalid_request");
        assertProblem(await admin.delete(`/v1/admin/tenants/${before.body.tenantId}/keys/%00`), 400, "invalid_request");
        const topic = await createTopic(tenant.client);
        for (const value of ["\u0000", "\ud800", "a\u0000"]) {
          const sub = await tenant.client.put(`${topicPath(topic)}/subscriptions/nul`, {
            url: "http://127.0.0.1:9/hook",
            filter: { headers: { h: value } },
          });
          assertProblem(sub, 400, "invalid_request");
          const named = await tenant.client.put(`${topicPath(topic)}/subscriptions/nul`, {
            url: "http://127.0.0.1:9/hook",
            filter: { headers: { [value]: "v" } },
          });
          assertProblem(named, 400, "invalid_request");
          const keyed = await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "v", idempotencyKey: value }] });
          assertProblem(keyed, 400, "invalid_request");
        }
        assertProblem(await tenant.client.get(`${topicPath(topic)}/subscriptions/nul`), 404, "subscription_not_found");
        expect(await highWatermarks(tenant.client, topic)).toEqual([0]);
        // A message's key, value and headers are segment bytes, not SQL: U+0000 is an ordinary character there.
        const [o] = await produce(tenant.client, topic, [{ key: "k\u0000", value: "v\u0000", headers: { "h\u0000": "\u0000" } }]);
        const [m] = await readAll(tenant.client, topic, o.partition);
        expect(m).toMatchObject({ key: "k\u0000", value: "v\u0000", headers: { "h\u0000": "\u0000" } });
      });

      it("a problem's type resolves on the service to the documentation of its code", async () => {
        const problem = assertProblem(await tenant.client.get(topicPath(uniq("missing"))), 404, "topic_not_found");
        expect(problem.type).toBe("/problems/topic_not_found");
        const doc = await anon.get(problem.type);
        assertStatus(doc, 200);
        expect(doc.body).toMatchObject({ code: "topic_not_found", status: 404, type: problem.type });
        expect(doc.body.description).toEqual(expect.any(String));
        const all = await anon.get("/problems");
        assertStatus(all, 200);
        const codes = (all.body.problems as { code: string }[]).map((p) => p.code);
        expect(codes).toEqual(
          expect.arrayContaining(["invalid_request", "unsupported_media_type", "topic_not_found", "service_unavailable"]),
        );
        for (const code of codes) assertStatus(await anon.get(`/problems/${code}`), 200);
        assertProblem(await anon.get("/problems/no_such_code"), 404, "not_found");
      });
    });

    describe("requests racing a DELETE of their topic end in 2xx or 404, never 5xx", () => {
      it("10 concurrent produces with idempotency keys, then DELETE of the topic, 40 rounds", async () => {
        const outcomes = new Map<number, number>();
        for (let round = 0; round < 40; round++) {
          const topic = await createTopic(tenant.client, { partitions: 2 });
          const produces = Array.from({ length: 10 }, (_, i) =>
            tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: `v${i}`, idempotencyKey: `key-${i}` }] }),
          );
          const deleted = tenant.client.delete(topicPath(topic));
          for (const res of await Promise.all(produces)) {
            if (res.status !== 200) assertProblem(res, 404, "topic_not_found");
            outcomes.set(res.status, (outcomes.get(res.status) ?? 0) + 1);
          }
          assertStatus(await deleted, 204);
        }
        expect(
          [...outcomes.keys()].every((s) => s === 200 || s === 404),
          JSON.stringify([...outcomes]),
        ).toBe(true);
      }, 180_000);

      it("creating groups and subscriptions, receiving, acking and seeking while the topic is deleted, 15 rounds", async () => {
        for (let round = 0; round < 15; round++) {
          const topic = await createTopic(tenant.client, { partitions: 2 });
          const t = topicPath(topic);
          await produce(tenant.client, topic, [{ value: "a" }, { value: "b", key: "k" }]);
          assertStatus(await tenant.client.put(`${t}/groups/g`, { startAt: "earliest" }), 201);
          const received = await tenant.client.post(`${t}/groups/g/receive`, { max: 2 });
          assertStatus(received, 200);
          const receipts = (received.body.messages as { receipt: string }[]).map((m) => m.receipt);
          const racing = [
            tenant.client.put(`${t}/groups/g2`, {}),
            tenant.client.put(`${t}/subscriptions/s`, { url: "http://127.0.0.1:9/hook" }),
            tenant.client.post(`${t}/groups/g/receive`, { max: 5 }),
            tenant.client.post(`${t}/groups/g/ack`, { receipts }),
            tenant.client.post(`${t}/groups/g/seek`, { to: "earliest" }),
            tenant.client.post(`${t}/groups/g/redrive`, {}),
            tenant.client.post(`${t}/messages`, { messages: [{ value: "c", idempotencyKey: "i" }] }),
          ];
          const deleted = tenant.client.delete(t);
          for (const res of await Promise.all(racing)) {
            if (res.status >= 400) assertProblem(res, 404);
          }
          assertStatus(await deleted, 204);
        }
        expect(target!.logs?.() ?? "", "no foreign-key violation reached the log").not.toMatch(/foreign key/i);
      }, 180_000);
    });
  });
}
