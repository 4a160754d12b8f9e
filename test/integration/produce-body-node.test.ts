// Request bodies as the Node server reads them from the connection (functions/runtime/node/
// declared-body.ts: one array of the declared length, filled chunk by chunk; a body of unknown
// length through the Request's stream): over a raw socket, a body sent in many small writes is
// stored exactly, and a body whose connection ends early (produce with a Content-Length or
// chunked, or SQS) stores nothing and logs no failure: the client ended it.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";
import { readAll } from "../support/topics.ts";

/**
 * Writes the request head and then each part, waiting for each write to leave, and resolves with
 * what came back once the connection closed. `cut`: the client closes its side after the parts
 * (a body cut short); otherwise it waits for the answer (the request says Connection: close).
 */
function rawRequest(port: number, head: string, parts: Buffer[], cut = false): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
    socket.once("connect", async () => {
      const write = (bytes: Buffer | string) => new Promise<void>((done) => socket.write(bytes, () => done()));
      await write(head);
      for (const part of parts) await write(part);
      if (cut) socket.end();
    });
  });
}

/** The requests a server counted for one route, by status (GET /metrics). */
async function countedByStatus(admin: Api, route: string): Promise<Map<string, number>> {
  const text = (await admin.get("/metrics", { headers: { accept: "text/plain" } })).text;
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("reservoir_http_requests_total{") || !line.includes(`route="${route}"`)) continue;
    const status = /status="(\d+)"/.exec(line)?.[1];
    if (status) counts.set(status, Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return counts;
}

/**
 * Runs `cut` (a request whose client goes away), then asks the server's request counter until it
 * has counted that request, so that its handler has finished: the status it was counted with.
 */
async function statusOfCut(admin: Api, route: string, cut: () => Promise<unknown>): Promise<string> {
  const before = await countedByStatus(admin, route);
  await cut();
  for (let asked = 0; asked < 1000; asked++) {
    const after = await countedByStatus(admin, route);
    for (const [status, n] of after) if (n > (before.get(status) ?? 0)) return status;
  }
  throw new Error(`the server never counted the request to ${route}`);
}

describe("produce bodies read from the Node connection", () => {
  let started: TenantServer;

  beforeAll(async () => {
    started = await serverWithTenant({ label: "produce-body" });
  }, 120_000);

  afterAll(() => started?.stop(), 60_000);

  /** The head of a POST that closes its connection after the answer: `headers` are "Name: value" lines. */
  const requestHead = (path: string, ...headers: string[]) =>
    [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", ...headers, "Connection: close", "", ""].join("\r\n");
  /** A produce to topic t as the tenant. */
  const produceHead = (...headers: string[]) => requestHead("/v1/topics/t/messages", `Authorization: Bearer ${started.apiKey}`, ...headers);
  const head = (length: number) => produceHead("Content-Type: application/json", `Content-Length: ${length}`);
  const read = () => readAll(started.client, "t", 0);

  // Each cut request is counted by the server once its handler finished: with 400 (the client
  // ended the body), never 500; and then nothing was stored and no failure was logged.
  const PRODUCE = "/v1/topics/:topic/messages";

  it("a body whose connection ends before its Content-Length stores nothing and fails nothing", async () => {
    const body = Buffer.from(JSON.stringify({ messages: [{ value: "cut short" }] }));
    const cut = () => rawRequest(started.server.port, head(body.length), [body.subarray(0, 10)], true);
    expect(await statusOfCut(started.admin, PRODUCE, cut)).toBe("400");
    expect(await read()).toEqual([]);
    expect(started.server.logs()).not.toMatch(/failed/);
  });

  it("a chunked produce body whose connection ends mid-chunk stores nothing and fails nothing", async () => {
    const chunked = produceHead("Content-Type: application/json", "Transfer-Encoding: chunked");
    const cut = () => rawRequest(started.server.port, chunked, [Buffer.from('40\r\n{"messages":[{"value":"cut')], true);
    expect(await statusOfCut(started.admin, PRODUCE, cut)).toBe("400");
    expect(await read()).toEqual([]);
    expect(started.server.logs()).not.toMatch(/failed/);
  });

  it("a chunked ndjson body cut at a line's end stores none of its lines", async () => {
    const chunked = produceHead("Content-Type: application/x-ndjson", "Transfer-Encoding: chunked");
    const lines = '{"value":"first"}\n{"value":"second"}\n';
    const cut = () => rawRequest(started.server.port, chunked, [Buffer.from(`${lines.length.toString(16)}\r\n${lines}\r\n`)], true);
    expect(await statusOfCut(started.admin, PRODUCE, cut)).toBe("400");
    expect(await read()).toEqual([]);
    expect(started.server.logs()).not.toMatch(/failed/);
  });

  it("an SQS request whose connection ends before its Content-Length fails nothing", async () => {
    const body = Buffer.from(JSON.stringify({ QueueUrl: "http://127.0.0.1/queue/t", MessageBody: "cut short" }));
    const sqs = requestHead(
      "/sqs",
      "X-Amz-Target: AmazonSQS.SendMessage",
      "Content-Type: application/x-amz-json-1.0",
      `Content-Length: ${body.length}`,
    );
    const cut = () => rawRequest(started.server.port, sqs, [body.subarray(0, 10)], true);
    expect(await statusOfCut(started.admin, "/sqs", cut)).toBe("400");
    expect(started.server.logs()).not.toMatch(/failed/);
  });

  it("a body sent in many small writes is stored byte for byte", async () => {
    const values = Array.from({ length: 40 }, (_, i) => `message ${i} ${"é".repeat(i)} ${"x".repeat(i * 37)}`);
    const keys = values.map((_, n) => `k${n % 7}`);
    const body = Buffer.from(JSON.stringify({ messages: values.map((value, n) => ({ value, key: keys[n] })) }));
    const parts: Buffer[] = [];
    for (let at = 0; at < body.length; at += 97) parts.push(body.subarray(at, at + 97));
    const answer = await rawRequest(started.server.port, head(body.length), parts);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const messages = await read();
    expect(messages.map((m) => m.value)).toEqual(values);
    expect(messages.map((m) => m.key)).toEqual(keys);
    expect(messages[0].offset).toBe(0);
  });
});
