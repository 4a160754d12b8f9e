// The read cache's bound, through the public surface (docs/reliability.md, anomaly 6): a Node
// server whose read cache is bounded at 512 KiB (RESERVOIR_READ_CACHE_BYTES) is sent batches of
// small messages whose encoded bytes fit that bound but whose decoded form does not, and reads
// them all; GET /metrics then shows the cache within its bound, having dropped batches, and
// counting the decoded records, and every message still reads back (from the object store).
// The messages are fixed (no randomness): message i of request r is `r-i` padded to 200 bytes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { metricValue } from "../support/metrics-text.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

const BOUND = 512 * 1024;
const REQUESTS = 30;
const PER_REQUEST = 50;
const value = (r: number, i: number) => `${r}-${i}-`.padEnd(200, "x");

describe("the read cache on a Node server (RESERVOIR_READ_CACHE_BYTES)", () => {
  let started: TenantServer;
  let admin: Api;
  let client: Api;

  beforeAll(async () => {
    started = await serverWithTenant({ label: "read-cache", env: { RESERVOIR_READ_CACHE_BYTES: String(BOUND) } });
    ({ admin, client } = started);
  }, 120_000);

  afterAll(() => started?.stop(), 60_000);

  it("stays within its bound, counting decoded messages, and what it dropped reads back", async () => {
    for (let r = 0; r < REQUESTS; r++) {
      const res = await client.post("/v1/topics/t/messages", {
        messages: Array.from({ length: PER_REQUEST }, (_, i) => ({ value: value(r, i), key: "k" })),
      });
      expect(res.status).toBe(200);
    }
    const metrics = async () => (await admin.get("/metrics", { headers: { accept: "text/plain" } })).text;
    const produced = await metrics();
    expect(metricValue(produced, "reservoir_read_cache_max_bytes")).toBe(BOUND);
    // Undecoded, the flushes' bytes all fit (about 12 KB a request, 360 KB in all).
    const flushed = metricValue(produced, "reservoir_flush_bytes_sum");
    expect(flushed).toBeLessThan(BOUND);
    expect(metricValue(produced, "reservoir_read_cache_bytes")).toBeLessThanOrEqual(flushed);

    const read = async () => {
      const values: string[] = [];
      for (let offset = 0; offset < REQUESTS * PER_REQUEST; ) {
        const res = await client.get(`/v1/topics/t/partitions/0/messages?offset=${offset}&limit=100`);
        expect(res.status).toBe(200);
        values.push(...(res.body.messages as { value: string }[]).map((m) => m.value));
        offset = res.body.nextOffset;
      }
      return values;
    };
    const expected = Array.from({ length: REQUESTS * PER_REQUEST }, (_, n) => value(Math.floor(n / PER_REQUEST), n % PER_REQUEST));
    expect(await read()).toEqual(expected);

    // Decoded, they do not: the cache dropped the oldest and counts each kept message's records.
    const after = await metrics();
    const bytes = metricValue(after, "reservoir_read_cache_bytes");
    const entries = metricValue(after, "reservoir_read_cache_entries");
    expect(bytes).toBeLessThanOrEqual(BOUND);
    expect(entries).toBeGreaterThan(0);
    expect(bytes).toBeGreaterThan(BOUND / 2);
    // Counted by their encoded bytes alone (before anomaly 6 was fixed), all 30 would have stayed.
    expect(entries).toBeLessThan(REQUESTS);
    // At least 350 B per kept message on top of its 200-byte value (DECODED_RECORD_BYTES).
    expect(bytes).toBeGreaterThanOrEqual(entries * PER_REQUEST * (200 + 350));

    // What was dropped is read from the object store again, unchanged.
    const gets = metricValue(after, "reservoir_object_store_gets_total");
    expect(await read()).toEqual(expected);
    expect(metricValue(await metrics(), "reservoir_object_store_gets_total")).toBeGreaterThan(gets);
    expect(metricValue(await metrics(), "reservoir_read_cache_bytes")).toBeLessThanOrEqual(BOUND);
  }, 120_000);
});
