// A produce in batches stores the client's records as they are, under batch headers the server
// writes, and a CRC32C per stored batch that it combines from the CRCs it checked rather than
// computing it again over the records (functions/produce/batches.ts, storage/segment/codec.ts).
// This proves those CRCs right through the public surface: a Node server on Postgres + s3rver
// without a read cache (RESERVOIR_READ_CACHE_BYTES=0), so that every read fetches the batches
// from the object store and checks each one's CRC32C before it decodes it (a mismatch is a 5xx,
// which fails the test at once), and a receive in batches copies the stored bytes into its
// answer, whose CRCs this test computes again itself.
//
// 600 records in batches over two partitions (keys, headers, text and binary values; request
// batches of more than 256 records, or of more than 256 KiB, which the server splits), produced together
// with JSON messages so that flushes may hold both kinds. Every message is fixed (no randomness).
import { crc32c } from "@aws-crypto/crc32c";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BATCHES_TYPE, decodeBatchesAnswer } from "../../client/src/batches.ts";
import { type BatchMessageIn, encodeProduceBatches, type ProduceBatch } from "../../client/src/produce-batches.ts";
import { api, assertStatus, describeResponse, type Api } from "../support/http.ts";
import { metricValue } from "../support/metrics-text.ts";
import { startNodeServer } from "../support/node-server.ts";
import { onPostgresAndS3, type StartedServer } from "../support/postgres-s3.ts";
import { readAll } from "../support/topics.ts";

type Msg = Record<string, any>;

const MAX_BATCH_RECORDS = 256;
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Message i: every 4th binary, every 3rd keyed, every 5th with headers; the first 300 small
 * (under 300 bytes), the others up to 4 KB.
 */
function message(i: number): BatchMessageIn {
  const big = i >= 300;
  const m: BatchMessageIn =
    i % 4 === 0
      ? { value: Uint8Array.from({ length: (i * 97) % (big ? 3000 : 200) }, (_, j) => (i + j) % 256) }
      : { value: `v${i}:${"é✓x".repeat((i * 89) % (big ? 700 : 40))}` };
  if (i % 3 === 0) m.key = `key-${i % 10}`;
  if (i % 5 === 0) m.headers = { n: String(i), ü: "✓" };
  return m;
}

/** A message as a JSON read shows it, without its place. */
function asRead(m: BatchMessageIn): Msg {
  const out: Msg = {};
  if (m.key !== undefined) out.key = m.key;
  if (m.headers) out.headers = m.headers;
  if (typeof m.value === "string") out.value = m.value;
  else out.valueBase64 = Buffer.from(m.value).toString("base64");
  return out;
}

const place = (partition: number, offset: number) => `${partition}:${offset}`;
const withoutPlace = ({ topic: _t, partition: _p, offset: _o, timestamp: _ts, ...rest }: Msg) => rest;

/** Unsigned LEB128 at `pos`: its value and the position after it. */
function readVarint(bytes: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const b = bytes[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 0x80;
  }
}

interface StoredBatchSeen {
  partition: number;
  records: number;
  recordBytes: number;
}

/**
 * The batches of an answer in batches, each checked here: its length, version 1, flags 0, and a
 * CRC32C (computed by @aws-crypto/crc32c) equal to the one the server wrote.
 */
function checkAnswerBatches(body: Uint8Array): StoredBatchSeen[] {
  const newline = body.indexOf(10);
  const head = JSON.parse(new TextDecoder().decode(body.subarray(0, newline))) as { chunks: { partition: number; byteLength: number }[] };
  const seen: StoredBatchSeen[] = [];
  let at = newline + 1;
  for (const chunk of head.chunks) {
    const bytes = body.subarray(at, at + chunk.byteLength);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let pos = 0; pos < bytes.length; ) {
      const length = view.getUint32(pos);
      expect(pos + length, "a batch ends within its chunk").toBeLessThanOrEqual(bytes.length);
      const batch = bytes.subarray(pos, pos + length);
      expect(crc32c(batch.subarray(8)), `the CRC32C of a stored batch of partition ${chunk.partition}`).toBe(view.getUint32(pos + 4));
      expect([batch[8], batch[9]], "version 1, flags 0").toEqual([1, 0]);
      expect(view.getUint32(pos + 10)).toBe(chunk.partition);
      const [topicIdLength, recordsAt] = readVarint(batch, 26);
      seen.push({ partition: chunk.partition, records: view.getUint32(pos + 14), recordBytes: length - recordsAt - topicIdLength });
      pos += length;
    }
    at += chunk.byteLength;
  }
  expect(at, "the chunks account for the whole answer").toBe(body.length);
  return seen;
}

