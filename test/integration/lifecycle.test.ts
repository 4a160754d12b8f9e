// The storage lifecycle on real servers with a short grace period (RESERVOIR_GC_GRACE_SECONDS=2),
// on the folder store (embedded) and on Postgres + s3rver: objects of deleted topics and of
// expired batches are deleted only after the grace period, while readers keep reading; orphans
// (objects no committed row names) are deleted, and nothing outside the segment prefix is; a
// kill -9 between a flush's PUT and its commit leaves an orphan the next passes delete.
//
// The store is inspected directly (FolderObjectStore on the data dir, S3ObjectStore on s3rver).
// The polls below wait for time itself — the grace period must elapse — and then assert what
// they observe; each has a deadline.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { startStallingProxy, type StallingProxy } from "../support/stalling-proxy.ts";
import { FolderObjectStore } from "../../functions/runtime/node/folder-store.ts";
import { S3ObjectStore } from "../../storage/objects/s3-store.ts";
import { ObjectNotFoundError, type ObjectStore } from "../../storage/objects/object-store.ts";

const GRACE_SECONDS = 2;
const HOUR = 3_600_000;
/** The background timer stays out of the way: the tests run every pass themselves. */
const lifecycleEnv = { RESERVOIR_GC_GRACE_SECONDS: String(GRACE_SECONDS), RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: "86400" };

interface Stack {
  server: NodeServer;
  store: ObjectStore;
  /** Only on s3rver: the proxy between the server and the store. */
  proxy?: StallingProxy;
  stop(): Promise<void>;
}

async function folderStack(): Promise<Stack> {
  const server = await startNodeServer({ label: "lifecycle-folder", env: lifecycleEnv });
  return { server, store: new FolderObjectStore(join(server.dataDir, "segments")), stop: () => server.stop() };
}

