// Segment arrays reused (storage/buffer-pool.ts, storage/log/batcher.ts): a flush's segment goes
// back to the batcher's pool once it leaves the read cache unread, and a later flush is written
// into that array. Through HTTP, on a Node server with S3 (s3rver) and a read cache of 1 MiB:
// 40 produce requests of 100 messages of 1 KiB, one at a time (one flush and one segment of
// about 100 KB each, large enough to be pooled), the messages of every fourth request read back
// at once (their segment is then viewed, and must never be reused). Then every message reads
// back as it was produced, from the cache or from the store (whose copies were uploaded from
// arrays reused since), the admin metrics show flushes written into reused arrays, and the
// stored objects add up to the bytes the batcher flushed (no upload sent a reused array's tail).
// The messages are fixed (no randomness): message i of request r is `r-i-` padded with a letter of r.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { S3ObjectStore } from "../../storage/objects/s3-store.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

const REQUESTS = 40;
const PER_REQUEST = 100;
const value = (r: number, i: number) => `${r}-${i}-`.padEnd(1000, String.fromCharCode(97 + (r % 26)));

describe("segment arrays reused once they leave the read cache unread", () => {
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

  it("writes later flushes into the arrays of segments that left unread, and every message reads back as produced", async () => {
    for (let r = 0; r < REQUESTS; r++) {
      const res = await client.post("/v1/topics/t/messages", {
        messages: Array.from({ length: PER_REQUEST }, (_, i) => ({ value: value(r, i) })),
      });
      expect(res.status).toBe(200);
      expect(res.body.offsets[0]).toEqual({ partition: 0, offset: r * PER_REQUEST });
      if (r % 4 === 0) expect(await read(r * PER_REQUEST, (r + 1) * PER_REQUEST)).toEqual(produced(r * PER_REQUEST, (r + 1) * PER_REQUEST));
    }
    const stats = (await admin.get("/v1/admin/metrics")).body.produce;
    expect(stats.flushes).toBe(REQUESTS);
    // About ten segments fit the cache: from then on each flush evicts one, three in four unread.
    expect(stats.segmentsReused).toBeGreaterThanOrEqual(15);
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
});
