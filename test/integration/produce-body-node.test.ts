// A produce body as the Node server reads it from the connection (functions/runtime/node/
// declared-body.ts: one array of the declared length, filled chunk by chunk): over a raw socket,
// a body sent in many small writes is stored exactly, and a body whose connection ends before its
// Content-Length stores nothing, logs no failure, and leaves the server answering.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";

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
  let db: FreshDatabase;
  let server: NodeServer;
  let client: Api;
  let key: string;

  beforeAll(async () => {
    db = await freshDatabase();
    server = await startNodeServer({ env: { DATABASE_URL: db.url }, label: "produce-body" });
    const admin = api(server.baseUrl, server.adminToken);
    key = (await admin.post("/v1/admin/tenants", { name: "produce-body" })).body.apiKey;
    client = api(server.baseUrl, key);
    await client.put("/v1/topics/t", { partitions: 1 });
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  }, 60_000);

  const head = (length: number) =>
    `POST /v1/topics/t/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
  const read = async () => (await client.get("/v1/topics/t/partitions/0/messages", { query: { offset: 0, max: 100 } })).body.messages;

  it("a body whose connection ends before its Content-Length stores nothing and fails nothing", async () => {
    const body = Buffer.from(JSON.stringify({ messages: [{ value: "cut short" }] }));
    const answer = await rawRequest(server.port, head(body.length), [body.subarray(0, 10)], true);
    // The client gave up on its request: whatever came back, it was no 5xx.
    expect(answer).not.toMatch(/^HTTP\/1\.1 5/);
    expect(await read()).toEqual([]);
    expect(server.logs()).not.toMatch(/failed:/);
  });

  it("a body sent in many small writes is stored byte for byte", async () => {
    const values = Array.from({ length: 40 }, (_, i) => `message ${i} ${"é".repeat(i)} ${"x".repeat(i * 37)}`);
    const body = Buffer.from(JSON.stringify({ messages: values.map((value) => ({ value, key: `k${i(value)}` })) }));
    const parts: Buffer[] = [];
    for (let at = 0; at < body.length; at += 97) parts.push(body.subarray(at, at + 97));
    const answer = await rawRequest(server.port, head(body.length), parts);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const messages = await read();
    expect(messages.map((m: { value: string }) => m.value)).toEqual(values);
    expect(messages[0].offset).toBe(0);
  });
});

/** A key derived from the value, so that keys are checked too. */
function i(value: string): number {
  return value.length % 7;
}
