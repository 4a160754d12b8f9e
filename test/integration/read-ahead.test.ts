// Read-ahead, through the public surface: a consumer draining a backlog that is no longer in the
// read cache finds the segment it reads next already there, because the receive before it
// started reading that segment while it answered (storage/log/reader.ts, readAhead). A Node server
// is sent ten requests of fifty 200-byte messages, one segment each, and restarted (its read
// cache empty, as for a backlog larger than the cache); then a group drains them fifty at a time.
// GET /metrics counts the object store's GETs: the first receive adds two (its own segment and
// the next), every later one adds one (the segment after its own, never its own), the last none.
// Both answers: messages in JSON, and stored batches (Accept: application/vnd.reservoir.batches).
// The messages are fixed (no randomness): message i of request r is `r-i` padded to 200 bytes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCHES_TYPE, fetchBatches } from "../support/batches.ts";
import { eventually } from "../support/eventually.ts";
import type { Api } from "../support/http.ts";
import { metricValue } from "../support/metrics-text.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

const REQUESTS = 10;
const PER_REQUEST = 50;
const value = (r: number, i: number) => `${r}-${i}-`.padEnd(200, "x");

describe.each(["json", "batches"] as const)("read-ahead of a receive answered in %s (Node server)", (answer) => {
  let started: TenantServer;
  let admin: Api;
  let client: Api;

  beforeAll(async () => {
    started = await serverWithTenant({ label: `read-ahead-${answer}` });
    ({ admin, client } = started);
  }, 120_000);

  afterAll(() => started?.stop(), 60_000);

  it("reads the next segment while a receive answers, so the next receive makes no GET for its own", async () => {
    expect((await client.put("/v1/topics/t/groups/g", { startAt: "earliest" })).status).toBe(201);
    for (let r = 0; r < REQUESTS; r++) {
      const res = await client.post("/v1/topics/t/messages", {
        messages: Array.from({ length: PER_REQUEST }, (_, i) => ({ value: value(r, i) })),
      });
      expect(res.status).toBe(200);
    }
    const gets = async () =>
      metricValue((await admin.get("/metrics", { headers: { accept: "text/plain" } })).text, "reservoir_object_store_gets_total");
    const flushes = metricValue((await admin.get("/metrics", { headers: { accept: "text/plain" } })).text, "reservoir_flush_puts_total");
    expect(flushes).toBe(REQUESTS); // one segment per request
    await started.server.restart();

    /** Receive r's messages (checked) and their receipts: one per message in JSON, one per lease run in batches. */
    const receive = async (r: number): Promise<string[]> => {
      const expected = Array.from({ length: PER_REQUEST }, (_, i) => value(r, i));
      if (answer === "batches") {
        const got = await fetchBatches(`${started.server.baseUrl}/v1/topics/t/groups/g/receive`, started.apiKey, { max: PER_REQUEST }, "t");
        expect(got.contentType).toContain(BATCHES_TYPE);
        expect(got.messages.map((m) => m.value)).toEqual(expected);
        return got.leases.map((l) => l.receipt);
      }
      const res = await client.post("/v1/topics/t/groups/g/receive", { max: PER_REQUEST });
      expect(res.status).toBe(200);
      const messages = res.body.messages as { value: string; receipt: string }[];
      expect(messages.map((m) => m.value)).toEqual(expected);
      return messages.map((m) => m.receipt);
    };
    const before = await gets();
    for (let r = 0; r < REQUESTS; r++) {
      const receipts = await receive(r);
      // Segments 0 .. r + 1 read, each once: the last receive has no next segment to read.
      const expected = before + Math.min(r + 2, REQUESTS);
      await eventually(`${expected} GETs after receive ${r}`, async () => (await gets()) === expected);
      const acked = await client.post("/v1/topics/t/groups/g/ack", { receipts });
      expect(acked.body).toMatchObject({ acked: PER_REQUEST, failed: [] });
    }
  }, 120_000);
});
