// The storage lifecycle of API.md ("Topics": retention by time and size, earliestOffsets,
// storedBytes, deletion; "Read by offset": 416; "Storage lifecycle (operator)": maintenance
// and storage reports), through HTTP only, so that it runs on every target.
//
// A pass is global (every tenant's topics): register this suite after the others of a target.
// Retention by time is judged through the maintenance body's `asOf` (an instant hours ahead)
// instead of waiting for hours. Collection of objects waits RESERVOIR_GC_GRACE_SECONDS (an hour
// on these targets), so here only what index rows reference is asserted; the objects going away
// is test/integration/lifecycle.test.ts, on servers with a short grace period.

import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api } from "../support/http.ts";
import { showServerOutputOnFailure, type ContractTarget } from "./contract.ts";

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

export interface LifecycleOptions {
  /** Starts the target's own background pass (the Worker's Cron Trigger); resolves once started. */
  background?: (target: ContractTarget) => Promise<void>;
}

export function lifecycleSuite(name: string, startTarget: () => Promise<ContractTarget>, options: LifecycleOptions = {}): void {
  describe(`storage lifecycle (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    const runId = randomBytes(3).toString("hex");
    let seq = 0;
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
    }, 180_000);
    afterAll(async () => {
      await target?.stop();
    }, 60_000);
    showServerOutputOnFailure(name, () => target);

    async function newTenant(): Promise<{ tenantId: string; client: Api }> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq("lifecycle") });
      assertStatus(res, 201);
      return { tenantId: res.body.tenantId, client: api(target!.baseUrl, res.body.apiKey) };
    }

    async function produceOne(client: Api, topic: string, value: string): Promise<number> {
      const res = await client.post(`/v1/topics/${topic}/messages`, { messages: [{ value, partition: 0 }] });
      assertStatus(res, 200);
      return res.body.offsets[0].offset;
    }

    async function describeTopic(client: Api, topic: string) {
      const res = await client.get(`/v1/topics/${topic}`);
      assertStatus(res, 200);
      return res.body as { highWatermarks: number[]; earliestOffsets: number[]; storedBytes: number; retentionBytes?: number };
    }

    async function maintain(body?: Record<string, unknown>) {
      const res = await admin.post("/v1/admin/maintenance", body);
      assertStatus(res, 200);
      return res.body as Record<string, Record<string, number>>;
    }

    async function tenantStorage(tenantId: string) {
      const res = await admin.get("/v1/admin/storage");
      assertStatus(res, 200);
      return (res.body.tenants as { tenantId: string; objects: number; bytes: number; liveBytes: number }[]).find(
        (t) => t.tenantId === tenantId,
      );
    }

    it("describes retention, earliest offsets and stored bytes; retentionBytes can be set, compared and removed", async () => {
      const { client } = await newTenant();
      const topic = uniq("sized");
      const created = await client.put(`/v1/topics/${topic}`, { retentionBytes: 2 * MiB });
      assertStatus(created, 201);
      expect(created.body.retentionBytes).toBe(2 * MiB);
      assertStatus(await client.put(`/v1/topics/${topic}`, { retentionBytes: 2 * MiB }), 200);
      assertProblem(await client.put(`/v1/topics/${topic}`, { retentionBytes: 3 * MiB }), 409, "topic_conflict");
      assertProblem(await client.put(`/v1/topics/${uniq("small")}`, { retentionBytes: MiB - 1 }), 400, "invalid_request");
      let described = await describeTopic(client, topic);
      expect(described).toMatchObject({ highWatermarks: [0], earliestOffsets: [0], storedBytes: 0, retentionBytes: 2 * MiB });
      await produceOne(client, topic, "hello");
      described = await describeTopic(client, topic);
      expect(described.earliestOffsets).toEqual([0]);
      expect(described.highWatermarks).toEqual([1]);
      expect(described.storedBytes).toBeGreaterThan(5);
      const patched = await client.patch(`/v1/topics/${topic}`, { retentionBytes: null });
      assertStatus(patched, 200);
      expect(patched.body.retentionBytes).toBeUndefined();
    });

    it("retention by size keeps between retentionBytes and one batch more, from the back; offsets never move", async () => {
      const { tenantId, client } = await newTenant();
      const topic = uniq("size");
      assertStatus(await client.put(`/v1/topics/${topic}`, { retentionBytes: MiB }), 201);
      const group = await client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" });
      assertStatus(group, 201);
      const value = (i: number) => `${i}:`.padEnd(200_000, String.fromCharCode(97 + i));
      // One request at a time: each message is a flush of its own, a batch of ~200 KB.
      for (let i = 0; i < 10; i++) expect(await produceOne(client, topic, value(i))).toBe(i);
      const before = await describeTopic(client, topic);
      const liveBefore = (await tenantStorage(tenantId))!.liveBytes;
      const report = await maintain();
      expect(report.retention.batches).toBeGreaterThanOrEqual(4);
      const after = await describeTopic(client, topic);
      const earliest = after.earliestOffsets[0];
      expect(earliest).toBeGreaterThan(0);
      expect(after.highWatermarks).toEqual([10]);
      expect(after.storedBytes).toBeGreaterThanOrEqual(MiB);
      expect(after.storedBytes).toBeLessThan(MiB + 250_000);
      expect(before.storedBytes - after.storedBytes).toBeGreaterThan(0);
      expect((await tenantStorage(tenantId))!.liveBytes).toBe(liveBefore - (before.storedBytes - after.storedBytes));

      const below = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: earliest - 1 } });
      expect(assertProblem(below, 416, "offset_out_of_range").earliestOffset).toBe(earliest);
      const read = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: earliest, limit: 100 } });
      assertStatus(read, 200);
      expect(read.body.messages.map((m: { offset: number; value: string }) => [m.offset, m.value])).toEqual(
        Array.from({ length: 10 - earliest }, (_, k) => [earliest + k, value(earliest + k)]),
      );
      // The group created before retention resumes from the earliest offset.
      const received = await client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 1, visibilityTimeoutSeconds: 30 });
      assertStatus(received, 200);
      expect(received.body.messages[0].offset).toBe(earliest);
      expect(await produceOne(client, topic, "next")).toBe(10);
    });

    it("retention by time removes batches older than retentionHours (judged as of asOf); a group resumes at the earliest", async () => {
      const { client } = await newTenant();
      const topic = uniq("time");
      assertStatus(await client.put(`/v1/topics/${topic}`, { retentionHours: 1 }), 201);
      for (let i = 0; i < 3; i++) await produceOne(client, topic, `m${i}`);
      assertStatus(await client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" }), 201);
      const leased = await client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 1, visibilityTimeoutSeconds: 300 });
      assertStatus(leased, 200);
      const receipt = leased.body.messages[0].receipt as string;
      // As of now, nothing is an hour old.
      await maintain();
      expect((await describeTopic(client, topic)).earliestOffsets).toEqual([0]);
      const report = await maintain({ asOf: Date.now() + 2 * HOUR });
      expect(report.retention.batches).toBeGreaterThanOrEqual(3);
      const after = await describeTopic(client, topic);
      expect(after).toMatchObject({ earliestOffsets: [3], highWatermarks: [3], storedBytes: 0 });
      const below = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0 } });
      expect(assertProblem(below, 416, "offset_out_of_range").earliestOffset).toBe(3);
      const at = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 3 } });
      assertStatus(at, 200);
      expect(at.body).toMatchObject({ messages: [], nextOffset: 3, highWatermark: 3 });
      // Retention wins over a lease: the receipt of a removed message has expired.
      const ack = await client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts: [receipt] });
      assertStatus(ack, 200);
      expect(ack.body).toEqual({ acked: 0, failed: [{ receipt, code: "receipt_expired" }] });
      expect(await produceOne(client, topic, "m3")).toBe(3);
      const received = await client.post(`/v1/topics/${topic}/groups/g/receive`, { max: 10, visibilityTimeoutSeconds: 30 });
      assertStatus(received, 200);
      expect(received.body.messages.map((m: { offset: number; value: string }) => [m.offset, m.value])).toEqual([[3, "m3"]]);
    });

    it("a deleted topic is unreachable at once; re-created, it starts empty at offset 0; its bytes stop being live", async () => {
      const { tenantId, client } = await newTenant();
      const topic = uniq("deleted");
      assertStatus(await client.put(`/v1/topics/${topic}`, {}), 201);
      for (let i = 0; i < 3; i++) await produceOne(client, topic, `old${i}`);
      expect((await tenantStorage(tenantId))!.liveBytes).toBeGreaterThan(0);
      assertStatus(await client.delete(`/v1/topics/${topic}`), 204);
      assertProblem(await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0 } }), 404, "topic_not_found");
      expect((await tenantStorage(tenantId))!.liveBytes).toBe(0);
      await maintain();
      assertStatus(await client.put(`/v1/topics/${topic}`, {}), 201);
      expect(await describeTopic(client, topic)).toMatchObject({ highWatermarks: [0], earliestOffsets: [0], storedBytes: 0 });
      expect(await produceOne(client, topic, "new")).toBe(0);
      const read = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0 } });
      expect(read.body.messages.map((m: { value: string }) => m.value)).toEqual(["new"]);
    });

    it("compaction merges small segments; reads are byte-identical before, during and after", async () => {
      const { tenantId, client } = await newTenant();
      const topic = uniq("compact");
      assertStatus(await client.put(`/v1/topics/${topic}`, { partitions: 2 }), 201);
      const messages = Array.from({ length: 24 }, (_, i) =>
        i % 3 === 0
          ? { partition: i % 2, valueBase64: Buffer.from([i, 0, 255, i * 7]).toString("base64"), key: `k${i}` }
          : { partition: i % 2, value: `v${i}-é-😀`, headers: { h: `${i}` }, ...(i % 3 === 1 ? { key: `k${i}` } : {}) },
      );
      // One request at a time: each message is a segment object of its own.
      for (const m of messages) assertStatus(await client.post(`/v1/topics/${topic}/messages`, { messages: [m] }), 200);
      const readAll = async () => {
        const out: unknown[] = [];
        for (const p of [0, 1]) {
          const res = await client.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset: 0, limit: 1000 } });
          assertStatus(res, 200);
          out.push(res.body.messages);
        }
        return out;
      };
      const before = await readAll();
      const objectsBefore = (await tenantStorage(tenantId))!.objects;
      expect(objectsBefore).toBe(24);
      let reading = true;
      const during: unknown[][] = [];
      const reader = (async () => {
        while (reading) during.push(await readAll());
      })();
      // Passes act on every tenant, a bounded number of segments each: run them until this
      // tenant's segments were merged (a new object appears; the old ones wait out the grace).
      const deadline = Date.now() + 120_000;
      while ((await tenantStorage(tenantId))!.objects === objectsBefore) {
        if (Date.now() > deadline) throw new Error("compaction never reached this tenant's segments");
        await maintain();
      }
      reading = false;
      await reader;
      expect(await readAll()).toEqual(before);
      for (const seen of during) expect(seen).toEqual(before);
      const after = (await tenantStorage(tenantId))!;
      expect(after.objects).toBe(25);
      const described = await describeTopic(client, topic);
      expect(described.highWatermarks).toEqual([12, 12]);
      expect(after.liveBytes).toBe(described.storedBytes);
    });

    const background = options.background;
    if (background) {
      it("the background pass applies retention by itself", async () => {
        const { client } = await newTenant();
        const topic = uniq("background");
        assertStatus(await client.put(`/v1/topics/${topic}`, { retentionBytes: MiB }), 201);
        for (let i = 0; i < 8; i++) await produceOne(client, topic, `${i}`.padEnd(200_000, "b"));
        await background(target!);
        const deadline = Date.now() + 60_000;
        while ((await describeTopic(client, topic)).earliestOffsets[0] === 0) {
          if (Date.now() > deadline) throw new Error("the background pass never applied retention");
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const after = await describeTopic(client, topic);
        expect(after.storedBytes).toBeGreaterThanOrEqual(MiB);
        expect(after.highWatermarks).toEqual([8]);
      });
    }

    it("maintenance reports counts; storage reports objects, bytes and live bytes; both are operator-only", async () => {
      const { tenantId, client } = await newTenant();
      const topic = uniq("report");
      assertStatus(await client.put(`/v1/topics/${topic}`, {}), 201);
      await produceOne(client, topic, "x");
      const report = await maintain();
      for (const [part, keys] of Object.entries({
        retention: ["batches", "bytes"],
        compaction: ["segmentsIn", "segmentsOut", "bytes"],
        collected: ["objects", "bytes"],
        orphans: ["objects", "bytes"],
      })) {
        for (const key of keys) expect(Number.isInteger(report[part][key]), `${part}.${key} in ${JSON.stringify(report)}`).toBe(true);
      }
      const storage = await admin.get("/v1/admin/storage");
      assertStatus(storage, 200);
      expect(storage.body.objects).toBeGreaterThanOrEqual(1);
      expect(storage.body.bytes).toBeGreaterThanOrEqual(storage.body.liveBytes);
      const mine = (await tenantStorage(tenantId))!;
      expect(mine.objects, describeResponse(storage)).toBe(1);
      expect(mine.bytes).toBeGreaterThanOrEqual(mine.liveBytes);
      expect(mine.liveBytes).toBeGreaterThan(0);
      assertProblem(await client.get("/v1/admin/storage"), 401);
      assertProblem(await client.post("/v1/admin/maintenance"), 401);
      assertProblem(await admin.post("/v1/admin/maintenance", { asOf: "soon" }), 400, "invalid_request");
      assertProblem(await admin.post("/v1/admin/maintenance", { unknown: 1 }), 400, "invalid_request");
    });
  });
}
