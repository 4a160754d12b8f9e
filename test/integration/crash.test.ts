// kill -9 of a Node server (Postgres + s3rver) in the middle of a produce load, then a restart on
// the same database, bucket and data dir. DESIGN.md: "kill -9 of any instance at any moment loses
// no acknowledged message and corrupts nothing"; a message exists once its Postgres commit did.
//
// Each message carries its identity in the header `x-id` (values may be binary), and its
// idempotency key is that identity, so that unacknowledged requests can be retried afterwards.

import { createHash } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { api, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";
import { startS3, type S3Server } from "../support/s3.ts";
import { prng } from "../support/prng.ts";

const PARTITIONS = 3;
const CLIENTS = 6;
const MAX_REQUESTS_PER_CLIENT = 400;
const KILL_AFTER_ACKED_MESSAGES = 800;
const KILL_AFTER_MS = 15_000; // kill by then even if fewer messages were acknowledged
const LOAD_DEADLINE_MS = 45_000; // hard bound on the whole load phase

interface SentMessage {
  id: string;
  value?: string;
  valueBase64?: string;
  key?: string;
  headers: Record<string, string>;
  idempotencyKey: string;
  /** The explicit partition of the request, if it had one. */
  partition?: number;
}

interface StoredMessage {
  partition: number;
  offset: number;
  value?: string;
  valueBase64?: string;
  key?: string;
  headers?: Record<string, string>;
  timestamp: number;
}

describe("kill -9 of a Node server under produce load, then restart", () => {
  let db: FreshDatabase | undefined;
  let s3: S3Server | undefined;
  let server: NodeServer | undefined;
  let client: Api;
  const topic = "crash-log";

  const sent = new Map<string, SentMessage>();
  const acked = new Map<string, { partition: number; offset: number }>();
  /** Requests that got no acknowledgement (in flight at the kill, or refused by a dying server). */
  const unacked: SentMessage[][] = [];
  const errorsBeforeKill: string[] = [];
  let killedPid = -1;
  let ackedAtKill = 0;

  beforeAll(async () => {
    db = await freshDatabase();
    s3 = await startS3();
    server = await startNodeServer({ env: { DATABASE_URL: db.url, ...s3.env }, label: "crash-server" });
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "crash" });
    assertStatus(tenant, 201);
    client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put(`/v1/topics/${topic}`, { partitions: PARTITIONS }), 201);
  }, 180_000);

  afterAll(async () => {
    await server?.stop().catch(() => {});
    await s3?.stop().catch(() => {});
    await db?.drop().catch(() => {});
  }, 60_000);

  beforeEach(({ onTestFailed }) => {
    const mark = server?.logs().length ?? 0;
    onTestFailed(() => {
      console.error(`----- server output during the failed test -----\n${(server?.logs() ?? "").slice(mark).slice(-30_000)}`);
    });
  });

  function makeMessage(id: string, rand: () => number): SentMessage {
    const headers = { "x-id": id, "x-kind": "crash-test" };
    const m: SentMessage = { id, headers, idempotencyKey: id };
    if (rand() < 0.3) {
      // Binary value: derived from the id, with every byte value likely to appear.
      const len = 16 + Math.floor(rand() * 600);
      const bytes = Buffer.alloc(len);
      const digest = createHash("sha256").update(id).digest();
      for (let i = 0; i < len; i++) bytes[i] = digest[i % digest.length] ^ (i & 0xff);
      m.valueBase64 = bytes.toString("base64");
    } else {
      m.value = `${id}:${"é€x".repeat(Math.floor(rand() * 300))}`;
    }
    if (rand() < 0.5) m.key = `key-${Math.floor(rand() * 10)}`;
    return m;
  }

  const wire = (m: SentMessage) => ({
    ...(m.value !== undefined ? { value: m.value } : { valueBase64: m.valueBase64 }),
    ...(m.key !== undefined ? { key: m.key } : {}),
    headers: m.headers,
    idempotencyKey: m.idempotencyKey,
    ...(m.partition !== undefined ? { partition: m.partition } : {}),
  });

  async function readPartition(p: number): Promise<{ messages: StoredMessage[]; highWatermark: number }> {
    const messages: StoredMessage[] = [];
    let offset = 0;
    let highWatermark = 0;
    for (let page = 0; page < 1_000; page++) {
      const res = await client.get(`/v1/topics/${topic}/partitions/${p}/messages`, { query: { offset, limit: 1000 } });
      assertStatus(res, 200);
      highWatermark = res.body.highWatermark;
      messages.push(...(res.body.messages as StoredMessage[]));
      if (res.body.messages.length === 0 || res.body.nextOffset >= res.body.highWatermark) break;
      offset = res.body.nextOffset;
    }
    return { messages, highWatermark };
  }

  async function readEverything(): Promise<{ byId: Map<string, StoredMessage[]>; problems: string[]; highWatermarks: number[] }> {
    const byId = new Map<string, StoredMessage[]>();
    const problems: string[] = [];
    const highWatermarks: number[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const { messages, highWatermark } = await readPartition(p);
      highWatermarks.push(highWatermark);
      messages.forEach((m, i) => {
        if (m.offset !== i) problems.push(`p${p}: offset ${m.offset} at position ${i} (not dense)`);
        if (m.partition !== p) problems.push(`p${p}@${m.offset}: partition field ${m.partition}`);
        const id = m.headers?.["x-id"];
        if (typeof id !== "string") {
          problems.push(`p${p}@${m.offset}: record without its x-id header: ${JSON.stringify(m).slice(0, 200)}`);
          return;
        }
        if (!byId.has(id)) byId.set(id, []);
        byId.get(id)!.push(m);
      });
      if (messages.length !== highWatermark) problems.push(`p${p}: ${messages.length} records below high watermark ${highWatermark}`);
    }
    return { byId, problems, highWatermarks };
  }

  function intactProblem(m: StoredMessage, s: SentMessage): string | null {
    const what = `${s.id} at p${m.partition}@${m.offset}`;
    if (s.value !== undefined) {
      if (m.value !== s.value) return `${what}: value differs`;
      if (m.valueBase64 !== undefined) return `${what}: came back with valueBase64`;
    } else {
      if (m.value !== undefined) return `${what}: binary message came back as value`;
      if (!Buffer.from(m.valueBase64 ?? "", "base64").equals(Buffer.from(s.valueBase64!, "base64"))) return `${what}: bytes differ`;
    }
    if ((m.key ?? undefined) !== s.key) return `${what}: key ${String(m.key)} != ${String(s.key)}`;
    if (JSON.stringify(m.headers ?? {}) !== JSON.stringify(s.headers) && !sameHeaders(m.headers ?? {}, s.headers))
      return `${what}: headers differ`;
    if (!Number.isInteger(m.timestamp)) return `${what}: timestamp ${String(m.timestamp)}`;
    return null;
  }

  function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
  }

  it("runs a concurrent produce load and kills the server with SIGKILL in the middle of it", async () => {
    let killed = false;
    let killing: Promise<void> | undefined;
    const started = Date.now();
    const killNow = () => {
      if (killed) return;
      killed = true;
      ackedAtKill = acked.size;
      killedPid = server!.pid;
      killing = server!.kill("SIGKILL");
    };
    const killTimer = setTimeout(killNow, KILL_AFTER_MS);

    const runClient = async (c: number) => {
      const rand = prng(7_000 + c);
      for (let r = 0; r < MAX_REQUESTS_PER_CLIENT && !killed && Date.now() - started < LOAD_DEADLINE_MS; r++) {
        const n = 1 + Math.floor(rand() * 10);
        const batch = Array.from({ length: n }, (_, i) => makeMessage(`c${c}-r${r}-m${i}`, rand));
        // Explicit partitions for some requests, keys or round-robin for the others.
        const explicit = rand() < 0.3 ? Math.floor(rand() * PARTITIONS) : undefined;
        for (const m of batch) {
          if (explicit !== undefined) m.partition = explicit;
          sent.set(m.id, m);
        }
        const body = { messages: batch.map(wire) };
        let res: ApiResponse;
        try {
          res = await client.post(`/v1/topics/${topic}/messages`, body, { timeoutMs: 20_000 });
        } catch (err) {
          unacked.push(batch);
          if (!killed) errorsBeforeKill.push(`c${c}/r${r}: ${(err as Error).message}`);
          // A connection error after the kill is expected; stop this client.
          return;
        }
        if (res.status !== 200) {
          unacked.push(batch);
          if (!killed) errorsBeforeKill.push(`c${c}/r${r}: ${describeResponse(res)}`);
          continue;
        }
        const offs = res.body.offsets as { partition: number; offset: number }[];
        if (!Array.isArray(offs) || offs.length !== n) {
          errorsBeforeKill.push(`c${c}/r${r}: bad offsets ${describeResponse(res)}`);
          unacked.push(batch);
          continue;
        }
        batch.forEach((m, i) => {
          acked.set(m.id, { partition: offs[i].partition, offset: offs[i].offset });
        });
        if (acked.size >= KILL_AFTER_ACKED_MESSAGES) killNow();
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => runClient(c)));
    clearTimeout(killTimer);
    killNow(); // in case every client ran out of requests first (bounded either way)
    await killing;

    console.log(
      `crash test: ${ackedAtKill} messages acknowledged when pid ${killedPid} got SIGKILL, ${acked.size} in all; ` +
        `${unacked.length} requests (${unacked.reduce((n, b) => n + b.length, 0)} messages) unacknowledged`,
    );
    expect(errorsBeforeKill, "requests failed before the kill").toEqual([]);
    expect(ackedAtKill, "messages were acknowledged before the kill").toBeGreaterThan(0);
    expect(server!.running()).toBe(false);
  }, 120_000);

  it("restarts on the same database, bucket and data dir and answers /healthz", async () => {
    await server!.restart();
    expect(server!.pid).not.toBe(killedPid);
    const res = await api(server!.baseUrl).get("/healthz");
    assertStatus(res, 200);
    expect(res.body).toMatchObject({ ok: true });
  }, 120_000);

  it("every partition is dense and every record decodes (no 5xx, each carries its identity)", async () => {
    const { problems } = await readEverything();
    expect(problems).toEqual([]);
  }, 60_000);

  it("every acknowledged message reads back intact at its acknowledged offset", async () => {
    const { byId } = await readEverything();
    const problems: string[] = [];
    for (const [id, at] of acked) {
      const found = byId.get(id) ?? [];
      const there = found.find((m) => m.partition === at.partition && m.offset === at.offset);
      if (!there) {
        problems.push(
          `${id} acknowledged at p${at.partition}@${at.offset} but found at [${found.map((m) => `p${m.partition}@${m.offset}`).join(", ")}]`,
        );
      } else {
        const bad = intactProblem(there, sent.get(id)!);
        if (bad) problems.push(bad);
      }
      if (problems.length >= 20) break;
    }
    expect(problems).toEqual([]);
  }, 60_000);

  it("nothing is duplicated and nothing unknown appears: each sent message is stored at most once", async () => {
    const { byId } = await readEverything();
    const problems: string[] = [];
    for (const [id, found] of byId) {
      if (!sent.has(id)) problems.push(`${id}: stored but never sent`);
      if (found.length > 1)
        problems.push(`${id}: stored ${found.length} times (${found.map((m) => `p${m.partition}@${m.offset}`).join(", ")})`);
      if (!acked.has(id) && sent.has(id)) {
        const bad = intactProblem(found[0], sent.get(id)!);
        if (bad) problems.push(`unacknowledged but stored ${bad}`);
      }
    }
    expect(problems.slice(0, 20)).toEqual([]);
  }, 60_000);

  it("retrying the unacknowledged requests with their idempotency keys stores each message exactly once", async () => {
    const before = await readEverything();
    const unackedIds = unacked.flat().map((m) => m.id);
    console.log(
      `crash test: ${unackedIds.filter((id) => before.byId.has(id)).length} of ${unackedIds.length} unacknowledged messages had been committed before the kill`,
    );
    for (const batch of unacked) {
      const res = await client.post(`/v1/topics/${topic}/messages`, { messages: batch.map(wire) });
      assertStatus(res, 200);
      const offs = res.body.offsets as { partition: number; offset: number }[];
      batch.forEach((m, i) => {
        const earlier = before.byId.get(m.id)?.[0];
        // Committed before the crash: the retry must answer the original offset.
        if (earlier) expect(offs[i], `${m.id} retried`).toEqual({ partition: earlier.partition, offset: earlier.offset });
        acked.set(m.id, { partition: offs[i].partition, offset: offs[i].offset });
      });
    }
    // Retrying an acknowledged request again changes nothing either.
    const anyAcked = [...acked.keys()].slice(0, 5).map((id) => sent.get(id)!);
    if (anyAcked.length > 0) {
      const again = await client.post(`/v1/topics/${topic}/messages`, { messages: anyAcked.map(wire) });
      assertStatus(again, 200);
      expect(again.body.offsets).toEqual(anyAcked.map((m) => acked.get(m.id)));
    }
    const after = await readEverything();
    expect(after.problems).toEqual([]);
    const problems: string[] = [];
    for (const [id, m] of sent) {
      const found = after.byId.get(id) ?? [];
      if (found.length !== 1) problems.push(`${id}: stored ${found.length} times`);
      else {
        const a = acked.get(id)!;
        if (found[0].partition !== a.partition || found[0].offset !== a.offset)
          problems.push(`${id}: at p${found[0].partition}@${found[0].offset}, acknowledged p${a.partition}@${a.offset}`);
        const bad = intactProblem(found[0], m);
        if (bad) problems.push(bad);
      }
      if (problems.length >= 20) break;
    }
    expect(problems).toEqual([]);
    expect(after.byId.size).toBe(sent.size);
  }, 120_000);

  it("after the restart new messages continue at each partition's high watermark", async () => {
    const { highWatermarks } = await readEverything();
    for (let p = 0; p < PARTITIONS; p++) {
      const res = await client.post(`/v1/topics/${topic}/messages`, {
        messages: [{ value: `after-${p}`, partition: p, headers: { "x-id": `after-${p}` } }],
      });
      assertStatus(res, 200);
      expect(res.body.offsets).toEqual([{ partition: p, offset: highWatermarks[p] }]);
    }
  });
});