describe("records produced in batches, read from the object store (RESERVOIR_READ_CACHE_BYTES=0)", () => {
  let stack: StartedServer;
  let admin: Api;
  let client: Api;
  let apiKey: string;
  const topic = "stored";
  /** place → the message as a JSON read shows it. */
  const expected = new Map<string, Msg>();
  /** place → whether it was produced in batches (else as JSON). */
  const inBatches = new Set<string>();

  const metrics = async () => (await admin.get("/metrics", { headers: { accept: "text/plain" } })).text;

  beforeAll(async () => {
    stack = await onPostgresAndS3((env) =>
      startNodeServer({ label: "produce-batches-stored", env: { ...env, RESERVOIR_READ_CACHE_BYTES: "0" } }),
    );
    admin = api(stack.baseUrl, stack.adminToken);
    const created = await admin.post("/v1/admin/tenants", { name: "produce-batches-stored" });
    assertStatus(created, 201);
    apiKey = created.body.apiKey;
    client = api(stack.baseUrl, apiKey);
    assertStatus(await client.put(`/v1/topics/${topic}`, { partitions: 2 }), 201);
    assertStatus(await client.put(`/v1/topics/${topic}/groups/g`, { startAt: "earliest" }), 201);

    // 600 records in batches: 300 small ones to partition 0 (more than a stored batch's 256
    // records) and 100 large ones to partition 1 in one request, 200 large ones to partition 1
    // (more than a stored batch's 256 KiB) in another; JSON messages alongside, so that a flush
    // may hold records of both.
    const requests: ProduceBatch[][] = [
      [
        { partition: 0, messages: Array.from({ length: 300 }, (_, i) => message(i)) },
        { partition: 1, messages: Array.from({ length: 100 }, (_, i) => message(300 + i)) },
      ],
      [{ partition: 1, messages: Array.from({ length: 200 }, (_, i) => message(400 + i)) }],
    ];
    const json = Array.from({ length: 10 }, (_, i) => ({ value: `json ${i}`, partition: i % 2, ...(i % 2 ? { key: "j" } : {}) }));
    const [jsonAnswer, ...batchAnswers] = await Promise.all([
      client.post(`/v1/topics/${topic}/messages`, { messages: json }),
      ...requests.map((batches) =>
        client.post(`/v1/topics/${topic}/messages`, undefined, { raw: encodeProduceBatches(batches), contentType: BATCHES_TYPE }),
      ),
    ]);
    assertStatus(jsonAnswer, 200);
    jsonAnswer.body.offsets.forEach((o: { partition: number; offset: number }, i: number) => {
      const { partition: _, ...m } = json[i];
      expected.set(place(o.partition, o.offset), m);
    });
    batchAnswers.forEach((res, r) => {
      assertStatus(res, 200);
      expect(res.body.batches, describeResponse(res)).toHaveLength(requests[r].length);
      requests[r].forEach((batch, b) => {
        const range = res.body.batches[b];
        expect(range, describeResponse(res)).toMatchObject({ partition: batch.partition, count: batch.messages.length });
        batch.messages.forEach((m, i) => {
          expected.set(place(range.partition, range.baseOffset + i), asRead(m));
          inBatches.add(place(range.partition, range.baseOffset + i));
        });
      });
    });
    expect(inBatches.size).toBe(600);
    expect(expected.size).toBe(610);
  }, 180_000);

  afterAll(() => stack?.stop(), 60_000);

  it("every message reads back as sent, page by page and offset by offset, from the object store", async () => {
    expect(metricValue(await metrics(), "reservoir_read_cache_max_bytes")).toBe(0);
    const gets = metricValue(await metrics(), "reservoir_object_store_gets_total");
    const read: Msg[] = [];
    for (const p of [0, 1]) {
      const messages = await readAll(client, topic, p);
      expect(messages.map((m) => m.offset)).toEqual(messages.map((_, i) => i));
      read.push(...messages);
    }
    expect(read.map((m) => place(m.partition, m.offset)).sort()).toEqual([...expected.keys()].sort());
    for (const m of read) expect(withoutPlace(m), place(m.partition, m.offset)).toEqual(expected.get(place(m.partition, m.offset)));
    // Offset by offset: every 7th, and each side of where the server may have split a batch.
    const highWatermarks = [0, 1].map((p) => read.filter((m) => m.partition === p).length);
    for (const p of [0, 1]) {
      const offsets = new Set<number>();
      for (let o = 0; o < highWatermarks[p]; o += 7) offsets.add(o);
      for (const o of [1, 127, 128, 255, 256, 257, 258, 260, 261, 299, 300, 301, highWatermarks[p] - 1])
        if (o < highWatermarks[p]) offsets.add(o);
      for (const offset of offsets) {
        const res = await client.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset, limit: 1 } });
        assertStatus(res, 200);
        expect(res.body.messages, describeResponse(res)).toHaveLength(1);
        expect(res.body.messages[0].offset).toBe(offset);
        expect(withoutPlace(res.body.messages[0]), place(p, offset)).toEqual(expected.get(place(p, offset)));
      }
    }
    const after = await metrics();
    expect(metricValue(after, "reservoir_object_store_gets_total"), "the reads went to the object store").toBeGreaterThan(gets);
    expect(metricValue(after, "reservoir_read_cache_bytes")).toBe(0);
  }, 120_000);

  it("a receive in batches answers the stored batches: their CRC32Cs match, the server's split holds, the values are as sent", async () => {
    const received = new Map<string, Msg>();
    const batches: StoredBatchSeen[] = [];
    const receipts: string[] = [];
    const bound = Date.now() + 30_000;
    while (received.size < expected.size && Date.now() < bound) {
      const res = await fetch(`${stack.baseUrl}/v1/topics/${topic}/groups/g/receive`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, accept: BATCHES_TYPE, "content-type": "application/json" },
        body: JSON.stringify({ max: 1000, waitMs: 500, visibilityTimeoutSeconds: 120 }),
      });
      const body = new Uint8Array(await res.arrayBuffer());
      expect(res.status, new TextDecoder().decode(body.subarray(0, 2000))).toBe(200);
      expect(res.headers.get("content-type")).toBe(BATCHES_TYPE);
      batches.push(...checkAnswerBatches(body));
      const { leases, messages } = decodeBatchesAnswer(body);
      receipts.push(...leases.map((l) => l.receipt));
      for (const m of messages) {
        const key = place(m.partition, m.offset);
        expect(received.has(key), `${key} received once`).toBe(false);
        const out: Msg = {};
        if (m.key !== undefined) out.key = m.key;
        if (m.headers) out.headers = m.headers;
        if (m.binary) out.valueBase64 = Buffer.from(m.value).toString("base64");
        else out.value = new TextDecoder("utf-8", { fatal: true }).decode(m.value);
        expect(m.attempt).toBe(1);
        expect(Number.isInteger(m.timestamp)).toBe(true);
        received.set(key, out);
      }
    }
    expect([...received.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [key, m] of received) expect(m, key).toEqual(expected.get(key));

    // The stored batches: within the server's bounds; the 300 small records of one request batch
    // in a batch of 256 and another, the 200 large ones of another in more than one.
    for (const b of batches) {
      expect(b.records).toBeGreaterThanOrEqual(1);
      expect(b.records).toBeLessThanOrEqual(MAX_BATCH_RECORDS);
      if (b.records > 1) expect(b.recordBytes).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    }
    const recordBytes = (from: number, n: number) =>
      encodeProduceBatches([{ partition: 0, messages: Array.from({ length: n }, (_, i) => message(from + i)) }]).length - 27;
    expect(recordBytes(0, 300)).toBeLessThan(MAX_BATCH_BYTES);
    expect(recordBytes(400, 200)).toBeGreaterThan(MAX_BATCH_BYTES);
    expect(batches.some((b) => b.partition === 0 && b.records === MAX_BATCH_RECORDS)).toBe(true);
    expect(batches.filter((b) => b.partition === 1 && b.records > 1).length).toBeGreaterThanOrEqual(3);

    const acked = await client.post(`/v1/topics/${topic}/groups/g/ack`, { receipts });
    assertStatus(acked, 200);
    expect(acked.body).toEqual({ acked: expected.size, failed: [] });
  }, 120_000);
});
