// What the Node server declares when it uploads a segment (S3_PAYLOAD_CHECKSUM, README
// "Configuration"), seen on the wire between it and s3rver: by default each PUT carries the
// body's CRC32C in a signed header, built from the segment's batch checksums, and an unsigned
// payload; compaction's merged objects (no writer checksum) carry one computed from their bytes.
// With `sha256`, the payload's SHA-256 is signed instead. s3rver checks neither, so what the
// tests prove is that what S3 would check is exactly the bytes sent, and that the data reads back.

import { crc32c as awsCrc32c } from "@aws-crypto/crc32c";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, type Api } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import type { SeenRequest } from "../support/stalling-proxy.ts";
import { stallingStack, type StallingStack } from "../support/stalling-stack.ts";

const base64Crc = (crc: number) => Buffer.from([crc >>> 24, crc >>> 16, crc >>> 8, crc].map((b) => b & 0xff)).toString("base64");

const isObjectPut = (r: SeenRequest) => r.method === "PUT" && r.path.includes("/segments/");

async function tenantOn(stack: StallingStack<NodeServer>, name: string): Promise<{ admin: Api; client: Api }> {
  const admin = api(stack.server.baseUrl, stack.server.adminToken);
  const client = api(stack.server.baseUrl, (await admin.post("/v1/admin/tenants", { name })).body.apiKey);
  expect((await client.put("/v1/topics/t", { partitions: 3 })).status).toBe(201);
  return { admin, client };
}

/** Messages of every shape a record can take (keys, headers, binary values), over three partitions. */
function messagesFor(round: number) {
  return Array.from({ length: 40 }, (_, i) => ({
    ...(i % 3 === 0
      ? { valueBase64: Buffer.from(`bin-${round}-${i}-\u0000\u00ff`).toString("base64") }
      : { value: `v-${round}-${i}`.repeat(1 + (i % 7)) }),
    ...(i % 2 === 0 ? { key: `k${i % 5}` } : {}),
    ...(i % 4 === 1 ? { headers: { trace: `t-${i}`, "content-kind": "x" } } : {}),
    partition: i % 3,
  }));
}

async function countStored(client: Api): Promise<number> {
  let total = 0;
  for (let p = 0; p < 3; p++) {
    const res = await client.get(`/v1/topics/t/partitions/${p}/messages?offset=0&limit=1000`);
    expect(res.status).toBe(200);
    total += res.body.messages.length;
  }
  return total;
}

describe("segment uploads, S3_PAYLOAD_CHECKSUM=crc32c (the default)", () => {
  let stack: StallingStack<NodeServer>;
  const seen: SeenRequest[] = [];

  beforeAll(async () => {
    // Segments of a few KiB, far under the compaction target's half: a maintenance pass merges them.
    stack = await stallingStack((env) => startNodeServer({ label: "upload-crc32c", env }));
    stack.proxy.watch((r) => {
      if (isObjectPut(r)) seen.push(r);
    });
  }, 120_000);
  afterAll(() => stack?.stop());

  it("declares each segment's CRC32C, equal to the bytes sent, and leaves the payload unsigned", async () => {
    const { admin, client } = await tenantOn(stack, "crc");
    for (let round = 0; round < 4; round++) {
      const res = await client.post("/v1/topics/t/messages", { messages: messagesFor(round) });
      expect(res.status).toBe(200);
    }
    const flushed = seen.length;
    expect(flushed).toBeGreaterThanOrEqual(1);
    // Compaction writes merged objects whose checksum the store computes itself.
    const pass = await admin.post("/v1/admin/maintenance");
    expect(pass.status).toBe(200);
    expect(pass.body.compaction.segmentsOut).toBeGreaterThanOrEqual(1);
    expect(seen.length).toBeGreaterThan(flushed);
    for (const put of seen) {
      expect(put.headers["x-amz-checksum-crc32c"], put.path).toBe(base64Crc(awsCrc32c(put.body)));
      expect(put.headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
      expect(put.headers.authorization).toMatch(/SignedHeaders=[^,]*x-amz-checksum-crc32c/);
    }
    expect(await countStored(client)).toBe(160);
  }, 60_000);
});

describe("segment uploads, S3_PAYLOAD_CHECKSUM=sha256", () => {
  let stack: StallingStack<NodeServer>;
  const seen: SeenRequest[] = [];

  beforeAll(async () => {
    stack = await stallingStack((env) => startNodeServer({ label: "upload-sha256", env }), { S3_PAYLOAD_CHECKSUM: "sha256" });
    stack.proxy.watch((r) => {
      if (isObjectPut(r)) seen.push(r);
    });
  }, 120_000);
  afterAll(() => stack?.stop());

  it("signs each segment's SHA-256 and declares no checksum header", async () => {
    const { client } = await tenantOn(stack, "sha");
    for (let round = 0; round < 2; round++) {
      expect((await client.post("/v1/topics/t/messages", { messages: messagesFor(round) })).status).toBe(200);
    }
    expect(seen.length).toBeGreaterThanOrEqual(1);
    for (const put of seen) {
      expect(put.headers["x-amz-content-sha256"]).toBe(createHash("sha256").update(put.body).digest("hex"));
      expect(Object.keys(put.headers).filter((h) => h.startsWith("x-amz-checksum-"))).toEqual([]);
    }
    expect(await countStored(client)).toBe(80);
  }, 60_000);
});
