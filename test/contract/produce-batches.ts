// Producing in batches (`Content-Type: application/vnd.reservoir.batches`, docs/batches.md):
// record batches of segment format v1, back to back, stored as sent. Exercised through HTTP only
// so that the same suite runs against every target: the Node server (embedded or on Postgres +
// S3) and the Worker.
//
// Valid bodies are the SDK's (encodeProduceBatches, client/src/produce-batches.ts). Malformed ones
// are built here byte by byte (rawBatch, rawRecord), and each differs from an accepted body in one
// thing only: a test first checks that the builder's bytes of a valid batch are the SDK's and are
// accepted. Where a test means a valid CRC over a bad structure, the CRC is computed again.
//
// Every call goes through test/support/http.ts, which fails the test at once on any 5xx.

import { crc32c } from "@aws-crypto/crc32c";
import { beforeAll, describe, expect, it } from "vitest";
import { ANY_PARTITION, type ProduceBatch, encodeProduceBatches } from "../../client/src/produce-batches.ts";
import { assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { expectNoChange, highWatermarks, produce, readAll, topicPath } from "../support/topics.ts";
import type { ContractTarget } from "./contract.ts";
import { contractScaffold, type Tenant } from "./scaffold.ts";

const BATCHES = "application/vnd.reservoir.batches";
const MiB = 1024 * 1024;

interface Range {
  partition: number;
  baseOffset: number;
  count: number;
}

type Msg = Record<string, any>;

const utf8 = new TextEncoder();
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

// ---------------------------------------------------------------- bytes by hand

type Bytes = Uint8Array | string;

const asBytes = (b: Bytes) => (typeof b === "string" ? utf8.encode(b) : b);

/** Unsigned LEB128. */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

function concat(parts: (Uint8Array | number[])[]): Uint8Array {
  const all = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-prefixed field. */
const field = (b: Bytes) => concat([varint(asBytes(b).length), asBytes(b)]);

interface RawRecord {
  /** Default: bit 1 when there is a key. */
  attributes?: number;
  /** The timestamp delta's bytes (default [0]). */
  delta?: number[];
  key?: Bytes;
  value: Bytes;
  headers?: [Bytes, Bytes][];
  /** Bytes after the headers, inside the record's length. */
  extra?: number[];
  /** Added to the record's true length in its length field. */
  lengthDelta?: number;
}

/** One record of segment format v1: varint length · attributes · delta · [key] · value · headers. */
function rawRecord(r: RawRecord): Uint8Array {
  const headers = r.headers ?? [];
  const rest = concat([
    [r.attributes ?? (r.key !== undefined ? 2 : 0)],
    r.delta ?? [0],
    ...(r.key !== undefined ? [field(r.key)] : []),
    field(r.value),
    varint(headers.length),
    ...headers.flatMap(([name, value]) => [field(name), field(value)]),
    r.extra ?? [],
  ]);
  return concat([varint(rest.length + (r.lengthDelta ?? 0)), rest]);
}

interface RawBatch {
  partition?: number;
  records: Uint8Array[];
  /** Default: the number of records. */
  count?: number;
  version?: number;
  flags?: number;
  topicId?: Bytes;
  /** Default: the batch's true length. */
  batchLength?: number;
}

/** One batch of segment format v1 with a CRC32C that matches it (its bytes up to its batchLength). */
function rawBatch(b: RawBatch): Uint8Array {
  const topicId = asBytes(b.topicId ?? "");
  const batch = concat([new Uint8Array(26), varint(topicId.length), topicId, ...b.records]);
  const view = new DataView(batch.buffer);
  const length = b.batchLength ?? batch.length;
  view.setUint32(0, length);
  batch[8] = b.version ?? 1;
  batch[9] = b.flags ?? 0;
  view.setUint32(10, b.partition ?? 0);
  view.setUint32(14, b.count ?? b.records.length);
  view.setUint32(4, crc32c(batch.subarray(8, Math.min(length, batch.length))));
  return batch;
}

/** A copy of `bytes` with byte `at` set to `value` (the CRC is not computed again). */
function patched(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const out = bytes.slice();
  out[at] = value;
  return out;
}

const FIXED = 27; // a batch's header with an empty topic id

export function produceBatchesSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`produce in batches (docs/batches.md) on ${name}`, () => {
    let tenant: Tenant;
    const { uniq } = contractScaffold(name, startTarget, "batches-main", (s) => {
      tenant = s.tenant;
    });

    // ---------------------------------------------------------------- helpers

    async function createTopic(client: Api, settings: { partitions?: number } = {}, topic = uniq("t")): Promise<string> {
      assertStatus(await client.put(topicPath(topic), settings), 201);
      return topic;
    }

    function postBatches(client: Api, topic: string, body: Uint8Array, contentType = BATCHES): Promise<ApiResponse> {
      return client.post(`${topicPath(topic)}/messages`, undefined, { raw: body, contentType });
    }

    /** Produces `batches` (the SDK's bytes) and checks the answer's shape: one range per batch, in order. */
    async function produceBatches(client: Api, topic: string, batches: ProduceBatch[]): Promise<Range[]> {
      const res = await postBatches(client, topic, encodeProduceBatches(batches));
      assertStatus(res, 200);
      expect(res.headers.get("content-type") ?? "", describeResponse(res)).toMatch(/^application\/json/);
      const ranges = res.body?.batches as Range[];
      expect(Array.isArray(ranges), describeResponse(res)).toBe(true);
      expect(ranges, describeResponse(res)).toHaveLength(batches.length);
      ranges.forEach((r, i) => {
        expect(Object.keys(r).sort(), describeResponse(res)).toEqual(["baseOffset", "count", "partition"]);
        expect(Number.isInteger(r.baseOffset) && r.baseOffset >= 0, describeResponse(res)).toBe(true);
        expect(r.count, describeResponse(res)).toBe(batches[i].messages.length);
        if (batches[i].partition !== undefined) expect(r.partition, describeResponse(res)).toBe(batches[i].partition);
      });
      return ranges;
    }

    /** A message as a JSON read shows it (without topic, partition, offset, timestamp). */
    function asRead(m: ProduceBatch["messages"][number]): Msg {
      const out: Msg = {};
      if (m.key !== undefined) out.key = m.key;
      if (m.headers && Object.keys(m.headers).length > 0) out.headers = m.headers;
      if (typeof m.value === "string") out.value = m.value;
      else out.valueBase64 = b64(m.value);
      return out;
    }

    /** `partition:offset` → the message there as a JSON read shows it, from the batches and their ranges. */
    function placed(batches: ProduceBatch[], ranges: Range[]): Map<string, Msg> {
      const out = new Map<string, Msg>();
      for (const [b, batch] of batches.entries()) {
        for (const [i, m] of batch.messages.entries()) out.set(`${ranges[b].partition}:${ranges[b].baseOffset + i}`, asRead(m));
      }
      return out;
    }

    const withoutPlace = ({ topic: _t, partition: _p, offset: _o, timestamp: _ts, ...rest }: Msg) => rest;

    /**
     * Reads every partition of `topic` and checks that the messages of each batch are at its
     * range, as they were sent; returns every message read.
     */
    async function expectStored(client: Api, topic: string, partitions: number, batches: ProduceBatch[], ranges: Range[]): Promise<Msg[]> {
      const expected = placed(batches, ranges);
      const all: Msg[] = [];
      for (let p = 0; p < partitions; p++) {
        const read = await readAll(client, topic, p);
        read.forEach((m, i) => {
          expect(m.topic).toBe(topic);
          expect(m.partition).toBe(p);
          expect(m.offset, `partition ${p}: offsets are dense from 0`).toBe(i);
          expect(Number.isInteger(m.timestamp), `timestamp ${String(m.timestamp)} is an integer`).toBe(true);
        });
        all.push(...read);
      }
      expect(all.map((m) => `${m.partition}:${m.offset}`).sort(), "the topic holds exactly the ranges' messages").toEqual(
        [...expected.keys()].sort(),
      );
      for (const m of all)
        expect(withoutPlace(m), `message ${m.partition}:${m.offset}`).toEqual(expected.get(`${m.partition}:${m.offset}`));
      return all;
    }

    /** Asserts a 400 invalid_request about batch `batch` whose detail matches `detail`. */
    function expectInvalidBatch(res: ApiResponse, batch: number, detail: RegExp): void {
      const p = assertProblem(res, 400, "invalid_request");
      expect(p.detail, describeResponse(res)).toMatch(new RegExp(`^batch ${batch}: `));
      expect(p.detail, describeResponse(res)).toMatch(detail);
      expect(p.batch, describeResponse(res)).toBe(batch);
    }

    // ---------------------------------------------------------------- round trips

    describe("stored as sent", () => {
      it("several batches (text, unicode, binary, keys, headers, explicit partitions, ANY_PARTITION) read back at their ranges", async () => {
        const topic = await createTopic(tenant.client, { partitions: 3 });
        const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        const batches: ProduceBatch[] = [
          {
            partition: 0,
            messages: [
              { value: "hello" },
              { value: "ünïcødé ✓ — 日本語", key: "k-ü", headers: { trace: "t-1", "naïve ✓": "wert ö" } },
              { value: "emoji 🎉👩‍👩‍👧 and a surrogate pair 𝄞", key: "🔑" },
              { value: "", key: "" },
              { value: "\uFEFFa leading byte-order mark", key: "\uFEFFk", headers: { "\uFEFFh": "\uFEFFv", h: "v" } },
              { value: "nul \u0000 and control \u0001\u001f", headers: { "": "", ["__proto__"]: "p", constructor: "c" } },
              { value: "x".repeat(5000), headers: { trace: "t-2" } },
            ],
          },
          {
            partition: 1,
            messages: [
              { value: allBytes },
              { value: new Uint8Array() },
              { value: Uint8Array.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80]), key: "not UTF-8, but binary" },
              { value: utf8.encode("text sent as bytes"), headers: { kind: "bytes" } },
            ],
          },
          {
            messages: [
              { value: "anywhere 1" },
              { value: Uint8Array.from([1, 2, 3]), headers: { a: "1", b: "2" } },
              { value: "anywhere 3" },
            ],
          },
          { partition: 0, messages: [{ value: "second batch of partition 0", key: "k-ü" }] },
          { partition: 2, messages: [{ value: "p2" }] },
          { messages: [{ value: "anywhere again" }] },
        ];
        const ranges = await produceBatches(tenant.client, topic, batches);
        expect(ranges[0]).toEqual({ partition: 0, baseOffset: 0, count: 7 });
        expect(ranges[1]).toEqual({ partition: 1, baseOffset: 0, count: 4 });
        // ANY_PARTITION: the server's sticky choice, one partition for the request.
        expect([0, 1, 2]).toContain(ranges[2].partition);
        expect(ranges[5].partition).toBe(ranges[2].partition);
        // The batches of a request go in request order: each starts where the request's earlier
        // batches to its partition ended (a partition's second batch follows its first).
        const placedBefore = (partition: number, b: number) =>
          ranges.slice(0, b).reduce((n, r, i) => n + (r.partition === partition ? batches[i].messages.length : 0), 0);
        for (const [b, r] of ranges.entries())
          expect(r.baseOffset, `batch ${b}: ${JSON.stringify(ranges)}`).toBe(placedBefore(r.partition, b));

        const all = await expectStored(tenant.client, topic, 3, batches, ranges);
        expect(all).toHaveLength(17);
        // Every message takes the server's time at the request: one timestamp for all.
        expect(new Set(all.map((m) => m.timestamp)).size, JSON.stringify(all.map((m) => m.timestamp))).toBe(1);
        expect(await highWatermarks(tenant.client, topic)).toEqual([0, 1, 2].map((p) => all.filter((m) => m.partition === p).length));
      });

      it("600 records in one batch (stored as several batches): contiguous offsets, all read back in order", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const messages = Array.from({ length: 600 }, (_, i) =>
          i % 5 === 0
            ? { value: Uint8Array.from({ length: i % 700 }, (_, j) => (i + j) % 256) }
            : { value: `m${i}-${"y".repeat((i * 37) % 1500)}` },
        );
        const [range] = await produceBatches(tenant.client, topic, [{ partition: 1, messages }]);
        expect(range).toEqual({ partition: 1, baseOffset: 0, count: 600 });
        const read = await readAll(tenant.client, topic, 1);
        expect(read.map((m) => m.offset)).toEqual(Array.from({ length: 600 }, (_, i) => i));
        expect(read.map(withoutPlace)).toEqual(messages.map(asRead));
        expect(new Set(read.map((m) => m.timestamp)).size).toBe(1);
        // Reads that start inside the request (the server's split is not visible).
        for (const from of [255, 256, 257, 511, 512, 599]) {
          const res = await tenant.client.get(`${topicPath(topic)}/partitions/1/messages`, { query: { offset: from, limit: 3 } });
          assertStatus(res, 200);
          expect(
            res.body.messages.map((m: Msg) => m.offset),
            describeResponse(res),
          ).toEqual([from, from + 1, from + 2].filter((o) => o < 600));
          expect(res.body.messages.map(withoutPlace)).toEqual(messages.slice(from, from + 3).map(asRead));
        }
        expect(await highWatermarks(tenant.client, topic)).toEqual([0, 600]);
      });

      it("offsets continue densely after JSON produces to the same partition, and JSON's after batches", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        expect(
          (
            await produce(tenant.client, topic, [
              { value: "j0", partition: 1 },
              { value: "j1", partition: 1 },
            ])
          ).map((o) => o.offset),
        ).toEqual([0, 1]);
        const batches: ProduceBatch[] = [{ partition: 1, messages: [{ value: "b2" }, { value: "b3", key: "k" }, { value: "b4" }] }];
        expect(await produceBatches(tenant.client, topic, batches)).toEqual([{ partition: 1, baseOffset: 2, count: 3 }]);
        expect((await produce(tenant.client, topic, [{ value: "j5", partition: 1 }])).map((o) => o.offset)).toEqual([5]);
        const ndjson = await tenant.client.post(`${topicPath(topic)}/messages`, undefined, {
          raw: `${JSON.stringify({ value: "n6", partition: 1 })}\n`,
          contentType: "application/x-ndjson",
        });
        assertStatus(ndjson, 200);
        expect(ndjson.body.offsets).toEqual([{ partition: 1, offset: 6 }]);
        expect(
          await produceBatches(tenant.client, topic, [
            { partition: 1, messages: [{ value: "b7" }] },
            { partition: 0, messages: [{ value: "p0" }] },
          ]),
        ).toEqual([
          { partition: 1, baseOffset: 7, count: 1 },
          { partition: 0, baseOffset: 0, count: 1 },
        ]);
        const read = await readAll(tenant.client, topic, 1);
        expect(read.map((m) => [m.offset, m.value])).toEqual(["j0", "j1", "b2", "b3", "b4", "j5", "n6", "b7"].map((v, i) => [i, v]));
        expect(read[3].key).toBe("k");
        expect(await highWatermarks(tenant.client, topic)).toEqual([1, 8]);
      });

      it("a consumer group receives the messages produced in batches, with the same values, keys and headers", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const group = uniq("g");
        const groupPath = `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;
        assertStatus(await tenant.client.put(groupPath, { startAt: "earliest" }), 201);
        const batches: ProduceBatch[] = [
          { partition: 0, messages: Array.from({ length: 120 }, (_, i) => ({ value: `g${i} ✓`, key: `k${i % 7}` })) },
          {
            partition: 1,
            messages: [
              { value: Uint8Array.from([0, 255, 128]), headers: { h: "1" } },
              { value: "two", headers: { ü: "ö", x: "" } },
            ],
          },
          { messages: [{ value: "keyless" }] },
        ];
        const ranges = await produceBatches(tenant.client, topic, batches);
        const expected = placed(batches, ranges);
        const received: Msg[] = [];
        const bound = Date.now() + 15_000;
        while (received.length < expected.size && Date.now() < bound) {
          const res = await tenant.client.post(`${groupPath}/receive`, { max: 100, waitMs: 500, visibilityTimeoutSeconds: 60 });
          assertStatus(res, 200);
          expect(Array.isArray(res.body?.messages), describeResponse(res)).toBe(true);
          received.push(...res.body.messages);
        }
        expect(received).toHaveLength(expected.size);
        const timestamps = new Set<number>();
        for (const m of received) {
          const { receipt, attempt, ...message } = m;
          expect(typeof receipt).toBe("string");
          expect(attempt).toBe(1);
          expect(message.topic).toBe(topic);
          timestamps.add(message.timestamp);
          expect(withoutPlace(message), `received ${m.partition}:${m.offset}`).toEqual(expected.get(`${m.partition}:${m.offset}`));
        }
        expect(new Set(received.map((m) => `${m.partition}:${m.offset}`)).size).toBe(expected.size);
        expect(timestamps.size).toBe(1);
        const acked = await tenant.client.post(`${groupPath}/ack`, { receipts: received.map((m) => m.receipt) });
        assertStatus(acked, 200);
        expect(acked.body).toEqual({ acked: expected.size, failed: [] });
      });

      it("concurrent JSON and batch produces to the same partitions: distinct, dense offsets, each message where its answer says", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const value = (r: number, i: number) => `r${r}-m${i}`;
        const requests = Array.from({ length: 24 }, (_, r) => r);
        const answers = await Promise.all(
          requests.map(async (r) => {
            if (r % 2 === 0) {
              const offsets = await produce(
                tenant.client,
                topic,
                Array.from({ length: 1 + (r % 3) }, (_, i) => ({ value: value(r, i), partition: (r + i) % 2 })),
              );
              return offsets.map((o, i) => ({ ...o, value: value(r, i) }));
            }
            const batches: ProduceBatch[] = [
              { partition: r % 2, messages: Array.from({ length: 1 + (r % 4) }, (_, i) => ({ value: value(r, i), key: `k${r}` })) },
              { partition: (r + 1) % 2, messages: [{ value: value(r, 100) }, { value: utf8.encode(value(r, 101)) }] },
            ];
            const ranges = await produceBatches(tenant.client, topic, batches);
            return ranges.flatMap((range, b) =>
              batches[b].messages.map((m, i) => ({
                partition: range.partition,
                offset: range.baseOffset + i,
                value: typeof m.value === "string" ? m.value : b64(m.value),
              })),
            );
          }),
        );
        const placed = answers.flat();
        const read = [...(await readAll(tenant.client, topic, 0)), ...(await readAll(tenant.client, topic, 1))];
        expect(read).toHaveLength(placed.length);
        expect(new Set(placed.map((m) => `${m.partition}:${m.offset}`)).size, "no offset given twice").toBe(placed.length);
        const stored = new Map(read.map((m) => [`${m.partition}:${m.offset}`, m.value ?? m.valueBase64]));
        for (const m of placed) expect(stored.get(`${m.partition}:${m.offset}`), `${m.partition}:${m.offset}`).toBe(m.value);
        const hwm = await highWatermarks(tenant.client, topic);
        expect(hwm).toEqual([0, 1].map((p) => placed.filter((m) => m.partition === p).length));
      });

      it("limits at their bounds are accepted: 1,000 records in a request, a record of exactly 1 MiB of key, value and headers", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const many: ProduceBatch[] = [
          { partition: 0, messages: Array.from({ length: 600 }, (_, i) => ({ value: `a${i}` })) },
          { partition: 1, messages: Array.from({ length: 400 }, (_, i) => ({ value: `b${i}` })) },
        ];
        expect(await produceBatches(tenant.client, topic, many)).toEqual([
          { partition: 0, baseOffset: 0, count: 600 },
          { partition: 1, baseOffset: 0, count: 400 },
        ]);
        // key 10 + header name 2 + header value 3 + value: 1,048,576 bytes in all.
        const exact = { key: "k".repeat(10), headers: { hh: "vvv" }, value: new Uint8Array(MiB - 15).fill(7) };
        const [range] = await produceBatches(tenant.client, topic, [{ partition: 1, messages: [exact] }]);
        expect(range).toEqual({ partition: 1, baseOffset: 400, count: 1 });
        const res = await tenant.client.get(`${topicPath(topic)}/partitions/1/messages`, { query: { offset: 400 } });
        assertStatus(res, 200);
        expect(res.body.messages.map(withoutPlace)).toEqual([asRead(exact)]);
      });
    });

    // ---------------------------------------------------------------- refusals

    describe("refusals: problem+json, and nothing stored", () => {
      let topic: string;
      /** A valid batch of one record to partition 0, built by hand. */
      const valid = () => rawBatch({ partition: 0, records: [rawRecord({ value: "ok" })] });

      beforeAll(async () => {
        topic = await createTopic(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [
          { value: "before", partition: 0 },
          { value: "before", partition: 1 },
        ]);
      });

      it("the hand-built bytes of valid batches are the SDK's, and are accepted", async () => {
        const record = { key: "k", value: "v ✓", headers: { a: "1", b: "2" } };
        expect(
          rawBatch({
            partition: 1,
            records: [
              rawRecord({
                key: "k",
                value: "v ✓",
                headers: [
                  ["a", "1"],
                  ["b", "2"],
                ],
              }),
            ],
          }),
        ).toEqual(encodeProduceBatches([{ partition: 1, messages: [record] }]));
        expect(rawBatch({ partition: ANY_PARTITION, records: [rawRecord({ value: Uint8Array.from([9]), attributes: 1 })] })).toEqual(
          encodeProduceBatches([{ messages: [{ value: Uint8Array.from([9]) }] }]),
        );
        expect(valid()).toEqual(encodeProduceBatches([{ partition: 0, messages: [{ value: "ok" }] }]));
        expect(valid()).toHaveLength(FIXED + 7);
        const res = await postBatches(tenant.client, topic, concat([valid(), valid()]));
        assertStatus(res, 200);
        expect(res.body.batches).toHaveLength(2);
      });

      /** A body, the refusal it gets, and the batch its detail names. */
      interface Refusal {
        name: string;
        body: () => Uint8Array;
        batch: number;
        detail: RegExp;
      }

      const invalidUtf8: [string, number[]][] = [
        ["a lone continuation byte", [0x80]],
        ["0xff", [0x61, 0xff]],
        ["an overlong encoding", [0xc0, 0x80]],
        ["an encoded surrogate", [0xed, 0xa0, 0x80]],
        ["a truncated sequence", [0xe2, 0x82]],
        ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
      ];
      const bad = (bytes: number[]) => Uint8Array.from(bytes);

      const refusals: Refusal[] = [
        {
          name: "a CRC32C that does not match (a value byte changed)",
          body: () => patched(valid(), valid().length - 2, "x".charCodeAt(0)),
          batch: 0,
          detail: /CRC32C/,
        },
        {
          name: "a CRC32C field that does not match the bytes",
          body: () => patched(valid(), 7, valid()[7] ^ 1),
          batch: 0,
          detail: /CRC32C/,
        },
        {
          name: "a CRC mismatch on a batch that is also malformed (version 2) is reported as the CRC's",
          body: () => patched(valid(), 8, 2),
          batch: 0,
          detail: /CRC32C/,
        },
        {
          name: "version 2",
          body: () => rawBatch({ version: 2, records: [rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /version 2/,
        },
        {
          name: "version 0",
          body: () => rawBatch({ version: 0, records: [rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /version 0/,
        },
        {
          name: "flags 1",
          body: () => rawBatch({ flags: 1, records: [rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /flags 1/,
        },
        {
          name: "a recordCount of 0 (a 27-byte batch)",
          body: () => rawBatch({ records: [] }),
          batch: 0,
          detail: /no records/,
        },
        {
          name: "a topic id that is not empty",
          body: () => rawBatch({ topicId: "x", records: [rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /topic id/,
        },
        {
          name: "a recordCount above the records there are",
          body: () => rawBatch({ count: 2, records: [rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /record 1/,
        },
        {
          name: "bytes after the last record (recordCount below the records there are)",
          body: () => rawBatch({ count: 1, records: [rawRecord({ value: "v" }), rawRecord({ value: "w" })] }),
          batch: 0,
          detail: /follow its last record/,
        },
        {
          name: "a record whose fields end before its length",
          body: () => rawBatch({ records: [rawRecord({ value: "v", extra: [0] })] }),
          batch: 0,
          detail: /record 0: .*before its length/,
        },
        {
          name: "a record whose fields run past its length",
          body: () => rawBatch({ records: [rawRecord({ value: "v", lengthDelta: -1 }), rawRecord({ value: "w" })] }),
          batch: 0,
          detail: /record 0/,
        },
        {
          name: "a record of length 0 (the last of the body)",
          body: () => rawBatch({ records: [Uint8Array.from([0])] }),
          batch: 0,
          detail: /record 0/,
        },
        {
          name: "a record of length 0, then a record",
          body: () => rawBatch({ count: 2, records: [Uint8Array.from([0]), rawRecord({ value: "v" })] }),
          batch: 0,
          detail: /record 0/,
        },
        {
          name: "a record of length 1 (its attributes only)",
          body: () => rawBatch({ records: [Uint8Array.from([1, 0])] }),
          batch: 0,
          detail: /record 0/,
        },
        {
          name: "a record whose length runs past the batch",
          body: () => rawBatch({ records: [rawRecord({ value: "v", lengthDelta: 5 })] }),
          batch: 0,
          detail: /record 0: .*past the batch/,
        },
        {
          name: "a record's varint that is not canonical (a value length of 0x81 0x00)",
          body: () => rawBatch({ records: [concat([[6, 0, 0, 0x81, 0x00, 0x76, 0]])] }),
          batch: 0,
          detail: /record 0: .*canonical/,
        },
        ...[4, 8, 0x80, 0xff].map((attributes) => ({
          name: `attributes ${attributes} (bits other than 0 and 1)`,
          body: () => rawBatch({ records: [rawRecord({ value: "v", attributes })] }),
          batch: 0,
          detail: new RegExp(`record 0: attributes ${attributes}`),
        })),
        ...[
          ["+1", [0x02]],
          ["-1", [0x01]],
          ["+64 (two bytes)", [0x80, 0x01]],
        ].map(([what, delta]) => ({
          name: `a timestamp delta of ${what}`,
          body: () => rawBatch({ records: [rawRecord({ value: "v", delta: delta as number[] })] }),
          batch: 0,
          detail: /record 0: .*timestamp delta/,
        })),
        {
          name: "a timestamp delta of 0 written in two bytes (not canonical)",
          body: () => rawBatch({ records: [rawRecord({ value: "v", delta: [0x80, 0x00] })] }),
          batch: 0,
          detail: /record 0/,
        },
        ...invalidUtf8.flatMap(([what, bytes]) => [
          {
            name: `a text value (bit 0 clear) with ${what}`,
            body: () => rawBatch({ records: [rawRecord({ value: bad(bytes) })] }),
            batch: 0,
            detail: /record 0: .*value.*UTF-8/,
          },
          {
            name: `a key with ${what}`,
            body: () => rawBatch({ records: [rawRecord({ key: bad(bytes), value: "v" })] }),
            batch: 0,
            detail: /record 0: .*key.*UTF-8/,
          },
          {
            name: `a header name with ${what}`,
            body: () => rawBatch({ records: [rawRecord({ value: "v", headers: [[bad(bytes), "h"]] })] }),
            batch: 0,
            detail: /record 0: .*header.*UTF-8/,
          },
          {
            name: `a header value with ${what}`,
            body: () => rawBatch({ records: [rawRecord({ value: "v", headers: [["h", bad(bytes)]] })] }),
            batch: 0,
            detail: /record 0: .*header.*UTF-8/,
          },
        ]),
        {
          name: "a header name repeated within a record",
          body: () =>
            rawBatch({
              records: [
                rawRecord({ value: "v", headers: [["a", "1"]] }),
                rawRecord({
                  value: "w",
                  headers: [
                    ["a", "1"],
                    ["b", "2"],
                    ["a", "3"],
                  ],
                }),
              ],
            }),
          batch: 0,
          detail: /record 1: header 2 repeats a name/,
        },
        {
          name: "ANY_PARTITION with a keyed record",
          body: () => rawBatch({ partition: ANY_PARTITION, records: [rawRecord({ value: "v" }), rawRecord({ key: "k", value: "w" })] }),
          batch: 0,
          detail: /keyed records.*partition/,
        },
        {
          name: "a body shorter than a batch header (26 bytes)",
          body: () => valid().subarray(0, FIXED - 1),
          batch: 0,
          detail: /26 bytes left, fewer than a batch header's 27/,
        },
        {
          name: "a JSON document sent as batches",
          body: () => utf8.encode(JSON.stringify({ messages: [{ value: "a JSON body sent in the wrong type" }] })),
          batch: 0,
          detail: /batchLength \d+ does not fit/,
        },
        {
          name: "a batchLength beyond the body",
          body: () => {
            const b = valid();
            new DataView(b.buffer).setUint32(0, b.length + 1);
            return b;
          },
          batch: 0,
          detail: /batchLength 35 does not fit the 34 bytes left/,
        },
        {
          name: "a batchLength below a batch header's 27 bytes",
          body: () => {
            const b = valid();
            new DataView(b.buffer).setUint32(0, 10);
            return b;
          },
          batch: 0,
          detail: /batchLength 10/,
        },
        {
          name: "a batchLength that stops inside the records (the rest is read as the next batch)",
          body: () => rawBatch({ batchLength: FIXED + 7, records: [rawRecord({ value: "ok" }), rawRecord({ value: "w" })] }),
          batch: 0,
          detail: /record 1: /,
        },
        {
          name: "a valid batch, then bytes too few for a batch",
          body: () => concat([valid(), [0, 0, 0]]),
          batch: 1,
          detail: /3 bytes left/,
        },
        {
          name: "a valid batch, then one whose CRC32C does not match",
          body: () => concat([valid(), patched(valid(), 7, valid()[7] ^ 0x80)]),
          batch: 1,
          detail: /CRC32C/,
        },
        {
          name: "two valid batches, then one with an invalid UTF-8 text value",
          body: () =>
            concat([valid(), valid(), rawBatch({ partition: 1, records: [rawRecord({ value: "a" }), rawRecord({ value: bad([0xff]) })] })]),
          batch: 2,
          detail: /record 1: .*UTF-8/,
        },
        {
          name: "a valid batch, then an ANY_PARTITION batch with a key",
          body: () => concat([valid(), rawBatch({ partition: ANY_PARTITION, records: [rawRecord({ key: "k", value: "v" })] })]),
          batch: 1,
          detail: /partition/,
        },
      ];

      for (const r of refusals) {
        it(`400 invalid_request: ${r.name}`, async () => {
          await expectNoChange(tenant.client, topic, async () => {
            expectInvalidBatch(await postBatches(tenant.client, topic, r.body()), r.batch, r.detail);
          });
        });
      }

      it("400 invalid_request: an empty body", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          const p = assertProblem(await postBatches(tenant.client, topic, new Uint8Array()), 400, "invalid_request");
          expect(p.detail).toMatch(/no batch|at least one message/);
        });
      });

      it("400 partition_out_of_range: a batch names a partition the topic does not have (also after a valid batch)", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          for (const [body, batch, partition] of [
            [rawBatch({ partition: 2, records: [rawRecord({ value: "v" })] }), 0, 2],
            [rawBatch({ partition: ANY_PARTITION - 1, records: [rawRecord({ value: "v" })] }), 0, ANY_PARTITION - 1],
            [concat([valid(), rawBatch({ partition: 7, records: [rawRecord({ key: "k", value: "v" })] })]), 1, 7],
          ] as const) {
            const res = await postBatches(tenant.client, topic, body);
            const p = assertProblem(res, 400, "partition_out_of_range");
            expect(p.detail, describeResponse(res)).toMatch(new RegExp(`batch ${batch} names partition ${partition}\\b`));
            expect(p.detail, describeResponse(res)).toMatch(/2 partitions/);
          }
        });
      });

      it("413 too_many_messages: more than 1,000 records, in one batch or over several", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          const one = encodeProduceBatches([{ partition: 0, messages: Array.from({ length: 1001 }, (_, i) => ({ value: `m${i}` })) }]);
          const several = encodeProduceBatches([
            { partition: 0, messages: Array.from({ length: 600 }, (_, i) => ({ value: `a${i}` })) },
            { partition: 1, messages: Array.from({ length: 400 }, (_, i) => ({ value: `b${i}` })) },
            { messages: [{ value: "the 1,001st" }] },
          ]);
          for (const body of [one, several]) {
            const res = await postBatches(tenant.client, topic, body);
            const p = assertProblem(res, 413, "too_many_messages");
            expect(p.detail, describeResponse(res)).toMatch(/1,?000/);
          }
        });
      });

      it("413 message_too_large: a record of more than 1 MiB of key, value and headers (its value, or with its key and headers)", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          const cases: ProduceBatch[][] = [
            [{ partition: 0, messages: [{ value: new Uint8Array(MiB + 1) }] }],
            [{ partition: 0, messages: [{ value: "v".repeat(MiB + 1) }] }],
            // 10 + 2 + 3 + (MiB − 14): one byte over.
            [{ partition: 1, messages: [{ key: "k".repeat(10), headers: { hh: "vvv" }, value: new Uint8Array(MiB - 14) }] }],
            [
              { partition: 0, messages: [{ value: "fine" }] },
              { partition: 1, messages: [{ value: "fine" }, { value: new Uint8Array(MiB), headers: { h: "" } }] },
            ],
          ];
          for (const batches of cases) {
            const res = await postBatches(tenant.client, topic, encodeProduceBatches(batches));
            const p = assertProblem(res, 413, "message_too_large");
            expect(p.detail, describeResponse(res)).toMatch(/1 MiB|1,?048,?576/);
          }
        });
      });

      it("413 body_too_large: a body over 8 MiB", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          const body = encodeProduceBatches(
            Array.from({ length: 9 }, (_, i) => ({ partition: i % 2, messages: [{ value: new Uint8Array(1_000_000) }] })),
          );
          expect(body.length).toBeGreaterThan(8 * MiB);
          const res = await postBatches(tenant.client, topic, body);
          const p = assertProblem(res, 413, "body_too_large");
          expect(p.detail, describeResponse(res)).toMatch(/8\s?MiB|8,?388,?608/i);
        });
      });

      it("404 topic_not_found: a valid body to a topic that does not exist", async () => {
        const missing = uniq("missing");
        const res = await postBatches(tenant.client, missing, encodeProduceBatches([{ messages: [{ value: "v" }] }]));
        assertProblem(res, 404, "topic_not_found");
        assertProblem(await tenant.client.get(topicPath(missing)), 404, "topic_not_found");
      });

      it("415 unsupported_media_type: a body in batches under another type; the detail names the three accepted types", async () => {
        await expectNoChange(tenant.client, topic, async () => {
          for (const contentType of ["application/octet-stream", "application/vnd.reservoir.batch", "text/plain"]) {
            const res = await postBatches(tenant.client, topic, valid(), contentType);
            const p = assertProblem(res, 415, "unsupported_media_type");
            for (const type of ["application/json", "application/x-ndjson", BATCHES])
              expect(p.detail, describeResponse(res)).toContain(type);
          }
        });
      });
    });
  });
}
