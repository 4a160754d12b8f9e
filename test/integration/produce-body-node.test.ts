// A produce body as the Node server reads it from the connection (functions/runtime/node/
// declared-body.ts: one array of the declared length, filled chunk by chunk): over a raw socket,
// a body sent in many small writes is stored exactly, and a body whose connection ends before its
// Content-Length stores nothing, logs no failure, and leaves the server answering.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

describe("produce bodies read from the Node connection", () => {
  let started: TenantServer;

  beforeAll(async () => {
    started = await serverWithTenant({ label: "produce-body" });
  }, 120_000);

  afterAll(() => started?.stop(), 60_000);

  const head = (length: number) =>
    `POST /v1/topics/t/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${started.apiKey}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
  const read = () => readAll(started.client, "t", 0);

  it("a body whose connection ends before its Content-Length stores nothing and fails nothing", async () => {
    const body = Buffer.from(JSON.stringify({ messages: [{ value: "cut short" }] }));
    const answer = await rawRequest(started.server.port, head(body.length), [body.subarray(0, 10)], true);
    // The client gave up on its request: whatever came back, it was no 5xx.
    expect(answer).not.toMatch(/^HTTP\/1\.1 5/);
    expect(await read()).toEqual([]);
    expect(started.server.logs()).not.toMatch(/failed:/);
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
