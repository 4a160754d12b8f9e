// Segment arrays reused (storage/buffer-pool.ts, storage/log/batcher.ts, storage/log/batch-cache.ts):
// a flush's segment goes back to the batcher's pool once it has left the read cache and no read
// holds a view of it (reads by offset and receives build their answers inside a ReadScope), and a
// later flush is written into that array. Through HTTP, on a Node server with S3 (s3rver) and a
// read cache of 1 MiB (about ten segments of 100 KB):
// - 40 produce requests of 100 messages of 1 KiB, one at a time (one flush each), each read back
//   at once: every message then reads back as produced, from the cache or from the store (whose
//   copies were uploaded from reused arrays), the admin metrics count flushes written into reused
//   arrays (which had all been read), and the stored objects add up to the bytes flushed (no
//   upload sent a reused array's tail);
// - producers and consumers at once (two produce lanes, receivers in batches and in JSON on a
//   topic of two partitions): every message is received once, as produced.
// The messages are fixed (no randomness): message i of request r is `r-i-` padded with a letter of r.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { fetchBatches } from "../support/batches.ts";
import { S3ObjectStore } from "../../storage/objects/s3-store.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

const REQUESTS = 40;
const PER_REQUEST = 100;
const value = (r: number, i: number) => `${r}-${i}-`.padEnd(1000, String.fromCharCode(97 + (r % 26)));

describe("segment arrays reused once they leave the read cache and no read holds a view", () => {
  let s3: S3Server;
  let started: TenantServer;
  let admin: Api;
  let client: Api;

  beforeAll(async () => {
    s3 = await startS3();
    started = await serverWithTenant({ label: "segment-reuse", env: { ...s3.env, RESERVOIR_READ_CACHE_BYTES: String(1024 * 1024) } });
    ({ admin, client } = started);
  }, 120_000);

  afterAll(async () => {
    await started?.stop();
    await s3?.stop();
  }, 60_000);

  const read = async (from: number, to: number) => {
    const values: string[] = [];
    for (let offset = from; offset < to; ) {
      const res = await client.get(`/v1/topics/t/partitions/0/messages?offset=${offset}&limit=${Math.min(1000, to - offset)}`);
      expect(res.status).toBe(200);
      values.push(...(res.body.messages as { value: string }[]).map((m) => m.value));
      offset = res.body.nextOffset;
    }
    return values;
  };
  const produced = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, k) => value(Math.floor((from + k) / PER_REQUEST), (from + k) % PER_REQUEST));

  it("writes later flushes into the arrays of segments read before they left, and every message reads back as produced", async () => {
    for (let r = 0; r < REQUESTS; r++) {
      const res = await client.post("/v1/topics/t/messages", {
        messages: Array.from({ length: PER_REQUEST }, (_, i) => ({ value: value(r, i) })),
      });
      expect(res.status).toBe(200);
      expect(res.body.offsets[0]).toEqual({ partition: 0, offset: r * PER_REQUEST });
      expect(await read(r * PER_REQUEST, (r + 1) * PER_REQUEST)).toEqual(produced(r * PER_REQUEST, (r + 1) * PER_REQUEST));
    }
    const stats = (await admin.get("/v1/admin/metrics")).body.produce;
    expect(stats.flushes).toBe(REQUESTS);
    // About ten segments fit the cache: from then on each flush evicts one, read by then and its
    // read's answer sent, so its array is free for the next flush.
    expect(stats.segmentsReused).toBeGreaterThanOrEqual(25);
    expect(await read(0, REQUESTS * PER_REQUEST)).toEqual(produced(0, REQUESTS * PER_REQUEST));
    // Each upload was its segment's bytes alone, not the larger array it was written into.
    const store = new S3ObjectStore(s3.config);
    const keys: string[] = [];
    for (let page = await store.list("tenants/"); ; page = await store.list("tenants/", { startAfter: page.nextStartAfter })) {
      keys.push(...page.keys);
      if (!page.nextStartAfter) break;
    }
    expect(keys).toHaveLength(REQUESTS);
    const sizes = await Promise.all(keys.map(async (key) => (await store.head(key)).size));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(stats.bytes);
  });

  it("while producers and consumers run at once, every message is received once, as produced", async () => {
    const LANES = 2;
    const PER_LANE = 30;
    await client.put("/v1/topics/busy", { partitions: 2 });
    await client.put("/v1/topics/busy/groups/g", { startAt: "earliest" });
    const reusedBefore = (await admin.get("/v1/admin/metrics")).body.produce.segmentsReused;
    const total = LANES * PER_LANE * PER_REQUEST;
    const received = new Map<string, number>(); // value → times received
    let producing = true;
    // Request r of lane l carries messages `(1000 + l * PER_LANE + r)-i-…`: distinct values, each naming itself.
    const produce = async (lane: number) => {
      for (let r = 0; r < PER_LANE; r++) {
        const tag = 1000 + lane * PER_LANE + r;
        const res = await client.post("/v1/topics/busy/messages", {
          messages: Array.from({ length: PER_REQUEST }, (_, i) => ({ value: value(tag, i) })),
        });
        expect(res.status).toBe(200);
      }
    };
    const take = (values: string[]) => {
      for (const v of values) {
        const [tag, i] = v.split("-").map(Number);
        expect(v).toBe(value(tag, i)); // whole, and not another message's bytes
        received.set(v, (received.get(v) ?? 0) + 1);
      }
    };
    const consume = async (answer: "batches" | "json") => {
      while (producing || received.size < total) {
        let receipts: string[];
        if (answer === "batches") {
          const got = await fetchBatches(
            `${started.server.baseUrl}/v1/topics/busy/groups/g/receive`,
            started.apiKey,
            { max: 150, waitMs: 200 },
            "busy",
          );
          take(got.messages.map((m) => m.value as string));
          receipts = got.leases.map((l) => l.receipt);
        } else {
          const res = await client.post("/v1/topics/busy/groups/g/receive", { max: 150, waitMs: 200 });
          expect(res.status).toBe(200);
          const messages = res.body.messages as { value: string; receipt: string }[];
          take(messages.map((m) => m.value));
          receipts = messages.map((m) => m.receipt);
        }
        if (receipts.length > 0) expect((await client.post("/v1/topics/busy/groups/g/ack", { receipts })).body.failed).toEqual([]);
      }
    };
    const consumers = Promise.all([consume("batches"), consume("json"), consume("batches")]);
    await Promise.all(Array.from({ length: LANES }, (_, lane) => produce(lane)));
    producing = false;
    await consumers;
    expect(received.size).toBe(total);
    expect([...received.values()].every((n) => n === 1)).toBe(true);
    // Read segments left the cache and were written into again while consumers read others.
    expect((await admin.get("/v1/admin/metrics")).body.produce.segmentsReused).toBeGreaterThan(reusedBefore + 10);
  });
});
