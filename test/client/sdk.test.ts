// The SDK (client/src) against the real Node server, embedded: every call goes over HTTP to
// the server a child process runs. Faults the server cannot be asked for (an answer lost after
// the commit, a 503 before it) are injected in the SDK's own `fetch` option, between the SDK and
// the real server; a 429 comes from a real quota.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  encodeProduceBatches,
  isProblem,
  type ProduceBatch,
  type ReceivedMessage,
  Reservoir,
  ReservoirError,
  valueBytes,
  valueText,
  verifyWebhook,
} from "../../client/src/index.ts";
// ANY_PARTITION from its module: the package's index exports no constants (see client/src/index.ts).
import { ANY_PARTITION } from "../../client/src/produce-batches.ts";
import { launchChromium } from "../support/chromium.ts";
import { eventually } from "../support/eventually.ts";
import { freePort, type NodeServer, repoRoot, startNodeServer } from "../support/node-server.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";

let server: NodeServer;
let sink: WebhookSink;
let operator: Reservoir;
let client: Reservoir;
let tenantId: string;
let apiKey: string;

beforeAll(async () => {
  // The embedded server migrates a fresh PGlite first: past 30 s when the full suite loads the machine.
  [server, sink] = await Promise.all([
    startNodeServer({
      label: "sdk",
      readyTimeoutMs: 90_000,
      env: { RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" },
    }),
    startWebhookSink(),
  ]);
  operator = new Reservoir({ url: server.baseUrl, apiKey: server.adminToken });
  ({ tenantId, apiKey } = await operator.admin.tenants.create({ name: "sdk" }));
  client = new Reservoir({ url: server.baseUrl, apiKey });
});
afterAll(async () => {
  await Promise.all([server?.stop(), sink?.close()]);
});

/** A fetch that forwards to the real server and lets `fault` act before or after. */
function faultyFetch(fault: (req: { method: string; url: string; n: number }) => "lose-answer" | "503" | undefined): typeof fetch {
  let n = 0;
  return async (input, init) => {
    const req = { method: init?.method ?? "GET", url: String(input), n: n++ };
    const action = fault(req);
    if (action === "503") {
      return new Response(
        JSON.stringify({ type: "/problems/service_unavailable", title: "x", status: 503, detail: "injected", code: "service_unavailable" }),
        {
          status: 503,
          headers: { "content-type": "application/problem+json", "retry-after": "0" },
        },
      );
    }
    const res = await fetch(input, init);
    if (action === "lose-answer") {
      await res.arrayBuffer();
      throw new TypeError("fetch failed (injected: the answer was lost after the server committed)");
    }
    return res;
  };
}

describe("client and errors", () => {
  test("topics: create, list, describe, update, delete", async () => {
    const created = await client.topics.create("sdk.topics", { partitions: 2 });
    expect(created).toMatchObject({ name: "sdk.topics", partitions: 2, retentionHours: 168 });
    // Idempotent: the same settings again is the same topic.
    expect(await client.topics.create("sdk.topics", { partitions: 2 })).toMatchObject({ name: "sdk.topics", partitions: 2 });
    expect((await client.topics.list()).map((t) => t.name)).toContain("sdk.topics");
    await client.produce("sdk.topics", [{ value: "a", partition: 1 }]);
    const detail = await client.topics.get("sdk.topics");
    expect(detail.highWatermarks).toEqual([0, 1]);
    expect(detail.earliestOffsets).toEqual([0, 0]);
    expect((await client.topics.update("sdk.topics", { partitions: 3 })).partitions).toBe(3);
    await client.topics.delete("sdk.topics");
    expect((await client.topics.list()).map((t) => t.name)).not.toContain("sdk.topics");
  });

  test("refusals are ReservoirErrors with the problem's code, status and detail; not retryable", async () => {
    const notFound = await client.topics.get("sdk.missing").catch((e) => e);
    expect(notFound).toBeInstanceOf(ReservoirError);
    expect(notFound).toMatchObject({ status: 404, code: "topic_not_found", retryable: false });
    expect(notFound.detail).toMatch(/sdk\.missing/);
    expect(isProblem(notFound, "topic_not_found")).toBe(true);

    await client.topics.create("sdk.errors");
    const conflict = await client.topics.create("sdk.errors", { partitions: 5 }).catch((e) => e);
    expect(conflict).toMatchObject({ status: 409, retryable: false });
    const tooBig = await client.produce("sdk.errors", [{ value: "x".repeat(1024 * 1024 + 1) }]).catch((e) => e);
    expect(tooBig).toMatchObject({ status: 413, code: "message_too_large" });
    const outOfRange = await client.read("sdk.errors", 0, { offset: -1 }).catch((e) => e);
    expect(outOfRange).toMatchObject({ status: 400, code: "invalid_request" });

    const wrongKey = new Reservoir({ url: server.baseUrl, apiKey: "rsv_not_a_key" });
    expect(await wrongKey.topics.list().catch((e) => e)).toMatchObject({ status: 401, retryable: false });
    // Nothing listens on a fresh port: no answer at all.
    const nowhere = new Reservoir({ url: `http://127.0.0.1:${await freePort()}`, apiKey, retry: { retries: 0 } });
    expect(await nowhere.topics.list().catch((e) => e)).toMatchObject({ status: 0, code: "network_error", retryable: true });
  });

  test("admin: keys with scopes, revocation; tenant quotas", async () => {
    const { apiKey: readOnly, keyId, scopes } = await operator.admin.keys.create(tenantId, { scopes: ["consume"] });
    expect(scopes).toEqual(["consume"]);
    const consumer = new Reservoir({ url: server.baseUrl, apiKey: readOnly });
    expect(await consumer.topics.create("sdk.scoped").catch((e) => e)).toMatchObject({ status: 403, code: "insufficient_scope" });
    await operator.admin.keys.revoke(tenantId, keyId);
    expect(await consumer.topics.list().catch((e) => e)).toMatchObject({ status: 401 });
    const tenant = await operator.admin.tenants.update(tenantId, { quotas: { topics: 1000 } });
    expect(tenant.quotas).toEqual({ topics: 1000 });
    expect((await operator.admin.tenants.get(tenantId)).name).toBe("sdk");
  });
});

describe("producer", () => {
  test("batches by count and linger: 2,500 messages in few requests, offsets dense and in order", async () => {
    await client.topics.create("sdk.batch");
    let requests = 0;
    const counting = new Reservoir({
      url: server.baseUrl,
      apiKey,
      fetch: (input, init) => {
        if (init?.method === "POST") requests++;
        return fetch(input, init);
      },
    });
    const producer = counting.producer({ lingerMs: 20, maxBatchMessages: 1000, maxInFlight: 1 });
    const offsets = await Promise.all(Array.from({ length: 2500 }, (_, i) => producer.send("sdk.batch", `m${i}`)));
    await producer.close();
    expect(offsets.map((o) => o.offset)).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    // 1000 + 1000 + 500: the count bound sends the first two at once, the linger the rest.
    expect(requests).toBe(3);
    const last = await client.read("sdk.batch", 0, { offset: 2499 });
    expect(last.messages.map(valueText)).toEqual(["m2499"]);
    expect(last.messages[0]!.headers).toBeUndefined();
  });

  test("the byte bound splits batches", async () => {
    await client.topics.create("sdk.bytes");
    const sizes: number[] = [];
    const c = new Reservoir({
      url: server.baseUrl,
      apiKey,
      fetch: (input, init) => {
        if (init?.method === "POST") sizes.push(JSON.parse(String(init.body)).messages.length);
        return fetch(input, init);
      },
    });
    const producer = c.producer({ lingerMs: 50, maxBatchBytes: 10_000 });
    await producer.sendMany(
      "sdk.bytes",
      Array.from({ length: 40 }, () => "x".repeat(900)),
    );
    await producer.close();
    // ~1 KB of JSON each (value + idempotency key): at most 10 per 10 kB batch.
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(40);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    expect(sizes.length).toBeGreaterThanOrEqual(4);
  });

  test("an answer lost after the commit is retried with the same idempotency keys: nothing is stored twice", async () => {
    await client.topics.create("sdk.lost");
    let posts = 0;
    const flaky = new Reservoir({
      url: server.baseUrl,
      apiKey,
      fetch: faultyFetch((r) => (r.method === "POST" && posts++ === 0 ? "lose-answer" : undefined)),
    });
    const retries: string[] = [];
    const producer = flaky.producer({ lingerMs: 5, retry: { baseDelayMs: 10, random: () => 0.5 }, onRetry: (e) => retries.push(e.code) });
    const offsets = await producer.sendMany("sdk.lost", ["a", "b", "c"]);
    await producer.close();
    expect(retries).toEqual(["network_error"]);
    expect(posts).toBe(2);
    expect(offsets.map((o) => o.offset)).toEqual([0, 1, 2]);
    const page = await client.read("sdk.lost", 0, { offset: 0 });
    expect(page.messages.map(valueText)).toEqual(["a", "b", "c"]);
    expect(page.highWatermark).toBe(3);
  });

  test("a 503 is retried; a non-retryable refusal rejects the batch's sends without a retry", async () => {
    await client.topics.create("sdk.503");
    let posts = 0;
    const flaky = new Reservoir({
      url: server.baseUrl,
      apiKey,
      fetch: faultyFetch((r) => (r.method === "POST" && ++posts <= 2 ? "503" : undefined)),
    });
    const producer = flaky.producer({ retry: { baseDelayMs: 5 } });
    expect(await producer.send("sdk.503", "ok")).toEqual({ partition: 0, offset: 0 });
    expect(posts).toBe(3);
    const refused = await producer.send("sdk.no-such-topic", "x").catch((e) => e);
    expect(refused).toMatchObject({ code: "topic_not_found", status: 404 });
    expect(posts).toBe(4);
    await producer.close();
    await expect(producer.send("sdk.503", "late")).rejects.toThrow(/closed/);
  });

  test("a malformed message is refused alone; the batch it would have joined is stored", async () => {
    await client.topics.create("sdk.malformed");
    const producer = client.producer({ lingerMs: 20 });
    const results = await Promise.allSettled([
      producer.send("sdk.malformed", "good-1"),
      producer.send("sdk.malformed", { value: "both", valueBase64: "Ym90aA==" }),
      producer.send("sdk.malformed", {}),
      producer.send("sdk.malformed", "good-2"),
    ]);
    await producer.close();
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: "invalid_request", status: 400 });
    const page = await client.read("sdk.malformed", 0);
    expect(page.messages.map(valueText)).toEqual(["good-1", "good-2"]);
  });

  test("429 from a real quota is retried after Retry-After until every message is in", async () => {
    const { apiKey: limitedKey } = await operator.admin.tenants.create({ name: "sdk-limited", quotas: { requestsPerSecond: 2 } });
    const limited = new Reservoir({ url: server.baseUrl, apiKey: limitedKey });
    await limited.topics
      .create("sdk.quota")
      .catch((e) => (isProblem(e, "quota_exceeded") ? limited.topics.create("sdk.quota") : Promise.reject(e)));
    const codes: string[] = [];
    // One message per request, all at once: more requests than the bucket holds.
    const producer = limited.producer({ lingerMs: 0, maxBatchMessages: 1, maxInFlight: 6, onRetry: (e) => codes.push(e.code) });
    const offsets = await producer.sendMany("sdk.quota", ["1", "2", "3", "4", "5", "6"]);
    await producer.close();
    expect(codes.length).toBeGreaterThan(0);
    expect(new Set(codes)).toEqual(new Set(["quota_exceeded"]));
    expect(offsets.map((o) => o.offset).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test("produceBatches: one request in batches; the ranges and a read give back the messages as sent", async () => {
    await client.topics.create("sdk.produce-batches", { partitions: 2 });
    await client.produce("sdk.produce-batches", [{ value: "json first", partition: 1 }]);
    const batches: ProduceBatch[] = [
      {
        partition: 0,
        messages: [
          { value: "text ✓ 🎉", key: "k", headers: { trace: "1", ü: "ö" } },
          { value: Uint8Array.from({ length: 256 }, (_, i) => i) },
          { value: "" },
        ],
      },
      { partition: 1, messages: Array.from({ length: 300 }, (_, i) => ({ value: `m${i}`, key: `k${i % 3}` })) },
      { messages: [{ value: "anywhere" }, { value: new Uint8Array() }] },
    ];
    const ranges = await client.produceBatches("sdk.produce-batches", batches);
    expect(ranges.slice(0, 2)).toEqual([
      { partition: 0, baseOffset: 0, count: 3 },
      { partition: 1, baseOffset: 1, count: 300 },
    ]);
    expect(ranges[2].count).toBe(2);
    expect(ranges[2].baseOffset).toBe(ranges[2].partition === 0 ? 3 : 301);
    for (const [b, batch] of batches.entries()) {
      const { partition, baseOffset, count } = ranges[b];
      const read = [];
      for await (const m of client.messages("sdk.produce-batches", partition, { from: baseOffset, limit: 100 })) {
        if (m.offset >= baseOffset + count) break;
        read.push(m);
      }
      expect(read.map((m) => m.offset)).toEqual(Array.from({ length: count }, (_, i) => baseOffset + i));
      read.forEach((m, i) => {
        const sent = batch.messages[i];
        expect(m.key).toEqual(sent.key);
        expect(m.headers).toEqual(sent.headers);
        if (typeof sent.value === "string") {
          expect(m.valueBase64).toBeUndefined();
          expect(valueText(m)).toBe(sent.value);
        } else {
          expect(m.value).toBeUndefined();
          expect([...valueBytes(m)]).toEqual([...sent.value]);
        }
      });
    }
    // A refusal is a ReservoirError with the problem's code, and stores nothing.
    const refused = await client.produceBatches("sdk.produce-batches", [{ partition: 2, messages: [{ value: "x" }] }]).catch((e) => e);
    expect(refused).toBeInstanceOf(ReservoirError);
    expect(refused).toMatchObject({ status: 400, code: "partition_out_of_range", retryable: false });
    const [p0, p1] = (await client.topics.get("sdk.produce-batches")).highWatermarks;
    expect(p0 + p1).toBe(1 + 3 + 300 + 2);
  });

  test("encodeProduceBatches refuses a keyed message in a batch without a partition", () => {
    expect(() => encodeProduceBatches([{ messages: [{ value: "a" }, { value: "b", key: "k" }] }])).toThrow(/partition/);
    expect(() => encodeProduceBatches([{ partition: ANY_PARTITION, messages: [{ value: "b", key: "" }] }])).toThrow(/partition/);
    expect(() =>
      encodeProduceBatches([{ partition: 0, messages: [{ value: "ok", key: "k" }] }, { messages: [{ value: "x", key: "k" }] }]),
    ).toThrow(/partition/);
    // Keyless, it leaves the partition to the server; keyed with a partition, it encodes.
    expect(
      encodeProduceBatches([{ messages: [{ value: "a" }] }, { partition: 0, messages: [{ value: "b", key: "k" }] }]).length,
    ).toBeGreaterThan(0);
  });
});

describe("consumer", () => {
  test("handles every message once: acks on success, nacks failures and redelivers them", async () => {
    await client.topics.create("sdk.consume", { partitions: 2 });
    await client.groups.put("sdk.consume", "workers", { startAt: "earliest" });
    await client.produce(
      "sdk.consume",
      Array.from({ length: 30 }, (_, i) => ({ value: String(i), key: `k${i}` })),
    );
    const handled = new Map<string, number[]>();
    const consumer = client.consume(
      "sdk.consume",
      "workers",
      async (m) => {
        const v = valueText(m);
        handled.set(v, [...(handled.get(v) ?? []), m.attempt]);
        // Every fifth message fails on its first attempt.
        if (Number(v) % 5 === 0 && m.attempt === 1) throw new Error(`fail ${v}`);
      },
      { concurrency: 4, waitMs: 500, nackDelaySeconds: 0, onError: () => {} },
    );
    await eventually("every message acked", async () => consumer.stats.acked === 30);
    await consumer.stop();
    expect([...handled.keys()].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    for (const [v, attempts] of handled) expect(attempts, v).toEqual(Number(v) % 5 === 0 ? [1, 2] : [1]);
    expect(consumer.stats).toMatchObject({ acked: 30, nacked: 6 });
    const view = await client.groups.get("sdk.consume", "workers");
    expect(view.partitions.reduce((a, p) => a + p.lag + p.inFlight, 0)).toBe(0);
  });

  test("acks of handlers that finish together go in one call, while a lone message is acked at once", async () => {
    await client.topics.create("sdk.ack-together", { partitions: 4 });
    await client.groups.put("sdk.ack-together", "g", { startAt: "earliest" });
    await client.produce(
      "sdk.ack-together",
      Array.from({ length: 200 }, (_, i) => ({ value: String(i) })),
    );
    const ackCalls: number[] = [];
    const counting = new Reservoir({
      url: server.baseUrl,
      apiKey,
      fetch: async (input, init) => {
        if (String(input).endsWith("/ack")) ackCalls.push(JSON.parse(String(init?.body)).receipts.length);
        return fetch(input, init);
      },
    });
    const handled = new Set<string>();
    // Sixteen handlers at a time, each finishing after the others started: their acks meet in the queue.
    const consumer = counting.consume(
      "sdk.ack-together",
      "g",
      async (m) => {
        handled.add(valueText(m));
        await new Promise((resolve) => setImmediate(resolve));
      },
      { concurrency: 16, waitMs: 500 },
    );
    await eventually("200 messages acked", async () => consumer.stats.acked === 200);
    await consumer.stop();
    expect(handled.size).toBe(200);
    expect(ackCalls.reduce((a, b) => a + b, 0)).toBe(200);
    expect(ackCalls.length).toBeLessThan(200);
    expect(Math.max(...ackCalls)).toBeGreaterThan(1);
    const view = await client.groups.get("sdk.ack-together", "g");
    expect(view.partitions.reduce((a, p) => a + p.lag + p.inFlight, 0)).toBe(0);

    // One message alone: acked by a call of its own, without waiting for company. (Another
    // group: the stopped consumer's last long-poll may still be waiting on the server.)
    await client.groups.put("sdk.ack-together", "alone", { startAt: "latest" });
    await client.produce("sdk.ack-together", ["alone"]);
    const calls = ackCalls.length;
    const single = counting.consume("sdk.ack-together", "alone", () => {}, { concurrency: 16, waitMs: 500 });
    await eventually("the lone message acked", async () => single.stats.acked === 1);
    await single.stop();
    expect(ackCalls.slice(calls)).toEqual([1]);
  });

  test("receiveBatches decodes an answer in batches; parts of a lease receipt settle single messages", async () => {
    await client.topics.create("sdk.batches", { partitions: 2 });
    await client.groups.put("sdk.batches", "g", { startAt: "earliest" });
    await client.produce("sdk.batches", [
      { value: "a", key: "k", partition: 0, headers: { h: "1" } },
      { valueBase64: "AP8=", partition: 0 },
      { value: "c", partition: 1 },
    ]);
    const { leases, messages } = await client.groups.receiveBatches("sdk.batches", "g", { max: 10, waitMs: 2_000 });
    const shown = messages.map((m) => ({
      ...m,
      value: m.binary ? [...m.value] : new TextDecoder().decode(m.value),
      timestamp: typeof m.timestamp,
    }));
    expect(shown.sort((x, y) => x.partition - y.partition || x.offset - y.offset)).toEqual([
      { partition: 0, offset: 0, attempt: 1, timestamp: "number", key: "k", headers: { h: "1" }, value: "a", binary: false },
      { partition: 0, offset: 1, attempt: 1, timestamp: "number", value: [0, 255], binary: true },
      { partition: 1, offset: 0, attempt: 1, timestamp: "number", value: "c", binary: false },
    ]);
    const lease0 = leases.find((l) => l.partition === 0)!;
    expect(await client.groups.nack("sdk.batches", "g", [{ receipt: lease0.receipt, firstOffset: 1 }])).toEqual({ nacked: 1, failed: [] });
    const acked = await client.groups.ack("sdk.batches", "g", [
      { receipt: lease0.receipt, firstOffset: 0, lastOffset: 0 },
      ...leases.filter((l) => l !== lease0).map((l) => l.receipt),
    ]);
    expect(acked).toEqual({ acked: 2, failed: [] });
    const again = await client.groups.receiveBatches("sdk.batches", "g", { max: 10, waitMs: 2_000 });
    expect(again.messages.map((m) => [m.partition, m.offset, m.attempt])).toEqual([[0, 1, 2]]);
    expect(
      await client.groups.ack(
        "sdk.batches",
        "g",
        again.leases.map((l) => l.receipt),
      ),
    ).toEqual({ acked: 1, failed: [] });
  });

  test("verifyChecksums: an answer in batches whose bytes changed on the way fails its CRC32C check; unchecked (the default), it decodes", async () => {
    await client.topics.create("sdk.crc");
    for (const g of ["unchecked", "checked", "intact"]) await client.groups.put("sdk.crc", g, { startAt: "earliest" });
    await client.produce("sdk.crc", [{ value: "zzzzzzzzzzzz", key: "k", headers: { h: "v" } }]);
    // Between the SDK and the real server: one byte of the value changed in the answer's bytes.
    const marker = new TextEncoder().encode("zzzzzzzzzzzz");
    const changing: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith("/receive") || res.status !== 200) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      const at = bytes.findIndex((_, i) => marker.every((b, j) => bytes[i + j] === b));
      expect(at).toBeGreaterThan(0);
      bytes[at + 4] ^= 0x03; // "z" → "y"
      return new Response(bytes, { status: res.status, headers: res.headers });
    };
    const unchecked = new Reservoir({ url: server.baseUrl, apiKey, fetch: changing });
    const got = await unchecked.groups.receiveBatches("sdk.crc", "unchecked", { max: 10, waitMs: 2_000 });
    expect(got.messages.map((m) => new TextDecoder().decode(m.value))).toEqual(["zzzzyzzzzzzz"]);
    const checked = new Reservoir({ url: server.baseUrl, apiKey, fetch: changing, verifyChecksums: true });
    await expect(checked.groups.receiveBatches("sdk.crc", "checked", { max: 10, waitMs: 2_000 })).rejects.toThrow(
      /^a batch at byte 0 fails its CRC32C check \(it says 0x[0-9a-f]{8}, its bytes give 0x[0-9a-f]{8}\)$/,
    );
    // The same check passes the server's own bytes.
    const intact = new Reservoir({ url: server.baseUrl, apiKey, verifyChecksums: true });
    const clean = await intact.groups.receiveBatches("sdk.crc", "intact", { max: 10, waitMs: 2_000 });
    expect(clean.messages.map((m) => [new TextDecoder().decode(m.value), m.key, m.headers])).toEqual([["zzzzzzzzzzzz", "k", { h: "v" }]]);
  });

  test("a handler running longer than the visibility timeout keeps its lease (extend): no redelivery", async () => {
    await client.topics.create("sdk.extend");
    await client.groups.put("sdk.extend", "slow", { startAt: "earliest" });
    await client.produce("sdk.extend", ["slow"]);
    const deliveries: ReceivedMessage[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // Two slots: the free one keeps receiving, so a lease that ran out would be redelivered to it.
    const consumer = client.consume(
      "sdk.extend",
      "slow",
      async (m) => {
        deliveries.push(m);
        await gate;
      },
      { concurrency: 2, visibilityTimeoutSeconds: 1, extendEveryMs: 300, waitMs: 200 },
    );
    // Extends every 300 ms of a 1 s lease: after 8 of them (2.4 s), an unextended lease would have ended twice.
    await eventually("eight extends", async () => consumer.stats.extended >= 8);
    release();
    await eventually("the ack", async () => consumer.stats.acked === 1);
    await consumer.stop();
    expect(deliveries.map((m) => m.attempt)).toEqual([1]);
  });

  test("stop() waits for the handlers in flight and their acks", async () => {
    await client.topics.create("sdk.stop");
    await client.groups.put("sdk.stop", "g", { startAt: "earliest" });
    await client.produce("sdk.stop", ["one"]);
    let started!: () => void;
    const handlerStarted = new Promise<void>((r) => {
      started = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const consumer = client.consume(
      "sdk.stop",
      "g",
      async () => {
        started();
        await gate;
      },
      { waitMs: 10_000 },
    );
    await handlerStarted;
    let stopped = false;
    const stopping = consumer.stop().then(() => {
      stopped = true;
    });
    // The handler is still blocked: stop cannot have finished (a view round-trip gives it every chance to).
    expect((await client.groups.get("sdk.stop", "g")).partitions[0]!.inFlight).toBe(1);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(consumer.stats.acked).toBe(1);
    const view = await client.groups.get("sdk.stop", "g");
    expect(view.partitions[0]).toMatchObject({ committedOffset: 1, inFlight: 0, lag: 0 });
  });

  test("a non-retryable receive error ends the loop: done rejects with it", async () => {
    const consumer = client.consume("sdk.never-created", "g", () => {}, { waitMs: 0 });
    await expect(consumer.done).rejects.toMatchObject({ code: "topic_not_found" });
  });
});

describe("read iterators", () => {
  test("for await over a partition from an offset, an end, or a time; ends at the high watermark", async () => {
    await client.topics.create("sdk.read");
    const producer = client.producer();
    await producer.sendMany(
      "sdk.read",
      Array.from({ length: 250 }, (_, i) => `r${i}`),
    );
    await producer.close();
    const all: number[] = [];
    for await (const m of client.messages("sdk.read", 0, { limit: 100 })) all.push(m.offset);
    expect(all).toEqual(Array.from({ length: 250 }, (_, i) => i));
    const tail: string[] = [];
    for await (const m of client.messages("sdk.read", 0, { from: 247 })) tail.push(valueText(m));
    expect(tail).toEqual(["r247", "r248", "r249"]);
    const none: unknown[] = [];
    for await (const m of client.messages("sdk.read", 0, { from: "latest" })) none.push(m);
    expect(none).toEqual([]);
    const future: unknown[] = [];
    for await (const m of client.messages("sdk.read", 0, { from: { timestamp: Date.now() + 3_600_000 } })) future.push(m);
    expect(future).toEqual([]);
    let first: number | undefined;
    for await (const m of client.messages("sdk.read", 0, { from: { timestamp: 0 } })) {
      first = m.offset;
      break;
    }
    expect(first).toBe(0);
    await expect(client.messages("sdk.read", 3).next()).rejects.toMatchObject({ code: "partition_not_found" });
  });

  test("follow: waits for new messages until the signal aborts", async () => {
    await client.topics.create("sdk.follow");
    const controller = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const m of client.messages("sdk.follow", 0, { from: "latest", follow: true, waitMs: 5_000, signal: controller.signal })) {
        seen.push(valueText(m));
        if (seen.length === 3) controller.abort();
      }
    })();
    // Bytes come back as bytes.
    await client.produce("sdk.follow", ["x", new Uint8Array([0, 1, 2]), { value: "z" }]);
    await following;
    expect(seen[0]).toBe("x");
    expect(seen[2]).toBe("z");
    const page = await client.read("sdk.follow", 0, { offset: 1 });
    expect([...valueBytes(page.messages[0]!)]).toEqual([0, 1, 2]);
  });
});

describe("transactions", () => {
  test("produce into two topics, commit with the acks of what was consumed: all visible, the input acked", async () => {
    await Promise.all([client.topics.create("sdk.tx.in"), client.topics.create("sdk.tx.a"), client.topics.create("sdk.tx.b")]);
    await client.groups.put("sdk.tx.in", "tx", { startAt: "earliest" });
    await client.produce("sdk.tx.in", ["input"]);
    const [received] = await client.groups.receive("sdk.tx.in", "tx", { max: 1, waitMs: 2_000 });
    const { offsets, result } = await client.transactions.run(async (tx) => {
      expect(await tx.produce("sdk.tx.a", ["a1", "a2"])).toBe(2);
      expect(await tx.produce("sdk.tx.b", [{ value: "b1", key: "k" }])).toBe(1);
      // Nothing is visible before the commit.
      expect((await client.topics.get("sdk.tx.a")).highWatermarks).toEqual([0]);
      expect((await tx.state()).state).toBe("open");
      tx.ack("sdk.tx.in", "tx", [received!.receipt]);
      return tx.id;
    });
    expect(offsets).toEqual([
      { topic: "sdk.tx.a", partition: 0, offset: 0 },
      { topic: "sdk.tx.a", partition: 0, offset: 1 },
      { topic: "sdk.tx.b", partition: 0, offset: 0 },
    ]);
    expect((await client.transactions.get(result)).state).toBe("committed");
    expect((await client.groups.get("sdk.tx.in", "tx")).partitions[0]).toMatchObject({ committedOffset: 1, inFlight: 0 });
    // Committing again answers the same offsets.
    expect((await client.transactions.commit(result)).offsets).toEqual(offsets);
  });

  test("a failing unit of work rolls back; commit after rollback is transaction_not_open", async () => {
    await client.topics.create("sdk.tx.rb");
    let id = "";
    await expect(
      client.transactions.run(async (tx) => {
        id = tx.id;
        await tx.produce("sdk.tx.rb", ["never"]);
        throw new Error("the work failed");
      }),
    ).rejects.toThrow("the work failed");
    expect((await client.transactions.get(id)).state).toBe("rolled_back");
    expect(await client.transactions.commit(id).catch((e) => e)).toMatchObject({
      status: 409,
      code: "transaction_not_open",
      retryable: false,
    });
    expect((await client.topics.get("sdk.tx.rb")).highWatermarks).toEqual([0]);
  });
});

describe("subscriptions and webhooks", () => {
  test("a delivery from the server verifies with the subscription's secret; deliveries, pause, replay", async () => {
    await client.topics.create("sdk.hooks");
    const sub = await client.subscriptions.put("sdk.hooks", "sink", { url: sink.url("/sdk-hook"), startAt: "earliest" });
    expect(sub.secret).toMatch(/^whsec_/);
    await client.produce("sdk.hooks", [{ value: "pushed", headers: { h: "1" } }]);
    const [request] = await sink.waitForCount("/sdk-hook", 1);
    const payload = await verifyWebhook<{ value: string; topic: string; offset: number }>(sub.secret!, request!.headers, request!.body);
    expect(payload).toMatchObject({ value: "pushed", topic: "sdk.hooks", offset: 0 });
    await expect(verifyWebhook(sub.secret!, request!.headers, request!.body.replace("pushed", "pushex"))).rejects.toThrow();
    const deliveries = await eventually("a delivery in the log", async () => {
      const d = await client.subscriptions.deliveries("sdk.hooks", "sink");
      return d.length > 0 && d;
    });
    expect(deliveries[0]).toMatchObject({ offset: 0, status: "succeeded", httpStatus: 200 });
    expect((await client.subscriptions.pause("sdk.hooks", "sink")).state).toBe("paused");
    expect((await client.subscriptions.resume("sdk.hooks", "sink")).state).toBe("active");
    await client.subscriptions.replay("sdk.hooks", "sink", { offset: 0 });
    const again = await sink.waitForCount("/sdk-hook", 2);
    expect(again[1]!.json).toMatchObject({ value: "pushed", offset: 0 });
    const rotated = await client.subscriptions.rotateSecret("sdk.hooks", "sink");
    expect(rotated.secret).not.toBe(sub.secret);
    await client.subscriptions.delete("sdk.hooks", "sink");
    expect(await client.subscriptions.get("sdk.hooks", "sink").catch((e) => e)).toMatchObject({ status: 404 });
  });

  test("usage: the tenant's hourly rows count what it produced", async () => {
    const rows = await eventually("usage rows", async () => {
      const r = await client.usage({ from: 0 });
      return r.reduce((a, row) => a + row.messagesIn, 0) > 0 && r;
    });
    expect(rows[0]!.tenantId).toBe(tenantId);
  });
});

/** The SDK bundled for the browser platform: a Node built-in or a CLI library would not resolve. */
async function browserBundle(): Promise<string> {
  const bundle = await build({
    entryPoints: [`${repoRoot}/client/src/index.ts`],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
  });
  return bundle.outputFiles[0]!.text;
}

/** A topic and a group (from the earliest offset) for one runtime's run, and a webhook signed for it to verify. */
async function runtimeFixture(topic: string, group: string, id: string) {
  await client.topics.create(topic);
  await client.groups.put(topic, group, { startAt: "earliest" });
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const body = JSON.stringify({ id, value: "signed" });
  const headers = {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, new Date(), body),
  };
  return { secret, body, headers };
}

