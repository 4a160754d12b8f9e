// Two Node server processes on the same Postgres database and the same S3 bucket, producing
// concurrently into the same partitions of one topic. Offsets are assigned in the Postgres
// commit (DESIGN.md, write path), so whatever instance a message went through, every partition
// must come out dense and every acknowledged message exactly once at its acknowledged offset.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { api, assertStatus, describeResponse, type Api } from "../support/http.ts";
import { printOutputOnFailure, startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, requireMultipleClients, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { prng } from "../support/prng.ts";

const PARTITIONS = 2;
const CLIENTS_PER_SERVER = 8;
const REQUESTS_PER_CLIENT = 20;
const MIN_BATCH = 8;
const MAX_BATCH = 16; // ≈ 2 × 8 × 20 × 12 ≈ 3,800 messages in all

interface Ack {
  partition: number;
  offset: number;
  server: string;
  key?: string;
}

describe("two Node servers sharing one Postgres database and one S3 bucket", () => {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  const servers: NodeServer[] = [];
  let clients: Api[] = [];
  const topic = "shared-log";
  const acked = new Map<string, Ack>();
  const requestOffsets: { partitions: number[]; offsets: number[] }[] = [];

  beforeAll(async () => {
    db = await freshDatabase();
    requireMultipleClients(db, "two servers on one database");
    s3 = await startS3();
    const env = { DATABASE_URL: db.url, ...s3.env, RESERVOIR_ADMIN_TOKEN: `rsv_admin_two_${Date.now()}` };
    // One after the other, so that the second start finds the schema migrated.
    servers.push(await startNodeServer({ env, label: "server-A" }));
    servers.push(await startNodeServer({ env, label: "server-B" }));
    const admin = api(servers[0].baseUrl, servers[0].adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "two-servers" });
    assertStatus(tenant, 201);
    clients = servers.map((s) => api(s.baseUrl, tenant.body.apiKey));
    const created = await clients[0].put(`/v1/topics/${topic}`, { partitions: PARTITIONS });
    assertStatus(created, 201);
    // The topic made through A is visible through B.
    assertStatus(await clients[1].get(`/v1/topics/${topic}`), 200);
  }, 180_000);

  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  beforeEach(({ onTestFailed }) => printOutputOnFailure(onTestFailed, servers));

  it("acknowledges every request of 16 concurrent clients (8 per server) producing into the same partitions", async () => {
    const failures: string[] = [];
    const runClient = async (serverIndex: number, clientIndex: number) => {
      const client = clients[serverIndex];
      const server = serverIndex === 0 ? "A" : "B";
      const rand = prng(1000 * (serverIndex + 1) + clientIndex);
      for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
        const n = MIN_BATCH + Math.floor(rand() * (MAX_BATCH - MIN_BATCH + 1));
        const messages = Array.from({ length: n }, (_, i): { value: string; key?: string; partition?: number } => {
          const value = `${server}-c${clientIndex}-r${r}-m${i}-${"x".repeat(Math.floor(rand() * 200))}`;
          // A third keyed (keys shared by all clients of both servers), the rest on explicit partitions.
          if (i % 3 === 0) return { value, key: `key-${Math.floor(rand() * 7)}` };
          return { value, partition: (clientIndex + r + i) % PARTITIONS };
        });
        const asNdjson = (r + clientIndex) % 2 === 1;
        const res = asNdjson
          ? await client.post(`/v1/topics/${topic}/messages`, undefined, {
              raw: messages.map((m) => JSON.stringify(m)).join("\n") + "\n",
              contentType: "application/x-ndjson",
            })
          : await client.post(`/v1/topics/${topic}/messages`, { messages });
        if (res.status !== 200 || !Array.isArray(res.body?.offsets) || res.body.offsets.length !== n) {
          failures.push(`${server}/c${clientIndex}/r${r}: ${describeResponse(res)}`);
          continue;
        }
        const offs = res.body.offsets as { partition: number; offset: number }[];
        requestOffsets.push({ partitions: offs.map((o) => o.partition), offsets: offs.map((o) => o.offset) });
        messages.forEach((m, i) => {
          if (acked.has(m.value)) failures.push(`value produced twice by the test itself: ${m.value}`);
          acked.set(m.value, { partition: offs[i].partition, offset: offs[i].offset, server, key: m.key });
        });
      }
    };
    const runs: Promise<void>[] = [];
    for (let s = 0; s < servers.length; s++) for (let c = 0; c < CLIENTS_PER_SERVER; c++) runs.push(runClient(s, c));
    await Promise.all(runs);
    expect(failures).toEqual([]);
    expect(acked.size).toBeGreaterThan(2_000);
  }, 240_000);

  it("offsets within one request grow in request order per partition", () => {
    expect(requestOffsets.length).toBeGreaterThan(0);
    for (const { partitions, offsets } of requestOffsets) {
      const last = new Map<number, number>();
      partitions.forEach((p, i) => {
        if (last.has(p)) expect(offsets[i]).toBeGreaterThan(last.get(p)!);
        last.set(p, offsets[i]);
      });
    }
  });

  it("a key lands in the same partition whichever server took the message", () => {
    const partitionsOfKey = new Map<string, Set<number>>();
    for (const a of acked.values()) {
      if (a.key === undefined) continue;
      if (!partitionsOfKey.has(a.key)) partitionsOfKey.set(a.key, new Set());
      partitionsOfKey.get(a.key)!.add(a.partition);
    }
    expect(partitionsOfKey.size).toBeGreaterThan(1);
    for (const [key, parts] of partitionsOfKey) expect([...parts], `partitions of ${key}`).toHaveLength(1);
  });

  it("every partition is dense from 0 to its high watermark and holds each acknowledged message exactly once at its offset, nothing else", async () => {
    const expectedCount = new Array<number>(PARTITIONS).fill(0);
    for (const a of acked.values()) expectedCount[a.partition]++;
    for (const client of clients) {
      const topicRes = await client.get(`/v1/topics/${topic}`);
      assertStatus(topicRes, 200);
      expect(topicRes.body.highWatermarks, "high watermarks = acknowledged messages per partition").toEqual(expectedCount);
    }
    const seen = new Set<string>();
    for (let p = 0; p < PARTITIONS; p++) {
      // Read half of the partitions through each server.
      const client = clients[p % clients.length];
      const problems: string[] = [];
      let offset = 0;
      let expectedOffset = 0;
      for (let page = 0; page < 1_000; page++) {
        const res = await client.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset, limit: 1000 } });
        assertStatus(res, 200);
        const msgs = res.body.messages as { offset: number; value: string; partition: number }[];
        for (const m of msgs) {
          if (m.offset !== expectedOffset)
            problems.push(`p${p}: offset ${m.offset} where ${expectedOffset} was expected (gap or disorder)`);
          expectedOffset = m.offset + 1;
          const a = acked.get(m.value);
          if (!a) problems.push(`p${p}@${m.offset}: value was never acknowledged: ${String(m.value).slice(0, 60)}`);
          else if (a.partition !== p || a.offset !== m.offset)
            problems.push(`p${p}@${m.offset}: ${m.value.slice(0, 40)} was acknowledged at p${a.partition}@${a.offset}`);
          if (seen.has(m.value)) problems.push(`p${p}@${m.offset}: duplicate ${m.value.slice(0, 40)}`);
          seen.add(m.value);
          if (problems.length > 20) break;
        }
        if (problems.length > 20 || msgs.length === 0 || res.body.nextOffset >= res.body.highWatermark) break;
        offset = res.body.nextOffset;
      }
      expect(problems).toEqual([]);
      expect(expectedOffset, `partition ${p} read up to its high watermark`).toBe(expectedCount[p]);
    }
    const missing = [...acked.keys()].filter((v) => !seen.has(v));
    expect(missing.slice(0, 10), `${missing.length} acknowledged messages missing`).toEqual([]);
  }, 120_000);

  it("both servers return identical pages for the same offsets", async () => {
    for (let p = 0; p < PARTITIONS; p++) {
      const [a, b] = await Promise.all(
        clients.map((c) => c.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset: 0, limit: 500 } })),
      );
      assertStatus(a, 200);
      assertStatus(b, 200);
      expect(b.body.messages).toEqual(a.body.messages);
    }
  });
});