async function s3Stack(): Promise<Stack> {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  let proxy: StallingProxy | undefined;
  const stop = async () => {
    await proxy?.close();
    await s3?.stop();
    await db?.drop();
  };
  try {
    db = await freshDatabase();
    s3 = await startS3();
    proxy = await startStallingProxy(s3.env.S3_ENDPOINT);
    const server = await startNodeServer({
      label: "lifecycle-s3",
      env: { ...lifecycleEnv, DATABASE_URL: db.url, ...s3.env, S3_ENDPOINT: proxy.url },
    });
    return {
      server,
      store: new S3ObjectStore(s3.config),
      proxy,
      stop: async () => {
        await server.stop();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function allKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let startAfter: string | undefined;
  do {
    const page = await store.list(prefix, { startAfter });
    keys.push(...page.keys);
    startAfter = page.nextStartAfter;
  } while (startAfter);
  return keys;
}

async function exists(store: ObjectStore, key: string): Promise<boolean> {
  try {
    await store.head(key);
    return true;
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return false;
    throw error;
  }
}

type Report = Record<string, Record<string, number>>;

for (const [name, startStack] of [
  ["the folder store (embedded)", folderStack],
  ["Postgres + s3rver", s3Stack],
] as const) {
  describe(`storage lifecycle on ${name}, grace ${GRACE_SECONDS} s`, () => {
    let stack: Stack;
    let admin: Api;
    let client: Api;
    let tenantId: string;

    beforeAll(async () => {
      stack = await startStack();
      admin = api(stack.server.baseUrl, stack.server.adminToken);
      const tenant = await admin.post("/v1/admin/tenants", { name: "lifecycle" });
      assertStatus(tenant, 201);
      tenantId = tenant.body.tenantId;
      client = api(stack.server.baseUrl, tenant.body.apiKey);
    }, 180_000);
    afterAll(async () => {
      await stack?.stop();
    }, 60_000);

    const segmentPrefix = () => `tenants/${tenantId}/segments/`;

    async function maintain(body?: Record<string, unknown>): Promise<Report> {
      const res = await admin.post("/v1/admin/maintenance", body);
      assertStatus(res, 200);
      return res.body as Report;
    }

    /** Runs passes until `done` holds of the summed reports; the grace period must elapse meanwhile. */
    async function maintainUntil(done: (sum: Report) => boolean | Promise<boolean>, what: string): Promise<Report> {
      const sum: Report = { collected: { objects: 0, bytes: 0 }, orphans: { objects: 0, bytes: 0 } };
      const deadline = Date.now() + 60_000;
      for (;;) {
        const report = await maintain();
        for (const part of ["collected", "orphans"]) {
          sum[part].objects += report[part].objects;
          sum[part].bytes += report[part].bytes;
        }
        if (await done(sum)) return sum;
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}: ${JSON.stringify(sum)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }

    async function produceOne(topic: string, value: string): Promise<number> {
      const res = await client.post(`/v1/topics/${topic}/messages`, { messages: [{ value }] });
      assertStatus(res, 200);
      return res.body.offsets[0].offset;
    }

    it("deletes the objects of deleted topics and expired batches only after the grace period, while readers read", async () => {
      const expected = new Map<string, string[]>();
      const keysOf = new Map<string, string[]>();
      for (const [topic, settings] of [
        ["keep", {}],
        ["gone", {}],
        ["old", { retentionHours: 1 }],
      ] as const) {
        assertStatus(await client.put(`/v1/topics/${topic}`, settings), 201);
        const values = Array.from({ length: 4 }, (_, i) => `${topic}-${i}-`.padEnd(1000 + i, "v"));
        const earlier = new Set(await allKeys(stack.store, segmentPrefix()));
        for (const [i, value] of values.entries()) expect(await produceOne(topic, value)).toBe(i);
        expected.set(topic, values);
        keysOf.set(
          topic,
          (await allKeys(stack.store, segmentPrefix())).filter((k) => !earlier.has(k)),
        );
      }
      const original = await allKeys(stack.store, segmentPrefix());
      expect(original).toHaveLength(12);
      const unreferenced = [...keysOf.get("gone")!, ...keysOf.get("old")!];

      // Readers read every topic from its earliest offset again and again; what they get must be
      // what was written at that offset, and never a 5xx (api() fails on one).
      let reading = true;
      const reads = { count: 0 };
      const reader = async () => {
        while (reading) {
          for (const topic of ["keep", "gone", "old"]) {
            let offset = 0;
            for (;;) {
              const res = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset } });
              if (res.status === 404) break; // the deleted topic
              if (res.status === 416) {
                offset = assertProblem(res, 416, "offset_out_of_range").earliestOffset;
                continue;
              }
              assertStatus(res, 200);
              reads.count++;
              for (const m of res.body.messages) expect(m.value).toBe(expected.get(topic)![m.offset]);
              if (res.body.messages.length === 0) break;
              offset = res.body.nextOffset;
            }
          }
        }
      };
      const readers = Array.from({ length: 3 }, reader);

      assertStatus(await client.delete("/v1/topics/gone"), 204);
      const first = await maintain({ asOf: Date.now() + 2 * HOUR });
      expect(first.retention.batches).toBe(4);
      // Just marked: nothing is deleted before the grace period has passed (the pass may also
      // have compacted keep's small segments into a new object).
      expect(first.collected.objects).toBe(0);
      const afterFirst = new Set(await allKeys(stack.store, segmentPrefix()));
      for (const key of original) expect(afterFirst.has(key), key).toBe(true);

      await maintainUntil(async () => {
        const left = new Set(await allKeys(stack.store, segmentPrefix()));
        return unreferenced.every((k) => !left.has(k));
      }, "the 8 objects of the deleted and the expired topic are collected");
      reading = false;
      await Promise.all(readers);
      expect(reads.count).toBeGreaterThan(0);

      const kept = await client.get("/v1/topics/keep/partitions/0/messages", { query: { offset: 0 } });
      expect(kept.body.messages.map((m: { value: string }) => m.value)).toEqual(expected.get("keep"));
      const storage = await admin.get("/v1/admin/storage");
      const mine = storage.body.tenants.find((t: { tenantId: string }) => t.tenantId === tenantId);
      expect(mine.liveBytes).toBe((await client.get("/v1/topics/keep")).body.storedBytes);
    });

    it("deletes orphans older than the grace period, and nothing outside the segment prefix", async () => {
      const orphan = `${segmentPrefix()}zz-orphan`;
      const outside = [`tenants/${tenantId}/notes/keep`, "elsewhere/keep", `tenants/${tenantId}/segments-not/keep`];
      for (const key of [orphan, ...outside]) await stack.store.put(key, new TextEncoder().encode(key));
      await maintainUntil(async () => !(await exists(stack.store, orphan)), "the orphan is deleted");
      for (const key of outside) expect(await exists(stack.store, key), key).toBe(true);
      const kept = await client.get("/v1/topics/keep/partitions/0/messages", { query: { offset: 0 } });
      expect(kept.body.messages).toHaveLength(4);
    });

    it("compacts the small segments into one object, collects the old ones after the grace period; readers see the same bytes", async () => {
      assertStatus(await client.put("/v1/topics/many", {}), 201);
      for (let i = 0; i < 20; i++) expect(await produceOne("many", `many-${i}`)).toBe(i);
      const readAll = async () => {
        const out: Record<string, unknown> = {};
        for (const topic of ["keep", "many"]) {
          const res = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0, limit: 1000 } });
          assertStatus(res, 200);
          out[topic] = res.body.messages;
        }
        return out;
      };
      const before = await readAll();
      expect((await allKeys(stack.store, segmentPrefix())).length).toBeGreaterThanOrEqual(21);
      let reading = true;
      let reads = 0;
      const readers = Array.from({ length: 3 }, async () => {
        while (reading) {
          expect(await readAll()).toEqual(before);
          reads++;
        }
      });
      // A pass abandons a merge whose switch would end later than half the grace period after
      // its PUT began (the new object is then an orphan): on a loaded machine one second can pass.
      // Passes run until one merged them, within a bound.
      let first = await maintain();
      for (const until = Date.now() + 60_000; first.compaction.segmentsIn === 0 && Date.now() < until; ) first = await maintain();
      expect(first.compaction.segmentsIn).toBeGreaterThanOrEqual(21);
      expect(first.compaction.segmentsOut).toBe(1);
      await maintainUntil(async () => (await allKeys(stack.store, segmentPrefix())).length === 1, "only the compacted object is left");
      reading = false;
      await Promise.all(readers);
      expect(reads).toBeGreaterThan(0);
      expect(await readAll()).toEqual(before);
      // Restart safety of the result: a new process (empty caches) reads the same bytes.
      await stack.server.restart();
      expect(await readAll()).toEqual(before);
      const storage = await admin.get("/v1/admin/storage");
      const mine = storage.body.tenants.find((t: { tenantId: string }) => t.tenantId === tenantId);
      expect(mine).toMatchObject({ objects: 1 });
      expect(mine.liveBytes).toBeLessThanOrEqual(mine.bytes);
    });

    it("a dead letter keeps its bytes alive after its source topic expired and was deleted", async () => {
      assertStatus(await client.put("/v1/topics/src", { retentionHours: 1 }), 201);
      // The dead-letter topic keeps a week (its own retention); the source keeps an hour.
      assertStatus(await client.put("/v1/topics/src.dlq", { retentionHours: 168 }), 201);
      assertStatus(await client.put("/v1/topics/src/groups/g", { startAt: "earliest", maxAttempts: 1 }), 201);
      expect(await produceOne("src", "poison")).toBe(0);
      const deadBy = Date.now() + 30_000;
      // Never acked: once its one attempt's visibility timeout passes, it is dead-lettered.
      while ((await client.get("/v1/topics/src/groups/g")).body.deadLettered < 1) {
        if (Date.now() > deadBy) throw new Error("the message was never dead-lettered");
        assertStatus(await client.post("/v1/topics/src/groups/g/receive", { max: 1, visibilityTimeoutSeconds: 1, waitMs: 300 }), 200);
      }
      const readDead = async () => {
        const res = await client.get("/v1/topics/src.dlq/partitions/0/messages", { query: { offset: 0 } });
        assertStatus(res, 200);
        return res.body.messages.map((m: { value: string }) => m.value);
      };
      expect(await readDead()).toEqual(["poison"]);
      expect((await maintain({ asOf: Date.now() + 2 * HOUR })).retention.batches).toBeGreaterThanOrEqual(1);
      assertStatus(await client.delete("/v1/topics/src"), 204);
      await maintain();
      // The grace period passes (time itself), then passes that would collect it run.
      await new Promise((resolve) => setTimeout(resolve, GRACE_SECONDS * 1000 + 500));
      await maintain();
      await maintain();
      expect(await readDead()).toEqual(["poison"]);
      await stack.server.restart(); // no cache: the bytes come from the store
      expect(await readDead()).toEqual(["poison"]);
    });

    if (name === "Postgres + s3rver") {
      it("a kill -9 between a flush's PUT and its commit leaves an orphan that passes after a restart delete", async () => {
        const proxy = stack.proxy!;
        const before = new Set(await allKeys(stack.store, segmentPrefix()));
        const hw = (await client.get("/v1/topics/keep")).body.highWatermarks[0];
        // The PUT is held by the proxy: the server waits for it, and is killed meanwhile.
        proxy.stall((method, path) => method === "PUT" && path.includes("/segments/"));
        const pending = client.post("/v1/topics/keep/messages", { messages: [{ value: "never committed" }] }).catch((e: Error) => e);
        const heldBy = Date.now() + 30_000;
        while (proxy.held() === 0) {
          if (Date.now() > heldBy) throw new Error("the flush's PUT never reached the proxy");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await stack.server.kill("SIGKILL");
        expect(await pending).toBeInstanceOf(Error);
        proxy.release(); // the PUT lands after the kill: an object no commit will ever name
        let orphan: string | undefined;
        const landedBy = Date.now() + 30_000;
        while (!orphan) {
          orphan = (await allKeys(stack.store, segmentPrefix())).find((k) => !before.has(k));
          if (!orphan && Date.now() > landedBy) throw new Error("the held PUT never landed");
          if (!orphan) await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await stack.server.restart();
        expect((await client.get("/v1/topics/keep")).body.highWatermarks[0]).toBe(hw);
        await maintainUntil(async () => !(await exists(stack.store, orphan!)), "the orphan of the killed flush is deleted");
        expect(new Set(await allKeys(stack.store, segmentPrefix()))).toEqual(before);
        const kept = await client.get("/v1/topics/keep/partitions/0/messages", { query: { offset: 0 } });
        expect(kept.body.messages).toHaveLength(4);
        expect(await produceOne("keep", "after the restart")).toBe(hw);
      });

      /** Starts a pass, waits until the proxy holds one of its requests, and kills the server with it. */
      async function killDuringPass(hold: (method: string, path: string) => boolean): Promise<void> {
        const proxy = stack.proxy!;
        proxy.stall(hold);
        const pass = admin.post("/v1/admin/maintenance").catch((e: Error) => e);
        const heldBy = Date.now() + 30_000;
        while (proxy.held() === 0) {
          if (Date.now() > heldBy) throw new Error("the pass never sent the request to hold");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await stack.server.kill("SIGKILL");
        expect(await pass).toBeInstanceOf(Error);
      }

      async function readEverything(): Promise<Record<string, unknown>> {
        const out: Record<string, unknown> = {};
        for (const topic of ["keep", "many", "mid"]) {
          const res = await client.get(`/v1/topics/${topic}/partitions/0/messages`, { query: { offset: 0, limit: 1000 } });
          assertStatus(res, 200);
          out[topic] = res.body.messages;
        }
        return out;
      }

      it("a kill -9 in the middle of compaction (its object written, its switch not) loses nothing and leaves nothing", async () => {
        assertStatus(await client.put("/v1/topics/mid", {}), 201);
        for (let i = 0; i < 5; i++) await produceOne("mid", `mid-${i}`);
        const before = await readEverything();
        await killDuringPass((method, path) => method === "PUT" && path.includes("/segments/"));
        stack.proxy!.release(); // the compacted object lands; no switch will ever name it
        await stack.server.restart();
        expect(await readEverything()).toEqual(before);
        await maintainUntil(async () => (await allKeys(stack.store, segmentPrefix())).length === 1, "one compacted object is left");
        expect(await readEverything()).toEqual(before);
      });

      it("a kill -9 in the middle of collection (rows deleted, objects not) loses nothing and leaves nothing", async () => {
        const before = await readEverything();
        assertStatus(await client.put("/v1/topics/doomed", {}), 201);
        for (let i = 0; i < 3; i++) await produceOne("doomed", `doomed-${i}`);
        assertStatus(await client.delete("/v1/topics/doomed"), 204);
        await maintain(); // marks them; the grace period starts
        const doomed = await allKeys(stack.store, segmentPrefix());
        expect(doomed.length).toBeGreaterThanOrEqual(4);
        // Once the grace period has passed, the pass deletes the rows, then sends the objects'
        // DeleteObjects: that request is held and the server killed; it never reaches the store.
        await new Promise((resolve) => setTimeout(resolve, GRACE_SECONDS * 1000 + 500));
        await killDuringPass((method, path) => method === "POST" && path.includes("delete"));
        stack.proxy!.drop();
        expect((await allKeys(stack.store, segmentPrefix())).length).toBe(doomed.length);
        await stack.server.restart();
        expect(await readEverything()).toEqual(before);
        await maintainUntil(async () => (await allKeys(stack.store, segmentPrefix())).length === 1, "the orphans are deleted");
        expect(await readEverything()).toEqual(before);
      });
    }
  });
}

describe("the Node server's maintenance timer", () => {
  let server: NodeServer | undefined;
  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  it("collects a deleted topic's objects by itself, a pass a second", async () => {
    server = await startNodeServer({
      label: "lifecycle-timer",
      env: { RESERVOIR_GC_GRACE_SECONDS: "2", RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: "1" },
    });
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "timer" });
    assertStatus(tenant, 201);
    const client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put("/v1/topics/t", {}), 201);
    for (let i = 0; i < 3; i++) assertStatus(await client.post("/v1/topics/t/messages", { messages: [{ value: `m${i}` }] }), 200);
    const store = new FolderObjectStore(join(server.dataDir, "segments"));
    const prefix = `tenants/${tenant.body.tenantId}/segments/`;
    expect((await allKeys(store, prefix)).length).toBeGreaterThanOrEqual(1);
    assertStatus(await client.delete("/v1/topics/t"), 204);
    // No request runs a pass: the timer does, once the grace period has passed.
    // The pass deletes the objects, then logs what it collected: wait for both (a bound, not a speed).
    const collected = /reservoir: maintenance .*"collected":\{"objects":[1-9]/;
    const deadline = Date.now() + 60_000;
    while ((await allKeys(store, prefix)).length > 0 || !collected.test(server.logs())) {
      if (Date.now() > deadline) throw new Error("the timer never collected the deleted topic's objects");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
});