/** What a runtime's run answers: three messages produced, read and consumed; the signature verified, a tampered body refused. */
function expectedRun(values: string[], id: string) {
  return {
    offsets: [0, 1, 2].map((offset) => ({ partition: 0, offset })),
    read: values,
    acked: values,
    verified: { id, value: "signed" },
    refused: "WebhookVerificationError",
  };
}

describe("in workerd", () => {
  // The SDK as a Worker runs it: bundled for the browser platform (a Node built-in or a CLI
  // library would not resolve), then run by workerd (Miniflare) against the same Node server:
  // the producer, the iterator, the consumer loop and the verifier, on Web APIs only.
  test("bundles without Node and runs in workerd: produce, read, consume, verify a signature", async () => {
    const sdk = await browserBundle();
    expect(sdk).not.toMatch(/from\s*"(node:|commander|cli-progress|cli-table3)/);
    const worker = `${sdk}
export default {
  async fetch(request, env) {
    const input = await request.json();
    const rsv = new Reservoir({ url: env.URL, apiKey: env.KEY });
    const producer = rsv.producer({ lingerMs: 1 });
    const offsets = await producer.sendMany("sdk.workerd", ["w1", "w2", "w3"]);
    await producer.close();
    const read = [];
    for await (const m of rsv.messages("sdk.workerd", 0)) read.push(m.value);
    const acked = [];
    const consumer = rsv.consume("sdk.workerd", "w", (m) => { acked.push(m.value); if (acked.length === 3) consumer.stop(); }, { concurrency: 2, waitMs: 1000 });
    await consumer.done;
    const verified = await verifyWebhook(input.secret, input.headers, input.body);
    const refused = await verifyWebhook(input.secret, input.headers, input.body + " ").then(() => "accepted", (e) => e.name);
    return Response.json({ offsets, read, acked: acked.sort(), stats: consumer.stats, verified, refused });
  },
};`;
    const { secret, body, headers } = await runtimeFixture("sdk.workerd", "w", "msg_w");
    const mf = new Miniflare({
      modules: true,
      script: worker,
      compatibilityDate: "2025-01-01",
      bindings: { URL: server.baseUrl, KEY: apiKey },
    });
    try {
      const res = await mf.dispatchFetch("http://worker/", { method: "POST", body: JSON.stringify({ secret, headers, body }) });
      const text = await res.text();
      expect(res.status, text).toBe(200);
      expect(JSON.parse(text)).toEqual({
        ...expectedRun(["w1", "w2", "w3"], "msg_w"),
        stats: { received: 3, acked: 3, nacked: 0, extended: expect.any(Number) },
      });
    } finally {
      await mf.dispose();
    }
  });
});

describe("in Chromium", () => {
  // The same bundle loaded by a page of the server's own origin (so the API needs no CORS):
  // the producer, the read iterator, the consumer loop and the verifier, as a browser runs them.
  test("runs in a browser page: produce, read, consume, verify a signature", async () => {
    const sdk = await browserBundle();
    const { secret, body, headers } = await runtimeFixture("sdk.browser", "b", "msg_b");
    const browser = await launchChromium("sdk");
    try {
      const { page } = browser;
      // The page and the SDK are served by the test itself, at paths of the server's origin.
      await page.route(`${server.baseUrl}/__sdk-test/**`, (route) => {
        const url = new URL(route.request().url());
        if (url.pathname.endsWith("/sdk.js")) return route.fulfill({ contentType: "text/javascript", body: sdk });
        return route.fulfill({
          contentType: "text/html",
          body: '<!doctype html><title>sdk</title><script type="module">import * as sdk from "./sdk.js"; window.sdk = sdk;</script>',
        });
      });
      await page.goto(`${server.baseUrl}/__sdk-test/index.html`);
      await page.waitForFunction(() => "sdk" in window);
      const result = await page.evaluate(
        async ({ url, key, input }) => {
          const { Reservoir, verifyWebhook } = (window as unknown as { sdk: typeof import("../../client/src/index.ts") }).sdk;
          const rsv = new Reservoir({ url, apiKey: key });
          const producer = rsv.producer({ lingerMs: 1 });
          const offsets = await producer.sendMany("sdk.browser", ["b1", "b2", "b3"]);
          await producer.close();
          const read: (string | undefined)[] = [];
          for await (const m of rsv.messages("sdk.browser", 0)) read.push(m.value);
          const acked: (string | undefined)[] = [];
          const consumer = rsv.consume(
            "sdk.browser",
            "b",
            (m) => {
              acked.push(m.value);
              if (acked.length === 3) consumer.stop();
            },
            { concurrency: 2, waitMs: 1000 },
          );
          await consumer.done;
          const verified = await verifyWebhook(input.secret, input.headers, input.body);
          const refused = await verifyWebhook(input.secret, input.headers, `${input.body} `).then(
            () => "accepted",
            (e: Error) => e.name,
          );
          return { offsets, read, acked: acked.sort(), verified, refused, agent: navigator.userAgent };
        },
        { url: server.baseUrl, key: apiKey, input: { secret, headers, body } },
      );
      expect(result).toEqual({
        ...expectedRun(["b1", "b2", "b3"], "msg_b"),
        agent: expect.stringContaining("Chrome"),
      });
    } finally {
      await browser.close();
    }
  });
});

describe("in Deno", () => {
  // The same browser-platform bundle, imported by a Deno program (the `deno` npm package's
  // binary, installed without its install script), with network access only.
  test("runs under Deno: produce, read, consume, verify a signature", async () => {
    const sdk = await browserBundle();
    const { secret, body, headers } = await runtimeFixture("sdk.deno", "d", "msg_d");
    const dir = mkdtempSync(join(tmpdir(), "reservoir-deno-"));
    try {
      writeFileSync(join(dir, "sdk.mjs"), sdk);
      writeFileSync(
        join(dir, "main.mjs"),
        `import { Reservoir, verifyWebhook } from "./sdk.mjs";
const [url, key, inputText] = Deno.args;
const input = JSON.parse(inputText);
const rsv = new Reservoir({ url, apiKey: key });
const producer = rsv.producer({ lingerMs: 1 });
const offsets = await producer.sendMany("sdk.deno", ["d1", "d2", "d3"]);
await producer.close();
const read = [];
for await (const m of rsv.messages("sdk.deno", 0)) read.push(m.value);
const acked = [];
const consumer = rsv.consume("sdk.deno", "d", (m) => { acked.push(m.value); if (acked.length === 3) consumer.stop(); }, { concurrency: 2, waitMs: 1000 });
await consumer.done;
const verified = await verifyWebhook(input.secret, input.headers, input.body);
const refused = await verifyWebhook(input.secret, input.headers, input.body + " ").then(() => "accepted", (e) => e.name);
console.log(JSON.stringify({ offsets, read, acked: acked.sort(), verified, refused, deno: Deno.version.deno }));
`,
      );
      const out = execFileSync(
        join(repoRoot, "node_modules/.bin/deno"),
        [
          "run",
          "--allow-net=127.0.0.1",
          "--no-prompt",
          join(dir, "main.mjs"),
          server.baseUrl,
          apiKey,
          JSON.stringify({ secret, headers, body }),
        ],
        { encoding: "utf8", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: join(dir, "cache") }, timeout: 60_000 },
      );
      expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({
        ...expectedRun(["d1", "d2", "d3"], "msg_d"),
        deno: expect.stringMatching(/^2\./),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
